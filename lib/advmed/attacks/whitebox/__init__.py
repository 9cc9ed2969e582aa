"""White-box evasion attacks: the attacker has the model's weights and its input gradient.

One file per attack, one functional API ``attack(model, x, y, *, eps, ...) -> x_adv``
(pixels in [0, 1], eps in [0, 1] pixel units), one shared loop (:mod:`._loop`).
"""
from .apgd import apgd
from .fgsm import fgsm
from .ifgsm import bim, ifgsm
from .mifgsm import mifgsm
from .pgd import pgd

__all__ = ["apgd", "bim", "fgsm", "ifgsm", "mifgsm", "pgd"]
