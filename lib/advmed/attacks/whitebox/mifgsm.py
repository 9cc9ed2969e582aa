"""MI-FGSM: the momentum iterative fast gradient sign method (Dong, Liao, Pang, Su, Zhu,
Hu & Li, CVPR 2018, "Boosting adversarial attacks with momentum").

I-FGSM whose step follows the sign of an accumulated, per-image normalised gradient:

    g_{t+1} = mu * g_t + grad_x L(x_t) / ||grad_x L(x_t)||_1
    x_{t+1} = Clip_{x, eps}( x_t + alpha * sign(g_{t+1}) )

The L1 norm is taken as the per-image *mean* absolute gradient (as torchattacks does;
it differs from the sum by a constant factor, which the sign ignores); an image whose
gradient is exactly zero keeps its momentum. ``eps`` and ``step_size`` (alpha) are in
[0, 1] pixel units; default ``step_size = eps / steps`` (Dong et al.: alpha = eps / T),
``decay`` (mu) = 1.0 as in the paper. Same update as ``torchattacks.MIFGSM``.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from ..losses import Target
from ._loop import run_attack


def mifgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float, steps: int = 10,
           step_size: Optional[float] = None, decay: float = 1.0, targeted: bool = False,
           target: Target = None, loss="ce", amp: bool = False,
           batch_size: Optional[int] = None, progress: bool = True, early_stop: bool = True) -> torch.Tensor:
    """Momentum iterative FGSM (Dong et al. 2018); returns ``x_adv`` in [0, 1].

    Args:
        model, x, y: logits model; float images ``(N, C, H, W)`` in [0, 1]; labels ``(N,)``.
        eps: L-inf budget in [0, 1] pixel units.
        steps: number of gradient steps (>= 1).
        step_size: alpha in [0, 1] pixel units; default ``eps / steps``.
        decay: momentum factor mu >= 0 (0 gives I-FGSM).
        targeted, target, loss, amp, batch_size, progress, early_stop: as in
            :func:`~advmed.attacks.pgd`.

    Example:
        >>> import torch
        >>> from advmed.attacks import mifgsm
        >>> conv = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 6), torch.nn.AdaptiveAvgPool2d(1),
        ...                            torch.nn.Flatten())
        >>> batch, labels = torch.rand(3, 3, 6, 6), torch.tensor([1, 0, 1])
        >>> moved = mifgsm(conv, batch, labels, eps=1 / 255, steps=4) - batch
        >>> bool(moved.abs().max() <= 1 / 255 + 1e-7)
        True
    """
    return run_attack(model, x, y, name="mifgsm", eps=eps, steps=steps, step_size=step_size,
                      step_rule="dong", targeted=targeted, target=target, loss=loss,
                      decay=float(decay), amp=amp, batch_size=batch_size, progress=progress,
                      early_stop=early_stop)
