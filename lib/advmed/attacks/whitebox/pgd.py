"""PGD: projected gradient descent (Madry, Makelov, Schmidt, Tsipras & Vladu, ICLR 2018,
"Towards deep learning models resistant to adversarial attacks").

From a random point of the eps-ball, ascend the loss by steepest-ascent steps for the
norm, projecting after each step onto the ball around ``x`` and clipping to [0, 1]:

    L-inf:  x_{t+1} = Proj( x_t + alpha * sign(g_t) )
    L2:     x_{t+1} = Proj( x_t + alpha * g_t / ||g_t||_2 )

With ``restarts > 1`` the attack is repeated from new random starts and, per image, the
worst case is kept (a misclassification beats none, then the higher loss wins); later
restarts only attack the images not yet fooled.

``eps`` and ``step_size`` are in [0, 1] pixel units (for L2, the L2 norm of the
perturbation over all pixels and channels). Default ``step_size = 2.5 * eps / steps``
(Madry et al.: enough to cross the ball from any start; it equals torchattacks' PGD
defaults, alpha = 2/255 for eps = 8/255 and 10 steps). Same updates as
``torchattacks.PGD`` / ``torchattacks.PGDL2``.

Finlayson et al. (2019) attack: ``pgd(model, x, y, eps=0.01, step_size=0.005, steps=20,
targeted=True, target="other")`` (their eps 0.02 and step 0.01 are in [-1, 1] units).
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from ..losses import Target
from ._loop import run_attack


def pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float, steps: int = 10,
        step_size: Optional[float] = None, norm: str = "linf", random_start: bool = True,
        restarts: int = 1, seed: Optional[int] = 0, targeted: bool = False,
        target: Target = None, loss="ce", amp: bool = False,
        batch_size: Optional[int] = None, progress: bool = True, early_stop: bool = True) -> torch.Tensor:
    """Projected gradient descent (Madry et al. 2018); returns ``x_adv`` in [0, 1].

    Args:
        model: returns logits; run in eval mode with parameter gradients off, and left
            in the mode it was found in.
        x: float images ``(N, C, H, W)`` in [0, 1], on the model's device.
        y: true labels ``(N,)``.
        eps: budget in [0, 1] pixel units, in the norm ``norm``.
        steps: gradient steps per restart (>= 1).
        step_size: alpha in [0, 1] pixel units; default ``2.5 * eps / steps``.
        norm: ``"linf"`` or ``"l2"``.
        random_start: start from a random point of the ball (uniform in the L-inf cube;
            for L2 a Gaussian direction at a radius uniform in [0, eps]).
        restarts: independent random starts; the worst case per image is kept.
        seed: seeds the random starts (a generator on ``x``'s device); ``None`` uses
            torch's global generator.
        targeted, target: ``targeted=True`` with ``target`` an int, an integer tensor
            ``(N,)`` or ``"other"`` (the other class of a binary task) descends the loss
            towards the target.
        loss: ``"ce"`` (cross-entropy on logits, default) or ``"margin"`` (Carlini &
            Wagner 2017 logit margin), or a callable ``(logits, labels) -> (N,)``.
        amp: mixed precision for the forward pass (CUDA only; a no-op on CPU).
        batch_size: attack ``x`` in chunks of this many images (None: all at once, on a CPU
            cache-sized chunks: :func:`advmed.device.work_batch`).
        progress: a tqdm bar when there is more than one chunk.
        early_stop: stop attacking an image at its first successful iterate and return
            that iterate (default); ``False`` returns the last iterate of every image
            (see :mod:`advmed.attacks.whitebox._loop`).

    Example:
        >>> import torch
        >>> from advmed.attacks import pgd
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 2))
        >>> x, y = torch.rand(4, 3, 8, 8), torch.tensor([0, 1, 0, 1])
        >>> x_adv = pgd(model, x, y, eps=0.5, norm="l2", steps=10, restarts=2, seed=0)
        >>> bool(((x_adv - x).flatten(1).norm(dim=1) <= 0.5 + 1e-6).all())
        True
    """
    return run_attack(model, x, y, name="pgd", eps=eps, steps=steps, step_size=step_size,
                      step_rule="madry", norm=norm, targeted=targeted, target=target,
                      loss=loss, random_start=random_start, restarts=restarts, seed=seed,
                      amp=amp, batch_size=batch_size, progress=progress,
                      early_stop=early_stop)
