"""The smoke book's cells on a 2-worker dask ``LocalCluster``, against a serial build.

Restricted, to keep it lean, to the smoke profile's ``pneumoniamnist`` task (both of its
models, a gray task: the one-channel attack paths). Three caches:

- ``dask``: every cell of chapters 1-4 computed by the cluster's two worker processes
  (``advmed.book.dispatch``, the code ``build --executor dask`` runs); then the chapters'
  tables computed from it must write nothing: the chapters only read what the cells left;
- ``serial``: the same tables computed in this process from an empty cache, as a build
  without an executor computes them; both sets of tables must be equal;
- ``twice``: one training cell and one UAP cell sent to *each* worker, each with a private
  cache, so the same cell is computed by two workers.

Byte identity: the files of results that record no wall time (checkpoint weights, white-box
sweeps, clean and transfer predictions) are byte-identical between workers; files that
record one (a UAP's ``summary["seconds"]``, robust accuracy's cost per member, a checkpoint's
JSON side-car) differ in those fields only, and are compared decoded without them.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch

from advmed.book import dispatch
from advmed.experiments import cells as cells_mod
from advmed.experiments import zoo as Z
from advmed.experiments.profiles import get_profile
from advmed.experiments.universal import run as urun
from advmed.experiments.universal import tables as utables
from advmed.experiments.whitebox import run as wrun
from advmed.experiments.whitebox import tables as wtables

pytestmark = pytest.mark.slow
distributed = pytest.importorskip("distributed")
# the cluster's workers run one thread each, and a model trained with two threads here sums in
# another order: the serial build must train with one thread for the tables to be equal
torch.set_num_threads(1)

PROFILE = get_profile("smoke", tasks=["pneumoniamnist"])
TIMED = ("seconds", "created")
CHAPTERS = ["01_models", "02_whitebox", "03_uap", "04_natural_uap"]  # chapters 5-7: test_scale_cells.py


def book_tables(prof) -> dict[str, pd.DataFrame]:
    """What chapters 1-4 show, computed through the functions they call (timings dropped)."""
    zoo = Z.trained_models(prof, progress=False)
    out = {"clean": Z.clean_results(prof, trained=zoo, progress=False),
           "training": Z.training_summary(zoo).drop(columns=["train_seconds", "from_cache"])}
    out["sweep"] = wtables.sweep_table(wrun.whitebox_results(prof, zoo, progress=False))
    out["finlayson"] = wrun.finlayson_results(prof, zoo, progress=False)
    robust = wrun.robust_results(prof, zoo, progress=False)
    out["robust"], out["robust_cost"] = robust.curves, robust.costs
    out["diagnostics"] = wrun.diagnostics_results(prof, zoo, progress=False)
    exp = urun.uap_experiment(prof, trained=zoo, progress=False)
    out["uap"] = utables.uap_table(exp, numeric=True)
    for task in exp.sets:
        out[f"transfer_{task}"] = urun.transfer_matrix(exp, task, progress=False)
    nat_zoo = Z.select(zoo, prof, models=urun.available_models(prof, prof.uap.natural_models))
    natural = urun.natural_uap_experiment(prof, trained=nat_zoo, progress=False)
    medical = urun.uap_experiment(get_profile(prof, uap={"targeted": False}), trained=nat_zoo, progress=False)
    out["natural"] = utables.natural_vs_medical(natural, medical)
    return {k: v.drop(columns=[c for c in v.columns if any(t in str(c) for t in TIMED)]) for k, v in out.items()}


def _files(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for sub in ("checkpoints", "results") for p in sorted((root / sub).rglob("*")) if p.is_file()}


def _use_cache(monkeypatch, path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("ADVMED_CACHE", str(path))
    return path


@pytest.fixture(scope="module")
def cluster():
    spec = dispatch.parse_executor("dask", workers=2)
    with dispatch.open_executor(spec, log=print) as pool:
        yield pool


def test_cells_on_two_dask_workers_give_the_serial_builds_tables(cluster, tmp_path, monkeypatch):
    cells = cells_mod.book_cells(PROFILE, CHAPTERS)
    assert {c.family for c in cells} == {"zoo", "whitebox", "universal", "natural"}
    dask_cache = _use_cache(monkeypatch, tmp_path / "dask")
    outcomes = dispatch.run_cells(cells, cluster, log=print)
    assert len(outcomes) == len(cells) and len({o.name for o in outcomes}) == len(cells)
    pids = {o.pid for o in outcomes}
    assert len(pids) == 2 and os.getpid() not in pids  # both workers, neither of them this process
    before = _files(dask_cache)
    from_cells = book_tables(PROFILE)
    assert _files(dask_cache) == before, "the chapters computed something the cells had not"

    _use_cache(monkeypatch, tmp_path / "serial")
    serial = book_tables(PROFILE)
    assert from_cells.keys() == serial.keys()
    for name in serial:
        pd.testing.assert_frame_equal(from_cells[name], serial[name], check_exact=True, obj=name)


def _decoded(path: Path):
    if path.suffix == ".json":
        record = json.loads(path.read_text())
        for k in ("created", "train_seconds"):
            record.pop(k, None)
        for row in record.get("history", []):
            row.pop("seconds", None)
        return record
    blob = torch.load(path, map_location="cpu", weights_only=True)
    return _strip(blob)


def _strip(v):
    if isinstance(v, dict):
        return {k: _strip(x) for k, x in v.items() if k not in TIMED}
    if isinstance(v, list):
        return [_strip(x) for x in v]
    if torch.is_tensor(v):
        return v.tolist()
    return v


def test_a_cell_computed_by_two_workers_gives_the_same_files(cluster, tmp_path, monkeypatch):
    from distributed import default_client

    workers = sorted(default_client().scheduler_info()["workers"])
    assert len(workers) == 2
    train = next(c for c in cells_mod.book_cells(PROFILE, ["01_models"]) if "small_cnn" in c.name)
    uap = next(c for c in cells_mod.book_cells(PROFILE, ["03_uap"]) if "small_cnn" in c.name and "/nt" in c.name)
    roots = []
    for k, w in enumerate(workers):
        root = tmp_path / f"worker{k}"
        env = {**cells_mod.worker_env(), "ADVMED_CACHE": str(root)}
        pool = default_client().get_executor(workers=[w], allow_other_workers=False, pure=False)
        for cell in (train, uap):
            outcome = pool.submit(cells_mod.run_cell, cell, env).result()
            assert outcome.name == cell.name
        roots.append(root)
    a, b = _files(roots[0]), _files(roots[1])
    assert a.keys() == b.keys() and any(k.startswith("results/uap_run") for k in a)
    same = sorted(k for k in a if a[k] == b[k])
    differ = sorted(k for k in a if a[k] != b[k])
    print(f"byte-identical: {same}\nequal once wall times are dropped: {differ}")
    assert any(k.endswith(".pt") and k.startswith("checkpoints/") for k in same)  # the weights
    assert any(k.startswith("results/uap_clean") for k in same)  # predictions
    for k in differ:
        assert _decoded(roots[0] / k) == _decoded(roots[1] / k), k
    shutil.rmtree(tmp_path, ignore_errors=True)
