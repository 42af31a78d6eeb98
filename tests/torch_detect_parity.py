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

Then the whole head (plugins/task/detect.c with --norm group, robusta's
engine in float32) on a stand-in backbone, the images average-pooled by the
stride and by twice the stride, against torchvision's modules with the same
weights (a Model below: FeaturePyramidNetwork's lateral convolutions, the
plugin's merge, FCOSHead; the state-dict names are the plugin's tensor
names) in float64, its loss on the float32 run's assignment. Compared: the
six raw outputs, the loss, every weight's gradient together, the images'
gradient. Bound: HEAD_TOLERANCE = 2e-5, as the segment heads' parity
argues it: up to 2 x 4 + 2 layers of sums of at most 288 float32 products
(3x3 over 32 channels) and Winograd's rounding put float32 at 1e-6 to 5e-6
(measured on AMD EPYC: robusta at most 3.9e-6, torchvision in float32 3.8e-6
beside it); a wrong weight, name, layer order, merge or level costs 1e-2
or more.

Last, decoding: fcos_decode against FCOS.postprocess_detections on random
raw outputs with thousands of candidates (see run_decode_case).

Usage: torch_detect_parity.py DETECT_PARITY_BINARY WORK_DIR
"""
import os
import subprocess
import sys
import types

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.models.detection._utils import BoxLinearCoder
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.fcos import FCOS, FCOSHead
from torchvision.models.detection.image_list import ImageList
from torchvision.ops.feature_pyramid_network import FeaturePyramidNetwork

TOLERANCE = 1e-6
HEAD_TOLERANCE = 2e-5


def error(got, exact):
    got = np.asarray(got, dtype=np.float64).ravel()
    exact = np.asarray(exact, dtype=np.float64).ravel()
    assert got.size == exact.size, f"{got.size} values, want {exact.size}"
    scale = float(np.max(np.abs(exact))) if exact.size else 0.0
    return float(np.max(np.abs(got - exact))) / (scale if scale > 0 else 1.0) if got.size else 0.0


def anchors_for(n, size, strides, dtype):
    gen = AnchorGenerator(tuple((s,) for s in strides), ((1.0,),) * len(strides))
    images = ImageList(torch.zeros(n, 3, size, size, dtype=dtype), [(size, size)] * n)
    feats = [torch.zeros(n, 1, size // s, size // s, dtype=dtype) for s in strides]
    anchors = gen(images, feats)
    # fcos.h's points: level l's anchor at row i, column j is centred on
    # (j s, i s) and s wide, row-major, level 0 first
    want = []
    for s in strides:
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
    for level in range(len(outputs) // 3):
        c, r, t = outputs[3 * level:3 * level + 3]
        cls.append(c.permute(0, 2, 3, 1).reshape(n, -1, k))
        reg.append(r.permute(0, 2, 3, 1).reshape(n, -1, 4))
        ctr.append(t.permute(0, 2, 3, 1).reshape(n, -1, 1))
    return {"cls_logits": torch.cat(cls, 1), "bbox_regression": torch.cat(reg, 1), "bbox_ctrness": torch.cat(ctr, 1)}


def fcos_loss(flat, boxes, n, k, size, strides, dtype, matched=None):
    """torchvision's FCOS loss of head outputs in its (N, sum HW, C) layout:
    FCOS.compute_loss (its assignment, then FCOSHead.compute_loss), or
    FCOSHead.compute_loss alone on a given assignment. The total and the
    assignment."""
    targets = [{"boxes": torch.tensor(b[:, :4], dtype=dtype).reshape(-1, 4),
                "labels": torch.tensor(b[:, 4], dtype=torch.int64)} for b in boxes]
    anchors = anchors_for(n, size, strides, dtype)
    head = FCOSHead(32, 1, k)  # only its compute_loss and box coder are used
    if matched is None:
        fake = types.SimpleNamespace(center_sampling_radius=1.5, head=Capture(head))
        per_level = [(size // s) ** 2 for s in strides]
        losses = FCOS.compute_loss(fake, targets, flat, anchors, per_level)
        matched = fake.head.matched
    else:
        losses = head.compute_loss(targets, flat, anchors, matched)
    return sum(losses.values()), matched


def torch_loss(arrays, boxes, n, k, size, strides, dtype, matched=None):
    outputs = [torch.tensor(a, dtype=dtype, requires_grad=True) for a in arrays]
    total, matched = fcos_loss(flatten(outputs, n, k), boxes, n, k, size, strides, dtype, matched)
    total.backward()
    return float(total), [o.grad.numpy() for o in outputs], matched


def random_boxes(rng, count, size, k):
    out = []
    for _ in range(count):
        w, h = rng.uniform(4, size, size=2)
        x1, y1 = rng.uniform(0, size - w), rng.uniform(0, size - h)
        out.append([x1, y1, x1 + w, y1 + h, rng.integers(0, k)])
    return np.array(out, dtype=np.float32).reshape(-1, 5)


def make_case(rng, n, k, size, strides, kinds):
    boxes = []
    for kind in kinds:
        if kind == "none":
            boxes.append(np.zeros((0, 5), dtype=np.float32))
        elif kind == "hand_small":
            b = [[4, 4, 28, 20, 0], [8, 8, 60, 56, 1], [20, 16, 44, 48, 2]]
            boxes.append(np.array([[v if i < 4 else v % k for i, v in enumerate(r)] for r in b],
                                  dtype=np.float32))
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
    for s in strides:
        g = size // s
        arrays.append(rng.normal(-3, 2, size=(n, k, g, g)).astype(np.float32))
        arrays.append(np.maximum(rng.normal(1.5, 1.5, size=(n, 4, g, g)), 0).astype(np.float32))  # after ReLU
        arrays.append(rng.normal(0, 2, size=(n, 1, g, g)).astype(np.float32))
    return arrays, boxes


def run_case(binary, work, label, rng, n, k, size, stride, kinds):
    strides = (stride, 2 * stride)
    arrays, boxes = make_case(rng, n, k, size, strides, kinds)
    for o, a in enumerate(arrays):
        a.tofile(os.path.join(work, f"out{o}.f32"))
    np.concatenate(boxes).astype(np.float32).tofile(os.path.join(work, "boxes.f32"))
    np.cumsum([0] + [len(b) for b in boxes]).astype(np.int64).tofile(os.path.join(work, "offsets.i64"))
    subprocess.run([binary, "loss", work, str(n), str(k), str(size), str(stride)], check=True)
    got_loss = float(open(os.path.join(work, "loss.txt")).read())
    got_grads = [np.fromfile(os.path.join(work, f"grad{o}.f32"), dtype=np.float32).reshape(a.shape)
                 for o, a in enumerate(arrays)]
    peer_loss, peer_grads, matched = torch_loss(arrays, boxes, n, k, size, strides, torch.float32)
    exact_loss, exact_grads, _ = torch_loss(arrays, boxes, n, k, size, strides, torch.float64,
                                            matched=[m.clone() for m in matched])
    _, _, own64 = torch_loss(arrays, boxes, n, k, size, strides, torch.float64)
    # the foreground points, exactly: robusta's non-zero centerness gradients
    fg_torch = torch.stack(matched).numpy() >= 0
    fg_robusta = np.concatenate([got_grads[3 * l + 2].reshape(n, -1) != 0 for l in range(len(strides))], axis=1)
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


def run_decode_case(binary, work, label, rng, n, k, size, stride, threshold, nms):
    """fcos_decode against FCOS.postprocess_detections on random raw outputs
    (many scores over the threshold, boxes of 1 to 3 strides that overlap):
    per image the same number of boxes, each of torchvision's found among
    robusta's with its class, its corners within 1e-4 and its score within
    1e-6 (robusta's sigmoid is not torch's: a unit in the last place), and
    robusta's in non-increasing score order."""
    strides = (stride, 2 * stride)
    arrays = []
    for s_ in strides:
        g = size // s_
        arrays.append(rng.normal(-1.5, 2, size=(n, k, g, g)).astype(np.float32))
        arrays.append(np.maximum(rng.normal(1.5, 1, size=(n, 4, g, g)), 0).astype(np.float32))
        arrays.append(rng.normal(1, 2, size=(n, 1, g, g)).astype(np.float32))
    for o, a in enumerate(arrays):
        a.tofile(os.path.join(work, f"out{o}.f32"))
    subprocess.run([binary, "decode", work, str(n), str(k), str(size), str(stride), repr(threshold), repr(nms)],
                   check=True)
    counts = np.fromfile(os.path.join(work, "counts.i64"), dtype=np.int64)
    boxes = np.fromfile(os.path.join(work, "boxes.f32"), dtype=np.float32).reshape(n, 100, 5)
    scores = np.fromfile(os.path.join(work, "scores.f32"), dtype=np.float32).reshape(n, 100)
    per_level = [(size // s_) ** 2 for s_ in strides]
    flat = flatten([torch.tensor(a) for a in arrays], n, k)
    split = {key: list(v.split(per_level, dim=1)) for key, v in flat.items()}
    anchors = [list(a.split(per_level)) for a in anchors_for(n, size, strides, torch.float32)]
    fake = types.SimpleNamespace(score_thresh=threshold, nms_thresh=nms, detections_per_img=100,
                                 topk_candidates=1000, box_coder=BoxLinearCoder(normalize_by_size=True))
    want = FCOS.postprocess_detections(fake, split, anchors, [(size, size)] * n)
    worst_box = worst_score = 0.0
    total = 0
    for i in range(n):
        wb, ws, wl = want[i]["boxes"].numpy(), want[i]["scores"].numpy(), want[i]["labels"].numpy()
        c = int(counts[i])
        assert c == len(ws), f"{label}: image {i}: {c} boxes, torchvision {len(ws)}"
        assert np.all(np.diff(scores[i, :c]) <= 0), f"{label}: image {i}: scores out of order"
        free = np.ones(c, dtype=bool)
        for j in range(len(ws)):
            d = np.abs(boxes[i, :c, :4] - wb[j]).max(axis=1)
            ok = free & (boxes[i, :c, 4] == wl[j]) & (d <= 1e-4) & (np.abs(scores[i, :c] - ws[j]) <= 1e-6)
            assert ok.any(), f"{label}: image {i}: torchvision's box {j} {wb[j].tolist()} class {wl[j]} " \
                f"score {ws[j]} is not among robusta's"
            m = int(np.argmax(ok))
            free[m] = False
            worst_box = max(worst_box, float(d[m]))
            worst_score = max(worst_score, float(abs(scores[i, m] - ws[j])))
        total += c
    print(f"{label:34s} {total:4d} boxes, as torchvision's: corners within {worst_box:.1e}, "
          f"scores within {worst_score:.1e}")
    sys.stdout.flush()


class Model(nn.Module):
    """The detect plugin's head in torchvision's modules: FeaturePyramidNetwork's
    lateral convolutions (inner_blocks) and an FCOSHead. The merge is the
    plugin's: P16 = lateral(C16), P8 = lateral(C8) + nearest 2x of P16
    (FeaturePyramidNetwork's top-down step without its 3x3 layer_blocks)."""

    def __init__(self, c, width, k, convs):
        super().__init__()
        self.fpn = nn.Module()
        self.fpn.inner_blocks = FeaturePyramidNetwork([c, c], width).inner_blocks
        self.head = FCOSHead(width, 1, k, num_convs=convs)

    def forward(self, x, stride):
        c8, c16 = F.avg_pool2d(x, stride), F.avg_pool2d(x, 2 * stride)
        p16 = self.fpn.inner_blocks[1](c16)
        p8 = self.fpn.inner_blocks[0](c8) + F.interpolate(p16, size=c8.shape[-2:], mode="nearest")
        return self.head([p8, p16]), (p8, p16)


def randomize(model, rng):
    """Weights giving unit-scale activations, rounded to float32 (robusta's
    values) before use in float64."""
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if ".conv." in name and t.dim() == 1 and name.endswith(".weight"):  # GroupNorm's
                v = rng.uniform(0.5, 1.5, size=t.shape)
            elif name.endswith(".bias"):
                v = rng.uniform(-0.2, 0.2, size=t.shape) - (2.0 if "cls_logits" in name else 0.0)
            else:
                v = rng.uniform(-1, 1, size=t.shape) * np.sqrt(3.0 / t[0].numel())
            t.copy_(torch.tensor(v.astype(np.float32).astype(np.float64)))


def head_run(model, x, boxes, n, k, size, stride, dtype, matched=None):
    model = model.to(dtype)
    xt = torch.tensor(x, dtype=dtype, requires_grad=True)
    flat, _ = model(xt, stride)
    total, matched = fcos_loss(flat, boxes, n, k, size, (stride, 2 * stride), dtype, matched)
    total.backward()
    grads = np.concatenate([p.grad.detach().numpy().ravel() for _, p in model.named_parameters()])
    outs = {key: v.detach().numpy() for key, v in flat.items()}
    return outs, float(total), grads, xt.grad.numpy(), matched


def run_head_case(binary, work, label, rng, n, c, width, k, size, stride, convs, params, kinds):
    import copy
    model = Model(c, width, k, convs).double()
    randomize(model, rng)
    names = [(name, t) for name, t in model.state_dict().items()]
    assert [nm for nm, _ in names] == [nm for nm, _ in model.named_parameters()]
    with open(os.path.join(work, "params.txt"), "w") as f:
        for name, t in names:
            f.write(f"{name} {t.numel()}\n")
    np.concatenate([t.numpy().astype(np.float32).ravel() for _, t in names]).tofile(os.path.join(work, "params.f32"))
    x = rng.uniform(0, 1, size=(n, c, size, size)).astype(np.float32)
    x.tofile(os.path.join(work, "x.f32"))
    _, boxes = make_case(rng, n, k, size, (stride, 2 * stride), kinds)
    np.concatenate(boxes).astype(np.float32).tofile(os.path.join(work, "boxes.f32"))
    np.cumsum([0] + [len(b) for b in boxes]).astype(np.int64).tofile(os.path.join(work, "offsets.i64"))
    subprocess.run([binary, "head", work, str(n), str(c), str(size), str(stride), str(k),
                    f"convs={convs}", f"channels={width}"] + params, check=True)
    raw = []
    for level in range(2):
        g = size // (stride << level)
        shapes = [(n, k, g, g), (n, 4, g, g), (n, 1, g, g)]
        raw += [np.fromfile(os.path.join(work, f"out{3 * level + i}.f32"), dtype=np.float32).reshape(sh)
                for i, sh in enumerate(shapes)]
    got_flat = {key: v.detach().numpy() for key, v in flatten([torch.tensor(r) for r in raw], n, k).items()}
    got = (got_flat, float(open(os.path.join(work, "loss.txt")).read()),
           np.fromfile(os.path.join(work, "grads.f32"), dtype=np.float32),
           np.fromfile(os.path.join(work, "x_grad.f32"), dtype=np.float32))
    peer = head_run(copy.deepcopy(model), x, boxes, n, k, size, stride, torch.float32)
    exact = head_run(copy.deepcopy(model), x, boxes, n, k, size, stride, torch.float64,
                     matched=[m.clone() for m in peer[4]])
    worst = 0.0
    line = [f"{label:34s}"]
    for name, i in (("outputs", 0), ("loss", 1), ("weight grads", 2), ("input grad", 3)):
        if i == 0:
            e = max(error(got[0][key], exact[0][key]) for key in exact[0])
            p = max(error(peer[0][key], exact[0][key]) for key in exact[0])
        else:
            e, p = error(got[i], exact[i]), error(peer[i], exact[i])
        worst = max(worst, e)
        line.append(f"{name} {e:.1e} (torch fp32 {p:.1e})")
    print("  ".join(line))
    sys.stdout.flush()
    return worst


def main():
    binary, work = sys.argv[1], sys.argv[2]
    rng = np.random.default_rng(19)
    torch.set_num_threads(1)
    cases = [
        ("128x128, 5 classes, hand + random", 4, 5, 128, 8, ["hand", "3", "none", "15"]),
        ("96x96, 3 classes, random", 3, 3, 96, 8, ["6", "1", "12"]),
        ("64x64, 1 class, one box", 2, 1, 64, 8, ["1", "none"]),
        ("128x128, 2 classes, no boxes at all", 2, 2, 128, 8, ["none", "none"]),
        ("32x32, stride 2, 4 classes, random", 3, 4, 32, 2, ["4", "2", "8"]),
    ]
    worst = 0.0
    failed = []
    for label, n, k, size, stride, kinds in cases:
        e = run_case(binary, work, label, rng, n, k, size, stride, kinds)
        worst = max(worst, e)
        if e > TOLERANCE:
            failed.append(f"{label}: {e:.2e}")
    print(f"worst robusta loss error against float64: {worst:.2e} (bound {TOLERANCE:g})")
    head_worst = 0.0
    head_cases = [
        ("head 64x64, 2 convs, C 32, K 3", 2, 8, 32, 3, 64, 8, 2, [], ["hand_small", "4"]),
        ("head 128x128, 4 convs, C 32, K 5", 2, 6, 32, 5, 128, 8, 4, [], ["hand", "9"]),
        ("head 32x32, stride 2, 1 conv, C 64, K 2", 2, 4, 64, 2, 32, 2, 1, [], ["3", "none"]),
    ]
    for label, n, c, width, k, size, stride, convs, params, kinds in head_cases:
        e = run_head_case(binary, work, label, rng, n, c, width, k, size, stride, convs, params, kinds)
        head_worst = max(head_worst, e)
        if e > HEAD_TOLERANCE:
            failed.append(f"{label}: {e:.2e}")
    print(f"worst robusta head error against float64: {head_worst:.2e} (bound {HEAD_TOLERANCE:g})")
    for label, n, k, size, stride, threshold, nms in [
        ("decode 256x256, K 3, >1000 candidates", 2, 3, 256, 8, 0.2, 0.6),
        ("decode 128x128, K 5, 0.05, 0.5", 3, 5, 128, 8, 0.05, 0.5),
        ("decode 32x32, stride 2, K 2, 0.3", 2, 2, 32, 2, 0.3, 0.3),
        ("decode 64x64, K 2, 0.6, 0.6", 3, 2, 64, 8, 0.6, 0.6),
    ]:
        run_decode_case(binary, work, label, rng, n, k, size, stride, threshold, nms)
    if failed:
        print("FAIL: " + "; ".join(failed))
        sys.exit(1)


if __name__ == "__main__":
    main()
