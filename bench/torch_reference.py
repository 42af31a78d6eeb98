#!/usr/bin/python3
"""PyTorch side of robusta's benchmarks: the same work, run by Debian's
python3-torch tuned fairly (all planned cores, channels_last, oneDNN on,
glibc malloc kept from returning memory to the OS), printed next to
robusta's figures as a ratio torch/robusta (> 1: robusta is faster).

    bench/torch_reference.py [--quick] [--threads N] --compare bench-engine.csv
    bench/torch_reference.py [--threads N] [--repeats N] --steps bench-train.csv

--compare: the convolution shapes of bench_engine's lines
"perf,NET_conv_KIND,SHAPE,..." on bare F.conv2d / convolution_backward.
--steps: the whole training steps of bench_train's lines
"perf,train_step,CONFIG,mbBATCHihSIZE,MS,IMAGES/S,GFLOP/S,THREADS,REPEATS,ARITHMETIC,PEAK_MIB":
the same ResNet (torchvision's, or the identical definition below when
torchvision is missing), batch, image size, classes, threads and number of
timed steps; forward + cross-entropy + backward + SGD(momentum 0.9,
weight_decay 5e-4), median after one warm-up step. And the PGD steps of its
lines "perf,pgd_step,CONFIG,mbBATCHihSIZE,MS,STEPS/S,GFLOP/S,THREADS,REPEATS":
the model in eval mode with no parameter gradients, the images alone
requiring grad, torch.autograd.grad of the summed cross-entropy with respect
to them, then the same PGD-Linf step and projection (eps 4/255, step 1/255);
each repeat times 10 steps, median of the per-step times after one warm-up
step. Lines of arithmetic bf16 run under torch.autocast("cpu", torch.bfloat16),
PyTorch's own mixed precision (convolutions and linear layers in bf16), so
that each precision is compared with its like; f32 (robusta's default,
Winograd for 3x3 stride-1 convolutions) and f32-direct (direct convolutions
only, the same kernels PyTorch's fp32 runs) are both compared with PyTorch
fp32, as are tuned and auto (kernels chosen by measurement; auto may pick
bf16 per convolution, and is held to fp32 PyTorch since it must never be
slower than fp32). Peak memory is measured as
bench_train measures it: the process's resident high-water mark (VmHWM),
reset (/proc/self/clear_refs) before the model is built.

Both sides read their figures from robusta's own output so that they always
measure the same thing. Without PyTorch it prints a SKIP line and exits 0:
benchmarks never fail.
"""
import argparse
import os
import re
import statistics
import sys
import time

# Debian's PyTorch suffers page-fault storms when glibc hands big buffers back
# to the OS after every step; keep them. Must be set before the process starts,
# so the script re-executes itself once with them.
# --compare (convolutions): unless GLIBC_TUNABLES is already set.
TUNABLES = "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=4294967295:glibc.malloc.top_pad=268435456"
# --steps (whole training steps): exactly this, as tracker issue 5 specifies
# (no mmap'd blocks at all, never trim), replacing any other setting.
STEP_TUNABLES = "glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=17179869184"
if any(a == "--steps" or a.startswith("--steps=") for a in sys.argv[1:]):
    if os.environ.get("GLIBC_TUNABLES") != STEP_TUNABLES and os.environ.get("RB_TORCH_REEXEC") is None:
        os.environ["GLIBC_TUNABLES"] = STEP_TUNABLES
        os.environ["RB_TORCH_REEXEC"] = "1"
        os.execv(sys.executable, [sys.executable] + sys.argv)
elif os.environ.get("GLIBC_TUNABLES") is None:
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


# ------------------------------------------------------------ whole training steps

STEP = re.compile(r"mb(\d+)ih(\d+)")
# bench_train's configurations: torchvision model, stem, classes.
STEP_CONFIGS = {
    "resnet18-224": ("resnet18", "imagenet", 1000),
    "resnet50-224": ("resnet50", "imagenet", 1000),
    "resnet18-cifar32": ("resnet18", "cifar", 10),
    "pgd-resnet18-224": ("resnet18", "imagenet", 1000),
}
# bench_train's PGD: pgd-linf, eps and step size in [0,1] pixel units, steps per repeat.
PGD_EPS, PGD_STEP, PGD_STEPS = 4 / 255, 1 / 255, 10


def read_steps(path):
    """bench_train's lines: (kind, config, shape, batch, size, ms, threads, repeats, precision,
    peak MiB), kind train_step or pgd_step; lines without the last two fields are f32 with an
    unknown peak (-1)."""
    rows = []
    with open(path) as f:
        for line in f:
            parts = line.strip().split(",")
            if (len(parts) in (9, 11) and parts[0] == "perf" and parts[1] in ("train_step", "pgd_step")
                    and parts[2] in STEP_CONFIGS):
                m = STEP.fullmatch(parts[3])
                precision, peak = (parts[9], float(parts[10])) if len(parts) == 11 else ("f32", -1.0)
                if m and precision in ("f32", "f32-direct", "bf16", "tuned", "auto"):
                    rows.append((parts[1], parts[2], parts[3], int(m.group(1)), int(m.group(2)), float(parts[4]),
                                 int(parts[7]), int(parts[8]), precision, peak))
    return rows


def reset_peak_rss():
    """Restarts the kernel's resident high-water mark from the current size (as
    bench/benchutil.h does for robusta)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def peak_rss_mib():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return float(line.split()[1]) / 1024
    except OSError:
        pass
    return -1.0


def build_resnet(torch, arch, stem, classes):
    """torchvision's resnet18 / resnet50 (v1.5: stride on the 3x3); the cifar
    stem is a 3x3 stride-1 conv1 and no max-pool, as robusta's resnet plugin."""
    nn = torch.nn
    try:
        import torchvision
        model = getattr(torchvision.models, arch)(num_classes=classes)
    except Exception:  # no torchvision, or one that does not match this torch
        model = _resnet(torch, arch, classes)
    if stem == "cifar":
        model.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
        model.maxpool = nn.Identity()
    return model


def _resnet(torch, arch, classes):
    """The same network as torchvision.models.resnet18/50, for a PyTorch
    without torchvision (Debian packages it separately)."""
    nn = torch.nn

    class Basic(nn.Module):
        expansion = 1

        def __init__(self, cin, width, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, width, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(width)
            self.conv2 = nn.Conv2d(width, width, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(width)
            self.relu = nn.ReLU(inplace=True)
            self.downsample = None
            if stride != 1 or cin != width:
                self.downsample = nn.Sequential(nn.Conv2d(cin, width, 1, stride, bias=False), nn.BatchNorm2d(width))

        def forward(self, x):
            y = self.relu(self.bn1(self.conv1(x)))
            y = self.bn2(self.conv2(y))
            return self.relu(y + (x if self.downsample is None else self.downsample(x)))

    class Bottleneck(nn.Module):
        expansion = 4

        def __init__(self, cin, width, stride):
            super().__init__()
            out = width * 4
            self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(width)
            self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(width)
            self.conv3 = nn.Conv2d(width, out, 1, bias=False)
            self.bn3 = nn.BatchNorm2d(out)
            self.relu = nn.ReLU(inplace=True)
            self.downsample = None
            if stride != 1 or cin != out:
                self.downsample = nn.Sequential(nn.Conv2d(cin, out, 1, stride, bias=False), nn.BatchNorm2d(out))

        def forward(self, x):
            y = self.relu(self.bn1(self.conv1(x)))
            y = self.relu(self.bn2(self.conv2(y)))
            y = self.bn3(self.conv3(y))
            return self.relu(y + (x if self.downsample is None else self.downsample(x)))

    class ResNet(nn.Module):
        def __init__(self, block, blocks):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
            self.bn1 = nn.BatchNorm2d(64)
            self.relu = nn.ReLU(inplace=True)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
            cin = 64
            for i, n in enumerate(blocks):
                layers = []
                for b in range(n):
                    layers.append(block(cin, 64 << i, 2 if b == 0 and i > 0 else 1))
                    cin = (64 << i) * block.expansion
                setattr(self, f"layer{i + 1}", nn.Sequential(*layers))
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(cin, classes)
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

        def forward(self, x):
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return self.fc(torch.flatten(self.avgpool(x), 1))

    if arch == "resnet18":
        return ResNet(Basic, [2, 2, 2, 2])
    return ResNet(Bottleneck, [3, 4, 6, 3])


def pgd_step_time(torch, model, images, labels, repeats, bf16=False):
    """Median time of one PGD-Linf step (forward, input gradient, step, projection) over
    `repeats` runs of PGD_STEPS steps, after a warm-up step; the step as bench_train's
    pgd-linf plugin runs it, in plain PyTorch."""
    F = torch.nn.functional
    for p in model.parameters():
        p.requires_grad_(False)
    x0 = images

    def attack(steps):
        x = x0.clone()
        for _ in range(steps):
            x.requires_grad_(True)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                logits = model(x)
            loss = F.cross_entropy(logits.float(), labels, reduction="sum")
            (g,) = torch.autograd.grad(loss, x)
            with torch.no_grad():
                x = x + PGD_STEP * g.sign()
                x = torch.min(torch.max(x, x0 - PGD_EPS), x0 + PGD_EPS).clamp_(0, 1)
        return x

    attack(1)  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        attack(PGD_STEPS)
        times.append((time.perf_counter() - t0) / PGD_STEPS)
    return statistics.median(times)


def compare_steps(torch, args):
    rows = read_steps(args.steps)
    if not rows:
        print(f"SKIP: PyTorch training-step comparison ({args.steps} has no train_step or pgd_step lines)")
        return 0
    threads = args.threads if args.threads is not None else rows[0][6]
    torch.set_num_threads(threads)
    torch.backends.mkldnn.enabled = True
    torch.manual_seed(1)
    print(f"# PyTorch {torch.__version__}, {threads} threads, channels_last,"
          f" GLIBC_TUNABLES={os.environ.get('GLIBC_TUNABLES', '')}; one step = forward + cross-entropy +"
          f" backward + SGD(momentum 0.9, weight_decay 5e-4); median after 1 warm-up")
    print(f"# PGD: one step = eval-mode forward + cross-entropy + input gradient (torch.autograd.grad) +"
          f" Linf step and projection; median over repeats of {PGD_STEPS} steps")
    print("# bf16 lines: torch.autocast('cpu', dtype=torch.bfloat16) around forward and loss")
    print("# torch,train_step,config,shape,precision,robusta_ms,torch_ms,torch/robusta,torch_images/s,repeats,"
          "robusta_peak_MiB,torch_peak_MiB")
    print("# torch,pgd_step,config,shape,precision,robusta_ms,torch_ms,torch/robusta,torch_steps/s,repeats,"
          "robusta_peak_MiB,torch_peak_MiB")
    if args.row is None and len(rows) > 1:
        # One process per line: with the malloc tunables above, memory a
        # finished configuration freed stays resident and would count
        # towards the next one's peak.
        import subprocess
        for i in range(len(rows)):
            cmd = [sys.executable, os.path.abspath(__file__), "--steps", args.steps, "--row", str(i),
                   "--threads", str(threads)]
            if args.repeats is not None:
                cmd += ["--repeats", str(args.repeats)]
            out = subprocess.run(cmd, stdout=subprocess.PIPE, universal_newlines=True).stdout
            print("".join(line + "\n" for line in out.splitlines() if line.startswith("torch,")), end="",
                  flush=True)
        print("# torch/robusta > 1: robusta is faster")
        return 0
    for i, (kind, name, shape, batch, size, ms, robusta_threads, robusta_repeats, precision,
            robusta_peak) in enumerate(rows):
        if args.row is not None and i != args.row:
            continue
        arch, stem, classes = STEP_CONFIGS[name]
        repeats = args.repeats if args.repeats is not None else robusta_repeats
        bf16 = precision == "bf16"
        reset_peak_rss()
        if kind == "pgd_step":
            model = build_resnet(torch, arch, stem, classes).to(memory_format=torch.channels_last).eval()
            images = torch.rand(batch, 3, size, size).contiguous(memory_format=torch.channels_last)
            labels = (torch.arange(batch) * 7919) % classes
            t = pgd_step_time(torch, model, images, labels, repeats, bf16)
            if robusta_threads != threads:
                print(f"# {name}: robusta ran {robusta_threads} threads, torch {threads}")
            print(f"torch,pgd_step,{name},{shape},{precision},{ms:.1f},{t * 1e3:.1f},{t * 1e3 / ms:.2f},"
                  f"{1 / t:.2f},{repeats},{robusta_peak:.0f},{peak_rss_mib():.0f}", flush=True)
            del model, images
            continue
        model = build_resnet(torch, arch, stem, classes).to(memory_format=torch.channels_last)
        model.train()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
        loss_fn = torch.nn.CrossEntropyLoss()
        images = torch.rand(batch, 3, size, size).contiguous(memory_format=torch.channels_last)
        labels = (torch.arange(batch) * 7919) % classes

        def step():
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = loss_fn(model(images), labels)
            loss.backward()
            optimizer.step()

        t = timed(step, repeats)
        if robusta_threads != threads:
            print(f"# {name}: robusta ran {robusta_threads} threads, torch {threads}")
        print(f"torch,train_step,{name},{shape},{precision},{ms:.1f},{t * 1e3:.1f},{t * 1e3 / ms:.2f},"
              f"{batch / t:.1f},{repeats},{robusta_peak:.0f},{peak_rss_mib():.0f}", flush=True)
        del model, optimizer, images
    print("# torch/robusta > 1: robusta is faster")
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: --compare all allowed CPUs; --steps robusta's count)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="--steps: timed steps (default: as many as robusta's line says)")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--compare", help="robusta's bench_engine output")
    mode.add_argument("--steps", help="robusta's bench_train output")
    parser.add_argument("--row", type=int, default=None, help=argparse.SUPPRESS)  # --steps: that line alone
    args = parser.parse_args()
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        print("SKIP: PyTorch comparison (install Debian's python3-torch)")
        return 0
    if args.steps is not None:
        return compare_steps(torch, args)
    if args.threads is None:
        args.threads = len(os.sched_getaffinity(0))
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
