"""Measure what one forward-equivalent costs on this CPU, per architecture and image side, and
store it where the build's time estimate reads it (``advmed/experiments/calibration/cpu.json``).

The estimate (:mod:`advmed.experiments.estimate`) counts each cell's work in forward passes
of a network at a side (a backward pass is two forwards). Converting that count to seconds
with one arithmetic throughput (GMAC/s) is right for large networks at large sides and wrong,
by an order of magnitude, for the small networks and 28-px images that the smoke and cpu
profiles run, whose time is per-call overhead, not arithmetic. So each (architecture, side)
the profiles use is timed here as the attacks and training run it: a batch through the model
in eval mode, cross-entropy, ``torch.autograd.grad`` with respect to the input (one attack
step: three forward-equivalents), in channels-last memory where the library uses it, with
the build's thread count; the median of ``--repeats`` after a warm-up.

A count is an upper bound: attacks stop early, UAPs converge before their last pass, models
stop before their last epoch. ``--from-build`` reads a **cold** build's chapter times
(``BUILD/timings.json``, on this machine, nothing else running) and stores, per family, the
measured seconds over the counted seconds of the current code's plan of that profile: the
*work share* the estimate multiplies the count by (:func:`advmed.experiments.estimate.work_share`).
Re-measure the forward costs first, then the shares (they are relative to the counts).

    python benchmarks/calibrate_cpu.py                    # the forward costs
    python benchmarks/calibrate_cpu.py --from-build _build          # the shares of its profile
    python benchmarks/calibrate_cpu.py --from-build B --chapters 07_defenses   # one chapter's
    python benchmarks/calibrate_cpu.py --out /tmp/c.json --repeats 1 --batch 4 --pairs small_cnn@28
"""
from __future__ import annotations

import argparse
import datetime
import json
import platform
import statistics
import time
from pathlib import Path

import torch
from torch import nn

from advmed.book.stage import toc_files
from advmed.cache import atomic_write, source_commit
from advmed.experiments import cells, estimate
from advmed.experiments.estimate import CALIBRATION_FILE, CHAPTER_OVERHEAD_S, FORWARD_GMAC
from advmed.experiments.profiles import get_profile
from advmed.experiments.zoo import configs_for_profile
from advmed.models import build_model
from advmed.models.build import prefers_channels_last

BOOK_ROOT = Path(__file__).resolve().parents[1]

#: The profiles whose (architecture, side) pairs are measured, and the sides measured besides
#: (the ablation's and the explorers' sides fall between them: the estimate interpolates).
PROFILES = ("smoke", "cpu", "paper-dry")
EXTRA_SIDES = {"small_cnn": (28, 64), "mobilenet_v1_075": (28, 64, 128, 224), "resnet18": (28, 64, 128, 224)}


def profile_pairs() -> list[tuple[str, int]]:
    """Every (architecture, side) a model of :data:`PROFILES` runs at, and :data:`EXTRA_SIDES`."""
    pairs = {(c.arch, int(c.net_size or c.size)) for p in PROFILES for c in configs_for_profile(get_profile(p))}
    pairs |= {(a, s) for a, sides in EXTRA_SIDES.items() for s in sides}
    return sorted(pairs)


def parse_pair(text: str) -> tuple[str, int]:
    arch, _, side = text.partition("@")
    if arch not in FORWARD_GMAC or not side.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r}: expected ARCH@SIDE with ARCH one of {', '.join(FORWARD_GMAC)}")
    return arch, int(side)


def attack_step_seconds(arch: str, side: int, *, batch: int, repeats: int) -> float:
    """Median seconds of one attack step (forward, cross-entropy, input gradient) on ``batch``
    images of ``side`` px, after one warm-up step."""
    torch.manual_seed(0)
    model: nn.Module = build_model(arch, 2, init="scratch").eval()
    for p in model.parameters():
        p.requires_grad_(False)
    x = torch.rand(batch, 3, side, side)
    if prefers_channels_last(arch, side):
        model, x = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 2, (batch,))
    times = []
    for i in range(repeats + 1):
        xi = x.clone().requires_grad_(True)
        t0 = time.perf_counter()
        loss = nn.functional.cross_entropy(model(xi), y)
        torch.autograd.grad(loss, xi)
        if i:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def work_shares(build_dir: Path, chapters: list[str] | None = None) -> tuple[str, dict[str, dict]]:
    """From a cold build's ``timings.json``: its profile and, for each family computed in a
    timed chapter (``chapters``: only these), the measured and counted seconds and their ratio."""
    timings = json.loads((Path(build_dir) / "timings.json").read_text())
    profile = timings["profile"]
    measured = {Path(c).name: float(v["seconds"]) for c, v in timings["chapters"].items() if v.get("ok", True)}
    # Each family's home is the chapter that computes it in a whole build, not in the timed
    # chapters alone: a chapter timed by itself with its inputs prebuilt must not be charged
    # with (or credit its time to) the families earlier chapters compute.
    book = [Path(f).name for f in toc_files(BOOK_ROOT / "_toc.yml") if (BOOK_ROOT / f"{f}.py").is_file()]
    plan = cells.plan(get_profile(profile), [f"{c}.py" for c in book])
    out = {}
    for fam, chapter in plan.home.items():
        if chapter not in measured or (chapters and chapter not in chapters):
            continue
        counted = sum(plan.counted_seconds(f, "cpu") for f, c in plan.home.items() if c == chapter)
        seconds = max(0.0, measured[chapter] - CHAPTER_OVERHEAD_S)
        out[fam] = {"chapter": chapter, "measured_s": round(seconds, 1), "counted_s": round(counted, 1),
                    "share": round(seconds / counted, 4) if counted > 0 else 1.0}
    return profile, out


def _load(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _write(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(data, indent=1) + "\n"))
    print(f"wrote {path}")


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(CALIBRATION_FILE), help="where to write (default: the package's file)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--pairs", nargs="*", type=parse_pair, default=None,
                    help="ARCH@SIDE pairs to measure (default: every pair the profiles use)")
    ap.add_argument("--from-build", default=None, help="a cold build's folder: store its profile's work shares")
    ap.add_argument("--chapters", nargs="*", default=None, help="with --from-build: only these chapters' families")
    ap.add_argument("--note", default="", help="with --from-build: what the build was (commit, date, cold)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    data = _load(out)
    if args.from_build:
        profile, shares = work_shares(Path(args.from_build), args.chapters)
        estimate._read_calibration.cache_clear()
        estimate._forward_table.cache_clear()
        for fam, row in shares.items():
            print(f"{profile} / {fam} ({row['chapter']}): measured {row['measured_s']:.0f} s, counted "
                  f"{row['counted_s']:.0f} s, share {row['share']:.3f}")
            data.setdefault("work_share", {}).setdefault(profile, {})[fam] = row["share"]
            data.setdefault("work_share_source", {}).setdefault(profile, {})[fam] = {
                **row, "build": args.note or str(args.from_build), "date": datetime.date.today().isoformat(),
                "commit": source_commit()}
        _write(out, data)
        return data
    torch.set_num_threads(args.threads)
    pairs = args.pairs or profile_pairs()
    seconds = {}
    for i, (arch, side) in enumerate(pairs, 1):
        t = attack_step_seconds(arch, side, batch=args.batch, repeats=args.repeats)
        seconds[f"{arch}@{side}"] = t / (3 * args.batch)
        print(f"[{i}/{len(pairs)}] {arch} @ {side} px: {1e3 * t:.1f} ms per attack step of {args.batch}, "
              f"{1e3 * seconds[f'{arch}@{side}']:.3f} ms per forward-equivalent per image", flush=True)
    data.update({"machine": f"{platform.machine()}, {torch.get_num_threads()} threads, "
                            f"{platform.processor() or 'cpu'}",
                 "date": datetime.date.today().isoformat(), "commit": source_commit(), "torch": torch.__version__,
                 "batch": args.batch, "repeats": args.repeats,
                 "seconds_per_forward": {**data.get("seconds_per_forward", {}), **dict(sorted(seconds.items()))}})
    if data.get("work_share"):
        print("the work shares were measured against the previous forward costs: re-derive them "
              "(--from-build) from a cold build")
    _write(out, data)
    return data


if __name__ == "__main__":
    main()
