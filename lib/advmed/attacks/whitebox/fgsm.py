"""FGSM: the fast gradient sign method (Goodfellow, Shlens & Szegedy, ICLR 2015).

One step of size ``eps`` along the sign of the input gradient of the loss:

    x_adv = clip_[0,1]( x + eps * sign(grad_x L(f(x), y)) )          (untargeted)
    x_adv = clip_[0,1]( x - eps * sign(grad_x L(f(x), t)) )          (targeted at t)

``eps`` is in [0, 1] pixel units (e.g. 2/255). Same update as ``torchattacks.FGSM``.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from ..losses import Target
from ._loop import run_attack


def fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float,
         steps: int = 1, step_size: Optional[float] = None, targeted: bool = False,
         target: Target = None, loss="ce", amp: bool = False,
         batch_size: Optional[int] = None, progress: bool = True) -> torch.Tensor:
    """Fast gradient sign method (Goodfellow et al. 2015); returns ``x_adv`` in [0, 1].

    Args:
        model: returns logits; run in eval mode with parameter gradients off, and left
            in the mode it was found in.
        x: float images ``(N, C, H, W)`` in [0, 1] (any number of channels), on the
            model's device.
        y: true labels ``(N,)``.
        eps: L-inf budget in [0, 1] pixel units.
        steps, step_size: accepted only so that every attack takes the same arguments;
            FGSM is one step of size ``eps`` (``steps=1``, ``step_size=None`` or ``eps``).
            Use :func:`~advmed.attacks.ifgsm` for several steps.
        targeted, target: ``targeted=True`` with ``target`` an int, an integer tensor
            ``(N,)`` or ``"other"`` (binary tasks) descends the loss towards the target.
        loss: ``"ce"`` (cross-entropy on logits) or ``"margin"`` (Carlini & Wagner
            2017), or a callable ``(logits, labels) -> (N,)``.
        amp, batch_size, progress: as in :func:`~advmed.attacks.pgd` (mixed precision on
            CUDA only; chunks of images; a tqdm bar over chunks).

    Example:
        >>> import torch
        >>> from advmed.attacks import fgsm
        >>> net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 8), torch.nn.Flatten())
        >>> x = torch.rand(2, 1, 8, 8)
        >>> delta = fgsm(net, x, torch.tensor([0, 1]), eps=4 / 255) - x
        >>> round(float(delta.abs().max()) * 255, 3) <= 4.0
        True
    """
    if steps != 1:
        raise ValueError(f"FGSM is a single step (steps=1), got steps={steps!r}; use ifgsm "
                         "(BIM) or pgd for iterative attacks")
    if step_size is not None and float(step_size) != float(eps):
        raise ValueError(f"FGSM steps by exactly eps; step_size={step_size!r} differs from "
                         f"eps={eps!r} (use ifgsm with steps=1 for another step size)")
    return run_attack(model, x, y, name="fgsm", eps=eps, steps=1, step_size=None,
                      step_rule="dong", targeted=targeted, target=target, loss=loss,
                      amp=amp, batch_size=batch_size, progress=progress)
