#!/usr/bin/python3
"""PyTorch side of robusta's benchmarks: the same convolution shapes, run by
Debian's python3-torch tuned fairly (all planned cores, channels_last, oneDNN
on, glibc malloc kept from returning memory to the OS), printed next to
robusta's figures as a ratio.

    bench/torch_reference.py [--quick] [--threads N] --compare bench-engine.csv

The shapes come from robusta's own output (lines "perf,NET_conv_KIND,SHAPE,...")
so both sides always measure the same thing. Without PyTorch it prints a SKIP
line and exits 0: benchmarks never fail.
"""
import argparse
import os
import re
import statistics
import sys
import time

# Debian's PyTorch suffers page-fault storms when glibc hands big buffers back
# to the OS after every step; keep them. Must be set before the process starts.
TUNABLES = "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=4294967295:glibc.malloc.top_pad=268435456"
if os.environ.get("GLIBC_TUNABLES") is None:
    os.environ["GLIBC_TUNABLES"] = TUNABLES
    os.execv(sys.executable, [sys.executable] + sys.argv)

SHAPE = re.compile(r"mb(\d+)ic(\d+)oc(\d+)ih(\d+)kh(\d+)sh(\d+)ph(\d+)")


def read_robusta(path):
    rows = []
    with open(path) as f:
        for line in f:
            parts = line.strip().split(",")
            if len(parts) == 6 and parts[0] == "perf" and "_conv_" in parts[1]:
                m = SHAPE.fullmatch(parts[2])
                if m:
                    rows.append((parts[1], parts[2], float(parts[3]), tuple(int(v) for v in m.groups())))
    return rows


def timed(fn, repeats):
    fn()  # warm-up: oneDNN primitive creation, allocation
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--compare", required=True, help="robusta's bench_engine output")
    args = parser.parse_args()
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        print("SKIP: PyTorch comparison (install Debian's python3-torch)")
        return 0
    rows = read_robusta(args.compare)
    if not rows:
        print(f"SKIP: PyTorch comparison ({args.compare} has no convolution lines)")
        return 0
    torch.set_num_threads(args.threads)
    torch.backends.mkldnn.enabled = True
    repeats = 3 if args.quick else 5
    print(f"# PyTorch {torch.__version__}, {args.threads} threads, channels_last, GLIBC_TUNABLES set;"
          f" median of {repeats}")
    print("# name,shape,robusta_ms,torch_ms,torch/robusta")
    totals = {}
    cache = {}
    with torch.no_grad():
        for name, shape, ms, (mb, ic, oc, ih, k, s, p) in rows:
            net, kind = name.split("_conv_")
            key = (mb, ic, oc, ih, k, s, p)
            if key not in cache:
                x = torch.rand(mb, ic, ih, ih).contiguous(memory_format=torch.channels_last)
                w = torch.rand(oc, ic, k, k).contiguous(memory_format=torch.channels_last)
                y = F.conv2d(x, w, None, s, p)
                gy = torch.rand_like(y).contiguous(memory_format=torch.channels_last)
                cache = {key: (x, w, gy)}
            x, w, gy = cache[key]

            def backward(mask):
                return torch.ops.aten.convolution_backward(gy, x, w, None, [s, s], [p, p], [1, 1], False,
                                                           [0, 0], 1, mask)

            if kind == "fwd":
                t = timed(lambda: F.conv2d(x, w, None, s, p), repeats)
            elif kind == "bwd_d":
                t = timed(lambda: backward([True, False, False]), repeats)
            else:
                t = timed(lambda: backward([False, True, False]), repeats)
            ratio = t * 1e3 / ms
            print(f"torch,{name},{shape},{ms:.3f},{t * 1e3:.3f},{ratio:.2f}", flush=True)
            if not (kind == "bwd_d" and ic == 3):
                total = totals.setdefault(net, [0.0, 0.0])
                total[0] += ms
                total[1] += t * 1e3
    for net, (mine, theirs) in totals.items():
        print(f"torch,{net}_unique_convs_fwd_bwd,sum,{mine:.1f},{theirs:.1f},{theirs / mine:.2f}")
    print("# torch/robusta > 1: robusta is faster")
    return 0


if __name__ == "__main__":
    sys.exit(main())
