#!/usr/bin/python3
"""PyTorch side of bench_segment --task detect: the same detection model,
training step and inference batch in Debian's PyTorch, tuned as
bench/torch_reference.py tunes its training steps, printed next to
robusta's figures as a ratio torch/robusta (> 1: robusta is faster).

    bench/torch_detect.py [--threads N] [--repeats N]
                          [--robusta bench/bench_segment [--pairs N]] bench-detect.csv

Reads bench_segment's lines
"perf,detect_step,MODE,resnet18-fcos-s8s16,mbBATCHihSIZE,MS,IMAGES/S,THREADS,REPEATS,PEAK_MIB"
and builds what plugins/task/detect.c builds with its default options:
torchvision's resnet18 run through layer3 (layer2's output: stride 8, 128
channels; layer3's: stride 16, 256 channels; layer4 and fc are never
computed), the top-down merge (1x1 convolutions with bias to 128 channels,
the stride-16 one upsampled 2x nearest and added to the stride-8 one), and
torchvision's FCOSHead(128, 1, 20) (4-conv towers, GroupNorm(32), shared by
both levels) driven by an FCOS instance: its AnchorGenerator with sizes 8 and
16 (one per level, aspect 1), FCOS.compute_loss (matching with centre
sampling 1.5 and the scale ranges, then FCOSHead.compute_loss: focal,
GIoU and centerness BCE), the three losses summed as robusta sums them.
FCOS's GeneralizedRCNNTransform is not run (it would resize to 800): the
ImageNet normalization is the model's first op, as in robusta's graph.

  train  model.train(); forward, the loss against the same boxes as
         bench_segment's (3 per image, the same formula), backward,
         SGD(lr 0.01, momentum 0.9, weight_decay 5e-4)
  infer  model.eval() under torch.no_grad(); forward, anchors and
         FCOS.postprocess_detections (score 0.2, NMS 0.6, as robusta's decode)

Tuned like torch_reference.py --steps: torch.set_num_threads(robusta's
thread count), model and images in channels_last, oneDNN on, and
GLIBC_TUNABLES (the script re-executes itself with them). One process per
line, one warm-up step, the median of as many timed steps as robusta's
line says; peak memory is the process's resident high-water mark (VmHWM),
reset before the model is built. With --robusta, each line is timed once
more paired (bench_segment --serve and this script --serve alternating, the
first side swapped every pair), as torch_segment.py does; read the paired
line on a busy machine. Without PyTorch it prints a SKIP line and exits 0.
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import time

STEP_TUNABLES = "glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=17179869184"
if os.environ.get("GLIBC_TUNABLES") != STEP_TUNABLES and os.environ.get("RB_TORCH_REEXEC") is None:
    os.environ["GLIBC_TUNABLES"] = STEP_TUNABLES
    os.environ["RB_TORCH_REEXEC"] = "1"
    os.execv(sys.executable, [sys.executable] + sys.argv)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_reference import peak_rss_mib, reset_peak_rss  # noqa: E402  (after the re-exec)

LINE = re.compile(r"perf,detect_step,(train|infer),(resnet18-fcos-s8s16),mb(\d+)ih(\d+),([\d.]+),([\d.]+),"
                  r"(\d+),(\d+),(-?[\d.]+)")
CLASSES = 20
BOXES_PER_IMAGE = 3
CHANNELS = 128
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def read_rows(path):
    rows = []
    with open(path) as f:
        for line in f:
            m = LINE.fullmatch(line.strip())
            if m:
                rows.append({"mode": m.group(1), "config": m.group(2), "batch": int(m.group(3)),
                             "size": int(m.group(4)), "ms": float(m.group(5)), "images_s": float(m.group(6)),
                             "threads": int(m.group(7)), "repeats": int(m.group(8)), "peak": float(m.group(9)),
                             "shape": f"mb{m.group(3)}ih{m.group(4)}"})
    return rows


def boxes(torch, batch, size):
    """bench_segment's fill_boxes: the same formula, in double, to float."""
    targets = []
    for i in range(batch):
        rows, labels = [], []
        for j in range(BOXES_PER_IMAGE):
            x1 = size * ((7 * i + 29 * j) % 50) / 100.0
            y1 = size * ((11 * i + 17 * j) % 50) / 100.0
            w, h = size * (0.1 + 0.15 * j), size * (0.4 - 0.12 * j)
            rows.append([x1, y1, x1 + w, y1 + h])
            labels.append((3 * i + 5 * j) % CLASSES)
        targets.append({"boxes": torch.tensor(rows, dtype=torch.float64).float(),
                        "labels": torch.tensor(labels, dtype=torch.int64)})
    return targets


def build_model(torch):
    import torchvision
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.fcos import FCOS
    from torchvision.models.detection.image_list import ImageList
    nn = torch.nn
    F = nn.functional
    resnet = torchvision.models.resnet18()

    class Backbone(nn.Module):
        """resnet18 through layer3 and detect.c's top-down merge."""

        def __init__(self):
            super().__init__()
            self.out_channels = CHANNELS
            self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1))
            self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1))
            self.stem = nn.Sequential(resnet.conv1, resnet.bn1, resnet.relu, resnet.maxpool, resnet.layer1,
                                      resnet.layer2)
            self.layer3 = resnet.layer3
            self.inner0 = nn.Conv2d(128, CHANNELS, 1)
            self.inner1 = nn.Conv2d(256, CHANNELS, 1)

        def forward(self, x):
            c8 = self.stem((x - self.mean) / self.std)
            p16 = self.inner1(self.layer3(c8))
            p8 = self.inner0(c8) + F.interpolate(p16, scale_factor=2, mode="nearest")
            return [p8, p16]

    anchors = AnchorGenerator(((8,), (16,)), ((1.0,),) * 2)
    fcos = FCOS(Backbone(), CLASSES, anchor_generator=anchors, score_thresh=0.2, nms_thresh=0.6)

    def forward(images, targets):
        """FCOS.forward without its transform: the summed loss (train) or the detections."""
        features = fcos.backbone(images)
        head_outputs = fcos.head(features)
        image_list = ImageList(images, [tuple(images.shape[-2:])] * images.shape[0])
        anchors = fcos.anchor_generator(image_list, features)
        per_level = [f.size(2) * f.size(3) for f in features]
        if targets is not None:
            losses = fcos.compute_loss(targets, head_outputs, anchors, per_level)
            return sum(losses.values())
        split = {k: list(v.split(per_level, dim=1)) for k, v in head_outputs.items()}
        split_anchors = [list(a.split(per_level)) for a in anchors]
        return fcos.postprocess_detections(split, split_anchors, image_list.image_sizes)

    return fcos, forward


def make_step(torch, mode, batch, size):
    """The model of one mode and a function running one step of it."""
    model, forward = build_model(torch)
    model = model.to(memory_format=torch.channels_last)
    images = torch.rand(batch, 3, size, size).contiguous(memory_format=torch.channels_last)
    targets = boxes(torch, batch, size)
    if mode == "train":
        model.train()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)

        def step():
            optimizer.zero_grad(set_to_none=True)
            loss = forward(images, targets)
            loss.backward()
            optimizer.step()
    else:
        model.eval()

        def step():
            with torch.no_grad():
                return forward(images, None)
    return step


def run_row(torch, row, repeats):
    """Times one line's mode; prints "result,MS,PEAK_MIB"."""
    reset_peak_rss()
    step = make_step(torch, row["mode"], row["batch"], row["size"])
    step()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    print(f"result,{statistics.median(times) * 1e3:.3f},{peak_rss_mib():.0f}", flush=True)


def measure(args, index, threads):
    """(ms, peak MiB) of line `index`, in a process of its own."""
    cmd = [sys.executable, os.path.abspath(__file__), args.csv, "--row", str(index), "--threads", str(threads)]
    if args.repeats is not None:
        cmd += ["--repeats", str(args.repeats)]
    out = subprocess.run(cmd, stdout=subprocess.PIPE, universal_newlines=True).stdout
    for line in out.splitlines():
        if line.startswith("result,"):
            ms, peak = line.split(",")[1:3]
            return float(ms), float(peak)
    return None


def serve(torch, args):
    """--serve: bench_segment --serve's protocol for PyTorch."""
    reset_peak_rss()
    step = make_step(torch, args.serve, args.batch, args.size)
    step()  # warm-up
    print("ready", flush=True)
    for line in sys.stdin:
        if line.startswith("step"):
            t0 = time.perf_counter()
            step()
            print(f"{(time.perf_counter() - t0) * 1e3:.3f}", flush=True)
        elif line.startswith("peak"):
            print(f"{peak_rss_mib():.0f}", flush=True)
        else:
            return 2
    return 0


def paired(args, row, threads, pairs):
    """robusta's and PyTorch's steps alternately, each in a server process:
    medians of each side's times and of the per-pair ratios."""
    common = ["--batch", str(row["batch"]), "--size", str(row["size"]), "--threads", str(threads)]
    sides = {
        "robusta": [args.robusta, "--serve", "--task", "detect", "--only", row["mode"]] + common,
        "torch": [sys.executable, os.path.abspath(__file__), "--serve", row["mode"]] + common,
    }
    robusta_env = {k: v for k, v in os.environ.items() if k not in ("GLIBC_TUNABLES", "RB_TORCH_REEXEC")}
    procs = {}
    try:
        for name, cmd in sides.items():
            procs[name] = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                           universal_newlines=True, bufsize=1,
                                           env=robusta_env if name == "robusta" else None)
            if procs[name].stdout.readline().strip() != "ready":
                print(f"# paired {row['mode']}: {name} did not start")
                return None

        def ask(name, request):
            procs[name].stdin.write(request + "\n")
            procs[name].stdin.flush()
            return float(procs[name].stdout.readline())

        times = {"robusta": [], "torch": []}
        for i in range(pairs):
            for name in (("robusta", "torch") if i % 2 == 0 else ("torch", "robusta")):
                times[name].append(ask(name, "step"))
        peaks = {name: ask(name, "peak") for name in procs}
    finally:
        for proc in procs.values():
            proc.stdin.close()
            proc.wait()
    ratios = [t / r for r, t in zip(times["robusta"], times["torch"])]
    return (statistics.median(times["robusta"]), statistics.median(times["torch"]), statistics.median(ratios),
            peaks["robusta"], peaks["torch"], min(ratios), max(ratios))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="accepted for make bench; the csv sets the sizes")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: robusta's)")
    parser.add_argument("--repeats", type=int, default=None, help="timed steps (default: robusta's)")
    parser.add_argument("--row", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--robusta", help="bench_segment's binary: also time both sides alternately (paired)")
    parser.add_argument("--pairs", type=int, default=None, help="paired steps per line (default: robusta's repeats)")
    parser.add_argument("--serve", choices=("train", "infer"), help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=16, help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, default=224, help=argparse.SUPPRESS)
    parser.add_argument("csv", nargs="?")
    args = parser.parse_args()
    try:
        import torch
        import torchvision  # noqa: F401
        from torchvision.models.detection.fcos import FCOS  # noqa: F401
    except ImportError:
        print("SKIP: the PyTorch side of bench_segment --task detect needs python3-torch and python3-torchvision "
              "(with FCOS)")
        return 0
    if args.serve is not None:
        torch.set_num_threads(args.threads if args.threads is not None else 1)
        torch.backends.mkldnn.enabled = True
        torch.manual_seed(1)
        return serve(torch, args)
    if args.csv is None:
        parser.error("give bench_segment --task detect's output (bench-detect.csv)")
    rows = read_rows(args.csv)
    if not rows:
        print(f"SKIP: {args.csv} has no detect_step lines")
        return 0
    threads = args.threads if args.threads is not None else rows[0]["threads"]
    if args.row is not None:
        torch.set_num_threads(threads)
        torch.backends.mkldnn.enabled = True
        torch.manual_seed(1)
        row = rows[args.row]
        run_row(torch, row, args.repeats if args.repeats is not None else row["repeats"])
        return 0
    print(f"# PyTorch {torch.__version__}, {threads} threads, channels_last, GLIBC_TUNABLES={STEP_TUNABLES};"
          " torchvision resnet18 through layer3 + merge + FCOSHead, FCOS.compute_loss / postprocess_detections;"
          " median after 1 warm-up")
    print("# torch,detect_step,mode,config,shape,robusta_ms,torch_ms,torch/robusta,robusta_images/s,"
          "torch_images/s,repeats,robusta_peak_MiB,torch_peak_MiB")
    done = set()
    for i, row in enumerate(rows):  # one process per line: peaks of their own
        result = measure(args, i, threads)
        if result is None:
            print(f"# {row['config']} {row['mode']}: PyTorch failed")
            continue
        ms, peak = result
        if row["threads"] != threads:
            print(f"# {row['config']} {row['mode']}: robusta ran {row['threads']} threads, torch {threads}")
        repeats = args.repeats if args.repeats is not None else row["repeats"]
        print(f"torch,detect_step,{row['mode']},{row['config']},{row['shape']},{row['ms']:.1f},{ms:.1f},"
              f"{ms / row['ms']:.2f},{row['images_s']:.2f},{row['batch'] / ms * 1e3:.2f},{repeats},"
              f"{row['peak']:.0f},{peak:.0f}", flush=True)
        done.add(i)
    if args.robusta is not None:
        print("# paired: robusta's and PyTorch's steps alternate (servers of their own, the first side swapped "
              "every pair), so both meet the same load; medians of each side and of the per-pair ratios")
        print("# torch,detect_paired,mode,config,shape,robusta_ms,torch_ms,torch/robusta,pairs,robusta_peak_MiB,"
              "torch_peak_MiB,min_ratio,max_ratio")
        for i, row in enumerate(rows):
            if i not in done:
                continue
            pairs = args.pairs if args.pairs is not None else row["repeats"]
            result = paired(args, row, threads, pairs)
            if result is None:
                continue
            ours, theirs, ratio, our_peak, their_peak, low, high = result
            print(f"torch,detect_paired,{row['mode']},{row['config']},{row['shape']},{ours:.1f},{theirs:.1f},"
                  f"{ratio:.2f},{pairs},{our_peak:.0f},{their_peak:.0f},{low:.2f},{high:.2f}", flush=True)
    print("# torch/robusta > 1: robusta is faster")
    return 0


if __name__ == "__main__":
    sys.exit(main())
