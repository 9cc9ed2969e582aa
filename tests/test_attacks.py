"""White-box attacks: invariants (hypothesis), closed forms, targets, and bad input."""
from __future__ import annotations

import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from advmed.attacks import ATTACKS, apgd, fgsm, get_attack, ifgsm, mifgsm, pgd

# attacks with an eps budget, called as attack(model, x, y, eps=...); the patch attack has none
EPS_ATTACKS = sorted(name for name, spec in ATTACKS.items() if "eps" in spec.accepts())
from advmed.attacks.losses import margin

torch.set_num_threads(1)


class TinyNet(nn.Module):
    """A small conv net with batch norm and dropout, so that train mode would show."""

    def __init__(self, channels: int, classes: int = 2):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
            nn.Dropout(0.5), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(16, classes))

    def forward(self, x):
        return self.body(x)


def _norm(d: torch.Tensor, norm: str) -> torch.Tensor:
    flat = d.flatten(1)
    return flat.abs().amax(dim=1) if norm == "linf" else flat.norm(dim=1)


# name -> (function, norm, extra kwargs)
VARIANTS = {
    "fgsm": (fgsm, "linf", {}),
    "ifgsm": (ifgsm, "linf", {"steps": 3}),
    "pgd": (pgd, "linf", {"steps": 3}),
    "pgd_restarts": (pgd, "linf", {"steps": 2, "restarts": 2}),
    "pgd_l2": (pgd, "l2", {"steps": 3, "norm": "l2"}),
    "mifgsm": (mifgsm, "linf", {"steps": 3}),
    "apgd": (apgd, "linf", {"steps": 3}),
    "apgd_restarts": (apgd, "linf", {"steps": 2, "restarts": 2}),
    "apgd_l2": (apgd, "l2", {"steps": 3, "norm": "l2"}),
}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_invariants(data):
    name = data.draw(st.sampled_from(sorted(VARIANTS)), label="attack")
    fn, norm, kw = VARIANTS[name]
    channels = data.draw(st.sampled_from([1, 3]), label="channels")
    classes = data.draw(st.sampled_from([2, 3]), label="classes")
    n = data.draw(st.integers(1, 4), label="n")
    size = data.draw(st.sampled_from([5, 8]), label="size")
    hi = 0.3 if norm == "linf" else 3.0
    eps = data.draw(st.one_of(st.just(0.0), st.floats(0, hi)), label="eps")
    training = data.draw(st.booleans(), label="training")
    with_grad = data.draw(st.booleans(), label="with_grad")
    targeted = data.draw(st.booleans(), label="targeted")
    loss = data.draw(st.sampled_from(["ce", "margin"]), label="loss")
    seed = data.draw(st.integers(0, 2**16), label="seed")

    torch.manual_seed(seed)
    model = TinyNet(channels, classes).train(training)
    if with_grad:
        for p in model.parameters():
            p.grad = torch.randn_like(p)
    grads = [None if p.grad is None else p.grad.clone() for p in model.parameters()]
    state = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.rand(n, channels, size, size)
    x[..., 0, 0], x[..., 0, 1] = 0.0, 1.0  # pixels on both edges of [0, 1]
    y = torch.randint(0, classes, (n,))
    kw = dict(kw)
    if targeted:
        kw.update(targeted=True,
                  target="other" if classes == 2 else torch.randint(0, classes, (n,)))
    x_adv = fn(model, x, y, eps=eps, loss=loss, **kw)

    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype and not x_adv.requires_grad
    assert torch.all(_norm(x_adv - x, norm) <= eps + 1e-6)
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert model.training == training
    for p, g in zip(model.parameters(), grads):
        assert p.requires_grad
        assert (p.grad is None) if g is None else torch.equal(p.grad, g)
    for k, v in model.state_dict().items():  # batch-norm statistics untouched: eval mode
        assert torch.equal(v, state[k]), k
    if eps == 0:
        assert torch.equal(x_adv, x)


class ModeRecorder(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(12, 2)
        self.modes = []

    def forward(self, x):
        self.modes.append(self.training)
        return self.lin(x.flatten(1))


@pytest.mark.parametrize("name", EPS_ATTACKS)
def test_runs_in_eval_mode_and_restores(name):
    model = ModeRecorder().train()
    x, y = torch.rand(2, 3, 2, 2), torch.tensor([0, 1])
    get_attack(name)(model, x, y, eps=0.1)
    assert model.modes and not any(model.modes)
    assert model.training
    assert all(p.grad is None for p in model.parameters())


# --- closed forms on linear models -----------------------------------------------------

def _linear(d: int, k: int, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    lin = nn.Linear(d, k)
    return nn.Sequential(nn.Flatten(), lin)


@pytest.mark.parametrize("loss", ["ce", "margin"])
@pytest.mark.parametrize("channels", [1, 3])
def test_fgsm_closed_form_binary_linear(loss, channels):
    model = _linear(channels * 36, 2)
    w = model[1].weight.detach()
    x = torch.rand(6, channels, 6, 6)
    y = torch.tensor([0, 1, 0, 1, 1, 0])
    eps = 0.07
    dw = (w[1 - y] - w[y]).view_as(x)  # w_{y'} - w_y per image
    expected = (x + eps * dw.sign()).clamp(0, 1)
    x_adv = fgsm(model, x, y, eps=eps, loss=loss)
    assert torch.equal(x_adv, expected)
    # binary: pushing towards the other class is the same step
    x_t = fgsm(model, x, y, eps=eps, loss=loss, targeted=True, target="other")
    assert torch.equal(x_t, expected)


def test_fgsm_closed_form_multiclass_margin():
    model = _linear(27, 4, seed=1)
    w = model[1].weight.detach()
    x = torch.rand(5, 3, 3, 3)
    y = torch.tensor([0, 1, 2, 3, 1])
    logits = model(x).detach()
    runner_up = logits.scatter(1, y[:, None], -math.inf).argmax(1)
    expected = (x + 0.05 * (w[runner_up] - w[y]).view_as(x).sign()).clamp(0, 1)
    assert torch.equal(fgsm(model, x, y, eps=0.05, loss="margin"), expected)
    # targeted at class t: step along w_t - w_{max other than t}
    t = torch.tensor([3, 3, 0, 0, 2])
    other = logits.scatter(1, t[:, None], -math.inf).argmax(1)
    expected_t = (x + 0.05 * (w[t] - w[other]).view_as(x).sign()).clamp(0, 1)
    assert torch.equal(fgsm(model, x, y, eps=0.05, loss="margin", targeted=True, target=t),
                       expected_t)


def test_pgd_l2_one_step_closed_form():
    model = _linear(48, 2)
    w = model[1].weight.detach()
    x = 0.25 + 0.5 * torch.rand(3, 3, 4, 4)  # far from the edges: no clipping
    y = torch.tensor([0, 1, 1])
    d = (w[1 - y] - w[y]).view_as(x)
    d = d / d.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    x_adv = pgd(model, x, y, eps=0.2, steps=1, step_size=0.2, norm="l2", random_start=False,
                loss="margin", early_stop=False)
    torch.testing.assert_close(x_adv, x + 0.2 * d, atol=1e-6, rtol=0)
    # a step longer than eps is projected back onto the sphere
    x_far = pgd(model, x, y, eps=0.2, steps=1, step_size=1.0, norm="l2", random_start=False,
                loss="margin", early_stop=False)
    torch.testing.assert_close(x_far, x + 0.2 * d, atol=1e-6, rtol=0)


def test_margin_loss_values():
    logits = torch.tensor([[2.0, 0.5, -1.0], [0.0, 3.0, 1.0]])
    assert torch.equal(margin(logits, torch.tensor([0, 0])), torch.tensor([-1.5, 3.0]))


# --- batches, seeds, targets -------------------------------------------------------------

def test_batch_independent_and_chunked():
    torch.manual_seed(0)
    model = TinyNet(3)
    x, y = torch.rand(5, 3, 8, 8), torch.tensor([0, 1, 0, 1, 1])
    whole = ifgsm(model, x, y, eps=0.05, steps=3)
    alone = torch.cat([ifgsm(model, x[i:i + 1], y[i:i + 1], eps=0.05, steps=3) for i in range(5)])
    torch.testing.assert_close(whole, alone, atol=1e-6, rtol=0)
    chunked = ifgsm(model, x, y, eps=0.05, steps=3, batch_size=2, progress=False)
    torch.testing.assert_close(whole, chunked, atol=1e-6, rtol=0)


def test_seed_reproducible_and_grad_context():
    torch.manual_seed(0)
    model = TinyNet(1)
    x, y = torch.rand(4, 1, 8, 8, requires_grad=True), torch.tensor([0, 1, 0, 1])
    with torch.no_grad():  # the attacks need gradients and turn them on themselves
        a = pgd(model, x, y, eps=0.1, steps=2, seed=3)
    b = pgd(model, x, y, eps=0.1, steps=2, seed=3)
    c = pgd(model, x, y, eps=0.1, steps=2, seed=4)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert x.grad is None and not a.requires_grad
    # amp is CUDA only: a no-op on CPU
    assert torch.equal(pgd(model, x, y, eps=0.1, steps=2, seed=3, amp=True), a)


def test_target_forms_agree():
    torch.manual_seed(0)
    model = TinyNet(3, 2)
    x, y = torch.rand(4, 3, 6, 6), torch.tensor([0, 1, 1, 0])
    a = pgd(model, x, y, eps=0.1, steps=3, targeted=True, target="other")
    b = pgd(model, x, y, eps=0.1, steps=3, targeted=True, target=1 - y)
    assert torch.equal(a, b)
    c = pgd(model, x[:2], y[:2], eps=0.1, steps=3, targeted=True, target=1, random_start=False)
    d = pgd(model, x[:2], y[:2], eps=0.1, steps=3, targeted=True,
            target=torch.tensor([1, 1]), random_start=False)
    assert torch.equal(c, d)


def test_empty_batch():
    x = torch.rand(0, 3, 4, 4)
    assert pgd(TinyNet(3), x, torch.zeros(0, dtype=torch.long), eps=0.1).shape == x.shape


# --- bad input: clear errors, never a silent clamp ----------------------------------------

_X, _Y = torch.rand(2, 3, 4, 4), torch.tensor([0, 1])


@pytest.mark.parametrize("name", EPS_ATTACKS)
@pytest.mark.parametrize("kwargs, error, match", [
    ({"eps": -0.1}, ValueError, "eps"),
    ({"eps": math.nan}, ValueError, "eps"),
    ({"x": torch.where(_X > 0.5, 1.001, _X)}, ValueError, "outside"),
    ({"x": torch.where(_X > 0.5, -0.001, _X)}, ValueError, "outside"),
    ({"x": (_X * 255).to(torch.uint8)}, TypeError, "float"),
    ({"x": torch.where(_X > 0.9, math.nan, _X)}, ValueError, "NaN or infinite"),
    ({"x": torch.where(_X > 0.9, math.inf, _X)}, ValueError, "NaN or infinite"),
    ({"eps": 8}, ValueError, r"did you mean 8/255 = 0\.03137|larger than the L2 diameter"),
    ({"x": _X[0]}, ValueError, "shape"),
    ({"y": _Y[:, None]}, ValueError, "shape"),
    ({"y": _Y.float()}, TypeError, "integer"),
    ({"y": torch.tensor([0, 2])}, ValueError, "labels"),
    ({"y": torch.tensor([0, 1, 1])}, ValueError, "shape"),
    ({"target": 1}, ValueError, "targeted=True"),
    ({"targeted": True}, ValueError, "target="),
    ({"targeted": True, "target": "opposite"}, ValueError, "other"),
    ({"targeted": True, "target": 2}, ValueError, "out of range"),
    ({"targeted": True, "target": torch.tensor([1])}, ValueError, "shape"),
    ({"loss": "hinge"}, ValueError, "valid losses"),
])
def test_bad_input(name, kwargs, error, match):
    kw = {"x": _X, "y": _Y, "eps": 0.1, **kwargs}
    unused = set(kwargs) - {"x", "y"} - get_attack(name).accepts()
    if unused:  # e.g. the universal usimba takes no per-image loss
        pytest.skip(f"{name} takes no {', '.join(sorted(unused))}")
    model = nn.Sequential(nn.Flatten(), nn.Linear(48, 2))
    with pytest.raises(error, match=match):
        get_attack(name)(model, kw.pop("x"), kw.pop("y"), **kw)


@pytest.mark.parametrize("name", ["ifgsm", "pgd", "mifgsm"])
@pytest.mark.parametrize("kwargs, match", [
    ({"steps": 0}, "steps"), ({"steps": 2.5}, "steps"),
    ({"step_size": 0}, "step_size"), ({"step_size": -0.1}, "step_size"),
    ({"step_size": math.inf}, "step_size"),
])
def test_bad_steps(name, kwargs, match):
    with pytest.raises(ValueError, match=match):
        get_attack(name)(nn.Sequential(nn.Flatten(), nn.Linear(48, 2)), _X, _Y, eps=0.1, **kwargs)


def test_bad_options():
    model = nn.Sequential(nn.Flatten(), nn.Linear(48, 3))
    with pytest.raises(ValueError, match="valid norms"):
        pgd(model, _X, _Y, eps=0.1, norm="l1")
    with pytest.raises(ValueError, match="random_start"):
        pgd(model, _X, _Y, eps=0.1, restarts=2, random_start=False)
    with pytest.raises(ValueError, match="restarts"):
        pgd(model, _X, _Y, eps=0.1, restarts=0)
    with pytest.raises(ValueError, match="binary"):
        pgd(model, _X, _Y, eps=0.1, targeted=True, target="other")
    with pytest.raises(ValueError, match="single step"):
        fgsm(model, _X, _Y, eps=0.1, steps=10)
    with pytest.raises(ValueError, match="decay"):
        mifgsm(model, _X, _Y, eps=0.1, decay=-1)
    with pytest.raises(ValueError, match="valid attacks: fgsm, ifgsm, pgd, mifgsm"):
        get_attack("deepfool")
    assert get_attack("I-FGSM").fn is ifgsm and get_attack("BIM").fn is ifgsm


def test_l2_budget_above_the_image_diameter_is_refused():
    model = nn.Sequential(nn.Flatten(), nn.Linear(48, 2))
    pgd(model, _X, _Y, eps=5.0, norm="l2", steps=1)  # large for L2 but inside the box's diameter
    with pytest.raises(ValueError, match="L2 diameter"):
        pgd(model, _X, _Y, eps=8.0, norm="l2", steps=1)  # sqrt(3 * 4 * 4) = 6.9


def test_uap_refuses_nan_pixels_and_zeta_above_one():
    from advmed.attacks.universal import uap

    model = nn.Sequential(nn.Flatten(), nn.Linear(48, 2))
    with pytest.raises(ValueError, match="NaN or infinite"):
        uap(model, torch.where(_X > 0.9, math.nan, _X), progress=False)
    with pytest.raises(ValueError, match="did you mean 0.04"):
        uap(model, _X, zeta=4, progress=False)
    with pytest.raises(ValueError, match="did you mean 8/255"):
        uap(model, _X, eps=8, progress=False)


def test_frozen_eval_restores_every_submodules_own_mode():
    from advmed.attacks import frozen_eval

    model = nn.Sequential(nn.Conv2d(3, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.LazyLinear(2))
    model(torch.rand(2, 3, 4, 4))
    model.train()
    model[1].eval()  # batch norm frozen on purpose while the rest trains
    with frozen_eval(model):
        assert not any(m.training for m in model.modules())
    assert model.training and model[0].training and not model[1].training
