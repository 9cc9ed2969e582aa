"""Time a profile's experiment cells one by one and write the chapters' tables: the part of
``gpu_check.sh`` that runs chapters 1-3 of ``paper`` without notebook tools.

The cells (:mod:`advmed.experiments.cells`) are what ``build --executor`` dispatches; here
they run serially in this process on its device, in stage order, each timed, until
``--budget-s`` is spent (the rest are listed as skipped). Then the tables the chapters show
are computed from the cache they filled (nothing is recomputed) and written as text.

Outputs in ``--out``: ``cells.csv`` (cell, family, stage, seconds, estimated GMAC, GMAC/s),
``tables.txt`` (every table), ``paper_cells.json`` (totals, the measured GMAC/s to set as
``ADVMED_GMACS``, and the estimate for the whole profile on this device).

    python benchmarks/paper_cells.py --profile paper --tasks pneumonia_cxr \\
        --models mobilenet_v1_075:imagenet resnet18:scratch --chapters 01_models 02_whitebox 03_uap \\
        --skip whitebox/robust whitebox/diagnostics --out OUT
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import pandas as pd
import torch


def chapter_tables(prof, chapters) -> dict[str, pd.DataFrame]:
    """The tables of chapters 1-3 for ``prof``, from the cache (the functions the chapters call)."""
    from advmed.experiments import zoo as Z
    from advmed.experiments.universal import run as urun
    from advmed.experiments.universal import tables as utables
    from advmed.experiments.whitebox import run as wrun
    from advmed.experiments.whitebox import tables as wtables

    zoo = Z.trained_models(prof, progress=False)
    out = {"training": Z.training_summary(zoo), "clean": Z.clean_results(prof, trained=zoo, progress=False)}
    if any(c.startswith("02") for c in chapters):
        sweep = wrun.whitebox_results(prof, zoo, progress=False)
        out["whitebox sweep"] = wtables.sweep_table(sweep)
        out["AdversarialMed setting"] = wtables.adversarialmed_comparison(
            wrun.adversarialmed_results(prof, zoo, progress=False))
        out["Finlayson setting"] = wtables.finlayson_comparison(wrun.finlayson_results(prof, zoo, progress=False))
    if any(c.startswith("03") for c in chapters):
        exp = urun.uap_experiment(prof, trained=zoo, progress=False)
        numeric = utables.uap_table(exp, numeric=True)
        out["UAPs"] = utables.uap_table(exp)
        out["UAP claims"] = utables.claim_summary(numeric)
        for task in exp.sets:
            out[f"UAP transfer {task}"] = urun.transfer_matrix(exp, task, progress=False)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="paper")
    ap.add_argument("--tasks", nargs="+", default=None)
    ap.add_argument("--models", nargs="+", default=None)
    ap.add_argument("--chapters", nargs="+", default=["01_models", "02_whitebox", "03_uap"])
    ap.add_argument("--skip", nargs="*", default=[], help="cell-name prefixes to leave out")
    ap.add_argument("--budget-s", type=float, default=float("inf"), help="stop starting cells after this")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)

    from advmed.device import default_device
    from advmed.experiments import cells as C
    from advmed.experiments import estimate
    from advmed.experiments.profiles import get_profile

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    full = get_profile(args.profile)
    prof = full.select(args.tasks, args.models)
    cells = [c for c in C.book_cells(prof, args.chapters) if not any(c.name.startswith(s) for s in args.skip)]
    dev = default_device()
    print(f"paper_cells: profile {prof.name}, tasks {list(prof.tasks)}, models "
          f"{[m.label for m in prof.models]}, {len(cells)} cells on {dev}"
          f"{' (' + torch.cuda.get_device_name(dev) + ')' if dev.type == 'cuda' else ''}, "
          f"ADVMED_AMP={os.environ.get('ADVMED_AMP', '0')}", flush=True)
    t_start = time.perf_counter()
    rows = []
    for cell in cells:
        if time.perf_counter() - t_start > args.budget_s:
            rows.append({"cell": cell.name, "family": cell.family, "stage": cell.stage, "seconds": float("nan"),
                         "gmac": cell.cost_gmac, "status": "skipped (budget)"})
            continue
        if dev.type == "cuda":
            torch.cuda.synchronize()
        outcome = C.run_cell(cell)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        rows.append({"cell": cell.name, "family": cell.family, "stage": cell.stage, "seconds": outcome.seconds,
                     "gmac": cell.cost_gmac, "status": str(outcome.summary)})
        print(f"  {outcome.seconds:8.1f} s  {cell.name}: {outcome.summary}", flush=True)
    frame = pd.DataFrame(rows)
    frame["gmac_per_s"] = frame["gmac"] / frame["seconds"]
    frame.to_csv(out / "cells.csv", index=False)
    done = frame[frame["seconds"].notna()]
    measured = float(done["gmac"].sum() / done["seconds"].sum()) if len(done) else float("nan")

    t_tables = time.perf_counter()
    complete = len(done) == len(frame)
    with open(out / "tables.txt", "w") as fh:
        if not complete:
            fh.write(f"{len(frame) - len(done)} cell(s) skipped for the time budget: tables not computed\n")
        else:
            for name, table in chapter_tables(prof, args.chapters).items():
                fh.write(f"== {name} ==\n{table.to_string()}\n\n")
    summary = {
        "profile": prof.name, "device": str(dev), "gpu": torch.cuda.get_device_name(dev) if dev.type == "cuda" else None,
        "torch": torch.__version__, "amp": os.environ.get("ADVMED_AMP", "0"), "cells": len(frame),
        "cells_done": int(len(done)), "cell_seconds": float(done["seconds"].sum()),
        "tables_seconds": time.perf_counter() - t_tables,
        "seconds_by_family": {k: float(v) for k, v in done.groupby("family")["seconds"].sum().items()},
        "gmac_per_s_measured": measured,
        "estimate_whole_profile_s": C.plan(full).total_gmac / measured if measured == measured else None,
    }
    (out / "paper_cells.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary, indent=1))
    return 0 if complete else 3


if __name__ == "__main__":
    raise SystemExit(main())
