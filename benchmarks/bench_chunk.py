"""Attack a test set in chunks or all at once: the speed behind ``WhiteboxSettings.chunk_pixels``.

The same PGD (``advmed.attacks.pgd``, every step run, no random start, so both give the same
images up to float rounding) on the same ``--images`` images, in one process, interleaved,
median of ``--repeats``:

- ``whole``: all images in one batch (``batch_size=None``, the library's default);
- ``chunked``: ``batch_size`` from the profile rule (``chunk_pixels / side**2`` images);
- ``bare``: the floor, ``steps`` x (forward, cross-entropy, input gradient) over the same chunks.

It prints images per second and the ratios whole / chunked (> 1: chunks are faster) and
chunked / bare, for each (architecture, side) given, and the share of images whose
adversarial prediction differs between the two runs (float rounding only). Then the same for
forward passes alone (no gradients), in batches of 256 (``predict_proba``'s default before
:func:`advmed.device.inference_batch` capped it on CPUs) and of the capped size.

    python benchmarks/bench_chunk.py                          # the cpu profile's two regimes
    python benchmarks/bench_chunk.py --pairs mobilenet_v1_075@128 --images 300 --steps 10
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from advmed.attacks import pgd
from advmed.device import inference_batch
from advmed.experiments.profiles import get_profile
from advmed.models import build_model
from advmed.models.build import prefers_channels_last

EPS, STEP = 2 / 255, 0.5 / 255


def _pair(text: str) -> tuple[str, int]:
    arch, _, side = text.partition("@")
    return arch, int(side)


def _model(arch: str, side: int) -> nn.Module:
    torch.manual_seed(0)
    m = build_model(arch, 2, init="scratch").eval()
    for p in m.parameters():
        p.requires_grad_(False)
    return m.to(memory_format=torch.channels_last) if prefers_channels_last(arch, side) else m


def _bare(model, x, y, steps: int, chunk: int) -> None:
    for i in range(0, len(x), chunk):
        xi = x[i:i + chunk].clone().requires_grad_(True)
        for _ in range(steps):
            torch.autograd.grad(nn.functional.cross_entropy(model(xi), y[i:i + chunk]), xi)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", nargs="*", type=_pair, default=[("mobilenet_v1_075", 128), ("resnet18", 28)])
    ap.add_argument("--images", type=int, default=300)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--chunk-pixels", type=int, default=get_profile("cpu").whitebox.chunk_pixels)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    for arch, side in args.pairs:
        model = _model(arch, side)
        gen = torch.Generator().manual_seed(0)
        x = torch.rand(args.images, 3, side, side, generator=gen)
        y = torch.randint(0, 2, (args.images,), generator=gen)
        chunk = max(1, args.chunk_pixels // (side * side))
        runs = {
            "whole": lambda: pgd(model, x, y, eps=EPS, steps=args.steps, step_size=STEP, random_start=False,
                                 early_stop=False, progress=False),
            "chunked": lambda: pgd(model, x, y, eps=EPS, steps=args.steps, step_size=STEP, random_start=False,
                                   early_stop=False, batch_size=chunk, progress=False),
            "bare": lambda: _bare(model, x, y, args.steps, chunk),
        }
        times: dict[str, list[float]] = {k: [] for k in runs}
        out = {}
        for r in range(args.repeats):
            names = list(runs)[r % 3:] + list(runs)[:r % 3]
            for name in names:
                t0 = time.perf_counter()
                out[name] = runs[name]()
                times[name].append(time.perf_counter() - t0)
        med = {k: statistics.median(v) for k, v in times.items()}
        with torch.no_grad():
            differ = (model(out["whole"]).argmax(1) != model(out["chunked"]).argmax(1)).float().mean().item()
        fwd = {}
        with torch.no_grad():
            for b in dict.fromkeys((256, inference_batch(256, x))):
                ts = []
                for _ in range(args.repeats):
                    t0 = time.perf_counter()
                    for i in range(0, len(x), b):
                        model(x[i:i + b])
                    ts.append(time.perf_counter() - t0)
                fwd[b] = statistics.median(ts)
        print(f"{arch} @ {side} px, {args.images} images, {args.steps} steps, chunk {chunk}: "
              + ", ".join(f"{k} {args.images / s:.0f} img/s" for k, s in med.items())
              + f"; whole/chunked {med['whole'] / med['chunked']:.2f}, chunked/bare {med['chunked'] / med['bare']:.2f}"
              + f"; predictions that differ {differ:.3f}", flush=True)
        b256, capped = 256, inference_batch(256, x)
        t256, tcap = fwd[b256], fwd[capped]
        print(f"  forward only: batch {b256} {args.images / t256:.0f} img/s, batch {capped} "
              f"{args.images / tcap:.0f} img/s; ratio {t256 / tcap:.2f}", flush=True)


if __name__ == "__main__":
    main()
