"""APGD against torchattacks, per-image early stopping, the ensemble evaluation and the
gradient-masking diagnostics (advmed.attacks.whitebox.apgd, _loop, robust, diagnostics)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from advmed.attacks import apgd, get_attack, ifgsm, mifgsm, pgd, true_margin, worst_case, worst_case_choice
from advmed.attacks.losses import margin
from advmed.attacks.diagnostics import masking_diagnostics
from advmed.attacks.robust import EnsembleMember, default_ensemble, robust_accuracy
from advmed.attacks.whitebox._loop import random_start
from robust_models import Scaled, Shattered, synthetic, trained

torch.set_num_threads(1)


def _fooled(model, x_adv, y):
    with torch.no_grad():
        return model(x_adv).argmax(1) != y


def _data(classes, n=32, seed=7):
    model = trained(classes)
    x, y = synthetic(n, classes, seed=seed)
    return model, x, y


# --- APGD vs torchattacks 3.5.1 ----------------------------------------------------------
# Same seed, same random draws: advmed's seeded CPU generator gives the draws of
# torchattacks' global generator after torch.manual_seed(seed), and restarts / target
# classes attack the same images in the same order, so the runs are the same up to
# float32 rounding (atol 1e-6). Images are labelled with the model's clean prediction so
# that torchattacks (which skips misclassified images) attacks every image. advmed
# returns never-fooled images at their highest-loss iterate, torchattacks as the clean x,
# so only the fooled images are compared pixel by pixel; the fooled sets must be equal.
torchattacks = pytest.importorskip("torchattacks")


@pytest.mark.parametrize("classes, loss, norm, eps", [
    (2, "ce", "Linf", 4 / 255), (2, "ce", "L2", 0.5), (4, "ce", "Linf", 4 / 255),
    (4, "dlr", "Linf", 4 / 255), (4, "dlr", "L2", 0.3), (5, "dlr", "Linf", 2 / 255)])
def test_apgd_matches_torchattacks(classes, loss, norm, eps):
    model, x, _ = _data(classes)
    y = model(x).argmax(1)
    ref = torchattacks.APGD(model, norm=norm, eps=eps, steps=20, n_restarts=2, seed=0, loss=loss)
    expected = ref(x, y)
    got = apgd(model, x, y, eps=eps, norm=norm.lower(), steps=20, restarts=2, loss=loss,
               seed=0, early_stop=False)
    ok_ref, ok = _fooled(model, expected, y), _fooled(model, got, y)
    assert 0 < int(ok.sum()) < len(y)  # the comparison is not vacuous
    assert torch.equal(ok, ok_ref)
    torch.testing.assert_close(got[ok], expected[ok], atol=1e-6, rtol=0)


@pytest.mark.parametrize("classes", [4, 5])
def test_apgd_targeted_dlr_matches_torchattacks_apgdt(classes):
    model, x, _ = _data(classes)
    y = model(x).argmax(1)
    eps = 1.5 / 255
    ref = torchattacks.APGDT(model, norm="Linf", eps=eps, steps=20, n_restarts=1, seed=0,
                             n_classes=classes)
    expected = ref(x, y)
    got = apgd(model, x, y, eps=eps, steps=20, loss="dlr-targeted",
               n_target_classes=classes - 1, early_stop=False)
    ok_ref, ok = _fooled(model, expected, y), _fooled(model, got, y)
    assert 0 < int(ok.sum()) < len(y)
    assert torch.equal(ok, ok_ref)
    torch.testing.assert_close(got[ok], expected[ok], atol=1e-6, rtol=0)


def test_apgd_unfooled_images_at_the_references_best_point():
    model, x, _ = _data(2)
    y = model(x).argmax(1)
    eps = 4 / 255
    ref = torchattacks.APGD(model, eps=eps, steps=20, n_restarts=1, seed=0, loss="ce")
    torch.manual_seed(0)
    x_best, acc, _, _ = ref.attack_single_run(x, y)
    got = apgd(model, x, y, eps=eps, steps=20, loss="ce", early_stop=False)
    robust = acc.bool()
    assert 0 < int(robust.sum()) < len(y)
    torch.testing.assert_close(got[robust], x_best[robust], atol=1e-6, rtol=0)


# --- per-image early stopping --------------------------------------------------------------
ITERATIVE = {
    "ifgsm": (ifgsm, {}),
    "pgd": (pgd, {}),
    "pgd_l2": (pgd, {"norm": "l2"}),
    "mifgsm": (mifgsm, {}),
}


@pytest.mark.parametrize("name", sorted(ITERATIVE))
def test_early_stop_returns_first_successful_iterate(name):
    fn, kw = ITERATIVE[name]
    model, x, y = _data(2)
    norm = kw.get("norm", "linf")
    eps, alpha, steps = (6 / 255, 1 / 255, 8) if norm == "linf" else (0.6, 0.1, 8)
    # iterate t of the loop = the last iterate of the same attack run for t steps
    its = [fn(model, x, y, eps=eps, step_size=alpha, steps=t, early_stop=False, **kw)
           for t in range(1, steps + 1)]
    if fn is pgd:
        start = random_start(x, eps, norm, torch.Generator().manual_seed(0))
    else:
        start = x
    its = [start] + its
    ok = torch.stack([_fooled(model, it, y) for it in its[:-1]])  # iterates checked in the loop
    got = fn(model, x, y, eps=eps, step_size=alpha, steps=steps, **kw)  # early_stop default True
    assert 0 < int(ok.any(0).sum()) < len(y)
    for i in range(len(y)):
        hits = ok[:, i].nonzero()
        expected = its[int(hits[0])][i] if hits.numel() else its[-1][i]
        torch.testing.assert_close(got[i], expected, atol=1e-6, rtol=0)
    assert torch.all(_fooled(model, got, y)[ok.any(0)])  # fooled wherever an iterate was
    d = (got - x).flatten(1)
    size = d.abs().amax(1) if norm == "linf" else d.norm(dim=1)
    assert torch.all(size <= eps + 1e-6) and got.min() >= 0 and got.max() <= 1


def test_early_stop_targeted_stops_at_target():
    model, x, y = _data(4)
    t = (y + 1) % 4
    got = pgd(model, x, y, eps=8 / 255, steps=10, targeted=True, target=t)
    late = pgd(model, x, y, eps=8 / 255, steps=10, targeted=True, target=t, early_stop=False)
    with torch.no_grad():
        hit, hit_late = model(got).argmax(1) == t, model(late).argmax(1) == t
    assert int(hit_late.sum()) > 0 and torch.all(hit[hit_late])


def test_restarts_keep_the_worst_case_with_early_stop():
    model, x, y = _data(2)
    one = _fooled(model, pgd(model, x, y, eps=4 / 255, steps=5, restarts=1), y)
    three = _fooled(model, pgd(model, x, y, eps=4 / 255, steps=5, restarts=3), y)
    assert torch.all(three[one]) and int(three.sum()) >= int(one.sum())


@pytest.mark.parametrize("loss, classes", [("ce", 2), ("margin", 2), ("dlr-targeted", 4)])
def test_apgd_early_stop_fools_the_same_images(loss, classes):
    model, x, y = _data(classes)
    kw = dict(eps=3 / 255, steps=20, loss=loss, restarts=2)
    early, late = apgd(model, x, y, **kw), apgd(model, x, y, early_stop=False, **kw)
    ok_early, ok_late = _fooled(model, early, y), _fooled(model, late, y)
    assert 0 < int(ok_late.sum()) < len(y)
    assert torch.equal(ok_early, ok_late)  # per-image runs are independent of the others
    assert (early - x).abs().max() <= 3 / 255 + 1e-6 and early.min() >= 0 and early.max() <= 1


@pytest.mark.parametrize("name", ["ifgsm", "pgd", "mifgsm", "apgd"])
def test_channels_last_input_stays_channels_last(name):
    model, x, y = _data(2)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    kw = {"steps": 4, "eps": 4 / 255}
    got = get_attack(name)(model, x_cl, y, **kw)
    assert got.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(got, get_attack(name)(model, x, y, **kw), atol=1e-6, rtol=0)


# --- the ensemble evaluation --------------------------------------------------------------
# Deterministic members (no random start): every image an attack fools alone, it fools
# inside the ensemble too, so the ensemble's accuracy can never be above a member's.
DETERMINISTIC = [EnsembleMember("I-FGSM-CE", "ifgsm", {"steps": 10}),
                 EnsembleMember("I-FGSM-margin", "ifgsm", {"steps": 10, "loss": "margin"}),
                 EnsembleMember("MI-FGSM", "mifgsm", {"steps": 10})]
GRID = [1 / 255, 2 / 255, 4 / 255, 8 / 255]


def test_ensemble_accuracy_never_above_any_member():
    model, x, y = _data(4, n=48)
    res = robust_accuracy(model, x, y, eps_grid=GRID, ensemble=DETERMINISTIC, n_boot=0,
                          progress=False)
    for m in DETERMINISTIC:
        alone = robust_accuracy(model, x, y, eps_grid=GRID, ensemble=[m], n_boot=0, progress=False)
        for e, eps in enumerate(GRID):
            assert res.accuracy[e].value <= alone.accuracy[e].value
            single = get_attack(m.attack).fn(model, x, y, eps=eps, **m.options)
            assert res.accuracy[e].value <= 1 - float(_fooled(model, single, y).float().mean())
    assert res.accuracy[-1].value < res.accuracy[0].value


def test_default_ensemble_monotone_and_consistent():
    model, x, y = _data(4, n=48)
    ens = default_ensemble(4, steps=10, pgd_restarts=2)
    assert [m.name for m in ens] == ["APGD-CE", "APGD-T", "PGD"]
    res = robust_accuracy(model, x, y, eps_grid=GRID, ensemble=ens, n_boot=200, progress=False)
    assert np.all(res.success[1:] >= res.success[:-1])  # an image fooled stays fooled
    acc = [a.value for a in res.accuracy]
    assert all(a >= b for a, b in zip(acc, acc[1:])) and acc[-1] < acc[0]
    for e, eps in enumerate(GRID):  # first_eps is the first budget of success
        np.testing.assert_array_equal(res.success[e], res.first_eps <= eps)
        assert acc[e] == pytest.approx(1 - res.success[e].mean())
        a = res.accuracy[e]
        assert a.lo <= a.value <= a.hi
    assert set(res.broken_by) <= {"clean", "", *res.members}
    clean_wrong = (model(x).argmax(1) != y).numpy()
    assert np.all(res.first_eps[clean_wrong] == 0) and np.all(res.broken_by[clean_wrong] == "clean")
    # every adversarial image found is valid: in the ball of its first budget, in the box
    fooled = np.isfinite(res.first_eps) & (res.first_eps > 0)
    d = (res.x_adv - x).flatten(1).abs().amax(1).numpy()
    assert np.all(d[fooled] <= res.first_eps[fooled] + 1e-6)
    assert np.all(_fooled(model, res.x_adv, y).numpy()[fooled])
    costs = res.cost_frame()
    assert tuple(costs.index) == res.members and (costs["gradients"] > 0).all()
    assert (costs["queries"] >= costs["gradients"]).all()
    assert "upper bound" in res.auc_note and res.to_frame().shape[0] == len(GRID)
    # APGD-CE runs first on the same images as alone: the ensemble is at least as strong
    alone = apgd(model, x, y, eps=GRID[0], steps=10, loss="ce")
    assert acc[0] <= 1 - float(_fooled(model, alone, y).float().mean())


def test_binary_default_ensemble_uses_margin_not_dlr():
    assert [m.name for m in default_ensemble(2)] == ["APGD-CE", "APGD-margin", "PGD"]
    assert [m.name for m in default_ensemble(3)] == ["APGD-CE", "APGD-margin", "PGD"]
    assert default_ensemble(7)[1].options["n_target_classes"] == 6


def test_robust_accuracy_restores_model_mode():
    model, x, y = _data(2, n=8)
    model.train()
    try:
        robust_accuracy(model, x, y, eps_grid=[2 / 255], ensemble=default_ensemble(2, steps=3),
                        n_boot=0, progress=False)
        assert model.training and all(p.grad is None for p in model.parameters())
    finally:
        model.eval()


def test_one_true_margin_on_tensors_and_arrays_and_the_cw_loss_is_its_negative():
    scores = torch.randn(6, 4, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, 1, 2, 3, 0, 1])
    m = true_margin(scores, y)
    by_hand = torch.stack([scores[i, y[i]] - torch.cat([scores[i, :y[i]], scores[i, y[i] + 1:]]).max()
                           for i in range(len(y))])
    assert torch.equal(m, by_hand)
    assert np.array_equal(true_margin(scores.numpy(), y.numpy()), m.numpy())  # numpy in, numpy out, same numbers
    assert torch.equal(margin(scores, y), -m)  # the CW loss an attack ascends
    assert torch.equal((m > 0), scores.argmax(1) == y)  # > 0 exactly while classified correctly


def test_worst_case_over_sources_takes_the_lowest_margin_nested_over_budgets():
    y = np.array([0, 1])
    a = np.array([[[0.9, 0.1], [0.2, 0.8]], [[0.6, 0.4], [0.4, 0.6]]])  # (E=2, N=2, K=2)
    b = np.array([[[0.4, 0.6], [0.3, 0.7]], [[0.7, 0.3], [0.45, 0.55]]])
    source, budget = worst_case_choice([a, b], y)
    assert source.tolist() == [[1, 1], [1, 1]] and budget.tolist() == [[0, 0], [0, 1]]
    w = worst_case([a, b], y)
    assert np.allclose(w, [[[0.4, 0.6], [0.3, 0.7]], [[0.4, 0.6], [0.45, 0.55]]])
    for e in range(2):  # never above any source alone at its budget
        assert (true_margin(w[e], y) <= np.minimum(true_margin(a[e], y), true_margin(b[e], y)) + 1e-12).all()
    # one source: only the nesting (image 0's first-budget image beats its own at the larger budget)
    assert np.array_equal(worst_case([b], y)[1], [[0.4, 0.6], [0.45, 0.55]])


# --- gradient-masking diagnostics ----------------------------------------------------------
DIAG = dict(eps=4 / 255, steps_grid=(5, 20), restarts_grid=(1, 2),
            eps_grid=(1 / 255, 4 / 255, 16 / 255, 32 / 255), tol=0.05, progress=False)


def test_diagnostics_pass_a_plain_trained_model():
    model, x, y = _data(2, n=48)
    report = masking_diagnostics(model, x, y, surrogate=trained(2, seed=1), **DIAG)
    assert report.passed, report.to_frame().to_string()
    assert len(report.checks) == 6 and report.to_frame().shape == (6, 4)
    assert report.check("reaches_zero").numbers["accuracy_at_max_eps"] == 0


def test_diagnostics_flag_saturated_softmax():
    model, x, y = _data(2, n=48)
    report = masking_diagnostics(Scaled(model), x, y, surrogate=trained(2, seed=1), **DIAG)
    assert "ce_vs_margin" in report.flagged
    n = report.check("ce_vs_margin").numbers
    assert n["apgd_ce"] > n["apgd_margin"]


def test_diagnostics_flag_shattered_gradients():
    model, x, y = _data(2, n=48)
    report = masking_diagnostics(Shattered(model), x, y, surrogate=trained(2, seed=1), **DIAG)
    assert {"whitebox_vs_transfer", "reaches_zero"} <= set(report.flagged)


def test_diagnostics_tolerance_is_at_least_one_image():
    model, x, y = _data(2, n=16)
    settings = {**DIAG, "tol": 0.01}
    few = masking_diagnostics(model, x, y, **settings)
    assert few.tol == pytest.approx(1 / 16)  # 0.01 would flag a model for one image of sixteen
    many = masking_diagnostics(model, *synthetic(200, 2, seed=7), **settings)
    assert many.tol == pytest.approx(0.01)


# --- bad input -----------------------------------------------------------------------------
def test_dlr_refused_below_its_number_of_classes():
    x, y = torch.rand(2, 3, 4, 4), torch.tensor([0, 1])
    binary = nn.Sequential(nn.Flatten(), nn.Linear(48, 2))
    for loss in ("dlr", "dlr-targeted"):
        with pytest.raises(ValueError, match="Valid losses for a model with 2 classes: ce, margin$"):
            apgd(binary, x, y, eps=0.1, loss=loss)
    three = nn.Sequential(nn.Flatten(), nn.Linear(48, 3))
    with pytest.raises(ValueError, match="3 classes: ce, margin, dlr$"):
        apgd(three, x, y, eps=0.1, loss="dlr-targeted")
    with pytest.raises(ValueError, match="valid losses"):
        apgd(binary, x, y, eps=0.1, loss="hinge")
    with pytest.raises(ValueError, match="dlr-targeted"):
        apgd(three, x, y, eps=0.1, loss="dlr", targeted=True, target=1)
    ens = [EnsembleMember("APGD-T", "apgd", {"loss": "dlr-targeted"})]
    with pytest.raises(ValueError, match="2 classes: ce, margin"):
        robust_accuracy(binary, x, y, eps_grid=[0.1], ensemble=ens, progress=False)


@pytest.mark.parametrize("call", ["apgd", "robust", "diagnostics"])
def test_nan_pixels_and_eps_above_one_refused(call):
    model = nn.Sequential(nn.Flatten(), nn.Linear(48, 2))
    x, y = torch.rand(2, 3, 4, 4), torch.tensor([0, 1])
    fns = {"apgd": lambda x, eps: apgd(model, x, y, eps=eps),
           "robust": lambda x, eps: robust_accuracy(model, x, y, eps_grid=[eps], progress=False),
           "diagnostics": lambda x, eps: masking_diagnostics(model, x, y, eps=eps)}
    bad = x.clone()
    bad[0, 0, 0, 0] = math.nan
    with pytest.raises(ValueError, match="NaN"):
        fns[call](bad, 0.1)
    with pytest.raises(ValueError, match="did you mean"):
        fns[call](x, 8)


def test_bad_options_refused():
    model = nn.Sequential(nn.Flatten(), nn.Linear(48, 2))
    x, y = torch.rand(2, 3, 4, 4), torch.tensor([0, 1])
    with pytest.raises(ValueError, match="strictly increasing"):
        robust_accuracy(model, x, y, eps_grid=[2 / 255, 1 / 255], progress=False)
    with pytest.raises(ValueError, match="non-empty"):
        robust_accuracy(model, x, y, eps_grid=[], progress=False)
    with pytest.raises(ValueError, match="takes no option"):
        robust_accuracy(model, x, y, eps_grid=[0.1], progress=False,
                        ensemble=[EnsembleMember("X", "pgd", {"momentum": 1})])
    with pytest.raises(ValueError, match="unique"):
        robust_accuracy(model, x, y, eps_grid=[0.1], progress=False,
                        ensemble=[EnsembleMember("X", "pgd"), EnsembleMember("X", "apgd")])
    with pytest.raises(ValueError, match="rho"):
        apgd(model, x, y, eps=0.1, rho=0)
    with pytest.raises(ValueError, match="restarts"):
        apgd(model, x, y, eps=0.1, restarts=0)
    with pytest.raises(TypeError, match="early_stop"):
        pgd(model, x, y, eps=0.1, early_stop=1)
    spec = get_attack("APGD")
    assert spec.label == "APGD" and spec.step_rule is None and spec.cite == "croce2020reliable"


def test_monotone_check_judges_iterative_attacks_not_fgsm():
    """FGSM's accuracy may rise with eps (one linear step overshoots) without any masking;
    a rise of an iterative attack is what the check flags."""
    from advmed.attacks.diagnostics import _eps_checks

    grid = [0.5 / 255, 2 / 255, 8 / 255]
    fgsm_rises = {"fgsm": [0.3, 0.5, 0.6], "pgd": [0.1, 0.0, 0.0], "apgd_ce": [0.05, 0.0, 0.0]}
    mono = {c.name: c for c in _eps_checks(fgsm_rises, grid, 0.01)}["monotone_eps"]
    assert mono.passed and "FGSM" in mono.summary
    pgd_rises = {"fgsm": [0.3, 0.2, 0.1], "pgd": [0.0, 0.0, 0.1], "apgd_ce": [0.05, 0.0, 0.0]}
    assert not {c.name: c for c in _eps_checks(pgd_rises, grid, 0.01)}["monotone_eps"].passed
