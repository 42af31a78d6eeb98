#!/usr/bin/python3
"""PyTorch parity of the segment task's heads (plugins/task/segment.c)
against torchvision's FCNHead and DeepLabHead.

For each case, seeded images, masks (about 20% of pixels 255, ignored) and
head weights with batch-norm statistics are written for tests/segment_parity,
which runs robusta's engine (fp32) on the real segment plugin with a stand-in
backbone: the images average-pooled by 8 into 16 x 12 x 12 features. PyTorch
runs the same in float64 (the truth) and float32 (a peer): features =
F.avg_pool2d(images, 8), the torchvision head, F.interpolate to the image
size (bilinear, align_corners=False), F.cross_entropy(ignore_index=255).

Compared, each as max |q - exact| / max |exact| over the quantity:
  output        the head's logits after upsampling (N x 5 x 96 x 96)
  loss          the mean per-pixel cross-entropy
  feature grad  d loss / d features (N x 16 x 12 x 12)
  weight grads  d loss / d every trainable tensor of the head, together
  running stats (train) the batch-norm running means and variances after
                the forward (momentum 0.1, unbiased variance)
in eval mode (running statistics; dropout is the identity there) and in
train mode (batch statistics; torchvision's Dropout layers are replaced by
Identity, since robusta has no dropout: see segment.c).

The weights are read from torchvision's own modules (FCNHead(16, 5);
DeepLabHead's layout, ASPP + conv + BN + ReLU + conv, at width 8 with rates
2, 4, 6, whose names are checked against DeepLabHead(16, 5)'s), so the names
robusta must accept are torchvision's state-dict keys.

Bound: TOLERANCE = 2e-5 on every robusta error. Each value passes through at
most 7 layers (ASPP branch, projection, 3x3 conv, classifier, upsampling,
softmax) of sums of at most 144 products, each adding about 1e-7 relative
in fp32 (6e-8 per rounding, grown by the square root of the terms summed);
Winograd, which robusta uses for its 3x3 convolutions, adds a few units in
the 6th digit (robusta/engine.h); batch-norm in train mode divides by a
batch standard deviation, which amplifies by a few. That puts fp32 at 1e-7
to 5e-6 (measured on AMD EPYC Zen 5: robusta at most 4.0e-6, PyTorch fp32,
printed beside, at most 2.0e-6); a wrong weight, index, name, padding or
term costs 1e-2 or more.

Usage: torch_segment_parity.py SEGMENT_PARITY_BINARY WORK_DIR
"""
import os
import subprocess
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.models.segmentation.deeplabv3 import ASPP, DeepLabHead
from torchvision.models.segmentation.fcn import FCNHead

TOLERANCE = 2e-5
N, C, SIZE, STRIDE, K = 4, 16, 12, 8, 5
H = W = SIZE * STRIDE


def error(got, exact):
    got = np.asarray(got, dtype=np.float64).ravel()
    exact = np.asarray(exact, dtype=np.float64).ravel()
    assert got.size == exact.size, f"{got.size} values, want {exact.size}"
    scale = float(np.max(np.abs(exact)))
    return float(np.max(np.abs(got - exact))) / (scale if scale > 0 else 1.0)


def small_deeplab_head(channels, rates):
    """DeepLabHead(C, K) with `channels` in place of its fixed 256: the same
    modules, so the same state-dict names."""
    return nn.Sequential(ASPP(C, rates, channels), nn.Conv2d(channels, channels, 3, padding=1, bias=False),
                         nn.BatchNorm2d(channels), nn.ReLU(), nn.Conv2d(channels, K, 1))


def randomize(head, rng):
    """Weights of unit-scale activations and non-trivial batch-norm statistics,
    rounded to float32 (robusta's values) before use in float64."""
    with torch.no_grad():
        for name, t in head.state_dict().items():
            if name.endswith("num_batches_tracked"):
                continue
            if name.endswith("running_var") or (name.endswith(".weight") and t.dim() == 1):
                v = rng.uniform(0.5, 1.5, size=t.shape)
            elif name.endswith("running_mean") or name.endswith(".bias"):
                v = rng.uniform(-0.2, 0.2, size=t.shape)
            else:
                fan_in = t[0].numel()
                v = rng.uniform(-1, 1, size=t.shape) * np.sqrt(3.0 / fan_in)
            t.copy_(torch.tensor(v.astype(np.float32).astype(np.float64)))


def tensors(head):
    return [(name, t) for name, t in head.state_dict().items() if not name.endswith("num_batches_tracked")]


def torch_run(head, x, masks, dtype, training):
    head = head.to(dtype)
    head.train(training)
    xt = torch.tensor(x, dtype=dtype)
    feats = F.avg_pool2d(xt, STRIDE).requires_grad_()
    out = F.interpolate(head(feats), size=(H, W), mode="bilinear", align_corners=False)
    loss = F.cross_entropy(out, torch.tensor(masks, dtype=torch.int64), ignore_index=255)
    loss.backward()
    grads = np.concatenate([p.grad.detach().numpy().ravel() for _, p in head.named_parameters()])
    buffers = np.concatenate([t.detach().numpy().ravel() for name, t in tensors(head)
                              if "running_" in name])
    return out.detach().numpy(), float(loss), feats.grad.numpy(), grads, buffers


def run_case(binary, work, label, head, params, rng, training):
    randomize(head, rng)
    if training:  # robusta has no dropout: compare without it
        for name, module in list(head.named_modules()):
            for child_name, child in list(module.named_children()):
                if isinstance(child, nn.Dropout):
                    setattr(module, child_name, nn.Identity())
    names = tensors(head)
    # every trainable tensor first in robusta's grads.f32 order is params.txt's
    # order restricted to trainable ones, which is named_parameters()'s
    assert [n for n, _ in names if "running_" not in n] == [n for n, _ in head.named_parameters()]
    with open(os.path.join(work, "params.txt"), "w") as f:
        for name, t in names:
            f.write(f"classifier.{name} {t.numel()}\n")  # the head is the model's `classifier`
    np.concatenate([t.numpy().astype(np.float32).ravel() for _, t in names]).tofile(os.path.join(work, "params.f32"))
    # images of different contrast and brightness: the image-pooling branch's
    # batch statistics (train mode) are over N pooled values per channel, and
    # images of one distribution pool to nearly equal values, whose
    # variance cancels (measured: robusta 3.7e-5, torch fp32 9.6e-6 there)
    scale = rng.uniform(0.3, 0.7, size=(N, 1, 1, 1))
    offset = rng.uniform(0, 0.3, size=(N, 1, 1, 1))
    x = (offset + scale * rng.uniform(0, 1, size=(N, C, H, W))).astype(np.float32)
    masks = rng.integers(0, K, size=(N, H, W)).astype(np.int32)
    masks[rng.uniform(size=(N, H, W)) < 0.2] = 255
    x.tofile(os.path.join(work, "x.f32"))
    masks.tofile(os.path.join(work, "masks.i32"))
    subprocess.run([binary, work, str(N), str(C), str(SIZE), str(STRIDE), str(K), "train" if training else "eval"]
                   + params, check=True)
    got = (np.fromfile(os.path.join(work, "out.f32"), dtype=np.float32),
           float(open(os.path.join(work, "loss.txt")).read()),
           np.fromfile(os.path.join(work, "feature_grad.f32"), dtype=np.float32),
           np.fromfile(os.path.join(work, "grads.f32"), dtype=np.float32),
           np.fromfile(os.path.join(work, "buffers.f32"), dtype=np.float32))
    import copy
    exact = torch_run(copy.deepcopy(head), x, masks, torch.float64, training)
    peer = torch_run(copy.deepcopy(head), x, masks, torch.float32, training)
    worst = 0.0
    line = [f"{label:18s}"]
    what = ["output", "loss", "feature grad", "weight grads"] + (["running stats"] if training else [])
    for i, name in enumerate(what):
        e, p = error(got[i], exact[i]), error(peer[i], exact[i])
        worst = max(worst, e)
        line.append(f"{name} {e:.1e} (torch fp32 {p:.1e})")
    print("  ".join(line))
    sys.stdout.flush()
    return worst


def main():
    binary, work = sys.argv[1], sys.argv[2]
    rng = np.random.default_rng(18)
    torch.set_num_threads(1)
    # DeepLabHead's names at its own width, against the small head's
    reference = [n for n in DeepLabHead(C, K).state_dict()]
    small = [n for n in small_deeplab_head(8, [2, 4, 6]).state_dict()]
    assert reference == small, "the small DeepLab head must name its tensors as DeepLabHead does"
    cases = []
    for training in (False, True):
        mode = "train" if training else "eval"
        cases.append((f"fcn {mode}", lambda: FCNHead(C, K), [], training))
        cases.append((f"aspp 2,4,6 {mode}", lambda: small_deeplab_head(8, [2, 4, 6]),
                      ["head=aspp", "channels=8", "rates=2,4,6"], training))
    worst = 0.0
    failed = []
    for label, make, params, training in cases:
        e = run_case(binary, work, label, make().double(), params, rng, training)
        worst = max(worst, e)
        if e > TOLERANCE:
            failed.append(f"{label}: {e:.2e}")
    print(f"worst robusta error against float64: {worst:.2e} (bound {TOLERANCE:g})")
    if failed:
        print("FAIL: " + "; ".join(failed))
        sys.exit(1)


if __name__ == "__main__":
    main()
