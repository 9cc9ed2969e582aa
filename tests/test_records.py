"""Headline records (advmed.experiments.kernel.records): written by the chapters, read by
chapter 8, which computes nothing itself."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from advmed.experiments import blackbox, defenses, universal, whitebox
from advmed.experiments.claims import run as claims
from advmed.experiments.defenses.report import ATNumbers, DefenseClaims, RetrainingNumbers, claims_from_record
from advmed.experiments.defenses.report import headline_record as defense_record
from advmed.experiments.kernel import records as R
from advmed.experiments.profiles import get_profile


def _frame():
    return pd.DataFrame({"task": ["a", "b"], "accuracy": [0.5, math.nan], "n": [30, 40], "flag": [True, False],
                         "target": [-1, 1]})


def test_a_record_round_trips(tmp_cache):
    prof = get_profile("smoke")
    rec = R.make_record("whitebox", prof, frames={"adversarialmed": _frame(), "finlayson": _frame().iloc[:0]},
                        numbers={"eps": 1.15}, sources=["k2", "k1", "k1"])
    R.write_record(rec)
    back = R.read_record("whitebox", prof)
    pd.testing.assert_frame_equal(back.frames["adversarialmed"], _frame(), check_dtype=False)
    assert back.frames["finlayson"].empty and back.numbers == {"eps": 1.15}
    assert back.sources == ("k1", "k2") and back.n == 40 and back.chapter == "02_whitebox"
    assert back.profile == "smoke" and back.fingerprint == R.profile_fingerprint(prof) and back.created


def test_a_missing_record_names_the_chapter_to_run(tmp_cache):
    with pytest.raises(R.MissingRecord, match="run chapter 05_blackbox"):
        R.read_record("blackbox", get_profile("smoke"))
    with pytest.raises(KeyError, match="valid: zoo, whitebox"):
        R.read_record("nonsense", get_profile("smoke"))


def test_a_record_of_other_settings_is_never_read(tmp_cache):
    prof = get_profile("smoke")
    R.write_record(R.make_record("patches", get_profile(prof, whitebox={"n_images": 7}), frames={"x": _frame()}))
    with pytest.raises(R.MissingRecord):
        R.read_record("patches", prof)


def test_an_interrupted_write_leaves_no_record(tmp_cache, monkeypatch):
    prof = get_profile("smoke")
    rec = R.make_record("universal", prof, frames={"uap": _frame()})

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pd.DataFrame, "to_json", boom)
    with pytest.raises(KeyboardInterrupt):
        R.write_record(rec)
    assert not R.record_path("universal", prof).exists()
    assert not list(R.record_path("universal", prof).parent.glob("*")) if R.record_path(
        "universal", prof).parent.exists() else True


def test_defense_claims_survive_the_record(tmp_cache):
    prof = get_profile("smoke")
    at = ATNumbers("t", "m", 1.0, 0.9, 0.8, 0.7, 0.6, 0.5, True, study_attacks_min_auc_adaptive=0.4)
    rt = RetrainingNumbers("t", "m", 3, 0.9, 0.8, 0.7, 0.6, 0.5)
    R.write_record(defense_record(prof, {}, DefenseClaims(adversarial_training=[at], retraining=[rt])))
    back = claims_from_record(R.read_record("defenses", prof))
    import dataclasses

    same = lambda a, b: pd.Series(dataclasses.asdict(a)).equals(pd.Series(dataclasses.asdict(b)))  # noqa: E731
    assert same(back.adversarial_training[0], at) and same(back.retraining[0], rt) and back.preprocessing == []
    assert back.helped_share == 1.0


def test_chapter_8_reads_records_and_computes_nothing(tmp_cache, monkeypatch):
    """With every family's run functions made to fail, the claims come from the records alone."""
    for module in (whitebox.run, universal.run, blackbox.run, defenses.run):
        for name in [n for n in dir(module) if n.endswith("_results") or n.endswith("_experiment")
                     or n in ("finlayson_blackbox",)]:
            monkeypatch.setattr(module, name, lambda *a, **k: pytest.fail("chapter 8 recomputed a result"))
    prof = get_profile("smoke")
    with pytest.raises(R.MissingRecord, match="chapter 01_models"):
        claims.all_claims(prof)
    models = pd.DataFrame([{"task": "pneumonia_cxr", "arch": "mobilenet_v1_075", "init": "imagenet",
                            "init_used": "imagenet", "size": 64, "val_auc": 0.99}])
    clean = pd.DataFrame([{"task": "pneumonia_cxr", "arch": "mobilenet_v1_075", "init": "imagenet",
                           "accuracy": 0.9, "accuracy_lo": 0.85, "accuracy_hi": 0.95, "auc": 0.95, "auc_lo": 0.9,
                           "auc_hi": 0.98}])
    empty = pd.DataFrame()
    R.write_record(R.make_record("zoo", prof, frames={"clean": clean, "models": models}))
    R.write_record(R.make_record("whitebox", prof, frames={"adversarialmed": empty, "finlayson": empty}))
    R.write_record(R.make_record("universal", prof, frames={"uap": pd.DataFrame(columns=[
        "task", "arch", "init", "norm", "zeta", "target", "rate", "random", "rate_all", "random_all"])}))
    R.write_record(R.make_record("natural", prof, frames={"natural": pd.DataFrame(columns=["task", "norm", "zeta", "init"]),
                                                          "drift": empty, "ablation": empty}))
    R.write_record(R.make_record("blackbox", prof, frames={"finlayson_blackbox": empty}))
    R.write_record(R.make_record("patches", prof, frames={"finlayson": empty}))
    R.write_record(defense_record(prof, {}, DefenseClaims()))
    out = claims.all_claims(prof)
    assert [c.number for c in out] == sorted(claims.CLAIMS)
    first = next(c for c in out if c.number == 1)
    assert first.ours.value == pytest.approx(0.95) and "64 px" in first.our_setting
    assert np.isfinite(first.difference)
