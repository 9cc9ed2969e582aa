"""Headline records (advmed.experiments.kernel.records): typed, written by chapters 1-7, read
by chapter 8, which computes nothing itself."""
from __future__ import annotations

import ast
import dataclasses
import json
import math
import os
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from advmed import train
from advmed.experiments import blackbox, defenses, patches, universal, whitebox
from advmed.experiments import zoo as models_zoo
from advmed.experiments.claims import run as claims
from advmed.experiments.defenses.report import ATNumbers, DefenseClaims, RetrainingNumbers, claims_from_record
from advmed.experiments.kernel import records as R
from advmed.experiments.profiles import get_profile

REPO = Path(__file__).resolve().parents[1]


def _frame() -> pd.DataFrame:
    """Every kind of cell a record's table holds: exact floats, NaN, infinity, ints, bools, strings, None."""
    return pd.DataFrame({"task": ["a", "b", "c"], "accuracy": [0.1 + 0.2, math.nan, 1 / 3], "n": [30, 40, 7],
                         "flag": [True, False, True], "target": [-1, 1, 0], "ratio": [math.inf, -0.0, 1e-300],
                         "note": ["x", None, "z"]})


def _fields(cls: type, frame: pd.DataFrame) -> dict[str, pd.DataFrame]:
    provenance = {g.name for g in dataclasses.fields(R.Record)}
    return {f.name: frame for f in dataclasses.fields(cls) if f.name not in provenance}


def _fake_zoo(*keys: str) -> dict:
    return {(k, "arch", "init"): SimpleNamespace(config=SimpleNamespace(key=lambda k=k: f"ckpt-{k}", size=32),
                                                 init_used="imagenet", val_auc=0.9) for k in keys}


# --------------------------------------------------------------------------- storage
def test_a_record_round_trips(tmp_cache):
    prof = get_profile("smoke")
    frame = _frame().set_index(pd.Index([5, 3, 9], name="row"))
    rec = R.make_record(R.WhiteboxRecord, prof, adversarialmed=_frame(), finlayson=frame.iloc[:0],
                        sources=["k2", "k1", "k1"])
    assert R.write_record(rec) is None  # a chapter's cell ending with it shows nothing
    path = R.record_path(R.WhiteboxRecord, prof)
    assert path == tmp_cache / "records" / f"smoke-{R.profile_fingerprint(prof)}" / "whitebox.json"
    back = R.read_record("whitebox", prof)
    assert isinstance(back, R.WhiteboxRecord) and back.equals(rec)
    pd.testing.assert_frame_equal(back.adversarialmed, _frame(), check_exact=True)
    pd.testing.assert_frame_equal(back.finlayson, frame.iloc[:0], check_exact=True)
    assert back.adversarialmed["accuracy"].iloc[0] == 0.1 + 0.2  # not rounded to 15 digits
    assert back.sources == ("k1", "k2") and back.n == 40
    assert (back.family, back.chapter, back.profile) == ("whitebox", "02_whitebox", "smoke")
    assert re.fullmatch(r"[0-9a-f]{40}(-dirty)?|unknown", back.commit) and back.created.startswith("20")
    body = json.loads(path.read_text())
    assert {"family", "chapter", "profile", "fingerprint", "commit", "created", "n", "sources"} <= set(body)


@pytest.mark.parametrize("family", list(R.RECORDS))
def test_every_family_record_round_trips(tmp_cache, family):
    prof = get_profile("smoke")
    cls = R.RECORDS[family]
    rec = R.make_record(family, prof, **_fields(cls, _frame()))
    R.write_record(rec)
    assert R.read_record(cls, prof).equals(rec) and R.CHAPTERS[family] == cls.chapter


def test_a_record_holds_exactly_its_fields():
    prof = get_profile("smoke")
    with pytest.raises(TypeError, match="holds"):
        R.make_record(R.UniversalRecord, prof, uap=_frame(), perceptibility=_frame(), extra=_frame())
    with pytest.raises(TypeError, match="must be DataFrames"):
        R.make_record(R.UniversalRecord, prof, uap=[1, 2], perceptibility=_frame())


def test_a_missing_record_names_the_chapter_to_run(tmp_cache):
    with pytest.raises(R.MissingRecord, match=r"run chapter 05_blackbox .*python -m advmed\.book run "
                                              r"book/05_blackbox\.py -p profile smoke") as err:
        R.read_record(R.BlackboxRecord, get_profile("smoke"))
    assert isinstance(err.value, FileNotFoundError) and err.value.chapter == "05_blackbox"
    with pytest.raises(KeyError, match="valid: zoo, whitebox"):
        R.read_record("nonsense", get_profile("smoke"))


def test_a_record_of_other_settings_is_never_read(tmp_cache):
    prof = get_profile("smoke")
    other = get_profile(prof, whitebox={"n_images": 7})
    assert R.profile_fingerprint(other) != R.profile_fingerprint(prof)
    assert R.profile_fingerprint(get_profile("smoke")) == R.profile_fingerprint(prof)
    R.write_record(R.make_record("patches", other, finlayson=_frame()))
    with pytest.raises(R.MissingRecord):
        R.read_record("patches", prof)
    assert R.read_record("patches", other).n == 40


def test_a_record_of_another_format_is_not_read(tmp_cache):
    prof = get_profile("smoke")
    R.write_record(R.make_record("patches", prof, finlayson=_frame()))
    path = R.record_path("patches", prof)
    body = json.loads(path.read_text())
    path.write_text(json.dumps({**body, "version": R.RECORD_VERSION - 1}))
    with pytest.raises(R.MissingRecord, match="record format"):
        R.read_record("patches", prof)
    del body["frames"]["finlayson"]
    path.write_text(json.dumps(body))
    with pytest.raises(R.MissingRecord, match="without finlayson"):
        R.read_record("patches", prof)


def test_an_interrupted_write_leaves_no_record(tmp_cache, monkeypatch):
    """Killed after the data went to the temporary file, before the rename: no record (or the
    previous one, intact), and no temporary file."""
    prof = get_profile("smoke")
    first = R.make_record("universal", prof, uap=_frame(), perceptibility=_frame())
    second = R.make_record("universal", prof, uap=_frame().iloc[:1], perceptibility=_frame())

    def boom(fd):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(os, "fsync", boom)
        with pytest.raises(KeyboardInterrupt):
            R.write_record(first)
    path = R.record_path("universal", prof)
    assert not path.exists() and not list(path.parent.iterdir())
    R.write_record(first)
    with monkeypatch.context() as m:
        m.setattr(os, "fsync", boom)
        with pytest.raises(KeyboardInterrupt):
            R.write_record(second)
    assert R.read_record("universal", prof).equals(first) and [p.name for p in path.parent.iterdir()] == [path.name]


# --------------------------------------------------------------------------- the families' builders
def test_the_families_build_their_records_from_the_chapters_results():
    prof = get_profile("smoke")
    zoo = _fake_zoo("t1", "t2")
    f = _frame()
    built = [R.zoo_record(prof, zoo, f), whitebox.report.headline_record(prof, zoo, f, f),
             universal.report.headline_record(prof, zoo, f, f),
             universal.report.natural_record(prof, zoo, f, f, f.assign(checkpoint="ckpt-ablation"), targeted=f,
                                             cross_source=f, transfer=f),
             blackbox.report.headline_record(prof, zoo, f, queries=f), patches.report.headline_record(prof, zoo, f),
             defenses.report.headline_record(prof, zoo, DefenseClaims())]
    assert [type(r) for r in built] == list(R.RECORDS.values())
    assert all(set(r.sources) >= {"ckpt-t1", "ckpt-t2"} for r in built)
    assert "ckpt-ablation" in built[3].sources
    assert list(built[0].models.columns) == ["task", "arch", "init", "init_used", "size", "val_auc"]


def test_defense_claims_survive_the_record(tmp_cache):
    prof = get_profile("smoke")
    at = ATNumbers("t", "m", 1.0, 0.9, 0.8, 0.7, 0.6, 0.5, True, study_attacks_min_auc_adaptive=0.4)
    rt = RetrainingNumbers("t", "m", 3, 0.9, 0.8, 0.7, 0.6, 0.5)
    R.write_record(defenses.report.headline_record(prof, {}, DefenseClaims(adversarial_training=[at], retraining=[rt])))
    back = claims_from_record(R.read_record(R.DefensesRecord, prof))
    def same(a, b) -> bool:  # NaN fields equal
        return type(a) is type(b) and pd.Series(dataclasses.asdict(a)).equals(pd.Series(dataclasses.asdict(b)))

    assert same(back.adversarial_training[0], at) and same(back.retraining[0], rt) and back.preprocessing == []
    assert back.helped_share == 1.0


@pytest.mark.parametrize("chapter", [f"{c}.py" for c in R.CHAPTERS.values()])
def test_every_chapter_writes_its_record(chapter):
    assert "records.write_record(" in (REPO / "book" / chapter).read_text()


# --------------------------------------------------------------------------- chapter 8 reads only
def _write_minimal_records(prof) -> None:
    models = pd.DataFrame([{"task": "pneumonia_cxr", "arch": "mobilenet_v1_075", "init": "imagenet",
                            "init_used": "imagenet", "size": 64, "val_auc": 0.99}])
    clean = pd.DataFrame([{"task": "pneumonia_cxr", "arch": "mobilenet_v1_075", "init": "imagenet",
                           "accuracy": 0.9, "accuracy_lo": 0.85, "accuracy_hi": 0.95, "auc": 0.95, "auc_lo": 0.9,
                           "auc_hi": 0.98}])
    empty = pd.DataFrame()
    R.write_record(R.make_record("zoo", prof, clean=clean, models=models))
    R.write_record(R.make_record("whitebox", prof, adversarialmed=empty, finlayson=empty))
    R.write_record(R.make_record("universal", prof, uap=pd.DataFrame(columns=[
        "task", "arch", "init", "norm", "zeta", "target", "rate", "random", "rate_all", "random_all"]),
        perceptibility=pd.DataFrame(columns=["task", "arch", "init", "norm", "zeta", "ssim", "psnr_db", "linf_255"])))
    R.write_record(R.make_record("natural", prof, natural=pd.DataFrame(columns=["task", "norm", "zeta", "init"]),
                                 targeted=empty, cross_source=empty, transfer=empty, drift=empty, ablation=empty))
    R.write_record(R.make_record("blackbox", prof, finlayson=empty, queries=empty))
    R.write_record(R.make_record("patches", prof, finlayson=empty))
    R.write_record(defenses.report.headline_record(prof, {}, DefenseClaims()))


def test_chapter_8_reads_records_and_computes_nothing(tmp_cache, monkeypatch):
    """With every family's run functions and the model loaders made to fail, the claims come
    from the records alone."""
    def fail(*args, **kwargs):
        pytest.fail("chapter 8 computed or loaded something")

    for module in (whitebox.run, universal.run, universal.fidelity.run, blackbox.run, patches.run, defenses.run):
        for name in [n for n in vars(module) if not n.startswith("_") and callable(vars(module)[n])
                     and getattr(vars(module)[n], "__module__", "") == module.__name__
                     and not isinstance(vars(module)[n], type)]:
            monkeypatch.setattr(module, name, fail)
    for module, name in ((models_zoo, "trained_models"), (models_zoo, "clean_results"),
                         (models_zoo, "clean_predictions"), (train, "get_trained_model")):
        monkeypatch.setattr(module, name, fail)
    prof = get_profile("smoke")
    with pytest.raises(R.MissingRecord, match="chapter 01_models"):
        claims.all_claims(prof)
    _write_minimal_records(prof)
    out = claims.all_claims(prof)
    assert [c.number for c in out] == sorted(claims.CLAIMS)
    first = next(c for c in out if c.number == 1)
    auc = dict((name, est) for name, est, _ in first.at("study").parts)["AUC"]
    assert auc.value == pytest.approx(0.95) and "64 px" in first.our_setting
    assert np.isfinite(auc.lo) and np.isfinite(auc.hi)


def test_chapter_8_stops_at_the_first_missing_record(tmp_cache):
    prof = get_profile("smoke")
    _write_minimal_records(prof)
    R.record_path("natural", prof).unlink()
    with pytest.raises(R.MissingRecord, match="run chapter 04_natural_uap"):
        claims.all_claims(prof)


def test_the_claims_import_no_run_module_and_no_model_loader():
    """Chapter 8's package reads records: it imports no family's ``run`` module, nor the zoo or
    the training code that loads models."""
    bad = []
    for path in sorted((REPO / "lib" / "advmed" / "experiments" / "claims").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level != 1:  # level 1: the claims' own modules
                module = node.module or ""
                names = [a.name for a in node.names]
                if module.endswith(".run") or module.split(".")[-1] in ("zoo", "fidelity") or "run" in names \
                        or "zoo" in names or "get_trained_model" in names:
                    bad.append(f"{path.name}:{node.lineno} from {'.' * node.level}{module} import {', '.join(names)}")
    assert not bad, "\n".join(bad)
