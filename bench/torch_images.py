#!/usr/bin/python3
"""PyTorch side of bench_images: torchvision's input pipeline over the same
JPEG files, timed as a user's training loop meets it.

    bench_images --keep DIR | tee bench-images.csv
    bench/torch_images.py [--workers 2] [--repeats 3] [--size 224] [--compare bench-images.csv] DIR

DIR is the folder bench_images --keep wrote (DIR/train/class_0 ..
class_9). A DataLoader over datasets.ImageFolder(DIR/train) with the
paper's training transform, Compose([RandomResizedCrop(S),
RandomHorizontalFlip(), ToTensor()]), batch 64, shuffle, --workers worker
processes (persistent_workers off, the default; each worker runs
torch.set_num_threads(1), DataLoader's default). An epoch is timed from
iter() to its last batch, worker start-up included, as a training loop
meets it; a second epoch is timed the same way (PIL keeps nothing, so it
decodes again). Prints
    perf,torch_images,PHASE,N,WORKERS,SIZE,SECONDS,IMAGES/S
for first_epoch and second_epoch (median of --repeats), a one-thread
breakdown of torchvision's work per image (PIL decode, RandomResizedCrop
and flip, ToTensor), and with --compare the ratios robusta/torch of
bench_images' lines (> 1: robusta is faster; issue 21's goal for the first
epoch is 1.5 with 2 threads against 2 workers). Without PyTorch or
torchvision it prints a SKIP line and exits 0.
"""
import argparse
import os
import re
import statistics
import sys
import time

LINE = re.compile(r"perf,images,(\w+),(\d+),(\d+),(\d+),([\d.]+),([\d.]+)")
BATCH = 64


def robusta_rows(path):
    rows = {}
    with open(path) as f:
        for line in f:
            m = LINE.fullmatch(line.strip())
            if m:
                rows[m.group(1)] = {"n": int(m.group(2)), "threads": int(m.group(3)), "size": int(m.group(4)),
                                    "seconds": float(m.group(5)), "rate": float(m.group(6))}
    return rows


def time_epoch(loader):
    """Seconds from iter() to the last batch, and the images seen."""
    seen = 0
    t0 = time.perf_counter()
    for images, _ in loader:
        seen += images.shape[0]
    return time.perf_counter() - t0, seen


def breakdown(datasets, transforms, root, size, count=64):
    """Milliseconds per image of each of torchvision's steps on this thread."""
    from PIL import Image
    samples = datasets.ImageFolder(root).samples[:count]
    rrc, flip, to_tensor = transforms.RandomResizedCrop(size), transforms.RandomHorizontalFlip(), transforms.ToTensor()
    t0 = time.perf_counter()
    images = []
    for path, _ in samples:
        with open(path, "rb") as f:
            images.append(Image.open(f).convert("RGB"))
    t1 = time.perf_counter()
    crops = [flip(rrc(im)) for im in images]
    t2 = time.perf_counter()
    for im in crops:
        to_tensor(im)
    t3 = time.perf_counter()
    n = len(samples)
    return 1e3 * (t1 - t0) / n, 1e3 * (t2 - t1) / n, 1e3 * (t3 - t2) / n


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", help="the folder bench_images --keep wrote")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader worker processes (default 2)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs; the median is reported (default 3)")
    parser.add_argument("--size", type=int, default=224, help="RandomResizedCrop's size (default 224)")
    parser.add_argument("--compare", help="bench_images' output: print the ratios robusta/torch")
    parser.add_argument("--quick", action="store_true", help="one repeat (make bench BENCH_FLAGS=--quick)")
    args = parser.parse_args()
    try:
        import torch
        from torchvision import datasets, transforms
    except ImportError:
        print("SKIP: the PyTorch side of bench_images needs python3-torch and python3-torchvision")
        return 0
    repeats = 1 if args.quick else args.repeats
    root = os.path.join(args.dir, "train")
    if not os.path.isdir(root):
        print(f"torch_images: {root} is not a folder (run bench_images --keep {args.dir} first)", file=sys.stderr)
        return 2
    transform = transforms.Compose([transforms.RandomResizedCrop(args.size), transforms.RandomHorizontalFlip(),
                                    transforms.ToTensor()])
    dataset = datasets.ImageFolder(root, transform=transform)
    n = len(dataset)
    seconds = {"first_epoch": [], "second_epoch": []}
    for k in range(repeats):
        torch.manual_seed(k)
        loader = torch.utils.data.DataLoader(dataset, batch_size=BATCH, shuffle=True, num_workers=args.workers)
        for phase in ("first_epoch", "second_epoch"):
            s, seen = time_epoch(loader)
            if seen != n:
                print(f"torch_images: an epoch gave {seen} images, not {n}", file=sys.stderr)
                return 1
            seconds[phase].append(s)
    rates = {}
    for phase, v in seconds.items():
        m = statistics.median(v)
        rates[phase] = n / m
        print(f"perf,torch_images,{phase},{n},{args.workers},{args.size},{m:.3f},{n / m:.1f}")
    for phase, v in seconds.items():
        print(f"  torchvision {phase:<13} {rates[phase]:8.1f} images/s ({n / max(v):.1f}-{n / min(v):.1f}), "
              f"median of {repeats}, {args.workers} workers, torch {torch.__version__}")
    decode, crop, tensor = breakdown(datasets, transforms, root, args.size)
    print(f"  torchvision per image on one thread: PIL decode {decode:.2f} ms, RandomResizedCrop+flip {crop:.2f} ms, "
          f"ToTensor {tensor:.2f} ms (decode {100 * decode / (decode + crop + tensor):.0f}%)")
    if args.compare:
        rows = robusta_rows(args.compare)
        first = rows.get("decode_rrc_first_epoch")
        if first is None:
            print(f"SKIP: {args.compare} has no perf,images lines")
            return 0
        if first["n"] != n or first["size"] != args.size:
            print(f"# note: robusta ran {first['n']} images at {first['size']}, this {n} at {args.size}")
        ratio = first["rate"] / rates["first_epoch"]
        print(f"torch,images,first_epoch,{n},{first['threads']},{args.workers},{first['rate']:.1f},"
              f"{rates['first_epoch']:.1f},{ratio:.2f}")
        print(f"robusta/torch, first epoch (decode + RandomResizedCrop + flip): {ratio:.2f}x with {first['threads']} "
              f"threads vs {args.workers} workers (issue 21's goal: >= 1.5x{', met' if ratio >= 1.5 else ', NOT met'})")
        for phase in ("kept_second_epoch", "cache_read_epoch"):
            if phase in rows:
                print(f"robusta/torch, robusta's {phase} vs torchvision's second epoch: "
                      f"{rows[phase]['rate'] / rates['second_epoch']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
