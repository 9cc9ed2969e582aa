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

Part 2: PGD-10 (eps 8/255, step 2/255) single calls on every model the profile trains on
the task: advmed with and without early stopping, ``torchattacks.PGD``, and the bare loop of
``bench_pgd.py`` (whose timing helper is reused).

The models are the profile's own (``--profile``, default cpu: its zoo configs on ``--task``,
at its image size), copied from ``--checkpoint-dir`` when a cache holds them, else trained
into this run's cache (``$ADVMED_CACHE``, default ``.cache/bench``).

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


def profile_models(profile: str, task: str):
    """The TrainConfigs the profile trains on ``task`` (the zoo's), MobileNet v1 0.75 (ImageNet)
    first: the benchmark measures the models the book builds, at the book's size."""
    from advmed.experiments.profiles import get_profile
    from advmed.experiments.zoo import configs_for_profile

    cfgs = [c for c in configs_for_profile(get_profile(profile)) if c.task == task]
    if not cfgs:
        raise SystemExit(f"profile {profile} trains no model on {task}")
    return sorted(cfgs, key=lambda c: (c.arch, c.init) != ("mobilenet_v1_075", "imagenet"))


def load_trained(cfg, checkpoint_dir: Path | None, device: str = "cpu"):
    """The model of ``cfg``: its checkpoint copied from ``checkpoint_dir`` (a cache's
    ``checkpoints/``, read only) into this run's cache when it is there, else the run's cache,
    trained there first when missing."""
    from advmed.cache import cache_root
    from advmed.train import get_trained_model

    if checkpoint_dir is not None:
        dest = cache_root() / "checkpoints"
        dest.mkdir(parents=True, exist_ok=True)
        for f in (Path(checkpoint_dir) / f"{cfg.key()}.json", Path(checkpoint_dir) / f"{cfg.key()}.pt"):
            if f.is_file() and not (dest / f.name).exists():
                shutil.copy(f, dest / f.name)
    return get_trained_model(cfg, device=device, progress=False).model


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
    ap.add_argument("--profile", default="cpu", help="whose models and image size (the book's)")
    ap.add_argument("--checkpoint-dir", default=None, help="a cache's checkpoints/ folder to copy models from")
    ap.add_argument("--task", default="pneumonia_cxr")
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

    cfgs = profile_models(args.profile, args.task)
    size = cfgs[0].size
    test = load_task(args.task, "test", size=size, limit=args.images, seed=0, progress=False,
                     channels=cfgs[0].channels)
    x, y = test.float().to(args.device), test.labels.to(args.device)
    ckpt = Path(args.checkpoint_dir) if args.checkpoint_dir else None
    print(f"bench_robust: profile {args.profile}, {args.task} test, {x.shape[0]} images, {size} px, torch "
          f"{torch.__version__}, {torch.get_num_threads()} thread(s); ensemble steps {args.steps}, "
          f"PGD restarts {args.pgd_restarts}, eps {args.eps}/255", flush=True)
    first = load_trained(cfgs[0], ckpt, args.device)
    print(f"Part 1: {cfgs[0].label()}", flush=True)
    results = {"part1": part1(first, x, y, args)}
    if not args.skip_part2:
        print("Part 2: single-call PGD-10 on every model of the profile on the task", flush=True)
        xb, yb = x[:args.pgd_batch], y[:args.pgd_batch]
        for cfg in cfgs:
            model = first if cfg is cfgs[0] else load_trained(cfg, ckpt, args.device)
            results[f"{cfg.arch}:{cfg.init}"] = part2(cfg.label(), model, xb, yb, args.repeats)
    print(json.dumps({k: v for k, v in results.items()}, default=lambda o: np.asarray(o).tolist()))
    return results


if __name__ == "__main__":
    main()
