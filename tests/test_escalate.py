"""Escalation (advmed.attacks.escalate): stronger attacks on the survivors of a worst case lower
the accuracy of gradient-masked models, change nothing where the worst case is already exact,
keep every image in the ball and the model as found, and refuse bad input before any work.

Models: tests/robust_models.py (a small CNN on a synthetic stripes task, trained in about a
second; ``Scaled`` multiplies its logits by 1e4 so that softmax saturates and cross-entropy
gradients vanish; ``Shattered`` has no input gradient at all) and a linear model whose worst case
is known in closed form.
"""
from __future__ import annotations

import doctest
import importlib

import numpy as np
import pytest
import torch
from torch import nn

from advmed.attacks import Stage, StageRun, default_stages, escalate, pgd, true_margin
from advmed.attacks.escalate import CONVERGED, NOT_CONVERGED, PRIOR, converged
from robust_models import Scaled, Shattered, synthetic, trained

torch.set_num_threads(1)

EPS = 8 / 255
#: Small stages: 5 base iterations (20 escalated), Square with 100 queries.
STAGES = default_stages(2, steps=5, square_queries=100)


def _proba(model, x):
    with torch.no_grad():
        return torch.softmax(model(x).double(), 1).numpy()


def _plain_pgd(model, x, y):
    """What an evaluation that trusts PGD-CE reports: the scores of its images."""
    return _proba(model, pgd(model, x, y, eps=EPS, steps=10, seed=0, progress=False))


def _accuracy(proba, y):
    return float((proba.argmax(1) == y.numpy()).mean())


@pytest.fixture(scope="module")
def data():
    x, y = synthetic(32, 2, seed=7)
    return trained(2), x, y


# --------------------------------------------------------------------------- masked gradients
def test_escalation_lowers_accuracy_where_softmax_saturation_masks_the_gradient(data):
    base, x, y = data
    model = Scaled(base)  # logits x 1e4: cross-entropy gradients are exactly 0
    start = _plain_pgd(model, x, y)
    assert _accuracy(start, y) >= 0.9  # PGD-CE fails: the evaluation it would report is inflated
    res = escalate(model, x, y, eps=EPS, proba=start, stages=STAGES, seed=0, progress=False)
    n = len(y)
    assert round(n * (_accuracy(start, y) - res.accuracy)) >= 4  # strictly lower, by several images
    assert res.accuracy == pytest.approx(_accuracy(res.proba, y))
    assert res.newly_broken == round(n * (res.accuracy_before - res.accuracy))
    # the margin loss is what reaches it; every stage attacked only the survivors
    margin = next(r for r in res.path if r.name.startswith("APGD-margin"))
    assert margin.broken > 0 and margin.name in set(res.found_by[res.proba.argmax(1) != y.numpy()])
    alive = round(n * res.accuracy_before)
    for r in res.path:
        assert r.attacked == alive
        alive -= r.broken
    accs = [res.accuracy_before] + [r.accuracy for r in res.path]
    assert all(a >= b for a, b in zip(accs, accs[1:]))
    frame = res.to_frame()
    assert list(frame.stage) == [PRIOR] + [s.name for s in STAGES] and frame.converged.nunique() == 1


def test_escalation_reaches_shattered_gradients_through_transfer_and_square(data):
    base, x, y = data
    model = Shattered(base)  # the same predictions, no input gradient
    start = _plain_pgd(model, x, y)
    stages = default_stages(2, steps=5, square_queries=100, transfer_sources=("undefended",))
    res = escalate(model, x, y, eps=EPS, proba=start, stages=stages, seed=0, progress=False,
                   sources={"undefended": trained(2, seed=1)})
    assert round(len(y) * (_accuracy(start, y) - res.accuracy)) >= 4
    gradient_free = {s.name for s in stages if s.source is not None or s.attack == "square"}
    assert sum(r.broken for r in res.path if r.name in gradient_free) >= 4
    assert res.status in (CONVERGED, NOT_CONVERGED)


# --------------------------------------------------------------------------- nothing to find
class _Linear(nn.Module):
    """Two logits ``(-z/2, z/2)``, ``z = w . x + b``: the L-inf worst case moves each pixel by eps
    against ``sign(w)``, so the lowest margin is ``|z| - eps ||w||_1`` (pixels far from 0 and 1)."""

    def __init__(self, w, b):
        super().__init__()
        self.lin = nn.Linear(w.numel(), 1)
        with torch.no_grad():
            self.lin.weight.copy_(w.view(1, -1))
            self.lin.bias.fill_(b)

    def forward(self, x):
        z = self.lin(x.flatten(1))
        return torch.cat([-z / 2, z / 2], 1)


def test_escalation_changes_nothing_where_the_worst_case_is_exact():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(3 * 4 * 4, generator=g) / 8
    model = _Linear(w, 0.0)
    x = 0.3 + 0.4 * torch.rand(64, 3, 4, 4, generator=g)  # eps never reaches the box
    eps = 4 / 255
    with torch.no_grad():
        y = model(x).argmax(1)
        sign = (2 * y - 1).float()[:, None, None, None]
        exact = x - eps * sign * torch.sign(w).view(1, 3, 4, 4)  # the closed-form worst case
        keep = true_margin(model(exact), y).abs() > 1e-3  # no image on the boundary (float ties)
    x, y, exact = x[keep], y[keep], exact[keep]
    start = _proba(model, exact)
    assert 0.2 < _accuracy(start, y) < 0.9  # some images fall, some cannot
    res = escalate(model, x, y, eps=eps, proba=start, stages=STAGES, seed=0, progress=False)
    assert res.accuracy == _accuracy(start, y) and res.newly_broken == 0
    assert res.converged and res.status == CONVERGED


def test_an_already_broken_worst_case_skips_every_stage_and_converges(data):
    base, x, y = data
    start = _proba(base, x)[:, ::-1].copy()  # every image already fooled
    res = escalate(base, x, y, eps=EPS, proba=start, stages=STAGES, seed=0, progress=False)
    assert all(r.attacked == 0 and r.broken == 0 and r.seconds == 0 for r in res.path)
    assert np.array_equal(res.proba, start) and set(res.found_by) == {PRIOR} and res.converged
    assert torch.equal(res.x_adv, x)


def test_the_convergence_rule():
    def run(broken):
        return StageRun("s", "pgd", "m", 10, broken, 0.5, 0.1)

    assert converged([run(3), run(0), run(0)], survivors=5)
    assert not converged([run(0), run(1), run(0)], survivors=5)  # one image in the last two
    assert not converged([run(0), run(0), run(1)], survivors=5)
    assert converged([run(0), run(0), run(1)], survivors=0)  # nothing left: accuracy 0 is exact
    assert converged([run(2), run(0)], survivors=5, window=1) and not converged([run(0), run(2)], survivors=5)


# --------------------------------------------------------------------------- invariants
def test_images_in_the_ball_and_the_box_model_restored_scores_are_the_models(data):
    base, x, y = data
    model, surrogate = Scaled(base).train(), trained(2, seed=1)
    stages = default_stages(2, steps=5, square_queries=100, transfer_sources=("surrogate",))
    res = escalate(model, x, y, eps=EPS, proba=_plain_pgd(model, x, y), stages=stages, seed=0, progress=False,
                   sources={"surrogate": surrogate})
    assert all(m.training for m in model.modules()) and not surrogate.training
    assert all(p.grad is None for m in (model, surrogate) for p in m.parameters())
    d = (res.x_adv - x).abs().flatten(1).amax(1)
    assert float(d.max()) <= EPS + 1e-6 and float(res.x_adv.min()) >= 0 and float(res.x_adv.max()) <= 1
    mine = res.found_by != PRIOR
    assert mine.any() and torch.equal(res.x_adv[torch.as_tensor(~mine)], x[torch.as_tensor(~mine)])
    # the worst case reported is the scored model's on the images returned
    np.testing.assert_allclose(res.proba[mine], _proba(model.eval(), res.x_adv)[mine], atol=1e-9)


def test_default_stages_end_with_transfer_and_square_and_scale_the_iterations():
    stages = default_stages(5, steps=10, restarts=3, gradient_source="bpda", transfer_sources=("a", "b"))
    names = [s.name for s in stages]
    assert len(set(names)) == len(names) and stages[-1].attack == "square" and stages[-1].source is None
    assert [s.source for s in stages[-3:-1]] == ["a", "b"]
    assert any(s.kwargs.get("loss") == "dlr-targeted" for s in stages)  # >= 4 classes: APGD-T
    assert all(s.kwargs["steps"] == 40 for s in stages if s.attack in ("pgd", "apgd"))
    assert stages[-1].kwargs["queries"] == 400 and all(s.source == "bpda" for s in stages[:5])
    with pytest.raises(ValueError, match="steps"):
        default_stages(2, steps=0)


def test_the_docstring_example_runs():
    module = importlib.import_module("advmed.attacks.escalate")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


# --------------------------------------------------------------------------- bad input
class _Counting(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin, self.calls = nn.Linear(48, 2), 0

    def forward(self, x):
        self.calls += 1
        return self.lin(x.flatten(1))


@pytest.mark.parametrize("change, error, match", [
    ({"eps": -0.1}, ValueError, ">= 0"),
    ({"eps": 0.0}, ValueError, "eps must be > 0"),
    ({"eps": 8}, ValueError, "did you mean"),
    ({"proba": np.full((3, 2), 0.5)}, ValueError, "one row per image"),
    ({"proba": np.full((4,), 0.5)}, ValueError, r"\(N, K\)"),
    ({"proba": np.full((4, 2), np.nan)}, ValueError, "NaN"),
    ({"stages": ()}, ValueError, "non-empty"),
    ({"stages": (Stage("a", "pgd"), Stage("a", "apgd"))}, ValueError, "unique"),
    ({"stages": (Stage("a", "pgd", {}, "nowhere"),)}, ValueError, "valid: surrogate"),
    ({"seed": 1.5}, TypeError, "seed"),
    ({"window": 0}, ValueError, "window"),
])
def test_bad_input_is_refused_before_any_work(change, error, match):
    model = _Counting()
    kw = dict(eps=0.1, proba=np.full((4, 2), 0.5), stages=STAGES, seed=0, progress=False,
              sources={"surrogate": nn.Linear(48, 2)})
    kw.update(change)
    with pytest.raises(error, match=match):
        escalate(model, torch.rand(4, 3, 4, 4), torch.tensor([0, 1, 0, 1]), **kw)
    assert model.calls == 0


def test_a_proba_of_another_number_of_classes_or_a_bad_stage_option_is_refused_before_any_attack():
    model = _Counting()
    x, y = torch.rand(4, 3, 4, 4), torch.tensor([0, 1, 0, 1])
    with pytest.raises(ValueError, match="3 classes, the model 2"):
        escalate(model, x, y, eps=0.1, proba=np.full((4, 3), 1 / 3), stages=STAGES, progress=False)
    with pytest.raises(ValueError, match="takes no option"):
        escalate(model, x, y, eps=0.1, proba=np.full((4, 2), 0.5), stages=(Stage("a", "pgd", {"momentum": 1}),),
                 progress=False)
    assert model.calls == 2  # one forward each, to read the number of classes
