#!/usr/bin/python3
"""PyTorch side of bench_dense: the same dense-head ops at the same shapes,
threads and repeats, printed next to robusta's figures as a ratio
torch/robusta (> 1: robusta is faster).

    bench/torch_dense.py [--quick] bench-dense.csv

Reads bench_dense's header (threads, batch, repeats) and its lines
"perf,dense_op,NAME,NxCxHxW,FWD_MS,BWD_MS,...". Each op runs on tensors in
channels_last (PyTorch's layout for convolution outputs on CPU) and in
contiguous NCHW, and the faster of the two counts for each pass (PyTorch
1.13's interpolate and cross-entropy are many times slower on
channels_last); the -plain-input rows run NCHW only. Forward and backward
(autograd, from a random output gradient, or from the loss) are timed
apart, median after one warm-up. Without PyTorch it prints a SKIP line and
exits 0: benchmarks never fail.
"""
import argparse
import re
import statistics
import sys
import time

# The same glibc malloc tunables as the other PyTorch comparisons (without
# them Debian's PyTorch hands big buffers back to the OS after every op and
# pays page faults for them): importing torch_reference re-executes this
# process once with them set.
import torch_reference  # noqa: F401  pylint: disable=unused-import


def timed(fn, repeats):
    times = []
    for r in range(repeats + 1):
        start = time.perf_counter()
        fn()
        if r > 0:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(torch, F, sigmoid_focal_loss, base, shape, fmt, repeats):
    """(forward, backward) seconds of op `base` on tensors of layout fmt."""
    def tensor(*dims):
        return torch.rand(*dims).contiguous(memory_format=fmt).requires_grad_()

    n, c, h, w = shape
    x = tensor(n, c, h, w)
    if base.startswith("upsample"):
        mode = "nearest" if "nearest" in base else "bilinear"
        factor = int(base.rsplit("x", 1)[1])
        kwargs = {} if mode == "nearest" else {"align_corners": False}
        op = lambda: F.interpolate(x, scale_factor=factor, mode=mode, **kwargs)
    elif base == "concat":
        y2 = tensor(n, 256, h, w)
        op = lambda: torch.cat([x, y2], dim=1)
    elif base == "sigmoid":
        op = lambda: torch.sigmoid(x)
    elif base == "mul":
        y2 = tensor(n, c, h, w)
        op = lambda: x * y2
    elif base == "pixel-ce":
        masks = torch.randint(0, c, (n, h, w))
        masks[torch.rand(n, h, w) < 0.08] = 255
        op = lambda: F.cross_entropy(x, masks, ignore_index=255)
    elif base.startswith("groupnorm-"):  # with its weight gradients, as bench_dense
        groups = int(base.rsplit("-", 1)[1])
        weight, bias = torch.rand(c).requires_grad_(), torch.rand(c).requires_grad_()
        op = lambda: F.group_norm(x, groups, weight, bias)
    elif base == "focal":
        t = (torch.rand(n, c, h, w) < 0.01).float().contiguous(memory_format=fmt)
        op = lambda: sigmoid_focal_loss(x, t, alpha=0.25, gamma=2.0, reduction="sum") / max(1.0, float(t.sum()))
    else:
        return None
    with torch.no_grad():
        fwd = timed(op, repeats)
    out = op()
    grad = torch.ones_like(out) if out.dim() == 0 else torch.rand_like(out)
    bwd = timed(lambda: out.backward(grad, retain_graph=True), repeats)
    return fwd, bwd


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("csv")
    args = parser.parse_args()
    try:
        import torch
        import torch.nn.functional as F
        from torchvision.ops import sigmoid_focal_loss
    except ImportError:
        print("SKIP: the PyTorch side of bench_dense needs python3-torch and python3-torchvision")
        return 0
    with open(args.csv) as f:
        lines = f.read().splitlines()
    header = next((l for l in lines if l.startswith("# robusta")), "")
    m = re.search(r"(\d+) threads, batch (\d+); medians of (\d+)", header)
    if m is None:
        print(f"SKIP: {args.csv} has no bench_dense header")
        return 0
    threads, repeats = int(m.group(1)), int(m.group(3))
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    print(f"# PyTorch {torch.__version__}, {threads} threads; medians of {repeats} after 1 warm-up; "
          "ratio = torch / robusta (> 1: robusta is faster)")
    print("# torch,dense_op,name,input,torch_fwd_ms,torch_bwd_ms,robusta_fwd_ms,robusta_bwd_ms,fwd_ratio,bwd_ratio")

    for line in lines:
        if not line.startswith("perf,dense_op,"):
            continue
        fields = line.split(",")
        name, shape = fields[2], fields[3].split("x")
        ours_fwd, ours_bwd = float(fields[4]), float(fields[5])
        plain = name.endswith("-plain-input")
        base = name.replace("-plain-input", "")
        best = None
        for fmt in (torch.contiguous_format,) if plain else (torch.channels_last, torch.contiguous_format):
            measured = measure(torch, F, sigmoid_focal_loss, base, [int(v) for v in shape], fmt, repeats)
            if measured is None:
                break
            best = measured if best is None else (min(best[0], measured[0]), min(best[1], measured[1]))
        if best is None:
            continue
        fwd, bwd = best
        print(f"torch,dense_op,{name},{fields[3]},{fwd * 1e3:.3f},{bwd * 1e3:.3f},{ours_fwd:.3f},{ours_bwd:.3f},"
              f"{fwd * 1e3 / ours_fwd:.2f},{bwd * 1e3 / ours_bwd:.2f}")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
