"""HopSkipJump (label-only): the invariants of a query attack, a closed form on a linear
model, and agreement with ART's ``HopSkipJump`` at the same iterations.

ART returns its last step without searching back to the boundary (its loop searches at the
start of each iteration); the comparison therefore puts ART's output through the same
label-only binary search before measuring its distance. The two then run the same algorithm
with different random directions, so their success rates within a budget agree up to
sampling error: we accept a difference of at most three standard errors of a difference of
two proportions on 64 images, plus one image.
"""
from __future__ import annotations

import importlib
import math

import numpy as np
import pytest
import torch
from torch import nn

from advmed.attacks.blackbox import ScoreOracle, hopskipjump

H = importlib.import_module("advmed.attacks.blackbox.hopskipjump")  # the module (the package exports the function)

torch.set_num_threads(1)


def _cnn(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                         nn.Linear(32, 2)).eval()


def _images(model, n=64, side=12, seed=0):
    x = torch.rand(n, 3, side, side, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return x, model(x).argmax(1)


@pytest.mark.parametrize("norm, eps", [("linf", 8 / 255), ("l2", 0.6)])
def test_successes_are_misclassified_within_the_budget_and_queries_within_it(norm, eps):
    model = _cnn()
    x, y = _images(model, 32)
    r = hopskipjump(model, x, y, eps=eps, norm=norm, queries=800, progress=False)
    with torch.no_grad():
        wrong = model(r.x_adv).argmax(1) != y
    assert bool(r.success.any())
    assert torch.equal(wrong, r.success)  # a success is misclassified; a failure is returned as x
    size = r.linf if norm == "linf" else r.l2
    assert bool((size <= eps + 1e-6).all()) and float(r.x_adv.min()) >= 0 and float(r.x_adv.max()) <= 1
    assert bool((r.queries <= 800).all()) and bool((r.queries >= 1).all())
    assert torch.equal(r.x_adv[~r.success], x[~r.success])


def test_no_linf_success_below_the_closed_form_minimum_of_a_linear_model():
    """For logits ``W x + b`` of two classes the smallest L-inf change of the decision is
    ``|margin| / ||w_1 - w_0||_1`` (the box can only make it larger)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 2)).eval()
    x, y = _images(model, 32, side=8)
    w = model[1].weight.detach()
    with torch.no_grad():
        z = model(x)
    margin = (z[:, 0] - z[:, 1]).abs()
    least = margin / (w[0] - w[1]).abs().sum()
    r = hopskipjump(model, x, y, eps=0.5, norm="linf", queries=3000, progress=False)
    found = r.success
    assert float(found.float().mean()) >= 0.9  # a noise start is misclassified for (nearly) all
    assert bool((r.linf[found] >= least[found] - 1e-5).all())
    # and it gets close to the minimum: at twice the median minimum, the images whose minimum is
    # well inside the budget (at most 2/3 of it) are found
    eps = 2 * float(least.median())
    r2 = hopskipjump(model, x, y, eps=eps, norm="linf", queries=3000, progress=False)
    easy = found & (least <= eps / 1.5)
    assert bool((r2.linf[r2.success] >= least[r2.success] - 1e-5).all())
    assert float(r2.success[easy].float().mean()) >= 0.8, float(r2.success[easy].float().mean())


def test_only_the_predicted_label_is_read():
    """Scaling the logits (same argmax, other probabilities) changes nothing."""
    model = _cnn()
    x, y = _images(model, 16)

    class Scaled(nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, v):
            return 7.0 * self.m(v) + 3.0

    a = hopskipjump(model, x, y, eps=8 / 255, queries=300, seed=3, progress=False)
    b = hopskipjump(Scaled(model), x, y, eps=8 / 255, queries=300, seed=3, progress=False)
    assert torch.equal(a.success, b.success) and torch.equal(a.queries, b.queries)


def test_bad_arguments_are_refused_before_any_query():
    model = _cnn()
    x, y = _images(model, 4)
    with pytest.raises(ValueError, match="eps must be > 0"):
        hopskipjump(model, x, y, eps=0.0, progress=False)
    with pytest.raises(ValueError, match="queries"):
        hopskipjump(model, x, y, eps=0.1, queries=1, progress=False)
    with pytest.raises(ValueError, match="norm"):
        hopskipjump(model, x, y, eps=0.1, norm="l1", progress=False)


def _boundary(model, x, x_adv, y, norm):
    """ART's output searched back to the boundary with the attack's own binary search."""
    n = x.shape[0]
    d = x[0].numel()
    theta = d ** -1.5 if norm == "l2" else d ** -2.0
    with ScoreOracle(model, n) as oracle:
        decide = H._Decision(oracle, torch.arange(n), y, 10 ** 9)
        which = torch.arange(n)
        adv = decide(x_adv, which)
        out = x.clone()
        out[adv] = H._binary_search(decide, x[adv], x_adv[adv], which[adv], norm, theta)
    return out, adv


@pytest.mark.parametrize("norm, eps", [("linf", 8 / 255), ("l2", 0.6)])
def test_success_within_the_budget_agrees_with_art_at_the_same_iterations(norm, eps):
    pytest.importorskip("art")
    from art.attacks.evasion import HopSkipJump
    from art.estimators.classification import PyTorchClassifier

    class AsFloat(nn.Module):  # ART's HopSkipJump sends float64 arrays
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, v):
            return self.m(v.float())

    model = _cnn()
    x, y = _images(model)
    clf = PyTorchClassifier(model=AsFloat(model), loss=nn.CrossEntropyLoss(), input_shape=tuple(x.shape[1:]),
                            nb_classes=2, clip_values=(0.0, 1.0))
    np.random.seed(0)
    art = HopSkipJump(clf, targeted=False, norm=np.inf if norm == "linf" else 2, max_iter=10, max_eval=1000,
                      init_eval=100, init_size=100, verbose=False)
    x_art = torch.tensor(art.generate(x.numpy())).float()
    x_art, adv = _boundary(model, x, x_art, y, norm)
    d = (x_art - x).flatten(1)
    d = d.abs().amax(1) if norm == "linf" else d.norm(dim=1)
    p_art = float((adv & (d <= eps + 1e-6)).float().mean())
    ours = hopskipjump(model, x, y, eps=eps, norm=norm, queries=10 ** 6, max_iter=10, max_evals=1000,
                       progress=False, seed=1)
    p_ours = ours.success_rate()
    n = x.shape[0]
    p = (p_art + p_ours) / 2
    assert abs(p_art - p_ours) <= 3 * math.sqrt(max(p * (1 - p), 1 / n) * 2 / n) + 1 / n, (p_art, p_ours)
