#!/usr/bin/python3
"""PyTorch parity for robusta's PGD attacks (pgd-l2, pgd-linf).

A torchvision resnet18 with seeded random weights and non-trivial batch-norm
parameters and running statistics (tests/torch_parity.py's `randomize`, so
inference-mode batch-norm matters) is written as safetensors and imported with
`robusta import`. `robusta attack` then runs, without a random start, on 4
seeded 64x64 images with seeded labels,

    pgd-l2    eps 0.5,   step 0.2,   5 steps
    pgd-linf  eps 8/255, step 2/255, 5 steps

(L2 steps of 0.2 so that the projection onto the ball binds in the last
steps: five steps of 0.1 never leave a ball of 0.5), and is held against a
plain PyTorch implementation of DESIGN.md's update:

    L2:    x <- x + a g / ||g||_2 (per example); d = x - x0 renormalized to
           ||d||_2 <= eps (torch.renorm's 1e-7); x <- clamp(x0 + d, 0, 1)
    Linf:  x <- x + a sign(g); x <- clamp(x0 + clamp(x - x0, -eps, eps), 0, 1)

where g is the gradient of each example's own cross-entropy with respect to
its image, the model in eval mode. robusta differentiates the batch mean and
scales it by the batch (rb_attack_run's per-example gradient); the reference
differentiates the sum of the per-example losses: the same per-example
gradient. Neither scale matters to an L2-normalized or a sign step.

Three comparisons; A and B must hold, C is measured and printed:

 A. The update: from robusta's iterate x_k (robusta attack --steps k) and
    robusta's own gradient there (robusta infer --input-grad), PyTorch's
    update in float64 gives robusta's x_k+1 within 1e-6 (max |difference|
    over every value; the issue asks for 1e-4), for the first step (k = 0,
    from the clean images) and the last (k = 4, where the projection binds).
    With the same gradient on both sides nothing but the update differs, and
    only the fp32 rounding of robusta's iterate remains: measured 5.5e-8
    (L2) and 1.9e-9 (Linf), whatever the seed. Why 1e-6 and not 1e-4: an L2
    step moves a pixel by a g_i / ||g||, at most ~0.01 here, so a step length
    or a normalization off by 0.1% moves it by ~1e-5, and a Linf projection
    radius off by 0.1% by 3e-5; both pass 1e-4 and fail 1e-6 (tried). A
    grossly wrong update (L2: the norm taken over the whole batch instead of
    per example; Linf: no projection onto the ball) must be more than 1e-3
    away at one of the two steps, so the check visibly can fail. (The steps
    between run the same code; checking them too costs a robusta run each.)
 B. The gradient it steps along: at x_0, x_1, x_4 and x_5, each example's
    gradient from robusta against PyTorch's float64 one, relative L2 error
    ||robusta - torch|| / ||torch||: the median over examples and points at
    most 1e-4, and every one at most 1e-1. fp32 rounding gives ~1e-6; wrong
    batch-norm statistics, normalization, sign or scale give order 1.
    Isolated larger errors are kinks: a ReLU input or max-pool tie within
    fp32 rounding switches a path depending on summation order; measured up
    to 1.4e-2 for one example at one point (robusta) and 5.5e-4 for a batch
    (PyTorch's own fp32), hence the median and the loose maximum.
 C. End to end: robusta's 5-step result against the whole 5-step run in
    PyTorch float64, and PyTorch's own fp32 run against float64, max
    |difference| and how many values exceed 1e-4.

Why C is not a pass/fail bound: after a kink the trajectories part for
good, and an L2 step carries a 1e-2 gradient error into 1e-4..1e-3 moves
while a Linf step flips a sign (a move of 2a = 0.016). It is luck, the same
for any fp32 implementation. Measured at this size with the first version of
this test (L2 step 0.1) over seeds 1-10 (4 images, 49152 values, 5 steps):
robusta departed from float64 by more than 1e-4 in 5 of 20 runs (seed 1 L2,
362 values up to 2.5e-4; seed 2 Linf, 1719 values; seed 4 Linf, 12; seed 6
L2 78 and Linf 4) and PyTorch's own fp32 in 6 of 20 (seed 1 L2 and seed 6
exactly as robusta; seed 3 Linf 434; seed 4 Linf 3839; seed 8 L2 7399 up to
1.6e-3); otherwise both stayed within ~1e-7 (L2) and ~3e-9 (Linf). At
224x224 (602112 values) every run parted, both ways: a few hundred sign
flips per step. In every case A held to ~1e-7: the update is the same, the
gradients differ where fp32 cannot decide. So the issue's 1e-4 is enforced
where it means something, on the update (A, tightened to 1e-6), and C is
printed so that a change shows.

64x64 rather than 224x224: resnet18 runs the same layers at any size >= 32
(layer4 sees 2x2 here), batch-norm and the stem max-pool included, and the
test costs well under a minute on 2 busy cores instead of several. robusta's
output does not depend on its thread count.

Usage: torch_pgd_parity.py ROBUSTA_BINARY WORK_DIR
(RB_PGD_PARITY_SEED=N tries another seed.)
"""
import copy
import os
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_parity import Normalized, randomize, save_safetensors  # noqa: E402

TOLERANCE = 1e-4    # C's count: values further apart than the 1e-4
UPDATE_BOUND = 1e-6  # A: max |robusta - PyTorch| over every value
WRONG_BY = 1e-3     # A: a wrong update must be at least this far from robusta's
GRAD_MEDIAN = 1e-4  # B: median relative L2 error of robusta's per-example gradients
GRAD_MAX = 1e-1     # B: largest such error (kinks)
SIZE, COUNT, CLASSES, STEPS = 64, 4, 1000, 5
CHECKED = (0, STEPS - 1)  # A: the steps from these iterates
GRAD_POINTS = (0, 1, STEPS - 1, STEPS)  # B: the iterates where gradients are compared
SEED = int(os.environ.get("RB_PGD_PARITY_SEED", "11"))
MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
ATTACKS = [
    # name, eps and step as given to robusta, and as numbers
    ("pgd-l2", "0.5", "0.2", 0.5, 0.2),
    ("pgd-linf", "8/255", "2/255", 8 / 255, 2 / 255),
]


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("FAIL: %s\n%s%s" % (" ".join(cmd), r.stdout, r.stderr))


def input_grad(model, x, y):
    """Per-example gradients: d (sum of per-example cross-entropies) / d x."""
    x = x.detach().requires_grad_(True)
    loss = F.cross_entropy(model(x), y, reduction="sum")
    return torch.autograd.grad(loss, x)[0]


def per_example_norm(t):
    return t.flatten(1).norm(dim=1).view(-1, 1, 1, 1)


def update(attack, x0, x, g, eps, alpha, wrong=False):
    """One step and projection of DESIGN.md's PGD. wrong: a subtly broken variant."""
    with torch.no_grad():
        if attack == "pgd-l2":
            norm = g.norm() if wrong else per_example_norm(g)
            x = x + alpha * g / (norm + 1e-10)
            d = x - x0
            dn = per_example_norm(d)
            d = torch.where(dn > eps, d * (eps / (dn + 1e-7)), d)
            return (x0 + d).clamp(0, 1)
        x = x + alpha * g.sign()
        if not wrong:
            x = x0 + (x - x0).clamp(-eps, eps)
        return x.clamp(0, 1)


def main():
    robusta, work = sys.argv[1], sys.argv[2]
    path = lambda name: os.path.join(work, name)  # noqa: E731
    t_start = time.time()
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    torch.manual_seed(SEED)
    net = torchvision.models.resnet18(num_classes=CLASSES)
    randomize(net, SEED, SIZE)
    save_safetensors(path("resnet18.safetensors"), dict(net.state_dict()), {"format": "pt"})
    run([robusta, "import", "--arch", "resnet18", "--from", path("resnet18.safetensors"), "--out",
         path("resnet18.rbt"), "--image-size", str(SIZE), "--mean", ",".join(map(str, MEAN)), "--std",
         ",".join(map(str, STD))])
    g = torch.Generator().manual_seed(SEED + 1)
    x0 = torch.rand(COUNT, 3, SIZE, SIZE, generator=g)
    y = torch.randint(0, CLASSES, (COUNT,), generator=g)
    np.save(path("x.npy"), x0.numpy())
    np.save(path("y.npy"), y.numpy())
    model32 = Normalized(copy.deepcopy(net), MEAN, STD).eval()
    model64 = Normalized(net, MEAN, STD).double().eval()
    for p in list(model32.parameters()) + list(model64.parameters()):
        p.requires_grad_(False)

    # robusta's iterates x_k of each attack that A and B need (robusta attack --steps k),
    # then its gradients at GRAD_POINTS of both in one `robusta infer` (batches of COUNT, as
    # the attack's engine; the file holds the gradient of the mean over all the images, so
    # times their number per example).
    iterates = {}
    for name, eps_text, step_text, _, _ in ATTACKS:
        iterates[name] = {0: x0}
        for k in sorted(({k + 1 for k in CHECKED} | set(CHECKED) | set(GRAD_POINTS) | {STEPS}) - {0}):
            out = path("%s-%d.npy" % (name, k))
            run([robusta, "attack", "--ckpt", path("resnet18.rbt"), "--input", path("x.npy"), "--labels",
                 path("y.npy"), "--attack", name, "--eps", eps_text, "--step-size", step_text, "--steps", str(k),
                 "--output", out])
            iterates[name][k] = torch.from_numpy(np.load(out))
    points = torch.cat([iterates[name][k] for name, _, _, _, _ in ATTACKS for k in GRAD_POINTS])
    np.save(path("points.npy"), points.numpy())
    np.save(path("point-labels.npy"), y.repeat(len(ATTACKS) * len(GRAD_POINTS)).numpy())
    run([robusta, "infer", "--ckpt", path("resnet18.rbt"), "--input", path("points.npy"), "--labels",
         path("point-labels.npy"), "--output", path("logits.npy"), "--input-grad", path("grads.npy"),
         "--batch-size", str(COUNT)])
    grads = torch.from_numpy(np.load(path("grads.npy"))).double() * points.shape[0]
    t_robusta = time.time() - t_start

    ok = True
    for a, (name, _, _, eps, alpha) in enumerate(ATTACKS):
        xs = {k: xk.double() for k, xk in iterates[name].items()}
        x0d = xs[0]
        grad_at = {k: grads[(a * len(GRAD_POINTS) + i) * COUNT:(a * len(GRAD_POINTS) + i + 1) * COUNT]
                   for i, k in enumerate(GRAD_POINTS)}
        # A: the update from robusta's own iterate and gradient.
        worst_a, wrong_by = 0.0, 0.0
        for k in CHECKED:
            worst_a = max(worst_a, (update(name, x0d, xs[k], grad_at[k], eps, alpha) - xs[k + 1]).abs().max().item())
            wrong_by = max(wrong_by, (update(name, x0d, xs[k], grad_at[k], eps, alpha, wrong=True)
                                      - xs[k + 1]).abs().max().item())
        # B: robusta's per-example gradients against PyTorch's float64 ones at the same points.
        errors = []
        for k in GRAD_POINTS:
            ref = input_grad(model64, xs[k], y)
            errors += ((grad_at[k] - ref).flatten(1).norm(dim=1) / ref.flatten(1).norm(dim=1)).tolist()
        errors.sort()
        median_b, worst_b = errors[len(errors) // 2], errors[-1]
        # C: the whole run in PyTorch float64, and in PyTorch fp32.
        x64, x32 = x0d, x0
        for _ in range(STEPS):
            x64 = update(name, x0d, x64, input_grad(model64, x64, y), eps, alpha)
            x32 = update(name, x0, x32, input_grad(model32, x32, y), eps, alpha)
        diff, own = (xs[STEPS] - x64).abs(), (x32.double() - x64).abs()
        delta = x64 - x0d  # how far the attack went, in its own norm (smallest over the examples)
        moved = (per_example_norm(delta) if name == "pgd-l2" else delta.abs().flatten(1).max(1)[0]).min().item()
        ok_a = worst_a <= UPDATE_BOUND and wrong_by > WRONG_BY
        ok_b = median_b <= GRAD_MEDIAN and worst_b <= GRAD_MAX
        print("%-8s A: steps %s from robusta's iterates and gradients in PyTorch float64: max |diff| %.2e (bound"
              " %.0e); the wrong update %.2e away (must exceed %.0e)"
              % (name, "+".join(str(k + 1) for k in CHECKED), worst_a, UPDATE_BOUND, wrong_by, WRONG_BY))
        print("%-8s B: per-example gradients at x_%s vs PyTorch float64: relative L2 error median %.2e (bound"
              " %.0e), largest %.2e (bound %.0e)" % (name, ",".join(map(str, GRAD_POINTS)), median_b, GRAD_MEDIAN,
                                                     worst_b, GRAD_MAX))
        print("%-8s C: %d steps end to end vs PyTorch float64: robusta max |diff| %.2e, %d of %d values above"
              " %.0e; PyTorch fp32 %.2e, %d above (not a bound: see the header); moved >= %.4f"
              % (name, STEPS, diff.max().item(), int((diff > TOLERANCE).sum()), diff.numel(), TOLERANCE,
                 own.max().item(), int((own > TOLERANCE).sum()), moved))
        ok = ok and ok_a and ok_b and moved > 0.5 * alpha
    print("(seed %d; robusta runs %.1fs, all %.1fs)" % (SEED, t_robusta, time.time() - t_start))
    print("PASS" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
