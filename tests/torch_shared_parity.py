#!/usr/bin/python3
"""PyTorch parity for group normalization and shared parameters (robusta/graph.h:
rb_graph_groupnorm, rb_graph_reuse).

Each case writes seeded inputs and parameters for tests/shared_parity, which
runs it in robusta's engine (fp32) and writes its output, the objective, the
input gradient and every parameter's gradient. PyTorch computes the same in
float64 (the truth) and in float32 (a peer): torch.nn.GroupNorm on the image
and after a 1x1 convolution (robusta's blocked layout), and one
nn.Sequential(conv, GroupNorm, ReLU, conv) called on the image and on its
2x2 average-pooled copy, autograd adding both calls' gradients. The
objective is sum(w * out) / N (summed over both calls for the tower).

Bound: each robusta quantity q against float64, max |q - exact| / max(1,
max |exact|) at most 1e-5. The values are sums of at most a few hundred
products (a 3x3 convolution over 16 channels: 144; a weight gradient over
N x H x W = 200 positions) and a normalization, so fp32's 6e-8 rounding
stays within about 1e-6; 1e-5 leaves room while a wrong group, a gradient
taken from one call only, or a missing term costs O(0.1). PyTorch fp32's
error by the same measure is printed beside it.

Usage: torch_shared_parity.py SHARED_PARITY_BINARY WORK_DIR
"""
import os
import subprocess
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

TOLERANCE = 1e-5


def error(got, exact):
    got = np.asarray(got, dtype=np.float64).ravel()
    exact = np.asarray(exact, dtype=np.float64).ravel()
    return float(np.max(np.abs(got - exact)) / max(1.0, float(np.max(np.abs(exact)))))


def groupnorm(rng, c, groups, name):
    gn = nn.GroupNorm(groups, c)
    return gn, {name + ".weight": rng.uniform(0.5, 1.5, size=c), name + ".bias": rng.uniform(-0.5, 0.5, size=c)}


def conv(rng, cin, cout, kernel, bias, name):
    layer = nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=bias)
    bound = 1.0 / np.sqrt(cin * kernel * kernel)
    params = {name + ".weight": rng.uniform(-bound, bound, size=(cout, cin, kernel, kernel))}
    if bias:
        params[name + ".bias"] = rng.uniform(-0.5, 0.5, size=cout)
    return layer, params


class Case:
    def __init__(self, kind, n, c, h, w, groups, k, rng):
        self.kind, self.n, self.c, self.h, self.w, self.groups, self.k = kind, n, c, h, w, groups, k
        self.params = {}
        if kind == "groupnorm":
            self.layers = {"gn": groupnorm(rng, c, groups, "gn")}
        elif kind == "groupnorm-conv":
            self.layers = {"lead": conv(rng, c, k, 1, False, "lead"), "gn": groupnorm(rng, k, groups, "gn")}
        else:
            self.layers = {"t.0": conv(rng, c, k, 3, True, "t.0"), "t.1": groupnorm(rng, k, groups, "t.1"),
                           "t.3": conv(rng, k, 4, 3, True, "t.3")}
        for _, (_, params) in self.layers.items():
            self.params.update({name: v.astype(np.float32) for name, v in params.items()})
        self.x = rng.uniform(0, 1, size=(n, c, h, w)).astype(np.float32)
        out_a, out_b = self.run(torch.float64, torch.zeros((n, c, h, w), dtype=torch.float64))
        self.wa = rng.uniform(-1, 1, size=tuple(out_a.shape)).astype(np.float32)
        self.wb = None if out_b is None else rng.uniform(-1, 1, size=tuple(out_b.shape)).astype(np.float32)

    def modules(self, dtype):
        """The layers with this case's parameters, in dtype."""
        built = {}
        for key, (layer, _) in self.layers.items():
            layer = layer.to(dtype)
            with torch.no_grad():
                for pname, p in layer.named_parameters():
                    p.copy_(torch.tensor(self.params[key + "." + pname], dtype=dtype))
                    p.grad = None
            built[key] = layer
        return built

    def run(self, dtype, x):
        m = self.modules(dtype)
        self.built = m
        if self.kind == "groupnorm":
            return m["gn"](x), None
        if self.kind == "groupnorm-conv":
            return m["gn"](m["lead"](x)), None
        tower = nn.Sequential(m["t.0"], m["t.1"], nn.ReLU(), m["t.3"])
        return tower(x), tower(F.avg_pool2d(x, 2))

    def torch_result(self, dtype):
        x = torch.tensor(self.x, dtype=dtype, requires_grad=True)
        out_a, out_b = self.run(dtype, x)
        objective = (torch.tensor(self.wa, dtype=dtype) * out_a).sum() / self.n
        if out_b is not None:
            objective = objective + (torch.tensor(self.wb, dtype=dtype) * out_b).sum() / self.n
        objective.backward()
        grads = {}
        for key, layer in self.built.items():
            for pname, p in layer.named_parameters():
                grads[key + "." + pname] = p.grad.detach().numpy().copy()
        return out_a.detach().numpy(), float(objective), x.grad.numpy(), grads


def run_case(binary, work, case):
    case.x.tofile(os.path.join(work, "x.f32"))
    case.wa.tofile(os.path.join(work, "wa.f32"))
    if case.wb is not None:
        case.wb.tofile(os.path.join(work, "wb.f32"))
    for name, value in case.params.items():
        value.tofile(os.path.join(work, name + ".f32"))
    args = [binary, work, case.kind, str(case.n), str(case.c), str(case.h), str(case.w), str(case.groups)]
    if case.k:
        args.append(str(case.k))
    subprocess.run(args, check=True)
    got = {"output": np.fromfile(os.path.join(work, "out.f32"), dtype=np.float32),
           "input grad": np.fromfile(os.path.join(work, "grad.f32"), dtype=np.float32)}
    with open(os.path.join(work, "loss.txt")) as f:
        got["objective"] = [float(f.read())]
    for name in case.params:
        got[name + " grad"] = np.fromfile(os.path.join(work, name + ".grad.f32"), dtype=np.float32)

    results = {}
    for dtype in (torch.float64, torch.float32):
        out, objective, xgrad, grads = case.torch_result(dtype)
        r = {"output": out, "objective": [objective], "input grad": xgrad}
        r.update({name + " grad": g for name, g in grads.items()})
        results[dtype] = r
    worst = 0.0
    label = f"{case.kind} N{case.n} C{case.c} {case.h}x{case.w} G{case.groups}" + (f" K{case.k}" if case.k else "")
    print(label)
    for what, exact in results[torch.float64].items():
        assert np.asarray(got[what]).size == np.asarray(exact).size, \
            f"{label}: {what}: {np.asarray(got[what]).size} values, want {np.asarray(exact).size}"
        e, p = error(got[what], exact), error(results[torch.float32][what], exact)
        worst = max(worst, e)
        print(f"  {what:18s} {e:.2e} (torch fp32 {p:.2e})")
    return label, worst


def main():
    binary, work = sys.argv[1], sys.argv[2]
    rng = np.random.default_rng(19)
    torch.set_num_threads(1)
    cases = [
        Case("groupnorm", 2, 6, 5, 7, 3, 0, rng),
        Case("groupnorm", 3, 4, 4, 4, 4, 0, rng),         # one channel per group (instance norm)
        Case("groupnorm", 2, 5, 3, 6, 1, 0, rng),         # one group (layer norm)
        Case("groupnorm-conv", 2, 3, 6, 5, 8, 32, rng),   # blocked layout, 4 channels per group
        Case("groupnorm-conv", 2, 3, 6, 5, 2, 24, rng),   # 12 per group, a partly filled block
        Case("tower", 2, 8, 10, 10, 4, 16, rng),          # applied to 10x10 and 5x5
    ]
    worst = 0.0
    failed = []
    for case in cases:
        label, e = run_case(binary, work, case)
        worst = max(worst, e)
        if e > TOLERANCE:
            failed.append(f"{label}: {e:.2e}")
    print(f"worst error against float64: {worst:.2e} (bound {TOLERANCE:g})")
    if failed:
        print("FAIL: " + "; ".join(failed))
        sys.exit(1)


if __name__ == "__main__":
    main()
