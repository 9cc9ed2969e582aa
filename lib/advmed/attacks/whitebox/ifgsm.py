"""I-FGSM / BIM: the basic iterative method (Kurakin, Goodfellow & Bengio, ICLR 2017
workshop, "Adversarial examples in the physical world").

FGSM repeated with a small step, each iterate clipped to the eps-cube around ``x`` and
to [0, 1] (their ``Clip_{X, eps}``):

    x_0 = x,   x_{t+1} = Clip_{x, eps}( x_t + alpha * sign(grad_x L(f(x_t), y)) )

It is PGD (Madry et al. 2018) without the random start. ``eps`` and ``step_size``
(alpha) are in [0, 1] pixel units. Default ``step_size = 2.5 * eps / steps`` (Madry's
rule; equal to torchattacks' BIM defaults alpha = 2/255 for eps = 8/255 and 10 steps);
Kurakin et al. used alpha = 1/255 and ``min(eps*255 + 4, 1.25*eps*255)`` steps, which
you can pass explicitly. Same update as ``torchattacks.BIM``.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from ..losses import Target
from ._loop import run_attack


def ifgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float, steps: int = 10,
          step_size: Optional[float] = None, targeted: bool = False, target: Target = None,
          loss="ce", amp: bool = False, batch_size: Optional[int] = None,
          progress: bool = True, early_stop: bool = True) -> torch.Tensor:
    """Iterative FGSM / BIM (Kurakin et al. 2017); returns ``x_adv`` in [0, 1].

    Args:
        model, x, y: logits model; float images ``(N, C, H, W)`` in [0, 1]; labels ``(N,)``.
        eps: L-inf budget in [0, 1] pixel units.
        steps: number of gradient steps (>= 1).
        step_size: alpha in [0, 1] pixel units; default ``2.5 * eps / steps``.
        targeted, target, loss, amp, batch_size, progress, early_stop: as in
            :func:`~advmed.attacks.pgd`.

    Example (targeted, every image pushed to class 2):
        >>> import torch
        >>> from advmed.attacks import ifgsm
        >>> linear = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(48, 3))
        >>> images = torch.rand(5, 3, 4, 4)
        >>> out = ifgsm(linear, images, torch.zeros(5, dtype=torch.long), eps=0.03, steps=10,
        ...             targeted=True, target=2)
        >>> tuple(out.shape), bool(out.min() >= 0)
        ((5, 3, 4, 4), True)
    """
    return run_attack(model, x, y, name="ifgsm", eps=eps, steps=steps, step_size=step_size,
                      step_rule="madry", targeted=targeted, target=target, loss=loss,
                      amp=amp, batch_size=batch_size, progress=progress,
                      early_stop=early_stop)


bim = ifgsm
