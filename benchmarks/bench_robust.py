"""Robust accuracy over an eps grid: advmed's ``robust_accuracy`` vs torchattacks run as a
user of the peers would, plus single-call PGD-10 speed against torchattacks and the
bare forward/backward loop.

Part 1 (one model, real test images, one eps grid), in one process:

- ``advmed``: ``robust_accuracy(model, x, y, eps_grid, ensemble=default_ensemble(K,
  steps, pgd_restarts))`` (APGD-CE, APGD-margin or APGD-T, PGD with restarts); each
  member attacks only the images still standing, each larger eps only the survivors of
  the smaller ones, every attack stops an image at its first success.
- ``advmed (same members)``: the same without the APGD-margin member, i.e. exactly the
  attacks torchattacks offers for a binary task.
- ``torchattacks``: at every eps, ``APGD(loss="ce")`` (and ``APGDT`` when K >= 4; its
  APGD has no margin loss and DLR is undefined for K = 2) and ``PGD`` run ``pgd_restarts``
  times with new seeds (torchattacks' PGD has no restarts), each on all images; an image
  is robust at an eps if it is classified correctly clean and after every attack.

Reported: robust accuracy per eps for each (advmed must be equal or lower) and the
wall-time ratio torchattacks / advmed (goal >= 3).

Part 2: PGD-10 (eps 8/255, step 2/255) single calls on MobileNet v1 0.75 and ResNet-18:
advmed with and without early stopping, ``torchattacks.PGD``, and the bare loop of
``bench_pgd.py`` (whose timing helper is reused).

    flock /tmp/advmed-cpu.lock env OMP_NUM_THREADS=1 python benchmarks/bench_robust.py \\
        --checkpoint-dir CACHE/checkpoints --images 100 --steps 20
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_pgd import bare_loop, time_interleaved  # noqa: E402

EPS_255 = (0.5, 1, 2, 4, 8)


def load_trained(checkpoint_dir: Path, task: str, arch: str, init: str, size: int, device: str = "cpu"):
    """The cached checkpoint of (task, arch, init, size) from a checkpoint folder (read only:
    the files are copied into this run's own cache first)."""
    from advmed.cache import cache_root
    from advmed.train import TrainConfig, load_checkpoint

    for side in sorted(Path(checkpoint_dir).glob("*.json")):
        record = json.loads(side.read_text())
        cfg = record.get("config", {})
        if (cfg.get("task"), cfg.get("arch"), cfg.get("init"), cfg.get("size")) == (task, arch, init, size):
            dest = cache_root() / "checkpoints"
            dest.mkdir(parents=True, exist_ok=True)
            for f in (side, side.with_suffix(".pt")):
                if not (dest / f.name).exists():
                    shutil.copy(f, dest / f.name)
            return load_checkpoint(TrainConfig(**cfg), device=device).model
    raise FileNotFoundError(f"no checkpoint of {task}/{arch} ({init}, {size} px) in {checkpoint_dir}")


def torchattacks_grid(model, x, y, eps_grid, steps, restarts, num_classes, seed=0):
    """Robust accuracy per eps from torchattacks' attacks run one by one on all images."""
    import torchattacks

    with torch.no_grad():
        robust = model(x).argmax(1) == y
    accs = []
    for eps in eps_grid:
        attacks = [torchattacks.APGD(model, eps=eps, steps=steps, n_restarts=1, loss="ce", seed=seed)]
        if num_classes >= 4:
            attacks.append(torchattacks.APGDT(model, eps=eps, steps=steps, n_restarts=1, seed=seed,
                                              n_classes=num_classes))
        alive = robust.clone()
        for atk in attacks:
            x_adv = atk(x, y)
            with torch.no_grad():
                alive &= model(x_adv).argmax(1) == y
        pgd = torchattacks.PGD(model, eps=eps, alpha=2.5 * eps / steps, steps=steps, random_start=True)
        for r in range(restarts):
            torch.manual_seed(seed + r)
            x_adv = pgd(x, y)
            with torch.no_grad():
                alive &= model(x_adv).argmax(1) == y
        accs.append(float(alive.float().mean()))
    return accs


def part1(model, x, y, args):
    from advmed.attacks.robust import default_ensemble, robust_accuracy

    grid = [e / 255 for e in args.eps]
    with torch.no_grad():
        k = model(x[:1]).shape[1]
    ens = default_ensemble(k, steps=args.steps, pgd_restarts=args.pgd_restarts)
    same = [m for m in ens if m.name != "APGD-margin"]
    out = {}
    for name, fn in (("advmed", lambda: robust_accuracy(model, x, y, eps_grid=grid, ensemble=ens,
                                                         n_boot=0, progress=False)),
                     ("advmed (same members)", lambda: robust_accuracy(
                         model, x, y, eps_grid=grid, ensemble=same, n_boot=0, progress=False)),
                     ("torchattacks", lambda: torchattacks_grid(model, x, y, grid, args.steps,
                                                                args.pgd_restarts, k))):
        t0, c0 = time.perf_counter(), time.process_time()
        res = fn()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        accs = res if isinstance(res, list) else [a.value for a in res.accuracy]
        out[name] = {"accuracy": accs, "wall": wall, "cpu": cpu,
                     "costs": None if isinstance(res, list) else res.cost_frame().to_dict()}
        print(f"  {name:22s} wall {wall:7.1f} s  cpu {cpu:7.1f} s  accuracy "
              + " ".join(f"{a:.3f}" for a in accs), flush=True)
    ta = out["torchattacks"]
    for name in ("advmed", "advmed (same members)"):
        ours = out[name]
        lower = all(a <= b + 1e-12 for a, b in zip(ours["accuracy"], ta["accuracy"]))
        print(f"  {name}: equal or lower at every eps: {lower}; time ratio torchattacks / {name} "
              f"= {ta['wall'] / ours['wall']:.2f} (wall), {ta['cpu'] / ours['cpu']:.2f} (CPU)")
    print("  advmed cost per member (all eps):", json.dumps(out["advmed"]["costs"]))
    return out


def part2(name, model, x, y, repeats):
    import torchattacks

    from advmed.attacks import pgd

    eps, alpha, steps = 8 / 255, 2 / 255, 10
    ta = torchattacks.PGD(model, eps=eps, alpha=alpha, steps=steps, random_start=True)
    runs = {"advmed": lambda: pgd(model, x, y, eps=eps, step_size=alpha, steps=steps, early_stop=False),
            "advmed early_stop": lambda: pgd(model, x, y, eps=eps, step_size=alpha, steps=steps),
            "torchattacks": lambda: ta(x, y),
            "bare": lambda: bare_loop(model, x, y, steps, False)}
    times, cpu = time_interleaved(runs, repeats, x.device)
    med = {k: statistics.median(v) for k, v in cpu.items()}
    wall = {k: statistics.median(v) for k, v in times.items()}
    print(f"  {name}: PGD-10, batch {x.shape[0]}, median process CPU of {repeats}: "
          + ", ".join(f"{k} {v:.2f} s" for k, v in med.items()))
    print(f"    CPU ratios: advmed/torchattacks {med['advmed'] / med['torchattacks']:.3f}, "
          f"advmed/bare {med['advmed'] / med['bare']:.3f}, early_stop/bare "
          f"{med['advmed early_stop'] / med['bare']:.3f}; wall advmed/bare "
          f"{wall['advmed'] / wall['bare']:.3f}", flush=True)
    return {"cpu": cpu, "wall": times}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint-dir", required=True, help="a cache's checkpoints/ folder")
    ap.add_argument("--task", default="pneumonia_cxr")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--images", type=int, default=300)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--pgd-restarts", type=int, default=5)
    ap.add_argument("--eps", type=float, nargs="+", default=list(EPS_255), help="in 1/255 units")
    ap.add_argument("--pgd-batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip-part2", action="store_true")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu", help="cpu or cuda (the GPU check's)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    os.environ.setdefault("ADVMED_CACHE", str(Path(__file__).resolve().parents[1] / ".cache" / "bench"))
    from advmed.data import load_task

    test = load_task(args.task, "test", size=args.size, limit=args.images, seed=0, progress=False)
    x, y = test.float().to(args.device), test.labels.to(args.device)
    print(f"bench_robust: {args.task} test, {x.shape[0]} images, {args.size} px, torch "
          f"{torch.__version__}, {torch.get_num_threads()} thread(s); ensemble steps {args.steps}, "
          f"PGD restarts {args.pgd_restarts}, eps {args.eps}/255", flush=True)
    mobilenet = load_trained(Path(args.checkpoint_dir), args.task, "mobilenet_v1_075", "imagenet", args.size,
                             args.device)
    print("Part 1: MobileNet v1 0.75 (ImageNet init, fine-tuned)", flush=True)
    results = {"part1": part1(mobilenet, x, y, args)}
    if not args.skip_part2:
        print("Part 2: single-call PGD-10", flush=True)
        xb, yb = x[:args.pgd_batch], y[:args.pgd_batch]
        resnet = load_trained(Path(args.checkpoint_dir), args.task, "resnet18", "scratch", args.size,
                              args.device)
        results["mobilenet"] = part2("mobilenet_v1_075", mobilenet, xb, yb, args.repeats)
        results["resnet18"] = part2("resnet18", resnet, xb, yb, args.repeats)
    print(json.dumps({k: v for k, v in results.items()}, default=lambda o: np.asarray(o).tolist()))


if __name__ == "__main__":
    main()
