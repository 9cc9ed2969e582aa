"""Small models for the robust-evaluation tests: trained in about a second on a synthetic
task, and two deliberately gradient-masked versions of them.

The task: the class is the brighter of ``classes`` vertical stripes, by a per-image
amount uniform in [0.005, 0.04] around 0.5 (plus Gaussian noise), so that images differ
in how large a perturbation flips them and accuracy falls gradually with eps.
"""
from __future__ import annotations

import functools

import torch
from torch import nn


def synthetic(n: int, classes: int, size: int = 16, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, classes, (n,), generator=g)
    x = 0.5 + 0.05 * torch.randn(n, 3, size, size, generator=g)
    a = 0.005 + 0.035 * torch.rand(n, generator=g)
    w = size // classes
    for c in range(classes):
        x[:, :, :, c * w:(c + 1) * w] += torch.where(y == c, a, -a / (classes - 1))[:, None, None, None]
    return x.clamp(0, 1), y


def small_net(classes: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AvgPool2d(4), nn.Flatten(),
                         nn.Linear(8 * 16, 32), nn.ReLU(), nn.Linear(32, classes))


@functools.lru_cache(maxsize=None)
def trained(classes: int, seed: int = 0, steps: int = 300) -> nn.Module:
    """A small CNN trained with Adam on 2000 synthetic images (clean accuracy ~1)."""
    torch.manual_seed(seed)
    model = small_net(classes)
    x, y = synthetic(2000, classes, seed=seed + 100)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        i = torch.randint(0, 2000, (64,), generator=g)
        loss = nn.functional.cross_entropy(model(x[i]), y[i])
        opt.zero_grad()
        loss.backward()
        opt.step()
    for p in model.parameters():
        p.grad = None
    return model.eval()


class Scaled(nn.Module):
    """Logits times 1e4: softmax saturates, so cross-entropy gradients are exactly 0 on
    confidently classified images while the margin's are not (Carlini & Wagner 2017)."""

    def __init__(self, model: nn.Module, scale: float = 1e4):
        super().__init__()
        self.model, self.scale = model, scale

    def forward(self, x):
        return self.model(x) * self.scale


class _NoGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, g):
        return torch.zeros_like(g)


class Shattered(nn.Module):
    """The same predictions, no input gradient (a shattered-gradient defense in the sense
    of Athalye et al. 2018, e.g. non-differentiable preprocessing)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(_NoGradient.apply(x))
