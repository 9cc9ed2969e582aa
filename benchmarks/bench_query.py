"""Time advmed's query attacks per query against their references and a bare forward loop.

Same model and inputs for all (advmed ``small_cnn``, 2 classes, 28 px, random weights,
batch 64 by default) with a budget no image can meet (``eps`` = 1e-4), so that every
attack spends all of it and the figure is the cost of one query:

- ``square-linf`` / ``square-l2``: ``advmed.attacks.blackbox.square`` with ``queries=Q``
  vs ``torchattacks.Square(n_queries=Q - 2)`` (the same Q forward passes per image);
- ``simba-dct``: ``advmed.attacks.blackbox.simba`` on the batch, and on its first 8 images
  (``simba-dct-8``) vs ART's ``SimBA`` on the same 8 (``art-simba-8``: one image at a time,
  two queries per iteration);
- ``bare``: Q forward passes of the batch under ``torch.no_grad``, the floor.

Reported: process CPU seconds per 1,000 image-queries (median of the repeats; with
``--threads 1`` hardly disturbed by other load on a shared machine) and the ratios.

    python benchmarks/bench_query.py --threads 1
    python benchmarks/bench_query.py --device cuda --batch 256
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from advmed.attacks.blackbox import simba, square
from advmed.models import build_model


def timed(fn):
    t0, c0 = time.perf_counter(), time.process_time()
    queries = fn()
    return time.perf_counter() - t0, time.process_time() - c0, queries


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    import torchattacks

    dev = torch.device(args.device)
    model = build_model("small_cnn", 2, input_size=28, seed=0).to(dev).eval()
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(args.batch, 3, 28, 28, generator=gen).to(dev)
    with torch.no_grad():
        y = model(x).argmax(1)
    q, eps = args.queries, 1e-4

    def bare():
        with torch.no_grad():
            for _ in range(q):
                model(x)
        return q * len(x)

    def ours(norm):
        return lambda: int(square(model, x, y, eps=eps, norm=norm, queries=q, progress=False).queries.sum())

    def ta(norm):
        atk = torchattacks.Square(model, norm={"linf": "Linf", "l2": "L2"}[norm], eps=eps, n_queries=q - 2)
        return lambda: (atk(x, y), q * len(x))[1]

    def ours_simba(n):
        return lambda: int(simba(model, x[:n], y[:n], eps=eps, max_queries=q, progress=False).queries.sum())

    def art_simba():
        from art.attacks.evasion import SimBA
        from art.estimators.classification import PyTorchClassifier

        clf = PyTorchClassifier(torch.nn.Sequential(model, torch.nn.Softmax(dim=1)), loss=torch.nn.CrossEntropyLoss(),
                                input_shape=(3, 28, 28), nb_classes=2, clip_values=(0.0, 1.0),
                                device_type="gpu" if dev.type == "cuda" else "cpu")
        atk = SimBA(clf, attack="dct", max_iter=(q - 1) // 2, epsilon=eps, freq_dim=3, stride=1, verbose=False)
        atk.generate(x[:8].cpu().numpy(), y=np.eye(2)[y[:8].cpu().numpy()])
        return 8 * (1 + 2 * ((q - 1) // 2))

    runs = {"bare": bare, "square-linf": ours("linf"), "torchattacks-linf": ta("linf"),
            "square-l2": ours("l2"), "torchattacks-l2": ta("l2"), "simba-dct": ours_simba(len(x)), "simba-dct-8": ours_simba(8), "art-simba-8": art_simba}
    per = {k: [] for k in runs}
    for _ in range(args.repeats):
        for name, fn in runs.items():
            wall, cpu, n = timed(fn)
            per[name].append((wall * 1000 / n, cpu * 1000 / n))
    print(f"query attacks on small_cnn (28 px, 2 classes), {dev}, batch {args.batch}, {q} queries/image, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, median of {args.repeats}")
    med = {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v)) for k, v in per.items()}
    for k, (w, c) in med.items():
        print(f"  {k:18s} {w:8.3f} s wall  {c:8.3f} s CPU  per 1,000 image-queries")
    for a, b in (("square-linf", "torchattacks-linf"), ("square-l2", "torchattacks-l2"), ("simba-dct-8", "art-simba-8"),
                 ("square-linf", "bare"), ("square-l2", "bare"), ("simba-dct", "bare")):
        print(f"  CPU ratio {a} / {b} = {med[a][1] / med[b][1]:.3f}   (wall {med[a][0] / med[b][0]:.3f})")


if __name__ == "__main__":
    main()
