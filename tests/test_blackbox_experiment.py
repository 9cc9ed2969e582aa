"""advmed.experiments.blackbox (chapter 5) and the disjoint-data training it needs.

No real data and no checkpoints: tiny CNNs fitted in a second on synthetic two-class
images stand in for the zoo and the surrogates; the data layer and the checkpoint cache are
monkeypatched, and every result goes to a private cache.
"""
from __future__ import annotations

import dataclasses
import functools
import io

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from advmed.data import ImageSet
from advmed.data.splits import disjoint_subset, stratified_subset
from advmed.experiments import references
from advmed.experiments.blackbox import plots as P
from advmed.experiments.blackbox import report as R
from advmed.experiments.blackbox import run as B
from advmed.experiments.kernel import surrogates as S
from advmed.experiments.blackbox import tables as T
from advmed.experiments.profiles import PROFILES, BlackboxSettings, ModelSpec, get_profile
from advmed.experiments import kernel as wb
from advmed.experiments.kernel import evaluation as KE
from advmed.experiments.kernel import studies as KS
from advmed.train import TrainConfig

from fake_zoo import FakeTrained, fit_tiny

SIZE = 12
TASK = "pneumonia_cxr"


def _images(n: int, seed: int, gray: bool = False) -> ImageSet:
    """Class 1: left half brighter; class 0: right half brighter (by 0.05, so that 8/255 flips
    it in white box). uint8 (n, 3, SIZE, SIZE)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = torch.rand(n, 1 if gray else 3, SIZE, SIZE, generator=g) * 0.5 + 0.25
    x[y == 1, :, :, : SIZE // 2] += 0.05
    x[y == 0, :, :, SIZE // 2:] += 0.05
    x = x.expand(-1, 3, -1, -1) if gray else x
    return ImageSet(images=(x.clamp(0, 1) * 255).round().to(torch.uint8).contiguous(), labels=y,
                    classes=["normal", "pneumonia"], name=TASK, split="test")


@functools.lru_cache(maxsize=None)  # one fit per (width, seed) for the whole module
def _fit(width: int, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                        nn.Linear(4 * width, 2))
    return fit_tiny(net, _images(256, 100 + seed), steps=120)


_TM = FakeTrained


def _cfg(arch: str, **kw) -> TrainConfig:
    return TrainConfig(task=TASK, arch=arch, size=SIZE, max_train=64, **kw)


@pytest.fixture(scope="module")
def zoo():
    return {(TASK, "tiny_a", "scratch"): _TM(_fit(8, 0), _cfg("tiny_a")),
            (TASK, "tiny_b", "scratch"): _TM(_fit(6, 1), _cfg("tiny_b"))}


@pytest.fixture
def profile():
    base = PROFILES["smoke"]
    return dataclasses.replace(
        base, name="test", tasks={TASK: SIZE}, models=(ModelSpec("tiny_a"), ModelSpec("tiny_b")), seeds=(0,),
        eval=dataclasses.replace(base.eval, max_test=None, n_boot=50),
        whitebox=dataclasses.replace(base.whitebox, n_images=48, eps_255=(0, 4, 8), robust_steps=5, pgd_restarts=1),
        blackbox=BlackboxSettings(n_images=32, eps_255=8, steps=5, surrogate_train={"epochs": 1},
                                  query_budgets={TASK: 60}, query_images=12, usimba_iterations={TASK: 15},
                                  usimba_images=24, usimba_eval=24, usimba_norms=("l2",), model="tiny_a:scratch"))


@pytest.fixture
def synthetic(monkeypatch, tmp_cache, zoo):
    """Chapter 2's test images, the training split and the checkpoint cache, all synthetic."""
    test = _images(48, 2)
    for module in (B, KE, KS):
        monkeypatch.setattr(module, "test_images", lambda task, prof, n_images=None, progress=False: test)
    train_labels = np.arange(200) % 2
    monkeypatch.setattr(S, "train_split_counts", lambda cfg: (train_labels, None))
    trained = []

    def fake_get(cfg, device=None, progress=False):
        trained.append(cfg)
        return _TM(_fit(8, 10 + len(trained)), cfg, train_seconds=2.0)

    monkeypatch.setattr(S, "get_trained_model", fake_get)
    monkeypatch.setattr(B, "usimba_sets", lambda task, prof: (_images(24, 3), _images(24, 4)))
    return test, trained


# --------------------------------------------------------------------------- disjoint training data
def test_disjoint_subset_leaves_out_the_targets_images_and_groups():
    y = np.arange(100) % 2
    groups = np.repeat(np.arange(50), 2).astype(str)  # two images per patient
    seen = stratified_subset(y, 40, 0)
    rest = disjoint_subset(y, groups, exclude_limit=40, exclude_seed=0, limit=None, seed=1)
    assert not np.intersect1d(seen, rest).size
    assert not np.intersect1d(groups[seen], groups[rest]).size  # no patient of the target's
    plain = disjoint_subset(y, None, exclude_limit=40, exclude_seed=0, limit=None, seed=1)
    assert len(plain) == 60 and len(rest) < len(plain)
    some = disjoint_subset(y, None, exclude_limit=40, exclude_seed=0, limit=10, seed=1)
    assert len(some) == 10 and set(some) <= set(plain) and set(y[some]) == {0, 1}
    with pytest.raises(ValueError, match="every one of the 100 images"):
        disjoint_subset(y, None, exclude_limit=100, exclude_seed=0, limit=None, seed=0)


def test_exclude_train_keeps_old_checkpoint_keys_and_changes_new_ones():
    cfg = TrainConfig("pneumonia_cxr", "resnet18", size=64, max_train=2000)
    assert dataclasses.replace(cfg, exclude_train=None).key() == cfg.key()
    other = dataclasses.replace(cfg, exclude_train=(2000, 0))
    assert other.key() != cfg.key()
    assert TrainConfig(**{**other.to_dict(), "exclude_train": [2000, 0]}).key() == other.key()  # JSON round trip
    with pytest.raises(ValueError, match="limit, seed"):
        TrainConfig("pneumonia_cxr", "resnet18", exclude_train=(2000,))


def test_a_disjoint_model_trains_on_images_the_target_never_saw(monkeypatch):
    from advmed.train import checkpoints

    y = torch.arange(120) % 2
    full = ImageSet(images=torch.arange(120, dtype=torch.uint8).view(120, 1, 1, 1).expand(-1, 3, 2, 2).contiguous(),
                    labels=y, classes=["a", "b"], groups=np.repeat(np.arange(60), 2).astype(str), name="t",
                    split="train")

    def fake_load(task, split, *, size, channels=3, limit=None, seed=0, progress=True):
        return full if limit is None else full.subset(stratified_subset(full.labels.numpy(), limit, seed))

    monkeypatch.setattr(checkpoints, "load_task", fake_load)
    target = TrainConfig("pneumonia_cxr", "x", max_train=50, seed=0)
    sur = dataclasses.replace(target, seed=1, max_train=30, exclude_train=(50, 0))
    seen = set(checkpoints.training_split(target).images[:, 0, 0, 0].tolist())
    mine = checkpoints.training_split(sur)
    ids = mine.images[:, 0, 0, 0].tolist()
    assert len(ids) == 30 and not seen & set(ids)
    assert not set(full.groups[sorted(seen)]) & set(mine.groups)


def test_surrogate_configs_differ_from_the_target_where_they_should(profile, monkeypatch):
    monkeypatch.setattr(S, "train_split_counts", lambda cfg: (np.arange(200) % 2, None))
    target = _cfg("tiny_a")
    plan = S.surrogate_configs(profile, target)
    assert plan.seed.seed == profile.seed + 1 and plan.seed.epochs == 1 and plan.seed.exclude_train is None
    assert dataclasses.replace(plan.seed, seed=target.seed, epochs=target.epochs) == target
    assert plan.disjoint.exclude_train == (64, 0) and plan.eligible == 136
    whole = S.surrogate_configs(profile, dataclasses.replace(target, max_train=None))
    assert whole.disjoint is None and "whole training split" in whole.why
    monkeypatch.setattr(S, "train_split_counts", lambda cfg: (np.arange(64) % 2, None))
    assert S.surrogate_configs(profile, target).disjoint is None  # 64 of 64 used


# --------------------------------------------------------------------------- transfer
def test_transfer_rows_matrix_and_ensemble(zoo, profile, synthetic):
    test, trained = synthetic
    sur = S.trained_surrogates(profile, zoo, progress=False)
    assert {c.seed for c in trained} == {1} and trained[1].exclude_train == (64, 0)
    res = B.transfer_results(profile, zoo, sur, progress=False)
    rows = res.rows
    sources = 2 + 2  # two zoo models, seed and disjoint surrogates
    assert len(rows) == sources * 2 * 2 + 2  # sources x attacks x targets + one ensemble per target
    assert rows[["accuracy", "auc", "flip_rate"]].stack().between(0, 1).all()
    assert (rows[rows["white_box"]]["source_kind"] == "zoo").all() and rows["white_box"].sum() == 2 * 2
    ens = rows[rows["source_kind"] == "ensemble"]
    assert len(ens) == 2 and set(ens["target"]) == {"tiny_a (scratch)", "tiny_b (scratch)"}
    wbox = rows[rows["white_box"]]
    assert (wbox["accuracy"] <= wbox["clean_accuracy"]).all() and (wbox["accuracy"] < 0.5).all()
    for i, r in rows.iterrows():  # per-image successes agree with the accuracy
        assert res.success[i].mean() == pytest.approx(1 - r["accuracy"])
    mat = T.transfer_matrix(res, TASK)
    assert mat.shape == (sources * 2 + 1, 2) and np.isfinite(mat.to_numpy()).all()
    assert mat.loc[("tiny_a (scratch)", "PGD"), "tiny_a (scratch)"] == pytest.approx(
        rows[(rows["source"] == "tiny_a (scratch)") & (rows["attack"] == "pgd") & rows["white_box"]]["accuracy"].iloc[0],
        abs=1e-3)
    assert (res.images[TASK].positions < len(test)).all() and len(res.images[TASK].positions) == 32


def test_transfer_is_memoised(zoo, profile, synthetic, monkeypatch):
    sur = S.trained_surrogates(profile, zoo, progress=False)
    first = B.transfer_results(profile, zoo, sur, progress=False).rows

    def boom(*a, **k):
        raise AssertionError("recomputed a memoised transfer attack")

    monkeypatch.setattr(B, "craft", boom)
    pd.testing.assert_frame_equal(first, B.transfer_results(profile, zoo, sur, progress=False).rows)
    with pytest.raises(AssertionError, match="recomputed"):
        B.transfer_results(get_profile(profile, blackbox={"eps_255": 4}), zoo, sur, progress=False)


def test_a_missing_disjoint_surrogate_is_said_not_faked(zoo, profile, synthetic, monkeypatch):
    monkeypatch.setattr(S, "train_split_counts", lambda cfg: (np.arange(64) % 2, None))
    sur = S.trained_surrogates(profile, zoo, progress=False)
    assert not sur[TASK].disjoint.available and len(sur[TASK].trained()) == 1
    res = B.transfer_results(profile, zoo, sur, progress=False)
    assert "disjoint" not in set(res.rows["source_kind"])
    mat = T.transfer_matrix(res, TASK)
    assert any("not trained" in a for _, a in mat.index)
    assert "No disjoint-data surrogate" in R.surrogates_reading(sur)
    assert (T.surrogate_table(sur)["trained"] == ["yes", "no"]).all()


def test_gray_images_are_attacked_in_one_channel(zoo):
    x = _images(8, 5, gray=True).float()
    x_adv, _ = B.craft([zoo[(TASK, "tiny_a", "scratch")].model], x, torch.arange(8) % 2, attack="pgd", eps=8 / 255,
                       steps=3, seed=0)
    assert torch.equal(x_adv[:, 0], x_adv[:, 1]) and torch.equal(x_adv[:, 0], x_adv[:, 2])
    assert (x_adv - x).abs().max() <= 8 / 255 + 1e-6 and not torch.equal(x_adv, x)


# --------------------------------------------------------------------------- queries, U-SimBA
def test_query_curves_are_monotone_and_within_budget(zoo, profile, synthetic):
    runs = B.query_results(profile, zoo, progress=False)
    assert [(q.task, q.attack) for q in runs] == [(TASK, "square"), (TASK, "simba"), (TASK, "hopskipjump")]
    for q in runs:
        assert (q.queries <= q.budget).all() and len(q.y) == 12
        curve = [q.success_at(b) for b in (1, 5, 20, 60)]
        assert all(a <= b + 1e-12 for a, b in zip(curve, curve[1:]))
        assert curve[-1] == pytest.approx(q.success[q.attacked].mean())
        assert np.isnan(q.median_queries()) or 1 < q.median_queries() <= q.budget
    sq, hsja = runs[0], runs[2]
    assert sq.norm == "linf" and sq.linf.max() <= 8 / 255 + 1e-6
    assert hsja.norm == "linf" and hsja.eps == sq.eps and hsja.linf.max() <= 8 / 255 + 1e-6  # the same budget
    table = T.query_table(runs, (10, 30, 100))
    assert list(table.filter(like="<=").columns) == ["<= 10", "<= 30", "<= 60"]


def test_usimba_runs_at_chapter_3s_bounds(zoo, profile, synthetic):
    runs = B.usimba_results(profile, zoo, progress=False)
    u = profile.uap
    expected = sum(1 + (2 if u.targets_at(z) else 0) for z in u.zetas)
    assert len(runs) == expected and {k.zeta for k in runs} == set(u.zetas)
    for k, r in runs.items():
        assert r.summary["queries"] == 1 + 2 * r.summary["passes"] and r.summary["passes"] <= 15
        assert 0 <= r.rate(k.target) <= 1 and 0 <= r.rate(k.target, on="build") <= 1
        assert float(r.delta.norm()) <= r.summary["eps"] * (1 + 1e-5)
    koga = T.koga_comparison(runs, zoo)
    assert koga.iloc[0]["rate (input images)"] == references.KOGA_USIMBA["success_rate"]
    assert "73%" in R.koga_reading(koga)


# --------------------------------------------------------------------------- against the white box
def _fake_robust(first_eps_value: float):
    def robust(profile, zoo, progress=True):
        n = len(B.test_images(None, profile))
        costs = pd.DataFrame({"attacked": [n], "queries": [10 * n], "seconds": [1.0], "task": [TASK],
                              "arch": ["tiny_a"], "init": ["scratch"]})
        return wb.RobustResults(pd.DataFrame(), costs, {k: np.full(n, first_eps_value) for k in zoo})
    return robust


def test_a_blackbox_success_the_whitebox_missed_flags_the_model(zoo, profile, synthetic, monkeypatch):
    sur = S.trained_surrogates(profile, zoo, progress=False)
    transfer = B.transfer_results(profile, zoo, sur, progress=False)
    queries = B.query_results(profile, zoo, progress=False)
    monkeypatch.setattr(B, "robust_results", _fake_robust(0.0))  # white box broke every image
    sound = B.whitebox_check(profile, zoo, transfer, queries, progress=False)
    assert (sound.table["beaten"] == 0).all() and not sound.flagged
    assert "every black-box success is contained" in R.check_reading(sound)
    monkeypatch.setattr(B, "robust_results", _fake_robust(np.inf))  # white box broke none
    monkeypatch.setattr(B, "diagnostics_results", lambda prof, z, progress=True: pd.DataFrame(
        [{"task": TASK, "arch": k[1], "init": k[2], "check": "transfer", "passed": False} for k in z]))
    bad = B.whitebox_check(profile, zoo, transfer, queries, progress=False)
    assert bad.flagged and (bad.table["beaten"] > 0).any()
    assert set(zip(bad.diagnostics["arch"], bad.diagnostics["init"])) == {(k.arch, k.init) for k in bad.flagged}
    assert "masking diagnostics" in R.check_reading(bad)
    summary = T.check_table(bad)
    assert summary["flag"].iloc[0].startswith("black box beat") and len(summary) == 2
    assert summary["images beaten"].sum() == bad.table["beaten"].sum()


def test_robust_results_give_each_images_first_eps(zoo, profile, synthetic):
    res = wb.robust_results(profile, {k: zoo[k] for k in list(zoo)[:1]}, progress=False)
    first = next(iter(res.first_eps.values()))
    curve = res.curves
    assert len(first) == 48
    for _, r in curve.iterrows():  # robust accuracy at eps = share of images first broken above it
        assert r["accuracy"] == pytest.approx(float((first > r["eps"] + 1e-12).mean()))


# --------------------------------------------------------------------------- tables, prose, figures
def test_finlayson_tables_prose_and_figures(zoo, profile, synthetic, monkeypatch):
    monkeypatch.setattr(B, "robust_results", _fake_robust(0.0))
    sur = S.trained_surrogates(profile, zoo, progress=False)
    fin = B.finlayson_blackbox(profile, zoo, sur, progress=False)
    assert len(fin) == 2 and set(fin["surrogate_kind"]) == {"seed", "disjoint"}
    fe = wb.finlayson_eps()
    assert (fin["eps"] == fe["eps"]).all() and (fin["steps"] == fe["steps"]).all()
    table = T.finlayson_table(fin)
    assert (table["study: black box"] == references.FINLAYSON_BLACKBOX_PGD["finding"]).all()
    assert table["succeeds (our reading)"].str.match(r"^(yes|no) \(").all()
    transfer = B.transfer_results(profile, zoo, sur, progress=False)
    queries = B.query_results(profile, zoo, progress=False)
    usim = B.usimba_results(profile, zoo, progress=False)
    check = B.whitebox_check(profile, zoo, transfer, queries, progress=False)
    costs = T.cost_table(transfer, queries, usim, check)
    assert {"white-box ensemble (chapter 2)", "square (pneumonia_cxr)"} <= set(costs["attack"])
    wbox = costs[costs["attack"] == "white-box ensemble (chapter 2)"].iloc[0]
    assert wbox["queries to the target per image"] == pytest.approx(10 * 48 / (48 * 2))  # 2 models x 48 images
    assert len(T.transfer_summary(transfer))
    texts = [R.finlayson_reading(fin), R.disjoint_reading(transfer.rows), R.cost_reading(costs),
             R.budget_note(profile)]
    assert all(isinstance(t, str) for t in texts) and all(texts[:3])
    assert "query budget on pneumonia_cxr: 60" in R.budget_note(profile)
    assert len(T.settings_table(profile)) > 10 and len(T.usimba_table(usim, zoo))
    figs = [P.transfer_heatmap(T.transfer_matrix(transfer, TASK)), P.query_curves(queries),
            P.usimba_gallery(usim, profile, zoo), P.transfer_grid(transfer)]
    for f in figs:
        f.savefig(io.BytesIO(), format="png")


def test_page_summaries_are_short_and_read_off_the_long_tables(zoo, profile, synthetic, monkeypatch):
    from advmed import pages, plots

    monkeypatch.setattr(B, "robust_results", _fake_robust(0.0))
    sur = S.trained_surrogates(profile, zoo, progress=False)
    transfer = B.transfer_results(profile, zoo, sur, progress=False)
    queries = B.query_results(profile, zoo, progress=False)
    usim = B.usimba_results(profile, zoo, progress=False)
    check = B.whitebox_check(profile, zoo, transfer, queries, progress=False)
    fin = B.finlayson_blackbox(profile, zoo, sur, progress=False)
    costs = T.cost_table(transfer, queries, usim, check)
    summaries = [T.settings_brief(profile), T.surrogate_summary(sur), T.transfer_brief(transfer),
                 T.finlayson_summary(fin), T.query_summary(queries), T.usimba_summary(usim),
                 T.koga_summary(T.koga_comparison(usim, zoo)), T.check_summary(check), T.cost_summary(costs)]
    assert all(len(t) <= pages.MAX_TABLE_ROWS and len(t.columns) <= 7 for t in summaries)
    best = T.transfer_summary(transfer).iloc[0]
    cell = T.transfer_brief(transfer).set_index("model").loc[plots.model_label(best["target"]),
                                                               plots.task_label(best["task"])]
    assert cell == (f"{best['clean accuracy']:.2f} → {best['best transfer accuracy']:.2f} "
                    f"({best['white-box accuracy']:.2f})")
    assert T.check_summary(check)["images beaten"].sum() == check.table["beaten"].sum()
    assert set(T.cost_summary(costs)["attack"]) >= {"white-box ensemble (chapter 2)", "Square", "SimBA-DCT"}
    for prof in PROFILES.values():
        assert len(T.settings_brief(prof)) <= pages.MAX_TABLE_ROWS


def test_every_profile_sizes_chapter_5_within_its_tasks():
    for prof in PROFILES.values():
        b = prof.blackbox
        assert set(b.query_budgets) <= set(prof.tasks) and set(b.usimba_iterations) <= set(prof.tasks)
        assert set(b.transfer_tasks or ()) <= set(prof.tasks)
        assert any(abs(b.eps_255 - e) < 1e-9 for e in prof.whitebox.eps_255), prof.name  # white box known there
        assert b.query_images <= (b.n_images or 10**9)
    with pytest.raises(ValueError, match="valid: square, simba"):
        get_profile("smoke", blackbox={"query_attacks": ["boundary"]})


def test_adversarialmed_black_box_runs_their_four_attacks_at_their_setting_on_both_surrogates(
        zoo, profile, synthetic, monkeypatch):
    from advmed import pages

    sur = S.trained_surrogates(profile, zoo, progress=False)
    am = B.adversarialmed_blackbox(profile, zoo, sur, progress=False)
    st = wb.adversarialmed_eps()
    assert len(am) == 8 and set(am["surrogate_kind"]) == {"seed", "disjoint"}
    assert list(am["attack"].unique()) == ["fgsm", "ifgsm", "pgd", "mifgsm"]
    assert (am["eps"] == st["eps"]).all()
    assert (am.loc[am["attack"] == "fgsm", "steps"] == 1).all()
    assert (am.loc[am["attack"] != "fgsm", "step"] == st["step"]).all()
    white = wb.adversarialmed_results(profile, {sur[TASK].target: zoo[sur[TASK].target]}, progress=False)
    for _, r in am.iterrows():  # the white-box column is chapter 2's number for the same attack
        assert r["white_accuracy"] == pytest.approx(float(white.set_index("attack").loc[r["attack"], "accuracy"]))
        assert r["accuracy_lo"] <= r["accuracy"] <= r["accuracy_hi"]
    summary = T.adversarialmed_summary(am)
    assert len(summary) <= pages.MAX_TABLE_ROWS and len(summary.columns) <= 7
    assert "white box" in R.adversarialmed_reading(am)
    empty = B.adversarialmed_blackbox(profile, zoo, {}, progress=False)
    assert empty.empty and T.adversarialmed_summary(empty).empty and R.adversarialmed_reading(empty)


def test_query_counts_stay_whole_numbers_beside_a_missing_one():
    from advmed import pages

    counts = pd.DataFrame({"median queries": [T._whole(12.0), T._whole(float("nan")), T._whole(737.4)]})
    assert list(pages.reader_frame(counts)["median queries"]) == ["12", "–", "737"]
