"""advmed.experiments.defenses (chapter 7): typed, complete results; the adaptive attacker at
least as strong as the oblivious one on every defense; defenses keep clean accuracy; the profile
section validated.

No real data and no checkpoints: the synthetic world of tests/defense_world.py (tiny CNNs
fitted in a second on synthetic two-class images stand in for the zoo and the adversarially /
noise-trained models; the data layer and the checkpoint cache are monkeypatched, and every
result goes to a private cache).
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.figure import Figure

from torch import nn

from advmed.experiments import references
from advmed.experiments.defenses import cells as C
from advmed.experiments.defenses import plots as P
from advmed.experiments.defenses import registry as REG
from advmed.experiments.defenses import report as R
from advmed.experiments.defenses import run as D
from advmed.experiments.defenses import tables as T
from advmed.experiments.profiles import DRY_RUN, PROFILES, SECTIONS, DefenseSettings, get_profile

from advmed.attacks.escalate import CONVERGED, NOT_CONVERGED
from defense_world import EPS_255, TASK, fit, world
from robust_models import Shattered

torch.set_num_threads(1)

#: Clean accuracy a defense may lose on these synthetic images: JPEG at quality 20 and a small
#: VAE blur a 12-px image. A VAE given 60 optimisation steps collapsed to one class (0.5) for one
#: seed; with 150 steps every defense kept 1.0 over 3 VAE widths and epoch counts tried.
CLEAN_MARGIN = 0.15


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    with world(tmp_path_factory.mktemp("cache")) as w:
        yield w


# --------------------------------------------------------------------------- results
def test_results_are_typed_and_complete(results):
    res, prof, trained, _ = results
    assert isinstance(res, D.DefenseResults) and all(isinstance(r, D.DefenseRun) for r in res.runs)
    assert [r.defense for r in res.runs] == ["none", "jpeg", "at_adversarialmed", "at_adversarialmed_fgsm", "bitdepth",
                                             "vae", "uap_retraining"]
    for r in res.runs:
        assert set(r.curves.attacker) == set(D.ATTACKERS)
        assert sorted(set(r.curves.eps_255)) == list(EPS_255)
        for col in ("accuracy", "auc"):
            assert r.curves[col].between(0, 1).all() and 0 <= r.clean[col].iloc[0] <= 1
        assert r.train_seconds >= 0 and r.infer_seconds > 0
        assert (len(r.diagnostics) > 0) == (r.defense != "none")
        assert set(r.sources.source) >= {"ensemble", "oblivious images", D.AUC_SOURCE}
        sa = r.study_attacks
        assert len(sa) == 2 * (len(D.STUDY_ATTACKS) + 1) and sa.accuracy.between(0, 1).all()
        assert (sa.attack == D.AUC_ATTACK).sum() == 2  # the strongest AUC measure, for both attackers
        assert {"accuracy_8bit", "auc_8bit"} <= set(sa.columns) and {"accuracy_8bit", "auc_8bit"} <= set(r.curves)
        assert np.allclose(sa.eps_255, references.ADVERSARIALMED_ATTACKS["eps_normalised"]
                           * references.IMAGENET_MEAN_STD * 255)
    assert set(res.get(TASK, "jpeg").sources.source) >= {"differentiable JPEG"}
    assert set(res.get(TASK, "vae").sources.source) >= {"EOT through the sampled VAE"}
    hist = res.get(TASK, "uap_retraining").history
    assert len(hist) == prof.defense.retrain_rounds and hist.fooling_before.between(0, 1).all()
    # the adversarially trained model came through the checkpoint cache with its objective in the config
    methods = [c.adversarial.method for c in trained if c.adversarial is not None]
    assert set(methods) == {"adversarialmed", "adversarialmed_fgsm", "gaussian"}
    one_step = next(c.adversarial for c in trained if c.adversarial.method == "adversarialmed_fgsm")
    assert (one_step.steps, one_step.step_size, one_step.clean_weight) == (1, one_step.eps, 0.7)
    cert = res.certified
    assert isinstance(cert, D.CertifiedRun) and cert.n_images == prof.defense.smoothing_images
    assert np.all(np.diff(cert.curve.certified_accuracy.to_numpy()) <= 1e-12)  # fewer images at larger radii


def test_adaptive_attack_is_at_least_as_strong_as_the_oblivious_one_on_every_defense(results):
    res = results[0]
    for r in res.runs:
        for e in EPS_255:
            assert r.robust("adaptive", e) <= r.robust("oblivious", e) + 1e-12, (r.defense, e)
        # each source alone leaves at least the worst case (the worst case is over them all)
        for e in EPS_255:
            alone = r.sources[np.isclose(r.sources.eps_255, e)].accuracy
            assert r.robust("adaptive", e) <= alone.min() + 1e-12


def test_adaptive_attacker_breaks_jpeg_beyond_the_oblivious_one_or_equals_it(results):
    """BPDA must reach the real codec: its ensemble leaves no more than the oblivious images at the
    largest budget (a zero-gradient attacker would leave the clean accuracy)."""
    jpeg = results[0].get(TASK, "jpeg")
    s = jpeg.sources[np.isclose(jpeg.sources.eps_255, max(EPS_255))].set_index("source").accuracy
    assert s["ensemble"] < float(jpeg.clean.accuracy.iloc[0])


def test_defenses_keep_clean_accuracy_within_the_stated_margin(results):
    res = results[0]
    base = float(res.get(TASK, "none").clean.accuracy.iloc[0])
    assert base >= 0.8  # the synthetic task is learnable, so the margin means something
    for r in res.runs:
        assert float(r.clean.accuracy.iloc[0]) >= base - CLEAN_MARGIN, r.defense


def test_results_are_memoised(results, monkeypatch):
    res, prof, _, zoo = results
    # a second run reads every defense back from the cache: no attack may run
    monkeypatch.setattr(D, "evaluate_defense", lambda *a, **k: pytest.fail("recomputed a memoised defense"))
    again = D.defense_results(prof, zoo, progress=False)
    assert [r.defense for r in again.runs] == [r.defense for r in res.runs]
    for a, b in zip(again.runs, res.runs):
        pd.testing.assert_frame_equal(a.curves, b.curves)


def test_a_stored_run_builds_no_defense_and_its_identity_is_the_built_ones(results, monkeypatch):
    _, prof, _, zoo = results
    key, tm = D.ModelKey(TASK, "tiny", "scratch"), zoo[(TASK, "tiny", "scratch")]
    # what the memo keys hold, computed without the defense, is what the built defense says
    for name in D.defense_names(prof):
        d = D.defended(TASK, name, tm, prof)
        assert D.defense_identity(TASK, name, tm, prof) == (d.model_key, d.extra), name
        assert set(d.extra_sources) == set(REG.get_defense(name).sources), name  # the explorer names each source
    assert D.defense_identity(TASK, "jpeg", tm, prof, quality=50) == (tm.config.key(), {"quality": 50})
    # read back, no defense is built: no adversarial training, VAE or retraining is loaded
    monkeypatch.setattr(D, "defended", lambda *a, **k: pytest.fail("built a defense for a stored run"))
    for name in D.defense_names(prof):
        assert D.defense_run(TASK, key, tm, name, prof).defense == name
    with pytest.raises(KeyError, match="valid: none, jpeg"):
        D.defense_identity(TASK, "bogus", tm, prof)


# --------------------------------------------------------------------------- the registry
def test_the_registry_names_each_defense_once_and_refuses_unknown_ones():
    assert all(name == spec.name for name, spec in REG.DEFENSES.items())
    assert len({s.label for s in REG.DEFENSES.values()}) == len(REG.DEFENSES) and REG.REFERENCE == "none"
    assert D.DEFENSES is REG.DEFENSES and D.LABELS == {n: s.label for n, s in REG.DEFENSES.items()}
    with pytest.raises(KeyError, match="valid defenses: none, jpeg, at_adversarialmed"):
        REG.get_defense("bogus")
    # the order of the tables is the registry's; adversarial training where the profile lists the method
    assert D.defense_names(PROFILES["paper"]) == ["none", "jpeg", "at_adversarialmed", "at_adversarialmed_fgsm",
                                                  "at_pgd", "bitdepth", "vae", "uap_retraining"]
    assert D.defense_names(PROFILES["smoke"]) == ["none", "jpeg", "at_adversarialmed", "at_adversarialmed_fgsm",
                                                  "bitdepth", "vae", "uap_retraining"]
    no_bits = dataclasses.replace(PROFILES["smoke"], defense=dataclasses.replace(PROFILES["smoke"].defense,
                                                                                bitdepth_bits=None))
    assert "bitdepth" not in D.defense_names(no_bits)
    assert {c: REG.claimed(c) for c in REG.CLAIMS} == {"adversarial_training": ["at_adversarialmed"],
                                                       "fgsm_training": ["at_adversarialmed_fgsm"],
                                                       "preprocessing": ["jpeg", "vae"],
                                                       "retraining": ["uap_retraining"]}
    with pytest.raises(ValueError, match="valid: adversarial_training"):
        REG.DefenseSpec("x", "x", REG.DEFENSES["none"].build, REG.DEFENSES["none"].identity, claim="bogus")


class _Blur(nn.Module):
    """A 3 x 3 mean filter in front of a model: the new defense of the registry test."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.pool, self.model = nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False), model

    def forward(self, x):
        return self.model(self.pool(x))


def _blur_build(task, tm, profile):
    model = _Blur(tm.model.eval())
    return D.Defended(model, model, {}, "the robust ensemble through the blur", tm.config.key(), extra={"kernel": 3})


def _blur_identity(task, tm, profile):
    return tm.config.key(), {"kernel": 3}


def test_a_new_defense_is_one_registry_entry(results, monkeypatch):
    """A defense registered in DEFENSES (its module's build and identity) is measured, tabled,
    read and listed as a cell without any other change."""
    res, prof, _, zoo = results
    spec = REG.DefenseSpec("blur", "mean filter (3 x 3)", _blur_build, _blur_identity,
                           cost=lambda profile, task, cfg: 1000, noun="the mean filter")
    monkeypatch.setitem(REG.DEFENSES, "blur", spec)
    assert D.defense_names(prof)[-1] == "blur"
    key, tm = D.ModelKey(TASK, "tiny", "scratch"), zoo[(TASK, "tiny", "scratch")]
    (r,) = D.task_defenses(TASK, key, tm, prof, only=["blur"])
    assert (r.defense, r.label) == ("blur", "mean filter (3 x 3)") and len(r.diagnostics) > 0
    for e in EPS_255:
        assert r.robust("adaptive", e) <= r.robust("oblivious", e) + 1e-12
    both = D.DefenseResults(res.runs + [r], None)
    assert "mean filter (3 x 3)" in set(T.defense_table(both, max(EPS_255)).defense)
    assert f"{len(both.runs) - 1} defended models" in R.diagnostics_reading(both)  # the reference is not one
    assert {p.defense for p in R.claim_numbers(both).preprocessing} == {"jpeg", "vae"}  # no claim: not read as one
    smoke = PROFILES["smoke"]
    evals = {c.name: c for c in C.cells(smoke) if c.name.startswith("defenses/eval/")}
    task = smoke.defense.tasks[0]
    blur, none = evals[f"defenses/eval/{task}/blur"], evals[f"defenses/eval/{task}/none"]
    assert blur.cost_gmac > none.cost_gmac  # the diagnostics and its own cost on top of the reference's


def _masked_build(task, tm, profile):
    # another classifier of the task (so the undefended model's images transfer imperfectly) whose input
    # gradient is zero: the gradient attacks find nothing, transfer and Square do
    model = Shattered(fit(5).eval())
    return D.Defended(model, model, {}, "the robust ensemble (no gradient reaches it)", tm.config.key(),
                      extra={"masked": True})


def test_a_flagged_defense_is_escalated_not_labelled(results, monkeypatch):
    """A defense that hides its gradient: the diagnostics flag it, every budget is escalated (the
    gradient stages, transfer from the undefended model, Square last), the escalated worst case is
    never above the one it started from, and the table reports it with its status and path, never
    "unevaluated". (That escalation lowers accuracy on a masked model: tests/test_escalate.py; on
    this synthetic task the oblivious images already reach what any attack reaches.)"""
    res, prof, _, zoo = results
    spec = REG.DefenseSpec("masked", "gradient-masked", _masked_build, lambda task, tm, profile: (tm.config.key(),
                           {"masked": True}), cost=lambda profile, task, cfg: 1000, noun="the masked model")
    monkeypatch.setitem(REG.DEFENSES, "masked", spec)
    key, tm = D.ModelKey(TASK, "tiny", "scratch"), zoo[(TASK, "tiny", "scratch")]
    (r,) = D.task_defenses(TASK, key, tm, prof, only=["masked"])
    none = res.get(TASK, "none")
    assert r.flagged and len(r.escalation) and r.evaluation in (CONVERGED, NOT_CONVERGED)
    for e in EPS_255:
        path = r.escalation_at(e)
        assert path.stage.iloc[0] == "adaptive worst case" and path.stage.iloc[-1].startswith("Square")
        assert r.robust("adaptive", e) <= float(path.accuracy.iloc[0]) + 1e-12
    top = max(EPS_255)
    assert set(r.escalation_at(top).source) >= {"the defense's attackable view", "the undefended model",
                                                 "scored model"}
    table = T.defense_table(D.DefenseResults([none, r], None), top)
    assert table.diagnostics.iloc[1].startswith("flagged") and r.evaluation in table.diagnostics.iloc[1]
    assert "->" in table.escalation.iloc[1] and table.escalation.iloc[0] == ""
    assert not any("unevaluated" in str(v) for v in table.to_numpy().ravel())
    assert set(T.escalation_table(D.DefenseResults([none, r], None)).defense) == {"gradient-masked"}
    summary = T.defense_summary(D.DefenseResults([none, r], None), top)
    assert list(summary.evaluation) == ["reference", "upper bound" if r.evaluation == NOT_CONVERGED else "converged"]
    bound = dataclasses.replace(r, escalation=r.escalation.assign(converged=False))
    assert bound.evaluation == NOT_CONVERGED
    assert T.defense_summary(D.DefenseResults([none, bound], None), top).evaluation.iloc[1] == "upper bound"


def test_smoothing_radii_end_at_the_largest_certifiable_radius_in_the_books_units(results):
    from scipy import stats

    from advmed.experiments.defenses.smoothing import certifiable_radii, max_certifiable_radius

    cert = results[0].certified
    three = cert.sigma * stats.norm.ppf(cert.alpha ** (1 / cert.n))  # every vote for one class
    assert max_certifiable_radius(cert.sigma, cert.n, cert.alpha) == pytest.approx(three)
    scale = 1 / np.sqrt(3) if cert.units.startswith("L2 of the one-channel") else 1.0
    assert cert.max_radius == pytest.approx(three * scale)
    assert cert.curve.radius.iloc[-1] == pytest.approx(cert.max_radius)
    assert (cert.curve.radius <= cert.max_radius + 1e-12).all()
    assert certifiable_radii([0.0, 0.25, 0.5, 1.0], 0.4) == [0.0, 0.25, 0.4]
    assert max_certifiable_radius(0.25, 8, 0.001) == 0 and certifiable_radii([0.0, 0.5], 0.0) == [0.0]  # 8 votes: none


def test_regularisation_experiment_pairs_the_recipes_by_seed_and_claim_14_reads_it(results):
    from advmed.experiments.claims import run as claims_run
    from advmed.experiments.defenses import regularisation as RG

    res, prof, _, _ = results
    r = res.regularisation
    s = prof.defense
    assert len(r) == len(s.regularisation_fractions) * s.regularisation_seeds * 2
    assert r.clean_auc.between(0, 1).all() and set(r.recipe) == {RG.STANDARD, RG.ADVERSARIAL}
    # both recipes of a seed train on the same images; a smaller fraction on fewer
    assert (r.groupby(["fraction", "seed"]).n_train.nunique() == 1).all()
    sizes = r.groupby("fraction").n_train.first()
    assert sizes.is_monotonic_increasing and sizes.iloc[0] < sizes.iloc[-1]
    summary = RG.regularisation_summary(r)
    for row in summary.itertuples():
        g = r[r.fraction == row.fraction].pivot_table(index="seed", columns="recipe", values="clean_auc")
        assert row.difference == pytest.approx(float((g[RG.ADVERSARIAL] - g[RG.STANDARD]).mean()))
        assert row.difference_lo <= row.difference <= row.difference_hi  # two seeds: a t-interval
    claims = R.claim_numbers(res)
    assert [c.fraction for c in claims.regularisation] == sorted(s.regularisation_fractions)
    ctx = claims_run.Context(prof, records=[R.headline_record(prof, results[3], claims, res)])
    assert claims_run.claim_14(ctx).verdict in ("agrees", "disagrees", "inconclusive")
    assert isinstance(P.regularisation_curve(res), Figure) and len(T.regularisation_table(res)) == len(summary)


def test_worst_case_takes_the_lowest_margin_and_nests_the_budgets():
    y = np.array([0, 1])
    a = np.array([[[0.9, 0.1], [0.2, 0.8]], [[0.6, 0.4], [0.4, 0.6]]])   # (E=2, N=2, K=2)
    b = np.array([[[0.4, 0.6], [0.3, 0.7]], [[0.7, 0.3], [0.45, 0.55]]])
    w = D.worst_case([a, b], y)
    assert np.allclose(w[0], [[0.4, 0.6], [0.3, 0.7]])      # b is worse for both images at the first budget
    # image 0: its first-budget image (margin -0.2) lies in the larger ball and beats both there;
    # image 1: b's (margin 0.1) beats a's (0.2) and its own first-budget image (0.4)
    assert np.allclose(w[1], [[0.4, 0.6], [0.45, 0.55]])
    acc = (w.argmax(2) == y).mean(1)
    assert acc[1] <= acc[0]


# --------------------------------------------------------------------------- tables, claims, plots
def test_study_table_carries_the_studies_figures_and_both_attackers(results):
    res = results[0]
    st = T.study_table(res)
    ref = references.ADVERSARIALMED_DEFENSES
    assert {"ours (oblivious)", "ours (adaptive)", "study figure"} <= set(st.columns)
    assert any(f"{ref['at_clean_auc']:.2f}" in v for v in st["study figure"])
    assert any(f"{ref['at_robust_auc_min']:.2f}" in v for v in st["study figure"])
    assert (st.study == "Hirano et al.").sum() == 1
    table = T.defense_table(res, T.nearest_eps(res, 4))
    assert len(table) == len(res.runs) and (table.adaptive_minus_oblivious <= 1e-12).all()


def test_claim_numbers_are_typed_and_match_the_runs(results):
    res = results[0]
    c = R.claim_numbers(res)
    assert isinstance(c, R.DefenseClaims)
    at = c.adversarial_training[0]
    run = res.get(TASK, "at_adversarialmed")
    assert isinstance(at, R.ATNumbers) and at.clean_auc == pytest.approx(float(run.clean.auc.iloc[0]))
    assert at.robust_auc_adaptive == pytest.approx(run.robust("adaptive", at.eps_255, "auc"))
    assert {p.defense for p in c.preprocessing} == {"jpeg", "vae"}
    for p in c.preprocessing:
        assert p.adaptive_accuracy <= p.oblivious_accuracy + 1e-12
    rt = c.retraining[0]
    assert isinstance(rt, R.RetrainingNumbers) and rt.helped == (rt.fooling_before - rt.fooling_after
                                                                 >= T.RETRAINING_HELPED)
    for text in (R.at_reading(c), R.preprocessing_reading(c), R.retraining_reading(c), R.certified_reading(res),
                 R.diagnostics_reading(res)):
        assert isinstance(text, str) and text


def test_plots_return_figures(results):
    res = results[0]
    for fig in (P.clean_vs_robust(res, 4.0), P.robust_curves(res), P.certified_curve(res.certified), P.at_curves(res)):
        assert isinstance(fig, Figure)


def test_the_adversarially_trained_runs_keep_their_training_curves(results):
    res = results[0]
    curves = res.training_curves()
    at = [r for r in res.runs if r.defense.startswith("at_")]
    assert at and {r.defense for r in curves} == {r.defense for r in at}  # AT runs only, every one of them
    for r in curves:
        assert int(r.history.loc[r.history["best"].astype(bool), "epoch"].iloc[0]) == 2


def test_at_training_reading_tells_patience_stops_from_runs_still_improving_at_the_cap(results):
    from advmed.experiments.defenses.builders.adversarial import adversarial_train_config

    res, prof, _, zoo = results
    prof = dataclasses.replace(prof, defense=dataclasses.replace(prof.defense, at_train={"epochs": 6, "patience": 2}))
    run = res.training_curves()[0]
    arch, init = run.model.split(":", 1)
    cfg = adversarial_train_config(zoo[(run.task, arch, init)].config, run.defense.removeprefix("at_"), prof)
    cap, patience = int(cfg.epochs), int(cfg.patience)

    def only(n_epochs: int, best: int) -> D.DefenseResults:
        hist = pd.DataFrame({"epoch": range(1, n_epochs + 1), "val_robust_bal_acc": np.linspace(0.1, 0.5, n_epochs),
                             "best": [e == best for e in range(1, n_epochs + 1)]})
        return dataclasses.replace(res, runs=[dataclasses.replace(run, history=hist)])

    improving = R.at_training_reading(only(cap, cap), zoo, prof)
    assert "0 stopped" in improving and "1 kept one of their last epochs at the cap, still improving" in improving
    assert f"{run.label}, epoch {cap} of {cap}" in improving
    stopped = R.at_training_reading(only(1 + patience, 1), zoo, prof)
    assert stopped.startswith("Of the 1 adversarially trained models, 1 stopped") and "still improving" not in stopped


# --------------------------------------------------------------------------- the profile section
def test_every_profile_has_a_defense_section_and_a_dry_run_size():
    assert SECTIONS["defense"] is DefenseSettings and "defense" in DRY_RUN
    for name, prof in PROFILES.items():
        assert isinstance(prof.defense, DefenseSettings), name
    dry, paper = PROFILES["paper-dry"].defense, PROFILES["paper"].defense
    assert dry.adversarial == paper.adversarial and dry.smoothing_task == paper.smoothing_task
    assert dry.n_images <= 8 and dry.steps <= 2 and len(dry.eps_255) == 1


@pytest.mark.parametrize("change, match", [({"adversarial": ("trades",)}, "valid: adversarialmed"),
                                           ({"eps_255": (0, 1)}, "budgets > 0"),
                                           ({"retrain_norm": "l1"}, "valid: linf, l2"),
                                           ({"jpeg_quality": 0}, "1..100"),
                                           ({"steps": 0}, "steps must be >= 1")])
def test_bad_defense_settings_are_refused_with_the_valid_values(change, match):
    with pytest.raises(ValueError, match=match):
        dataclasses.replace(PROFILES["smoke"].defense, **change)


def test_chapter_parameters_reach_the_defense_section():
    prof = get_profile("smoke", defense={"eps_255": [2, 8], "retrain_rounds": 3, "tasks": None})
    assert prof.defense.eps_255 == (2, 8) and prof.defense.retrain_rounds == 3
    assert prof.defense.tasks == PROFILES["smoke"].defense.tasks  # None: the profile's
    with pytest.raises(KeyError, match="valid"):
        get_profile("smoke", defense={"bogus": 1})


def test_adversarial_training_fine_tunes_the_zoo_model_and_the_regularisation_runs_do_not(results):
    from advmed.experiments.defenses import regularisation as RG
    from advmed.experiments.defenses.builders.adversarial import adversarial_train_config

    res, prof, trained, zoo = results
    base = next(iter(zoo.values())).config
    at = [c for c in trained if c.adversarial is not None and c.adversarial.crafts_examples and c.warm_start]
    assert {c.adversarial.method for c in at} == set(prof.defense.adversarial)
    assert all(c.warm_start == base for c in at)
    assert all(c.warm_start is None for _, _, c in RG.regularisation_configs(prof, base))
    cold = dataclasses.replace(prof, defense=dataclasses.replace(prof.defense, at_warm_start=False))
    assert adversarial_train_config(base, "adversarialmed", cold).warm_start is None


def test_ranking_orders_the_defenses_by_mean_adaptive_accuracy_and_reads_the_long_table(results):
    from advmed import pages

    res = results[0]
    top = EPS_255[-1]
    rank = T.defense_ranking(res, top)
    full = T.defense_table(res, top)
    assert len(rank) == full["defense"].nunique() and len(rank) <= pages.MAX_TABLE_ROWS
    assert len(rank.columns) <= 7 and rank["mean"].is_monotonic_decreasing
    for _, r in rank.iterrows():
        rows = full[full["defense"] == r["defense"]]
        assert r["mean"] == pytest.approx(rows["adaptive_accuracy"].mean())
    assert rank.loc[rank["defense"] == rank["defense"].iloc[0], "evaluation"].iloc[0] in (
        "upper bound", "converged", "passed", "not checked", "reference")
