"""Fast unit tests of advmed.attacks.uap on tiny untrained nets (no data, no training)."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from advmed.attacks import universal as U


class Tiny(nn.Module):
    """A conv net whose first layer normalises; returns one logit per class."""

    def __init__(self, channels: int = 3, classes: int = 4, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.register_buffer("mean", torch.full((1, channels, 1, 1), 0.5))
        self.net = nn.Sequential(
            nn.Conv2d(channels, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
            nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Dropout(0.2), nn.Linear(8 * 16, classes))

    def forward(self, x):
        return self.net((x - self.mean) / 0.25)


def images(n=24, c=3, size=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, c, size, size, generator=g)


@pytest.fixture
def model():
    return Tiny()


@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("method", ["iterative", "batched"])
def test_bound_and_pixels(model, norm, method):
    x = images()
    r = U.uap(model, x, zeta=0.04, norm=norm, method=method, step_size=0.01, max_passes=3,
              batch_size=1 if method == "iterative" else 8, progress=False)
    assert r.delta.shape == (1, 3, 16, 16)
    assert r.eps == pytest.approx(0.04 * U.mean_norm(x, norm))
    actual = r.norms[norm]
    assert actual <= r.eps * (1 + 1e-5)
    assert r.norms["linf"] == pytest.approx(float(r.delta.abs().max()))
    assert r.norms["l2"] == pytest.approx(float(r.delta.norm()), rel=1e-5)
    adv = U.apply(r, x)
    assert adv.min() >= 0 and adv.max() <= 1
    assert 1 <= r.passes <= 3 and len(r.fooling_rate_history) == r.passes
    assert r.seconds > 0 and r.zeta == 0.04


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_large_step_still_projected(model, norm):
    """Steps far larger than the ball must still end inside it."""
    x = images()
    r = U.uap(model, x, eps=0.02 if norm == "linf" else 0.5, norm=norm, step_size=0.5,
              max_passes=2, batch_size=4, progress=False)
    assert r.norms[norm] <= r.eps * (1 + 1e-5)
    assert r.zeta is None


def test_mode_restored(model):
    model.train()
    flags = [p.requires_grad for p in model.parameters()]
    U.uap(model, images(), max_passes=1, batch_size=4, step_size=0.01, progress=False)
    assert model.training
    assert [p.requires_grad for p in model.parameters()] == flags
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("method", ["iterative", "batched"])
@pytest.mark.parametrize("target", [None, 1])
def test_seeded(model, method, target):
    x = images()
    kw = dict(zeta=0.04, method=method, target=target, step_size=0.01, max_passes=2,
              batch_size=4, progress=False)
    a = U.uap(model, x, seed=3, **kw)
    b = U.uap(model, x, seed=3, **kw)
    assert torch.equal(a.delta, b.delta)
    assert a.fooling_rate_history == b.fooling_rate_history


def test_binary_two_logit_model_and_targeted():
    m = Tiny(channels=1, classes=2)
    x = images(c=1)
    r = U.uap(m, x, zeta=0.04, step_size=0.01, max_passes=2, batch_size=4, progress=False)
    assert r.delta.shape == (1, 1, 16, 16)
    t = U.uap(m, x, zeta=0.04, target=1, step_size=0.01, max_passes=2, batch_size=4,
              progress=False)
    assert t.target == 1 and len(t.success_rate_history) == t.passes
    assert 0 <= U.targeted_success_rate(m, x, t, 1, among="all") <= 1


def test_batched_variants_run(model):
    x = images()
    for opt in ("sign", "adam"):
        for norm in ("linf", "l2"):
            r = U.uap(model, x, method="batched", optimizer=opt, norm=norm, loss_clamp=5.0,
                      max_passes=2, batch_size=8, progress=False)
            assert r.norms[norm] <= r.eps * (1 + 1e-5)
            assert r.optimizer == opt


def test_target_rate_stops_early(model):
    x = images()
    r = U.uap(model, x, eps=0.5, step_size=0.1, method="batched", target_rate=0.01,
              max_passes=10, batch_size=8, progress=False)
    assert r.converged and r.passes == 1


def test_bad_arguments(model):
    x = images()
    with pytest.raises(ValueError, match="zeta"):
        U.uap(model, x, zeta=0, progress=False)
    with pytest.raises(ValueError, match="zeta"):
        U.uap(model, x, zeta=-0.02, progress=False)
    with pytest.raises(ValueError, match="valid norms"):
        U.uap(model, x, norm="l1", progress=False)
    with pytest.raises(ValueError, match="valid methods"):
        U.uap(model, x, method="deepfool", progress=False)
    with pytest.raises(ValueError, match="not a class"):
        U.uap(model, x, target=4, progress=False)
    with pytest.raises(ValueError, match="not a class"):
        U.uap(model, x, target=-1, progress=False)
    with pytest.raises(ValueError, match="empty"):
        U.uap(model, x[:0], progress=False)
    with pytest.raises(ValueError, match=r"outside \[0, 1\]"):
        U.uap(model, x * 255, progress=False)
    with pytest.raises(TypeError):
        U.uap(model, (x * 255).to(torch.uint8), progress=False)
    with pytest.raises(ValueError, match="target_rate"):
        U.uap(model, x, target_rate=0, progress=False)
    with pytest.raises(ValueError, match="optimizer"):
        U.uap(model, x, method="batched", optimizer="sgd", progress=False)
    with pytest.raises(ValueError, match="single output"):
        U.uap(nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 1)), x, progress=False)


def test_random_control():
    like = U.UAPResult(delta=torch.full((1, 3, 8, 8), 0.01), eps=0.03, zeta=0.04, norm="linf",
                       target=None, method="iterative", step_size=0.001,
                       fooling_rate_history=[0.5], success_rate_history=[], passes=1,
                       seconds=1.0, norms={"l2": 0.2, "linf": 0.01}, converged=False,
                       n_images=4, seed=0)
    r = U.random_control(like, seed=1)
    assert r.shape == (1, 3, 8, 8)
    assert torch.allclose(r.abs(), torch.full_like(r, 0.03))        # sign * eps
    assert torch.equal(r, U.random_control(like, seed=1))
    assert not torch.equal(r, U.random_control(like, seed=2))
    u = U.random_control(like, seed=1, linf_kind="uniform")
    assert u.abs().max() <= 0.03
    like.norm = "l2"
    r2 = U.random_control(like, seed=1)
    assert float(r2.norm()) == pytest.approx(0.2, rel=1e-5)          # the UAP's actual L2 norm
    r3 = U.random_control((3, 8, 8), eps=1.5, norm="l2", seed=0)
    assert float(r3.norm()) == pytest.approx(1.5, rel=1e-5)
    with pytest.raises(ValueError, match="needs eps and norm"):
        U.random_control((3, 8, 8))


def test_eps_from_zeta_conventions():
    x = torch.zeros(2, 3, 4, 4)
    x[0] = 1.0
    assert U.eps_from_zeta(x, 0.5, "linf") == pytest.approx(0.5 * 0.5)
    assert U.eps_from_zeta(x, 0.5, "l2") == pytest.approx(0.5 * math.sqrt(48) / 2)
    # study: channel 0 of (255x-128)/128 -> |127/128| or |-1|; back in [0,1] units * 128/255
    s = U.eps_from_zeta(x, 0.5, "linf", convention="study")
    assert s == pytest.approx(0.5 * (127 / 128 + 1) / 2 * 128 / 255)
    with pytest.raises(ValueError, match="convention"):
        U.eps_from_zeta(x, 0.5, "linf", convention="art")


def test_rates_and_per_class(model):
    x = images(n=40)
    d = torch.zeros(1, 3, 16, 16)
    assert U.fooling_rate(model, x, d) == 0.0
    clean = U.predict(model, x)
    c = int(clean[0])
    assert U.targeted_success_rate(model, x, d, c, among="all") == pytest.approx(
        float((clean == c).float().mean()))
    assert U.targeted_success_rate(model, x, d, c) == 0.0  # non-target images only
    y = torch.arange(40) % 4
    big = U.random_control((3, 16, 16), eps=0.5, norm="linf", seed=0)
    rows = U.per_class_rates(model, x, y, big, target=c, n_boot=200)
    assert [r["class"] for r in rows] == [0, 1, 2, 3, -1]
    assert sum(r["n"] for r in rows[:-1]) == rows[-1]["n"] == 40
    for r in rows:
        lo, hi = r["fooling_ci"]
        assert 0 <= lo <= r["fooling_rate"] <= hi <= 1
    assert U.apply(big, x).min() >= 0 and U.apply(big, x).max() <= 1


def test_mean_interval_covers_the_mean_and_empty_is_nan():
    from advmed.metrics import mean_interval

    est = mean_interval([1, 0] * 50, n_boot=2000, seed=0)
    assert est.lo < 0.5 < est.hi and est.hi - est.lo < 0.3 and est.value == 0.5
    assert all(math.isnan(v) for v in mean_interval([]))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("method", ["iterative", "batched"])
def test_cuda(method):
    m = Tiny().cuda()
    x = images().cuda()
    r = U.uap(m, x, step_size=0.01, method=method, max_passes=2, batch_size=4, progress=False)
    assert r.delta.device.type == "cuda"
    assert r.norms["linf"] <= r.eps * (1 + 1e-5)
    assert 0 <= U.fooling_rate(m, x, r) <= 1


def test_min_gain_stops_when_a_pass_gains_too_little():
    m = Tiny()
    x = images()
    full = U.uap(m, x, zeta=0.04, method="batched", max_passes=6, batch_size=4, progress=False)
    early = U.uap(m, x, zeta=0.04, method="batched", max_passes=6, batch_size=4, min_gain=0.5, progress=False)
    assert full.passes == 6
    assert early.passes < 6 and early.converged
    gains = [b - a for a, b in zip(early.fooling_rate_history, early.fooling_rate_history[1:])]
    assert gains[-1] < 0.5 and all(g >= 0.5 for g in gains[:-1])
    with pytest.raises(ValueError, match="min_gain"):
        U.uap(m, x, min_gain=2, progress=False)
