"""Score-based black-box (query) attacks: the attacker sees output probabilities only.

Every attack here reaches the model through :class:`ScoreOracle` (eval mode, no gradients,
probabilities out, each image's forward passes counted) and nothing else.

- :func:`square`: Square Attack (Andriushchenko et al., ECCV 2020), L-inf and L2.
- :func:`simba`: SimBA and SimBA-DCT (Guo et al., ICML 2019), untargeted and targeted.
- :func:`hopskipjump`: HopSkipJump (Chen et al., S&P 2020), label-only (decision-based):
  it reads only the argmax of the oracle's answer.
- :func:`usimba`: U-SimBA, universal perturbations by SimBA-style hill climbing
  (Koga & Takemoto, Algorithms 2022).

The per-image attacks return a :class:`QueryResult` (``x_adv``, per-image ``queries`` and
``success``, perturbation sizes, ``seconds``); :func:`usimba` a :class:`USimBAResult`, a
:class:`~advmed.attacks.universal.UAPResult` with query counts.

Registry (:func:`advmed.attacks.get_attack`): ``"square"`` and ``"simba"`` (threat
``"blackbox"``) and ``"usimba"`` (threat ``"universal"``) are registered through
:func:`images_only`, so that ``spec.call(model, x, y, eps=...)`` returns ``x_adv`` like every
other registered attack; their budgets are ``queries`` / ``max_queries`` / ``iterations``
(pass them as extra keyword arguments), never the white-box ``steps``.

Example:
    >>> import torch
    >>> from advmed.attacks.blackbox import square
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 2))
    >>> x, y = torch.rand(4, 3, 8, 8), torch.tensor([0, 1, 0, 1])
    >>> r = square(model, x, y, eps=8 / 255, queries=50, seed=0, progress=False)
    >>> r.x_adv.shape, r.queries.dtype
    (torch.Size([4, 3, 8, 8]), torch.int64)
"""
from __future__ import annotations

import functools
from typing import Callable

from .hopskipjump import hopskipjump
from .oracle import QueryBudgetExceeded, QueryResult, ScoreOracle
from .simba import simba
from .square import P_INIT, p_selection, square
from .usimba import CRITERIA, USIMBA_STEP, USimBAResult, usimba

__all__ = ["CRITERIA", "P_INIT", "QueryBudgetExceeded", "QueryResult", "ScoreOracle", "USIMBA_STEP",
           "USimBAResult", "hopskipjump", "images_only", "p_selection", "simba", "square", "usimba"]


def images_only(fn: Callable) -> Callable:
    """``fn`` returning only the adversarial images, for the registry's ``fn -> x_adv`` contract.

    Per-image attacks give ``result.x_adv``; :func:`usimba` gives the build images with the
    universal perturbation applied, ``clip(x + delta, 0, 1)`` (evaluate on held-out images
    with :mod:`advmed.attacks.universal.evaluate` instead, for an honest rate). The signature
    (``inspect.signature``) is ``fn``'s, so ``AttackSpec.call`` passes only what it accepts.
    """
    @functools.wraps(fn)
    def wrapper(model, x, *args, **kwargs):
        result = fn(model, x, *args, **kwargs)
        if hasattr(result, "x_adv"):
            return result.x_adv
        return (x + result.delta).clamp(0, 1)

    return wrapper
