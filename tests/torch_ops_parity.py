#!/usr/bin/python3
"""PyTorch parity for the dense-head ops (robusta/graph.h).

For each case, seeded inputs are written for tests/ops_parity, which runs the
op in robusta's engine (fp32) and writes its output, the objective and the
input gradient. PyTorch computes the same in float64 (the truth) and in
float32 (a peer). The objective is the loss for the losses, and
sum(w * output) / N otherwise, as robusta averages per-example losses.

Bound: each robusta quantity q against float64, max |q - exact| / max(1,
max |exact|) at most 1e-5. These ops do at most a few dozen float operations
per value (bilinear: 4 products; cross-entropy: a log-sum-exp over 4
classes; concat and nearest are copies), so fp32's 6e-8 rounding stays under
1e-6; 1e-5 leaves room while a wrong weight, index or term costs O(0.01) or
more. PyTorch fp32's error by the same measure is printed beside it.

Usage: torch_ops_parity.py OPS_PARITY_BINARY WORK_DIR
"""
import os
import subprocess
import sys

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.ops import sigmoid_focal_loss

TOLERANCE = 1e-5
STD = 0.25  # ops_parity's input node: (x - 0) / 0.25


def error(got, exact):
    got = np.asarray(got, dtype=np.float64).ravel()
    exact = np.asarray(exact, dtype=np.float64).ravel()
    return float(np.max(np.abs(got - exact)) / max(1.0, float(np.max(np.abs(exact)))))


def run_case(binary, work, name, n, c, h, w, extra, make, rng):
    """make(x, dtype) -> (op output, objective) in torch; x already normalized."""
    x = rng.uniform(0, 1, size=(n, c, h, w)).astype(np.float32)
    x.tofile(os.path.join(work, "x.f32"))
    inputs = make.prepare(rng, n, c, h, w, extra)
    for fname, array in inputs.items():
        array.tofile(os.path.join(work, fname))
    subprocess.run([binary, work, name, str(n), str(c), str(h), str(w)] + [str(v) for v in extra], check=True)
    got_out = np.fromfile(os.path.join(work, "out.f32"), dtype=np.float32)
    got_grad = np.fromfile(os.path.join(work, "grad.f32"), dtype=np.float32)
    with open(os.path.join(work, "loss.txt")) as f:
        got_loss = float(f.read())

    results = {}
    for dtype in (torch.float64, torch.float32):
        xt = torch.tensor(x, dtype=dtype, requires_grad=True)
        out, objective = make.forward(xt / STD, inputs, dtype)
        objective.backward()
        results[dtype] = (out.detach().numpy(), float(objective), xt.grad.numpy())
    exact_out, exact_loss, exact_grad = results[torch.float64]
    peer_out, peer_loss, peer_grad = results[torch.float32]
    worst = 0.0
    line = [f"{name:22s}"]
    for what, got, peer, exact in (("output", got_out if make.has_output else None, peer_out, exact_out),
                                   ("objective", [got_loss], [peer_loss], [exact_loss]),
                                   ("input grad", got_grad, peer_grad, exact_grad)):
        if got is None:
            continue
        assert np.asarray(got).size == np.asarray(exact).size, f"{name}: {what}: {np.asarray(got).size} values, want {np.asarray(exact).size}"
        e, p = error(got, exact), error(peer, exact)
        worst = max(worst, e)
        line.append(f"{what} {e:.2e} (torch fp32 {p:.2e})")
    print("  ".join(line))
    return worst


class Objective:
    """A non-loss op: objective sum(w * out) / N."""
    has_output = True

    def __init__(self, op, needs_conv=0):
        self.op = op
        self.needs_conv = needs_conv

    def prepare(self, rng, n, c, h, w, extra):
        arrays = {}
        if self.needs_conv:
            k = extra[0] if self.needs_conv == "extra" else c
            arrays["conv.f32"] = rng.uniform(-1, 1, size=(k, c)).astype(np.float32)
        x = torch.zeros((n, c, h, w), dtype=torch.float64)
        out = self.op(x, arrays, torch.float64)
        arrays["w.f32"] = rng.uniform(-1, 1, size=tuple(out.shape)).astype(np.float32)
        return arrays

    def forward(self, x, arrays, dtype):
        out = self.op(x, arrays, dtype)
        weights = torch.tensor(arrays["w.f32"], dtype=dtype)
        return out, (weights * out).sum() / x.shape[0]


def conv(x, arrays, dtype):
    k = torch.tensor(arrays["conv.f32"], dtype=dtype)
    return F.conv2d(x, k[:, :, None, None])


class PixelCE:
    has_output = False

    def prepare(self, rng, n, c, h, w, extra):
        masks = rng.integers(0, c, size=(n, h, w)).astype(np.int32)
        masks[rng.uniform(size=(n, h, w)) < 0.2] = 255  # ignored pixels
        return {"masks.i32": masks}

    def forward(self, x, arrays, dtype):
        loss = F.cross_entropy(x, torch.tensor(arrays["masks.i32"], dtype=torch.int64), ignore_index=255)
        return loss.detach(), loss


class Focal:
    has_output = False

    def __init__(self, alpha, gamma, normalizer):
        self.alpha, self.gamma, self.normalizer = alpha, gamma, normalizer

    def prepare(self, rng, n, c, h, w, extra):
        return {"targets.f32": (rng.uniform(size=(n, c, h, w)) < 0.1).astype(np.float32)}

    def forward(self, x, arrays, dtype):
        t = torch.tensor(arrays["targets.f32"], dtype=dtype)
        loss = sigmoid_focal_loss(x, t, alpha=self.alpha, gamma=self.gamma, reduction="sum")
        normalizer = self.normalizer if self.normalizer else max(1.0, float((t > 0.5).sum()))
        loss = loss / normalizer
        return loss.detach(), loss


def main():
    binary, work = sys.argv[1], sys.argv[2]
    rng = np.random.default_rng(16)
    torch.set_num_threads(1)
    cases = [
        ("up-bilinear-factor", 2, 3, 5, 7, [2],
         Objective(lambda x, a, d: F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False))),
        ("up-bilinear-factor", 2, 3, 4, 6, [4],
         Objective(lambda x, a, d: F.interpolate(x, scale_factor=4, mode="bilinear", align_corners=False))),
        ("up-bilinear-size", 2, 3, 5, 7, [11, 13],
         Objective(lambda x, a, d: F.interpolate(x, size=(11, 13), mode="bilinear", align_corners=False))),
        ("up-nearest-factor", 2, 3, 5, 7, [2],
         Objective(lambda x, a, d: F.interpolate(x, scale_factor=2, mode="nearest"))),
        ("up-nearest-size", 2, 3, 5, 7, [10, 21],
         Objective(lambda x, a, d: F.interpolate(x, size=(10, 21), mode="nearest"))),
        ("concat", 2, 3, 5, 7, [4],
         Objective(lambda x, a, d: torch.cat([x, conv(x, a, d), x], dim=1), needs_conv="extra")),
        ("sigmoid", 2, 3, 5, 7, [], Objective(lambda x, a, d: torch.sigmoid(x))),
        ("mul", 2, 3, 5, 7, [], Objective(lambda x, a, d: x * conv(x, a, d), needs_conv=True)),
        ("pixel-ce", 3, 4, 6, 8, [], PixelCE()),
        ("focal", 2, 3, 6, 8, [0], Focal(0.25, 2.0, 0)),
        ("focal", 2, 3, 6, 8, [1], Focal(-1, 1.5, 7)),
    ]
    worst = 0.0
    failed = []
    for name, n, c, h, w, extra, make in cases:
        e = run_case(binary, work, name, n, c, h, w, extra, make, rng)
        worst = max(worst, e)
        if e > TOLERANCE:
            failed.append(f"{name} {extra}: {e:.2e}")
    print(f"worst error against float64: {worst:.2e} (bound {TOLERANCE:g})")
    if failed:
        print("FAIL: " + "; ".join(failed))
        sys.exit(1)


if __name__ == "__main__":
    main()
