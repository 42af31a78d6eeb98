#!/usr/bin/python3
"""PyTorch parity of the detect task's FCOS loss (plugins/task/fcos.c)
against torchvision's FCOS.compute_loss and FCOSHead.compute_loss.

For each case, seeded raw head outputs (class logits, box regression after
its ReLU, centerness, on levels of stride 8 and 16) and ground-truth boxes
are written for tests/detect_parity, which runs robusta's loss host op.
torchvision computes the same loss from the same float32 values with its
own code: the anchors of AnchorGenerator(((8,), (16,)), ((1.0,),) * 2) (whose
centres are checked to be the points (8j, 8i) and (16j, 16i) fcos.h
describes), FCOS.compute_loss's assignment in float32 (as a float32 model
makes it), then FCOSHead.compute_loss; the total is the sum of its
classification, bbox_regression and bbox_ctrness terms (what torchvision's
reference scripts minimize).

Compared, against torchvision in float64 on the float32 run's assignment:
  loss        the batch's loss (robusta: the mean of its per-image values)
  grads       d loss / d every raw output, each as max |q - exact| /
              max |exact| over the output, the worst of the six
and exactly: the foreground points (where robusta's centerness gradient is
not zero) are torchvision's float32 ones. How many points float64's own
assignment would give otherwise is printed (its 1e8 - area no longer ties).

Bound: TOLERANCE = 1e-6. robusta sums the terms in double from the same
float32 inputs as the float64 reference and rounds the per-image values and
the gradients to float32 once (6e-8 relative): measured on AMD EPYC, at
most 6.5e-8 on the loss and 7.1e-8 on the gradients, torchvision in
float32 (printed beside) 8.4e-8 and 2.6e-7. A wrong term, weight, sign,
divisor or assignment costs 1e-2 or more (taking the smaller of the two
boxes whose areas 576 and 572 tie in float32, as float64 would: 1.1e-2 on
the loss, 0.44 on the gradients).

Usage: torch_detect_parity.py DETECT_PARITY_BINARY WORK_DIR
"""
import os
import subprocess
import sys
import types

import numpy as np
import torch
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.fcos import FCOS, FCOSHead
from torchvision.models.detection.image_list import ImageList

TOLERANCE = 1e-6
STRIDES = (8, 16)


def error(got, exact):
    got = np.asarray(got, dtype=np.float64).ravel()
    exact = np.asarray(exact, dtype=np.float64).ravel()
    assert got.size == exact.size, f"{got.size} values, want {exact.size}"
    scale = float(np.max(np.abs(exact))) if exact.size else 0.0
    return float(np.max(np.abs(got - exact))) / (scale if scale > 0 else 1.0) if got.size else 0.0


def anchors_for(n, size, dtype):
    gen = AnchorGenerator(tuple((s,) for s in STRIDES), ((1.0,),) * len(STRIDES))
    images = ImageList(torch.zeros(n, 3, size, size, dtype=dtype), [(size, size)] * n)
    feats = [torch.zeros(n, 1, size // s, size // s, dtype=dtype) for s in STRIDES]
    anchors = gen(images, feats)
    # fcos.h's points: level l's anchor at row i, column j is centred on
    # (j s, i s) and s wide, row-major, level 0 first
    want = []
    for s in STRIDES:
        g = size // s
        i, j = np.meshgrid(np.arange(g), np.arange(g), indexing="ij")
        c = np.stack([j.ravel() * s, i.ravel() * s], axis=1).astype(np.float64)
        want.append(np.concatenate([c - s / 2, c + s / 2], axis=1))
    assert np.array_equal(anchors[0].numpy().astype(np.float64), np.concatenate(want)), "anchor geometry"
    return anchors


class Capture:
    """Stands for FCOS.head: keeps the assignment FCOS.compute_loss made."""

    def __init__(self, head):
        self.head = head
        self.matched = None

    def compute_loss(self, targets, head_outputs, anchors, matched_idxs):
        self.matched = matched_idxs
        return self.head.compute_loss(targets, head_outputs, anchors, matched_idxs)


def flatten(outputs, n, k):
    """Our per-level (N, C, G, G) outputs as torchvision's (N, sum HW, C)."""
    cls, reg, ctr = [], [], []
    for level in range(len(STRIDES)):
        c, r, t = outputs[3 * level:3 * level + 3]
        cls.append(c.permute(0, 2, 3, 1).reshape(n, -1, k))
        reg.append(r.permute(0, 2, 3, 1).reshape(n, -1, 4))
        ctr.append(t.permute(0, 2, 3, 1).reshape(n, -1, 1))
    return {"cls_logits": torch.cat(cls, 1), "bbox_regression": torch.cat(reg, 1), "bbox_ctrness": torch.cat(ctr, 1)}


def torch_loss(arrays, boxes, n, k, size, dtype, matched=None):
    outputs = [torch.tensor(a, dtype=dtype, requires_grad=True) for a in arrays]
    targets = [{"boxes": torch.tensor(b[:, :4], dtype=dtype).reshape(-1, 4),
                "labels": torch.tensor(b[:, 4], dtype=torch.int64)} for b in boxes]
    anchors = anchors_for(n, size, dtype)
    head = FCOSHead(32, 1, k)  # only its compute_loss and box coder are used
    flat = flatten(outputs, n, k)
    if matched is None:
        fake = types.SimpleNamespace(center_sampling_radius=1.5, head=Capture(head))
        per_level = [(size // s) ** 2 for s in STRIDES]
        losses = FCOS.compute_loss(fake, targets, flat, anchors, per_level)
        matched = fake.head.matched
    else:
        losses = head.compute_loss(targets, flat, anchors, matched)
    total = sum(losses.values())
    total.backward()
    return float(total), [o.grad.numpy() for o in outputs], matched


def random_boxes(rng, count, size, k):
    out = []
    for _ in range(count):
        w, h = rng.uniform(4, size, size=2)
        x1, y1 = rng.uniform(0, size - w), rng.uniform(0, size - h)
        out.append([x1, y1, x1 + w, y1 + h, rng.integers(0, k)])
    return np.array(out, dtype=np.float32).reshape(-1, 5)


def make_case(rng, n, k, size, kinds):
    boxes = []
    for kind in kinds:
        if kind == "none":
            boxes.append(np.zeros((0, 5), dtype=np.float32))
        elif kind == "hand":
            # whole pixels: distances of exactly 64 and centre offsets of
            # exactly 1.5 strides (no level takes them), a box inside
            # another, two boxes of equal area over the same points, and
            # areas that tie as 1e8 - area in float32 (576 and 572)
            b = [[4, 4, 28, 20, 0], [8, 8, 120, 104, 1], [56, 40, 72, 72, 2], [2, 90, 26, 114, 0],
                 [6, 94, 30, 118, 1], [6, 94, 28, 120, 2]]
            boxes.append(np.array([[v if i < 4 else v % k for i, v in enumerate(r)] for r in b],
                                  dtype=np.float32))
        else:
            boxes.append(random_boxes(rng, int(kind), size, k))
    arrays = []
    for s in STRIDES:
        g = size // s
        arrays.append(rng.normal(-3, 2, size=(n, k, g, g)).astype(np.float32))
        arrays.append(np.maximum(rng.normal(1.5, 1.5, size=(n, 4, g, g)), 0).astype(np.float32))  # after ReLU
        arrays.append(rng.normal(0, 2, size=(n, 1, g, g)).astype(np.float32))
    return arrays, boxes


def run_case(binary, work, label, rng, n, k, size, kinds):
    arrays, boxes = make_case(rng, n, k, size, kinds)
    for o, a in enumerate(arrays):
        a.tofile(os.path.join(work, f"out{o}.f32"))
    np.concatenate(boxes).astype(np.float32).tofile(os.path.join(work, "boxes.f32"))
    np.cumsum([0] + [len(b) for b in boxes]).astype(np.int64).tofile(os.path.join(work, "offsets.i64"))
    subprocess.run([binary, "loss", work, str(n), str(k), str(size)], check=True)
    got_loss = float(open(os.path.join(work, "loss.txt")).read())
    got_grads = [np.fromfile(os.path.join(work, f"grad{o}.f32"), dtype=np.float32).reshape(a.shape)
                 for o, a in enumerate(arrays)]
    peer_loss, peer_grads, matched = torch_loss(arrays, boxes, n, k, size, torch.float32)
    exact_loss, exact_grads, _ = torch_loss(arrays, boxes, n, k, size, torch.float64,
                                            matched=[m.clone() for m in matched])
    _, _, own64 = torch_loss(arrays, boxes, n, k, size, torch.float64)
    # the foreground points, exactly: robusta's non-zero centerness gradients
    fg_torch = torch.stack(matched).numpy() >= 0
    fg_robusta = np.concatenate([got_grads[3 * l + 2].reshape(n, -1) != 0 for l in range(len(STRIDES))], axis=1)
    assert np.array_equal(fg_torch, fg_robusta), \
        f"{label}: foreground points differ at {np.argwhere(fg_torch != fg_robusta)[:5].tolist()}"
    moved = int((torch.stack(own64).numpy() != torch.stack(matched).numpy()).sum())
    e_loss, p_loss = error(got_loss, exact_loss), error(peer_loss, exact_loss)
    e_grad = max(error(g, x) for g, x in zip(got_grads, exact_grads))
    p_grad = max(error(g, x) for g, x in zip(peer_grads, exact_grads))
    print(f"{label:34s} foreground {int(fg_torch.sum()):4d}  loss {exact_loss:9.5f}  "
          f"loss {e_loss:.1e} (torch fp32 {p_loss:.1e})  grads {e_grad:.1e} (torch fp32 {p_grad:.1e})  "
          f"float64's own assignment moves {moved} point(s)")
    sys.stdout.flush()
    return max(e_loss, e_grad)


def main():
    binary, work = sys.argv[1], sys.argv[2]
    rng = np.random.default_rng(19)
    torch.set_num_threads(1)
    cases = [
        ("128x128, 5 classes, hand + random", 4, 5, 128, ["hand", "3", "none", "15"]),
        ("96x96, 3 classes, random", 3, 3, 96, ["6", "1", "12"]),
        ("64x64, 1 class, one box", 2, 1, 64, ["1", "none"]),
        ("128x128, 2 classes, no boxes at all", 2, 2, 128, ["none", "none"]),
    ]
    worst = 0.0
    failed = []
    for label, n, k, size, kinds in cases:
        e = run_case(binary, work, label, rng, n, k, size, kinds)
        worst = max(worst, e)
        if e > TOLERANCE:
            failed.append(f"{label}: {e:.2e}")
    print(f"worst robusta error against float64: {worst:.2e} (bound {TOLERANCE:g})")
    if failed:
        print("FAIL: " + "; ".join(failed))
        sys.exit(1)


if __name__ == "__main__":
    main()
