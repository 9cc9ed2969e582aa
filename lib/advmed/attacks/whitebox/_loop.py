"""Steps and projections shared by the gradient attacks (FGSM, I-FGSM, PGD, MI-FGSM).

All four are one loop, written once here (Madry et al. 2018, eq. 2):

    x_{t+1} = Proj_{B(x, eps) & [0,1]^d} ( x_t + step_size * d(grad_x L(x_t)) )

with ``d = sign`` for the L-infinity ball (Goodfellow et al. 2015; Kurakin et al. 2017),
``d = g / ||g||_2`` for the L2 ball, and, for MI-FGSM (Dong et al. 2018), ``d`` applied to
the momentum ``g_{t+1} = mu * g_t + grad / mean|grad|`` instead of the raw gradient.
Every step is projected onto the eps-ball around ``x`` *and* clipped to [0, 1], so each
iterate is a valid image within budget; nothing is clamped silently beyond that.

Implementation notes (they make the loop as fast as a bare forward/backward loop):
the model runs under :func:`~advmed.attacks.checks.frozen_eval` (eval mode, parameters
not requiring gradients, so autograd never builds weight-gradient work);
``torch.autograd.grad`` is taken w.r.t. the input only; the L-inf projection is a
single ``clamp`` between precomputed bounds ``max(x - eps, 0)`` and ``min(x + eps, 1)``;
updates are in place.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn

from ...device import autocast
from ..checks import (
    check_eps,
    check_images,
    check_labels,
    check_norm,
    check_steps,
    frozen_eval,
)
from ..losses import LossFn, Target, check_target, get_loss, resolve_labels
from ..registry import default_step_size


def check_step_size(step_size: Optional[float], eps: float, steps: int, rule: str) -> float:
    if step_size is None:
        return default_step_size(eps, steps, rule)
    if isinstance(step_size, bool) or not isinstance(step_size, (int, float)):
        raise TypeError(f"step_size must be a number in [0, 1] pixel units or None, got {step_size!r}")
    step_size = float(step_size)
    if not math.isfinite(step_size) or step_size <= 0:
        raise ValueError(f"step_size must be a finite number > 0 in [0, 1] pixel units, got {step_size}")
    return step_size


def linf_bounds(x: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pixel bounds of the L-inf ball intersected with [0, 1]."""
    return (x - eps).clamp_(min=0), (x + eps).clamp_(max=1)


def _per_image(v: torch.Tensor) -> torch.Tensor:
    return v.view(-1, *([1] * 3))


def project_l2(x_adv: torch.Tensor, x: torch.Tensor, eps: float) -> torch.Tensor:
    """Scale ``x_adv - x`` back onto the L2 ball of radius ``eps``, then clip to [0, 1].

    Clipping to [0, 1] can only shrink each coordinate of the perturbation (``x`` is in
    [0, 1]), so the result stays in the ball.
    """
    delta = x_adv - x
    norms = delta.flatten(1).norm(p=2, dim=1)
    factor = (eps / norms.clamp_min(1e-12)).clamp_max_(1.0)
    return delta.mul_(_per_image(factor)).add_(x).clamp_(0, 1)


def random_start(x: torch.Tensor, eps: float, norm: str,
                 generator: Optional[torch.Generator]) -> torch.Tensor:
    """A random point of the eps-ball around ``x``, clipped to [0, 1].

    L-inf: uniform in the cube (Madry et al. 2018). L2: a Gaussian direction scaled to a
    radius uniform in [0, eps] (as torchattacks' PGDL2).
    """
    if norm == "linf":
        noise = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        return noise.mul_(2 * eps).sub_(eps).add_(x).clamp_(0, 1)
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    radius = torch.rand(x.shape[0], generator=generator, device=x.device, dtype=x.dtype)
    norms = noise.flatten(1).norm(p=2, dim=1).clamp_min(1e-12)
    return noise.mul_(_per_image(radius * eps / norms)).add_(x).clamp_(0, 1)


class _Objective:
    """The per-image quantity the attack ascends; labels are checked at the first forward."""

    def __init__(self, loss_fn: LossFn, y: torch.Tensor, targeted: bool, target: Target):
        self.loss_fn, self.y, self.targeted, self.target = loss_fn, y, targeted, target
        self.labels: Optional[torch.Tensor] = None

    def _labels(self, logits: torch.Tensor, idx: Optional[torch.Tensor]) -> torch.Tensor:
        if self.labels is None:  # first forward: the full batch
            self.labels = resolve_labels(logits, self.y, self.targeted, self.target)
        return self.labels if idx is None else self.labels[idx]

    def __call__(self, logits: torch.Tensor, idx: Optional[torch.Tensor] = None) -> torch.Tensor:
        value = self.loss_fn(logits.float(), self._labels(logits, idx))
        return -value if self.targeted else value

    def success(self, logits: torch.Tensor, idx: Optional[torch.Tensor] = None) -> torch.Tensor:
        pred = logits.argmax(dim=1)
        labels = self._labels(logits, idx)
        return pred == labels if self.targeted else pred != labels


def _single_run(model: nn.Module, x: torch.Tensor, bounds, objective: _Objective,
                idx: Optional[torch.Tensor], *, eps: float, steps: int, step_size: float,
                norm: str, start: bool, decay: Optional[float],
                generator: Optional[torch.Generator], amp: bool) -> torch.Tensor:
    x_adv = random_start(x, eps, norm, generator) if start else x.clone()
    momentum = torch.zeros_like(x) if decay is not None else None
    for _ in range(steps):
        x_adv.requires_grad_(True)
        with autocast(x.device, amp):
            logits = model(x_adv)
        (grad,) = torch.autograd.grad(objective(logits, idx).sum(), x_adv)
        del logits
        x_adv = x_adv.detach()
        if momentum is not None:  # Dong et al. 2018, eq. 6 (L1 norm as a per-image mean)
            scale = grad.abs().mean(dim=(1, 2, 3), keepdim=True)
            grad = grad.div_(torch.where(scale > 0, scale, torch.ones_like(scale)))
            grad.add_(momentum, alpha=decay)
            momentum = grad
        if norm == "linf":
            direction = grad.sign() if momentum is not None else grad.sign_()
            x_adv.add_(direction, alpha=step_size)
            torch.clamp(x_adv, bounds[0], bounds[1], out=x_adv)
        else:
            gnorm = grad.flatten(1).norm(p=2, dim=1)
            grad.div_(_per_image(torch.where(gnorm > 0, gnorm, torch.ones_like(gnorm))))
            x_adv = project_l2(x_adv.add_(grad, alpha=step_size), x, eps)
    return x_adv


@torch.no_grad()
def _evaluate(model, x_adv, objective, idx, amp):
    with autocast(x_adv.device, amp):
        logits = model(x_adv)
    return objective(logits, idx), objective.success(logits, idx)


def _attack_batch(model, x, objective, *, restarts, generator, amp, norm, eps, **kw):
    bounds = linf_bounds(x, eps) if norm == "linf" else None
    best = _single_run(model, x, bounds, objective, None, norm=norm, eps=eps,
                       generator=generator, amp=amp, **kw)
    if restarts == 1:
        return best
    # keep, per image, the worst case over restarts: a success beats a failure, then the
    # higher objective wins. Later restarts only attack the images not yet fooled, so the
    # first restart is exactly the single-restart attack and accuracy can only fall.
    best_value, best_ok = _evaluate(model, best, objective, None, amp)
    for _ in range(restarts - 1):
        idx = (~best_ok).nonzero().squeeze(1)
        if idx.numel() == 0:
            break
        sub_bounds = None if bounds is None else (bounds[0][idx], bounds[1][idx])
        cand = _single_run(model, x[idx], sub_bounds, objective, idx, norm=norm, eps=eps,
                           generator=generator, amp=amp, **kw)
        value, ok = _evaluate(model, cand, objective, idx, amp)
        better = ok | (value > best_value[idx])
        sel = idx[better]
        best[sel], best_value[sel], best_ok[sel] = cand[better], value[better], ok[better]
    return best


def run_attack(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, name: str, eps: float,
               steps: int, step_size: Optional[float], step_rule: str = "madry",
               norm: str = "linf", targeted: bool = False, target: Target = None,
               loss="ce", random_start: bool = False, restarts: int = 1,
               decay: Optional[float] = None, seed: Optional[int] = None, amp: bool = False,
               batch_size: Optional[int] = None, progress: bool = True) -> torch.Tensor:
    """Check every argument, then run the shared loop over batches. See the module doc."""
    check_images(x)
    check_labels(y, x)
    norm = check_norm(norm)
    eps = check_eps(eps, norm=norm, x=x)
    steps = check_steps(steps)
    step_size = check_step_size(step_size, eps, steps, step_rule)
    check_target(targeted, target, x)
    loss_fn = get_loss(loss)
    if int(restarts) != restarts or restarts < 1:
        raise ValueError(f"restarts must be an integer >= 1, got {restarts!r}")
    if restarts > 1 and not random_start:
        raise ValueError("restarts > 1 needs random_start=True (without it every restart is the same)")
    if decay is not None and (not math.isfinite(float(decay)) or decay < 0):
        raise ValueError(f"decay (momentum factor mu) must be a finite number >= 0, got {decay}")
    if batch_size is not None and (int(batch_size) != batch_size or batch_size < 1):
        raise ValueError(f"batch_size must be an integer >= 1 or None, got {batch_size!r}")
    if not isinstance(amp, bool):
        raise TypeError(f"amp must be True or False, got {amp!r}")

    x = x.detach()
    y = y.detach().to(device=x.device, dtype=torch.int64)
    if torch.is_tensor(target):
        target = target.detach().to(device=x.device, dtype=torch.int64)
    n = x.shape[0]
    if n == 0:
        return x.clone()
    generator = None
    if random_start and seed is not None:
        generator = torch.Generator(device=x.device).manual_seed(int(seed))
    bs = n if batch_size is None else int(batch_size)
    starts = range(0, n, bs)
    if len(starts) > 1 and progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc=name, unit="batch")
    out = torch.empty_like(x) if len(starts) > 1 else None
    with frozen_eval(model), torch.enable_grad():
        for s in starts:
            sl = slice(s, s + bs)
            objective = _Objective(loss_fn, y[sl], targeted,
                                   target[sl] if torch.is_tensor(target) else target)
            x_adv = _attack_batch(model, x[sl], objective, restarts=int(restarts),
                                  generator=generator, amp=amp, norm=norm, eps=eps, steps=steps,
                                  step_size=step_size, start=random_start, decay=decay)
            if out is None:
                return x_adv
            out[sl] = x_adv
    return out
