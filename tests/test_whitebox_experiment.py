"""advmed.experiments.whitebox (run, tables, plots, report): sweeps, memoisation, study
tables, figures, prose.

A tiny CNN trained for a second on synthetic two-class images (which half of the image
is brighter) stands in for a real model, so the whole file runs in seconds.
"""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from advmed.experiments import references
from advmed.experiments.profiles import get_profile
from advmed.experiments.whitebox import plots as P
from advmed.experiments.whitebox import report
from advmed.experiments.kernel import evaluation as E
from advmed.experiments.kernel import rows as ROWS
from advmed.experiments.kernel import studies as S
from advmed.experiments.whitebox import run as R
from advmed.experiments.whitebox import tables as T
from advmed.metrics import classification_metrics


def _patch_images(monkeypatch, fake):
    """Every module that selects chapter 2's test images gets ``fake`` instead."""
    for module in (R, E, S):
        monkeypatch.setattr(module, "test_images", fake)


def _images(n: int, seed: int, size: int = 12):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = torch.rand(n, 3, size, size, generator=g) * 0.5 + 0.25
    half = size // 2
    # class 1: left half brighter; class 0: right half brighter (by 0.12 on average)
    x[y == 1, :, :, :half] += 0.12
    x[y == 0, :, :, half:] += 0.12
    return (x.clamp(0, 1) * 255).round().to(torch.uint8), y


def _tiny_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d((2, 2)),
                         nn.Flatten(), nn.Linear(16, 2))


@pytest.fixture(scope="module")
def trained():
    x, y = _images(256, seed=1)
    model = _tiny_cnn()
    opt = torch.optim.Adam(model.parameters(), lr=0.03)
    xf = x.float() / 255
    for _ in range(150):
        opt.zero_grad()
        nn.functional.cross_entropy(model(xf), y).backward()
        opt.step()
    model.eval()
    xt, yt = _images(64, seed=2)
    acc = (model(xt.float() / 255).argmax(1) == yt).float().mean().item()
    assert acc > 0.9, f"the tiny model should learn the synthetic task (accuracy {acc:.2f})"
    return model, xt, yt


def _fake_trained(model, key="abc123", task="toy"):
    cfg = SimpleNamespace(key=lambda: key, size=12, task=task)
    return SimpleNamespace(model=model, config=cfg, init_used="scratch", classes=("neg", "pos"))


def _fake_set(x, y):
    from advmed.data import ImageSet

    return ImageSet(images=x, labels=y, classes=["neg", "pos"], name="toy", split="test")


def test_sweep_rows_and_columns(trained):
    model, x, y = trained
    df = R.attack_sweep(model, x, y, eps_255=[0, 2, 8], steps=3, n_boot=50, progress=False)
    # one clean row, then every (attack, eps > 0)
    assert list(df["attack"]) == ["clean"] + [a for a in R.ATTACKS for _ in (2, 8)]
    assert list(df["eps_255"]) == [0.0] + [2.0, 8.0] * 4
    np.testing.assert_allclose(df["eps"], df["eps_255"] / 255)
    for m in ROWS.METRICS:
        assert {m, f"{m}_lo", f"{m}_hi"} <= set(df.columns)
        ok = df[[m, f"{m}_lo", f"{m}_hi"]].dropna()
        assert (ok[f"{m}_lo"] <= ok[m] + 1e-12).all() and (ok[m] <= ok[f"{m}_hi"] + 1e-12).all()
    assert (df["n"] == len(y)).all()
    fgsm = df[df["attack"] == "fgsm"]
    assert (fgsm["steps"] == 1).all()
    np.testing.assert_allclose(fgsm["step_size"], fgsm["eps"])  # FGSM: one step of eps
    pgd = df[df["attack"] == "pgd"]
    np.testing.assert_allclose(pgd["step_size"], 2.5 * pgd["eps"] / 3)  # Madry's default
    # perturbations stay within budget and are NaN on the clean row
    adv = df[df["attack"] != "clean"]
    assert (adv["linf_max"] <= adv["eps"] + 1e-6).all()
    assert df.loc[0, ["l2_median", "ssim_median"]].isna().all()


def test_clean_row_equals_clean_metrics(trained):
    model, x, y = trained
    df = R.attack_sweep(model, x, y, attacks=["fgsm"], eps_255=[0, 4], n_boot=100, seed=3,
                        progress=False)
    with torch.no_grad():
        proba = torch.softmax(model(x.float() / 255).double(), 1).numpy()
    ref = classification_metrics(y.numpy(), proba, n_boot=100, seed=3)
    clean = df[df["attack"] == "clean"].iloc[0]
    for m in ("accuracy", "auc"):
        assert clean[m] == pytest.approx(ref[m].value)
        assert clean[f"{m}_lo"] == pytest.approx(ref[m].lo)
        assert clean[f"{m}_hi"] == pytest.approx(ref[m].hi)


def test_pgd_accuracy_non_increasing_in_eps(trained):
    model, x, y = trained
    eps = [0, 1, 2, 4, 8, 16]
    df = R.attack_sweep(model, x, y, attacks=["pgd"], eps_255=eps, steps=10, n_boot=0,
                        perturbation=False, progress=False)
    acc = df.sort_values("eps_255")["accuracy"].to_numpy()
    assert np.all(np.diff(acc) <= 1e-12), acc
    assert acc[-1] < acc[0]  # the attack does something
    # ... and it changes the model's decisions, not only its confidence
    assert df["flip_rate"].iloc[-1] > 0


def test_targeted_other_reports_target_rate(trained):
    model, x, y = trained
    df = R.attack_sweep(model, x, y, attacks=["pgd"], eps_255=[0, 16], steps=10, targeted=True,
                        target="other", n_boot=0, progress=False)
    adv = df[df["attack"] == "pgd"].iloc[0]
    # binary: pushed to the other class means wrong, so the two rates add up to 1
    assert adv["target_rate"] == pytest.approx(1 - adv["accuracy"])


def test_whitebox_results_memo_reuse(trained, tmp_cache, monkeypatch):
    model, x, y = trained
    zoo = {("toy", "tiny", "scratch"): _fake_trained(model)}
    _patch_images(monkeypatch, lambda task, profile, **kw: _fake_set(
        x[:profile.whitebox.n_images], y[:profile.whitebox.n_images]))
    prof = get_profile("smoke", whitebox={"n_images": 32, "eps_255": [0, 2, 4], "steps": 2, "restarts": 1},
                       eval={"n_boot": 20}, seeds=[0])
    first = R.whitebox_results(prof, zoo, progress=False)
    assert list(first.columns[:5]) == ["task", "arch", "init", "init_used", "size"]
    assert len(first) == 1 + 4 * 2 and (first["n"] == 32).all()

    def boom(name):
        raise AssertionError("a memoised sweep must not attack again")

    monkeypatch.setattr(E, "get_attack", boom)
    again = R.whitebox_results(prof, zoo, progress=False)
    pd.testing.assert_frame_equal(first, again, check_dtype=False)
    # another image selection is another key: it is computed (and here fails loudly)
    with pytest.raises(AssertionError, match="must not attack"):
        R.whitebox_results(get_profile(prof, whitebox={"n_images": 16}), zoo, progress=False)


def test_adversarialmed_comparison_units(trained, tmp_cache, monkeypatch):
    model, x, y = trained
    zoo = {("pneumonia_cxr", "tiny", "scratch"): _fake_trained(model, task="pneumonia_cxr"),
           ("other_task", "tiny", "scratch"): _fake_trained(model, key="zzz", task="other_task")}
    _patch_images(monkeypatch, lambda task, profile, **kw: _fake_set(x, y))
    prof = get_profile("smoke", whitebox={"n_images": "all"}, eval={"n_boot": 20}, seeds=[0])
    res = R.adversarialmed_results(prof, zoo, progress=False)
    assert set(res["task"]) == {"pneumonia_cxr"}  # only the study's task
    table = T.adversarialmed_comparison(res)
    assert "iterative attack" in report.adversarialmed_reading(table, prof) or report.adversarialmed_reading(
        table, prof).startswith("Our FGSM accuracy")
    assert list(table["attack"]) == ["clean", "FGSM", "I-FGSM", "PGD", "MI-FGSM"]
    adv = table[table["attack"] != "clean"]
    expected = references.eps_to_pixels(0.02, "imagenet_normalised")
    assert expected == pytest.approx(0.00452)
    assert (adv["eps (pixels)"] == round(expected, 5)).all()
    assert (adv["eps (/255)"] == round(expected * 255, 2)).all() and expected * 255 == pytest.approx(1.1526)
    assert (adv["eps (study, normalised)"] == 0.02).all()
    steps = dict(zip(table["attack"], table["steps × step (pixels)"]))
    assert steps["FGSM"] == "1 × 0.00452"  # FGSM: one step of eps
    assert all(steps[a] == "10 × 0.00113" for a in ("I-FGSM", "PGD", "MI-FGSM"))
    study = {r["attack"]: r for r in references.ADVERSARIALMED_ATTACKS["rows"]}
    for _, row in table.iterrows():
        key = {"clean": "clean", "FGSM": "fgsm", "I-FGSM": "ifgsm", "PGD": "pgd", "MI-FGSM": "mifgsm"}[row["attack"]]
        assert row["accuracy study"] == study[key]["accuracy"]
        assert row["accuracy ours − study"] == pytest.approx(row["accuracy ours"] - study[key]["accuracy"], abs=1e-3)
        assert row["auc ours − study"] == pytest.approx(row["auc ours"] - study[key]["auc"], abs=1e-3)


def test_finlayson_comparison_units(trained, tmp_cache, monkeypatch):
    model, x, y = trained
    zoo = {("melanoma_derm", "tiny", "scratch"): _fake_trained(model, task="melanoma_derm"),
           ("pneumoniamnist", "tiny", "scratch"): _fake_trained(model, key="k2", task="pneumoniamnist")}
    _patch_images(monkeypatch, lambda task, profile, **kw: _fake_set(x, y))
    prof = get_profile("smoke", whitebox={"n_images": "all"}, eval={"n_boot": 20}, seeds=[0])
    res = R.finlayson_results(prof, zoo, progress=False)
    table = T.finlayson_comparison(res)
    reading = report.finlayson_reading(res)
    assert reading.count("\n- ") == len(table) and "melanoma_derm / tiny" in reading
    assert list(table["task"]) == ["melanoma_derm", "pneumoniamnist"]
    assert (table["eps (pixels)"] == 0.01).all() and (table["eps (/255)"] == 2.55).all()
    assert (table["eps (study, [-1, 1])"] == 0.02).all()
    assert (table["steps × step (pixels)"] == "20 × 0.0050").all()
    mel = table.iloc[0]
    assert mel["accuracy study"] == 0.0
    assert mel["accuracy ours − study"] == pytest.approx(mel["accuracy ours"])
    assert np.isnan(table.iloc[1]["accuracy study"])  # a task the study did not run


def test_eps_conventions_table():
    t = T.eps_conventions().set_index("study")
    assert t.loc["AdversarialMed", "eps (pixels)"] == pytest.approx(0.02 * 0.226, abs=1e-5)
    assert t.loc["Finlayson et al.", "eps (pixels)"] == pytest.approx(0.01)
    assert t.loc["Finlayson et al.", "step (pixels)"] == pytest.approx(0.005)


def test_tables_and_figures(trained):
    model, x, y = trained
    df = R.attack_sweep(model, x, y, eps_255=[0, 1, 4], steps=2, n_boot=20, progress=False)
    df = df.assign(task="toy", arch="tiny", init="scratch", init_used="scratch", size=12)
    perc = T.perceptibility_table(df, eps_255=4)
    assert len(perc) == 4 and (perc["eps_255"] == 4).all()
    assert perc["Linf (/255)"].str.startswith("4.00").all()
    grid = T.accuracy_grid(df)
    assert list(grid.columns) == ["0/255", "1/255", "4/255"] and len(grid) == 4
    assert len(T.sweep_table(df)) == len(df)
    fig = P.gallery(model, x, y, ("neg", "pos"), attack="pgd", eps_255=4, steps=3, n_images=2)
    assert len(fig.axes) == 8 and "perturbation × 32" in fig.axes[1].get_title()


def test_sweeps_split_the_harm_by_clinical_direction_when_the_task_names_its_disease(trained):
    model, x, y = trained
    tm = SimpleNamespace(model=model, config=SimpleNamespace(task="pneumoniamnist"), classes=("normal", "pneumonia"))
    df = R.attack_sweep(tm, x, y, eps_255=[0, 8], steps=3, n_boot=20, progress=False)
    clean_pred = model(x.float() / 255).argmax(1).numpy()
    right = clean_pred == y.numpy()
    assert (df["n_disease"] == int((right & (y.numpy() == 1)).sum())).all()  # pneumonia is class 1
    assert (df["n_normal"] == int((right & (y.numpy() == 0)).sum())).all()
    pgd = df[(df["attack"] == "pgd")].iloc[0]
    # binary task: every flip of a clean-correct image is one of the two harms
    assert pgd["flip_rate"] == pytest.approx((pgd["missed_rate"] * pgd["n_disease"] + pgd["false_alarm_rate"]
                                              * pgd["n_normal"]) / (pgd["n_disease"] + pgd["n_normal"]))
    assert df.loc[df["attack"] == "clean", ["missed_rate", "false_alarm_rate"]].eq(0).all(axis=None)
    table = T.harm_summary(df.assign(task="pneumoniamnist", arch="tiny", init="scratch", init_used="scratch"), 8)
    assert list(table.columns) == ["task", "model", "missed diagnoses", "false alarms"] and len(table) == 1
    assert "missed_rate" not in R.attack_sweep(model, x, y, eps_255=[0, 8], steps=1, n_boot=0, progress=False)


def test_gray_images_are_attacked_in_one_channel(trained):
    from advmed.attacks import pgd
    from advmed.models import as_rgb, gray_view

    model, x, y = trained
    gray = x[:, :1].repeat(1, 3, 1, 1)
    m_att, x_att, is_gray = gray_view(model, gray.float() / 255)
    assert is_gray and x_att.shape[1] == 1
    x_adv = as_rgb(pgd(m_att, x_att, y, eps=4 / 255, steps=3), 3)
    assert torch.equal(x_adv[:, 0], x_adv[:, 1]) and torch.equal(x_adv[:, 0], x_adv[:, 2])
    df = R.attack_sweep(model, gray, y, attacks=["pgd"], eps_255=[0, 4], steps=3, n_boot=0, progress=False)
    assert set(df["channels"]) == {1}
    colour = R.attack_sweep(model, x, y, attacks=["pgd"], eps_255=[0, 4], steps=3, n_boot=0, progress=False)
    assert set(colour["channels"]) == {3}


def test_robust_results_monotone_and_never_above_a_single_attack(trained, tmp_cache, monkeypatch):
    model, x, y = trained
    zoo = {("toy", "tiny", "scratch"): _fake_trained(model)}
    _patch_images(monkeypatch, lambda task, profile, **kw: _fake_set(x, y))
    prof = get_profile("smoke", whitebox={"n_images": "all", "eps_255": [0, 2, 4, 8], "steps": 10,
                                          "robust_steps": 10, "pgd_restarts": 2}, eval={"n_boot": 20})
    robust = R.robust_results(prof, zoo, progress=False)
    curve = robust.curves.sort_values("eps_255")
    assert list(curve["eps_255"]) == [0, 2, 4, 8] and (curve["attack"] == R.ENSEMBLE).all()
    acc = curve["accuracy"].to_numpy()
    assert (np.diff(acc) <= 1e-12).all(), "nested budgets: the worst case can only fall"
    single = R.whitebox_results(prof, zoo, progress=False)
    for e in (2, 4, 8):
        best_single = single[(single["eps_255"] == e) & (single["attack"] != "clean")]["accuracy"].min()
        assert curve.loc[curve["eps_255"] == e, "accuracy"].item() <= best_single + 1e-12
    assert {"member", "attacked", "broken", "gradients"} <= set(robust.costs.columns)
    assert (robust.costs.groupby("member")["broken"].sum() >= 0).all()
    table = T.robust_table(robust.curves)
    assert list(table.columns) == ["model", "clean", "2/255", "4/255", "8/255"] and len(table) == 1
    assert {"accuracy_8bit", "deliverable"} <= set(robust.curves.columns)
    assert len(T.robust_cost_table(robust.costs)) == len(robust.costs)
    assert "Worst case over the ensemble" in report.robust_reading(robust.curves, single, pd.DataFrame())


def test_diagnostics_results_one_row_per_check(trained, tmp_cache, monkeypatch):
    model, x, y = trained
    zoo = {("toy", "tiny", "scratch"): _fake_trained(model),
           ("toy", "other", "scratch"): _fake_trained(_tiny_cnn().eval(), key="zz2")}
    _patch_images(monkeypatch, lambda task, profile, **kw: _fake_set(x, y))
    prof = get_profile("smoke", eval={"n_boot": 0})
    diag = R.diagnostics_results(prof, zoo, progress=False)
    assert set(diag["check"]) >= {"steps_restarts", "ce_vs_margin", "whitebox_vs_transfer", "reaches_zero",
                                  "single_step", "monotone_eps"}
    assert set(diag["surrogate"]) == {"other (scratch)", "tiny (scratch)"}
    assert diag["passed"].dtype == bool and (diag["n"] == prof.whitebox.diag_images).all()
    table = T.diagnostics_table(diag)
    assert len(table) == 2 and set(table["believed"]) <= {"yes", "no"}
    assert ((table["believed"] == "yes") == (table["flagged by"] == "none")).all()
    assert report.diagnostics_reading(diag).startswith(f"{int(diag.groupby('arch')['passed'].all().sum())} of 2")


def test_early_stopped_sweeps_are_nested_so_each_attack_is_monotone_in_eps(trained):
    model, x, y = trained
    df = R.attack_sweep(model, x, y, attacks=["pgd", "fgsm"], eps_255=[0, 1, 2, 4, 8], steps=3, n_boot=0,
                        early_stop=True, progress=False)
    for attack, g in df[df["attack"] != "clean"].groupby("attack"):
        acc = g.sort_values("eps_255")["accuracy"].to_numpy()
        assert (np.diff(acc) <= 1e-12).all(), (attack, acc)
    fresh = R.attack_sweep(model, x, y, attacks=["fgsm"], eps_255=[0, 1, 2, 4, 8], n_boot=0, progress=False)
    nested = df[df["attack"] == "fgsm"].set_index("eps_255")["accuracy"]
    assert (nested <= fresh[fresh["attack"] == "fgsm"].set_index("eps_255")["accuracy"] + 1e-12).all()


def test_adding_an_attack_computes_only_that_attack(trained, tmp_cache, monkeypatch):
    """Each attack of a sweep is its own memo entry: a sweep with one more attack reads the
    stored ones and attacks with the new one only, and its rows equal the one-sweep result."""
    model, x, y = trained
    tm, images = _fake_trained(model), _fake_set(x[:32], y[:32])
    kw = dict(settings={"n_images": 32}, eps_255=[0, 2, 4], steps=2, seed=0, n_boot=20, early_stop=True)
    first = E.memoised_sweep("whitebox", tm, images, attacks=["fgsm", "pgd"], **kw)
    called = []
    real = E.get_attack

    def spy(name):
        called.append(name)
        return real(name)

    monkeypatch.setattr(E, "get_attack", spy)
    more = E.memoised_sweep("whitebox", tm, images, attacks=["fgsm", "pgd", "mifgsm"], **kw)
    assert set(called) == {"mifgsm"}
    pd.testing.assert_frame_equal(more[more["attack"] != "mifgsm"].reset_index(drop=True), first,
                                  check_dtype=False)
    together = E.attack_sweep(model, x[:32], y[:32], attacks=["fgsm", "pgd", "mifgsm"], eps_255=[0, 2, 4],
                              steps=2, seed=0, n_boot=20, early_stop=True, progress=False)
    pd.testing.assert_frame_equal(more, together, check_dtype=False)
