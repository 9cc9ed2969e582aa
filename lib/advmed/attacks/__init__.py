"""White-box gradient attacks: one file per attack, one functional API.

Every attack is ``attack(model, x, y, *, eps, steps, step_size, ...) -> x_adv`` with
pixels in [0, 1] and ``eps`` in [0, 1] pixel units; the model returns logits and is run
in eval mode under :func:`frozen_eval` (its mode and parameter gradients are restored).

- :func:`fgsm`: Goodfellow et al. 2015 (one step of size eps).
- :func:`ifgsm` (alias ``bim``): Kurakin et al. 2017.
- :func:`pgd`: Madry et al. 2018; L-inf or L2, random start, restarts.
- :func:`mifgsm`: Dong et al. 2018, momentum.

Losses (``loss=``): ``"ce"`` (default) or ``"margin"`` (Carlini & Wagner 2017), see
:mod:`advmed.attacks.losses`. Targeted attacks: ``targeted=True, target=<int | tensor |
"other">``.
"""
from __future__ import annotations

from typing import Callable

from ._common import check_eps, check_images, check_labels, frozen_eval
from .fgsm import fgsm
from .ifgsm import bim, ifgsm
from .losses import LOSSES, get_loss
from .mifgsm import mifgsm
from .pgd import pgd

ATTACKS: dict[str, Callable] = {
    "fgsm": fgsm,
    "ifgsm": ifgsm,
    "bim": ifgsm,
    "pgd": pgd,
    "mifgsm": mifgsm,
}


def get_attack(name: str) -> Callable:
    """The attack function registered under ``name`` (case and ``-``/``_`` ignored)."""
    key = str(name).lower().replace("-", "").replace("_", "")
    if key not in ATTACKS:
        raise ValueError(f"unknown attack {name!r}; valid attacks: {', '.join(ATTACKS)}")
    return ATTACKS[key]


__all__ = ["ATTACKS", "LOSSES", "bim", "check_eps", "check_images", "check_labels", "fgsm",
           "frozen_eval", "get_attack", "get_loss", "ifgsm", "mifgsm", "pgd"]
