"""Time advmed's PGD against torchattacks' PGD and a bare gradient loop.

All three run on the same model and inputs (torchvision ResNet-18, 2 classes, 64 px,
batch 64 by default) with 10 steps:

- ``advmed``: ``advmed.attacks.pgd(model, x, y, eps=8/255, steps=10)`` (random start);
- ``torchattacks``: ``torchattacks.PGD(model, eps=8/255, alpha=2/255, steps=10)``;
- ``bare``: 10 x (forward, cross-entropy, ``torch.autograd.grad`` w.r.t. the input), with
  the model in eval mode and parameters not requiring gradients: the floor any
  gradient attack can reach.

Runs are interleaved (the order rotates each repeat) and the medians reported, since
the machine may be shared; on CPU the process CPU time is reported too, which with
``--threads 1`` is a measure of work that other processes' load hardly disturbs. ``--amp`` (CUDA only) runs all three under autocast
(torchattacks inside an outer ``advmed.device.autocast`` context).

    python benchmarks/bench_pgd.py                  # CPU
    python benchmarks/bench_pgd.py --device cuda --amp --batch 256 --size 224
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
import torchvision
from torch import nn

from advmed.attacks import pgd
from advmed.device import autocast

EPS, ALPHA = 8 / 255, 2 / 255


def build(args):
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=args.classes).to(args.device).eval()
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(args.batch, 3, args.size, args.size, generator=gen).to(args.device)
    y = torch.randint(0, args.classes, (args.batch,), generator=gen).to(args.device)
    return model, x, y


def bare_loop(model, x, y, steps, amp):
    flags = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    x = x.clone()
    for _ in range(steps):
        x.requires_grad_(True)
        with autocast(x.device, amp):
            logits = model(x)
        loss = nn.functional.cross_entropy(logits.float(), y)
        (g,) = torch.autograd.grad(loss, x)
        x = x.detach()
    for p, f in zip(model.parameters(), flags):
        p.requires_grad_(f)
    return g


def time_interleaved(runs: dict, repeats: int, device: torch.device) -> tuple[dict, dict]:
    """Wall and process-CPU seconds of each run, after one warm-up, the order rotated each
    repeat (so that load on a shared machine spreads over all of them)."""
    times = {k: [] for k in runs}
    cpu = {k: [] for k in runs}
    for fn in runs.values():  # warm-up (allocator, cudnn autotune)
        fn()
    names = list(runs)
    for r in range(repeats):
        for name in names[r % len(names):] + names[:r % len(names)]:
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0, c0 = time.perf_counter(), time.process_time()
            runs[name]()
            if device.type == "cuda":
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
    return times, cpu


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--amp", action="store_true", help="autocast (CUDA only)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--classes", type=int, default=2)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--json", action="store_true", help="print the results as JSON too")
    ap.add_argument("--compile", action="store_true",
                    help="also time advmed on torch.compile(model) (CUDA; compile time reported apart)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.amp and device.type != "cuda":
        ap.error("--amp needs --device cuda (autocast is CUDA only in advmed)")
    import torchattacks

    model, x, y = build(args)
    ta = torchattacks.PGD(model, eps=EPS, alpha=ALPHA, steps=args.steps, random_start=True)

    # Like for like: torchattacks and the bare loop run every step on every image, so advmed
    # does too; its default early stop (images leave the batch once fooled) is timed apart.
    def run_ours():
        return pgd(model, x, y, eps=EPS, step_size=ALPHA, steps=args.steps, seed=0,
                   amp=args.amp, early_stop=False)

    def run_ours_early():
        return pgd(model, x, y, eps=EPS, step_size=ALPHA, steps=args.steps, seed=0,
                   amp=args.amp)

    def run_ta():
        with autocast(device, args.amp):
            return ta(x, y)

    def run_bare():
        return bare_loop(model, x, y, args.steps, args.amp)

    runs = {"advmed": run_ours, "torchattacks": run_ta, "bare": run_bare,
            "advmed early stop": run_ours_early}
    if args.compile:
        from advmed.device import maybe_compile

        compiled = maybe_compile(model, enabled=True)
        t0 = time.perf_counter()
        pgd(compiled, x, y, eps=EPS, step_size=ALPHA, steps=1, seed=0, amp=args.amp)  # compiles
        if device.type == "cuda":
            torch.cuda.synchronize()
        print(f"  torch.compile: first call (compilation) {time.perf_counter() - t0:.1f} s"
              f"{'' if compiled is not model else ' (not compiled: CPU)'}")
        runs["advmed compiled"] = lambda: pgd(compiled, x, y, eps=EPS, step_size=ALPHA, steps=args.steps,
                                              seed=0, amp=args.amp, early_stop=False)
    times, cpu = time_interleaved(runs, args.repeats, device)

    med = {k: statistics.median(v) for k, v in times.items()}
    med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    print(f"PGD-{args.steps} on resnet18, {args.classes} classes, {args.size} px, batch "
          f"{args.batch}, {device}{' amp' if args.amp else ''}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, median of {args.repeats}")
    for k in runs:
        print(f"  {k:17s} {med[k]:8.3f} s   {args.batch / med[k]:9.1f} images/s   "
              f"(min {min(times[k]):.3f}, max {max(times[k]):.3f}; process CPU "
              f"{med_cpu[k]:.3f} s)")
    ratio_ta = med["advmed"] / med["torchattacks"]
    ratio_bare = med["advmed"] / med["bare"]
    print(f"  time ratio advmed / torchattacks = {ratio_ta:.3f}  (< 1: advmed faster)")
    print(f"  time ratio advmed / bare loop    = {ratio_bare:.3f}  (goal <= 1.10)")
    print(f"  time ratio early stop / all steps = {med['advmed early stop'] / med['advmed']:.3f}  "
          f"(the images fooled before the last step leave the batch)")
    if "advmed compiled" in med:
        print(f"  time ratio compiled / eager      = {med['advmed compiled'] / med['advmed']:.3f}  (< 1: compile helps)")
    if device.type == "cpu":
        print(f"  process-CPU-time ratios (robust to other load with --threads 1): "
              f"advmed / torchattacks = {med_cpu['advmed'] / med_cpu['torchattacks']:.3f}, "
              f"advmed / bare = {med_cpu['advmed'] / med_cpu['bare']:.3f}")
    if args.json:
        print(json.dumps({"args": vars(args), "times": times, "cpu_times": cpu, "median": med,
                          "ratio_torchattacks": ratio_ta, "ratio_bare": ratio_bare}))
    return med


if __name__ == "__main__":
    main()
