"""Expectation over Transformation (EOT): a random defense's expected prediction, as a model.

Athalye, Engstrom, Ilyas & Kwok (ICML 2018, "Synthesizing robust adversarial examples")
and Athalye, Carlini & Wagner (ICML 2018, Sec. 4.3): against a randomised defense (a
sampled VAE latent, Gaussian noise) the attacker optimises the *expected* loss over the
randomness, estimated with ``samples`` draws per step. Wrapped as a model, every attack of
:mod:`advmed.attacks` becomes an EOT attack unchanged:

    EOT(f)(x) = log( (1 / k) * sum_i softmax(f(x)_i) ),  i = 1..k independent draws,

the log of the Monte Carlo estimate of the randomised classifier's expected class
probabilities (valid log-probabilities, so ``argmax`` is its expected vote and the
cross-entropy is ``-log E[p_y]``; Salman et al., NeurIPS 2019, attack smoothed
classifiers through the same quantity). The ``k`` draws run as one batch of ``k N`` images.

Example:
    >>> import torch
    >>> from advmed.defenses import eot
    >>> noisy = torch.nn.Sequential(torch.nn.Dropout(0.5), torch.nn.Flatten(), torch.nn.Linear(12, 2)).train()
    >>> p = eot(noisy, samples=16)(torch.rand(4, 3, 2, 2)).exp()     # expected probabilities
    >>> bool(torch.allclose(p.sum(1), torch.ones(4)))
    True
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

__all__ = ["EOTModel", "eot"]


class EOTModel(nn.Module):
    """``log mean_i softmax(model(x))`` over ``samples`` forward passes of a random model.

    Args:
        model: a model whose forward is random (e.g. ``vae_defense(..., sample=True)``).
        samples: draws per forward (>= 1); memory grows with ``samples x`` batch size.

    ``meta`` is the wrapped model's ``meta`` plus ``"eot_samples"``.
    """

    def __init__(self, model: nn.Module, samples: int = 16):
        super().__init__()
        if isinstance(samples, bool) or int(samples) != samples or samples < 1:
            raise ValueError(f"samples must be an integer >= 1 (draws of the randomness per forward), "
                             f"got {samples!r}")
        self.model, self.samples = model, int(samples)
        self.meta: dict[str, Any] = {**dict(getattr(model, "meta", {}) or {}), "eot_samples": self.samples}
        self.training = model.training  # a new module is in train mode; take the wrapped model's

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, n = self.samples, x.shape[0]
        xk = x.unsqueeze(0).expand(k, *x.shape).reshape(k * n, *x.shape[1:])
        logp = torch.log_softmax(self.model(xk).float(), dim=1).view(k, n, -1)
        return torch.logsumexp(logp, dim=0) - math.log(k)

    def extra_repr(self) -> str:
        return f"samples={self.samples}"


def eot(model: nn.Module, samples: int = 16) -> EOTModel:
    """:class:`EOTModel` of ``model`` with ``samples`` draws per forward."""
    return EOTModel(model, samples)
