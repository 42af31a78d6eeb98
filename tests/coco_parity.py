#!/usr/bin/env python3
"""robusta coco-eval against pycocotools' COCOeval on random cases.

Writes pseudo-random ground truths and detections that reach the rules'
corners (crowd regions, `area` fields that disagree with the box and areas
on the range bounds 32² and 96², tied scores, identical boxes, more than 100
detections in an image, empty boxes, images and categories without ground
truth), runs `robusta coco-eval --json` and pycocotools on each, and
requires the 12 numbers and every category's AP to be bit for bit equal.

    tests/coco_parity.py --robusta ./robusta [--cases 200] [--seed 1]

Exits 77 (skip) when pycocotools cannot be imported (Debian has no
package; PYTHONPATH may point at a built copy), 1 on a difference (the
case's files are kept), 0 otherwise.
"""
import argparse
import contextlib
import io
import json
import os
import random
import subprocess
import sys
import tempfile

try:
    import numpy as np
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
except Exception as e:  # ImportError, or a numpy pycocotools was not built for
    print(f"SKIP: pycocotools is not importable ({e})")
    sys.exit(77)

NAMES = ["AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"]


def make_case(rng, zero_id):
    n_images = rng.randint(1, 25)
    image_ids = rng.sample(range(1, 1000), n_images)
    # more than 8 categories make AP's mean run over more than 8,192 entries,
    # numpy's buffer size
    n_cats = rng.randint(1, 6) if rng.random() < 0.7 else rng.randint(9, 14)
    cat_ids = rng.sample(range(1, 100), n_cats)
    images = [{"id": i, "file_name": f"{i}.png", "width": 640, "height": 480} for i in image_ids]
    cats = [{"id": c, "name": f"c{c}"} for c in cat_ids]
    quantum = rng.choice([1.0, 0.5, None])

    def coord(lo, hi):
        v = rng.uniform(lo, hi)
        return round(v / quantum) * quantum if quantum else v

    def box():
        kind = rng.random()
        if kind < 0.15:  # about 32 x 32 or 96 x 96: areas near the bounds
            side = rng.choice([32, 96, 31.5, 32.5, 95.5, 96.5])
            return [coord(0, 300), coord(0, 300), side, side]
        if kind < 0.2:
            return [coord(0, 300), coord(0, 300), rng.choice([0, 5]), rng.choice([0, 5])]
        return [coord(0, 300), coord(0, 300), coord(1, 200), coord(1, 200)]

    anns = []
    next_id = 0 if zero_id else 1
    for i in image_ids:
        if rng.random() < 0.2:
            continue  # an image without ground truth
        for _ in range(rng.randint(0, 8)):
            b = box()
            r = rng.random()
            if r < 0.6:
                area = b[2] * b[3]
            elif r < 0.75:
                area = rng.choice([1024, 9216, 1023.5, 9216.5, 0])
            else:
                area = b[2] * b[3] * rng.uniform(0.3, 1.2)
            anns.append({"id": next_id, "image_id": i, "category_id": rng.choice(cat_ids[: max(1, n_cats - 1)]),
                         "bbox": b, "area": area, "iscrowd": 1 if rng.random() < 0.1 else 0})
            next_id += 1
    rng.shuffle(anns)
    dets = []
    scores = [0.9, 0.5, 0.5, 0.3] if rng.random() < 0.5 else None
    for i in image_ids:
        mine = [a for a in anns if a["image_id"] == i]
        n = rng.choice([0, 1, 3, 10, 30, 120]) if rng.random() < 0.9 else rng.randint(0, 150)
        for _ in range(n):
            if mine and rng.random() < 0.6:
                a = rng.choice(mine)
                b = list(a["bbox"])
                if rng.random() < 0.7:
                    b = [b[0] + coord(-10, 10), b[1] + coord(-10, 10), max(0.0, b[2] + coord(-10, 10)),
                         max(0.0, b[3] + coord(-10, 10))]
                c = a["category_id"] if rng.random() < 0.8 else rng.choice(cat_ids)
            else:
                b, c = box(), rng.choice(cat_ids)
            s = rng.choice(scores) if scores else round(rng.random(), rng.choice([2, 6, 12]))
            dets.append({"image_id": i, "category_id": c, "bbox": b, "score": s})
    if not dets:  # pycocotools' loadRes cannot read an empty list
        dets.append({"image_id": image_ids[0], "category_id": cat_ids[0], "bbox": [1, 1, 2, 2], "score": 0.5})
    rng.shuffle(dets)
    return {"images": images, "annotations": anns, "categories": cats}, dets


def pycocotools_numbers(gt_path, dt_path):
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(gt_path)
        dt = gt.loadRes(dt_path)
        ev = COCOeval(gt, dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    per_cat = {}
    for k, cat in enumerate(ev.params.catIds):
        s = ev.eval["precision"][:, :, k, 0, 2]
        per_cat[cat] = float(np.mean(s[s > -1])) if (s > -1).any() else -1.0
    return [float(x) for x in ev.stats], per_cat


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--robusta", required=True)
    ap.add_argument("--cases", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    tmp = tempfile.mkdtemp(prefix="coco-parity-")
    for case in range(args.cases):
        gt, dets = make_case(rng, zero_id=case % 10 == 9)  # an annotation id 0 every tenth case
        gt_path, dt_path = os.path.join(tmp, "gt.json"), os.path.join(tmp, "dt.json")
        with open(gt_path, "w") as f:
            json.dump(gt, f)
        with open(dt_path, "w") as f:
            json.dump(dets, f)
        want, want_cats = pycocotools_numbers(gt_path, dt_path)
        run = subprocess.run([args.robusta, "coco-eval", "--gt", gt_path, "--dt", dt_path, "--json"],
                             capture_output=True, text=True)
        if run.returncode != 0:
            print(f"case {case}: robusta failed: {run.stderr.strip()} (files in {tmp})")
            return 1
        got = json.loads(run.stdout)
        bad = [(n, want[i], got[n]) for i, n in enumerate(NAMES) if want[i] != got[n]]
        bad += [(f"category {c['id']}", want_cats[c["id"]], c["AP"]) for c in got["categories"]
                if want_cats[c["id"]] != c["AP"]]
        if bad:
            for name, w, g in bad:
                print(f"case {case}: {name}: pycocotools {w!r}, robusta {g!r}")
            print(f"files in {tmp}")
            return 1
    print(f"coco parity: {args.cases} cases, 12 numbers and per-category AP equal to the bit")
    os.remove(os.path.join(tmp, "gt.json"))
    os.remove(os.path.join(tmp, "dt.json"))
    os.rmdir(tmp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
