#!/usr/bin/python3
"""PyTorch side of bench_segment: the same segmentation model, training step
and inference batch in Debian's PyTorch, tuned as bench/torch_reference.py
tunes its training steps, printed next to robusta's figures as a ratio
torch/robusta (> 1: robusta is faster).

    bench/torch_segment.py [--quick] [--threads N] [--repeats N]
                           [--robusta bench/bench_segment [--pairs N]] bench-segment.csv

Reads bench_segment's lines
"perf,segment_step,MODE,CONFIG,mbBATCHihSIZE,MS,IMAGES/S,THREADS,REPEATS,PEAK_MIB"
and builds what torchvision's fcn_resnet / deeplabv3_resnet models build
from a backbone: torchvision's resnet18 used through layer2 (what
IntermediateLayerGetter(return_layers={"layer2": "out"}) runs: stride 8,
128 channels; layer3, layer4 and the classifier are never computed), the
head as the model's `classifier` (torchvision's FCNHead(128, 21), or
DeepLabHead(128, 21) for resnet18-aspp-s8), and F.interpolate of its logits
to the image size (bilinear, align_corners=False); the ImageNet
normalization is the model's first op, as in robusta's graph.

  train  model.train(); forward, F.cross_entropy(ignore_index=255) against
         the same masks (every 13th pixel 255), backward, SGD(lr 0.01,
         momentum 0.9, weight_decay 5e-4)
  infer  model.eval() under torch.no_grad(); forward and argmax over the
         classes (the per-pixel masks)

Tuned like torch_reference.py --steps: torch.set_num_threads(robusta's
thread count), model and images in channels_last, oneDNN on, and
GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=17179869184
(the script re-executes itself with it). The head's logits go into
F.interpolate in channels_last (what the model gives) or made contiguous
first: both run, and the faster counts (torch_tail says which). One process
per line and tail, one warm-up step, the median of as many timed steps as robusta's line says; peak
memory is the process's resident high-water mark (VmHWM), reset before the
model is built, as bench_segment measures robusta's. Without PyTorch it
prints a SKIP line and exits 0: benchmarks never fail.

With --robusta (make bench gives it), each line is then timed once more,
paired: bench_segment --serve and this script --serve each hold the model
of that mode in a process of their own, and their steps alternate, the
first side swapped every pair, so that on a shared machine both sides meet
the same load; it prints the medians of each side's times and of the
per-pair ratios (with their minimum and maximum), and both peaks. The
sequential figures above are each side alone; on a busy machine other jobs
land on one side or the other, and the paired ratio is the one to read.

Dropout: torchvision's heads have Dropout layers (0.1 in FCNHead, 0.5 in
ASPP) that robusta's heads leave out; they are replaced here by Identity so
both sides run the same function (a dropout costs PyTorch a mask per step).
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import time

# torch_reference's training-step tunables, exactly, set before the process
# starts (glibc reads them at start-up), so the script re-executes itself.
STEP_TUNABLES = "glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=17179869184"
if os.environ.get("GLIBC_TUNABLES") != STEP_TUNABLES and os.environ.get("RB_TORCH_REEXEC") is None:
    os.environ["GLIBC_TUNABLES"] = STEP_TUNABLES
    os.environ["RB_TORCH_REEXEC"] = "1"
    os.execv(sys.executable, [sys.executable] + sys.argv)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_reference import peak_rss_mib, reset_peak_rss  # noqa: E402  (after the re-exec)

LINE = re.compile(r"perf,segment_step,(train|infer),(resnet18-(fcn|aspp)-s8),mb(\d+)ih(\d+),([\d.]+),([\d.]+),"
                  r"(\d+),(\d+),(-?[\d.]+)")
CLASSES = 21
# PyTorch 1.13's interpolate and cross-entropy backward are ~3x slower on
# channels_last than on contiguous tensors, and its arg-max the other way
# round (measured at 16 x 21 x 28 x 28 -> 224: train tail 676 vs 200 ms,
# infer 81 vs 251 ms), so both layouts run and the faster counts.
TAILS = ("channels_last", "contiguous")
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def read_rows(path):
    rows = []
    with open(path) as f:
        for line in f:
            m = LINE.fullmatch(line.strip())
            if m:
                rows.append({"mode": m.group(1), "config": m.group(2), "head": m.group(3),
                             "batch": int(m.group(4)), "size": int(m.group(5)), "ms": float(m.group(6)),
                             "images_s": float(m.group(7)), "threads": int(m.group(8)),
                             "repeats": int(m.group(9)), "peak": float(m.group(10)),
                             "shape": f"mb{m.group(4)}ih{m.group(5)}"})
    return rows


def build_model(torch, head_kind, contiguous_tail):
    import torchvision
    from torchvision.models.segmentation.deeplabv3 import DeepLabHead
    from torchvision.models.segmentation.fcn import FCNHead
    nn = torch.nn
    F = nn.functional
    resnet = torchvision.models.resnet18()

    class Segmenter(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1))
            self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1))
            # the backbone through layer2, as IntermediateLayerGetter runs it
            self.backbone = nn.Sequential(resnet.conv1, resnet.bn1, resnet.relu, resnet.maxpool, resnet.layer1,
                                          resnet.layer2)
            self.classifier = FCNHead(128, CLASSES) if head_kind == "fcn" else DeepLabHead(128, CLASSES)
            for name, module in list(self.classifier.named_modules()):
                for child_name, child in list(module.named_children()):
                    if isinstance(child, nn.Dropout):
                        setattr(module, child_name, nn.Identity())

        def forward(self, x):
            size = x.shape[-2:]
            y = self.classifier(self.backbone((x - self.mean) / self.std))
            if contiguous_tail:
                y = y.contiguous()
            return F.interpolate(y, size=size, mode="bilinear", align_corners=False)

    return Segmenter()


def inputs(torch, batch, size):
    images = torch.rand(batch, 3, size, size).contiguous(memory_format=torch.channels_last)
    i = torch.arange(batch * size * size)
    masks = torch.where(i % 13 == 0, torch.tensor(255), (i // 7) % CLASSES).view(batch, size, size)
    return images, masks


def run_row(torch, row, tail, repeats):
    """Times one line's mode with one tail layout; prints "result,MS,PEAK_MIB"."""
    reset_peak_rss()
    step = make_step(torch, row["mode"], row["head"], row["batch"], row["size"], tail)
    step()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    print(f"result,{statistics.median(times) * 1e3:.3f},{peak_rss_mib():.0f}", flush=True)


def measure(args, index, tail, threads):
    """(ms, peak MiB) of line `index` with `tail`, in a process of its own."""
    cmd = [sys.executable, os.path.abspath(__file__), args.csv, "--row", str(index), "--tail", tail, "--threads",
           str(threads)]
    if args.repeats is not None:
        cmd += ["--repeats", str(args.repeats)]
    out = subprocess.run(cmd, stdout=subprocess.PIPE, universal_newlines=True).stdout
    for line in out.splitlines():
        if line.startswith("result,"):
            ms, peak = line.split(",")[1:3]
            return float(ms), float(peak)
    return None


def make_step(torch, mode, head, batch, size, tail):
    """The model of one mode and a function running one step of it."""
    F = torch.nn.functional
    model = build_model(torch, head, tail == "contiguous").to(memory_format=torch.channels_last)
    images, masks = inputs(torch, batch, size)
    if mode == "train":
        model.train()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)

        def step():
            optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(images), masks, ignore_index=255)
            loss.backward()
            optimizer.step()
    else:
        model.eval()

        def step():
            with torch.no_grad():
                return model(images).argmax(1)
    return step


def serve(torch, args):
    """--serve: bench_segment --serve's protocol (see there) for PyTorch."""
    reset_peak_rss()
    step = make_step(torch, args.serve, args.head, args.batch, args.size, args.tail)
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


def paired(args, row, tail, threads, pairs):
    """Runs robusta's and PyTorch's steps of one line alternately, each in a
    server process of its own, so that both meet the same load: medians of
    each side's times and of the per-pair ratios."""
    common = ["--batch", str(row["batch"]), "--size", str(row["size"]), "--threads", str(threads), "--head",
              row["head"]]
    sides = {
        "robusta": [args.robusta, "--serve", "--only", row["mode"]] + common,
        "torch": [sys.executable, os.path.abspath(__file__), "--serve", row["mode"], "--tail", tail] + common,
    }
    # robusta runs with its own allocator settings, not PyTorch's tunables
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
        for i in range(pairs):  # alternate which side goes first
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
    parser.add_argument("--tail", choices=TAILS, default=TAILS[0], help=argparse.SUPPRESS)
    parser.add_argument("--robusta", help="bench_segment's binary: also time both sides alternately (paired)")
    parser.add_argument("--pairs", type=int, default=None, help="paired steps per line (default: robusta's repeats)")
    # --serve MODE: a step server for --paired (with --head, --batch, --size, --threads, --tail)
    parser.add_argument("--serve", choices=("train", "infer"), help=argparse.SUPPRESS)
    parser.add_argument("--head", choices=("fcn", "aspp"), default="fcn", help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=16, help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, default=224, help=argparse.SUPPRESS)
    parser.add_argument("csv", nargs="?")
    args = parser.parse_args()
    try:
        import torch
        import torchvision  # noqa: F401
    except ImportError:
        print("SKIP: the PyTorch side of bench_segment needs python3-torch and python3-torchvision")
        return 0
    if args.serve is not None:
        torch.set_num_threads(args.threads if args.threads is not None else 1)
        torch.backends.mkldnn.enabled = True
        torch.manual_seed(1)
        return serve(torch, args)
    if args.csv is None:
        parser.error("give bench_segment's output (bench-segment.csv)")
    rows = read_rows(args.csv)
    if not rows:
        print(f"SKIP: {args.csv} has no segment_step lines")
        return 0
    threads = args.threads if args.threads is not None else rows[0]["threads"]
    if args.row is not None:
        torch.set_num_threads(threads)
        torch.backends.mkldnn.enabled = True
        torch.manual_seed(1)
        row = rows[args.row]
        run_row(torch, row, args.tail, args.repeats if args.repeats is not None else row["repeats"])
        return 0
    print(f"# PyTorch {torch.__version__}, {threads} threads, channels_last, GLIBC_TUNABLES={STEP_TUNABLES};"
          " torchvision resnet18 through layer2 + head + F.interpolate; median after 1 warm-up")
    print("# tail: the head's logits interpolated (and the loss or arg-max taken) in channels_last or made "
          "contiguous first; each runs, the faster counts")
    print("# torch,segment_step,mode,config,shape,robusta_ms,torch_ms,torch/robusta,robusta_images/s,"
          "torch_images/s,repeats,robusta_peak_MiB,torch_peak_MiB,torch_tail")
    tails = {}
    for i, row in enumerate(rows):  # one process per line and tail: peaks of their own
        results = {tail: measure(args, i, tail, threads) for tail in TAILS}
        done = {tail: r for tail, r in results.items() if r is not None}
        if not done:
            print(f"# {row['config']} {row['mode']}: PyTorch failed")
            continue
        tail = min(done, key=lambda k: done[k][0])
        ms, peak = done[tail]
        if row["threads"] != threads:
            print(f"# {row['config']} {row['mode']}: robusta ran {row['threads']} threads, torch {threads}")
        print("# " + ", ".join(f"{row['mode']} tail {k}: {v[0]:.1f} ms, peak {v[1]:.0f} MiB" for k, v in done.items()))
        repeats = args.repeats if args.repeats is not None else row["repeats"]
        print(f"torch,segment_step,{row['mode']},{row['config']},{row['shape']},{row['ms']:.1f},{ms:.1f},"
              f"{ms / row['ms']:.2f},{row['images_s']:.2f},{row['batch'] / ms * 1e3:.2f},{repeats},"
              f"{row['peak']:.0f},{peak:.0f},{tail}", flush=True)
        tails[i] = tail
    if args.robusta is not None:
        print("# paired: robusta's and PyTorch's steps alternate (servers of their own, the first side swapped "
              "every pair), so both meet the same load; medians of each side and of the per-pair ratios")
        print("# torch,segment_paired,mode,config,shape,robusta_ms,torch_ms,torch/robusta,pairs,robusta_peak_MiB,"
              "torch_peak_MiB,torch_tail,min_ratio,max_ratio")
        for i, row in enumerate(rows):
            if i not in tails:
                continue
            pairs = args.pairs if args.pairs is not None else row["repeats"]
            result = paired(args, row, tails[i], threads, pairs)
            if result is None:
                continue
            ours, theirs, ratio, our_peak, their_peak, low, high = result
            print(f"torch,segment_paired,{row['mode']},{row['config']},{row['shape']},{ours:.1f},{theirs:.1f},"
                  f"{ratio:.2f},{pairs},{our_peak:.0f},{their_peak:.0f},{tails[i]},{low:.2f},{high:.2f}", flush=True)
    print("# torch/robusta > 1: robusta is faster")
    return 0


if __name__ == "__main__":
    sys.exit(main())
