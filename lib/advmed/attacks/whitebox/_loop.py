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
updates are in place; every tensor keeps the input's memory format (channels_last stays
channels_last).

Per-image early stopping (``early_stop=True``, the default of the iterative attacks):
an image stops being attacked as soon as an iterate fools the model (misclassified,
or classified as its target when targeted). The forward pass of each step already gives
the logits of the current iterate, so the check costs no extra model call; fooled
images are written to the output and dropped from the batch, so the remaining steps
run (forward and backward) on the survivors only. The image returned is each image's
*first* successful iterate (inside the ball and the [0, 1] box, like every iterate),
or its last iterate if none succeeded. Since it stops just past the decision boundary,
it is the right output for robust accuracy and the wrong one for measuring how
confidently a model can be fooled (use ``early_stop=False`` for that: the last iterate,
exactly as without early stopping). The iterate reached after the last step is not
checked (that would cost one more forward pass); it is returned as the last iterate.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn

from ...device import autocast, work_batch
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


def memory_format(x: torch.Tensor) -> torch.memory_format:
    """``channels_last`` if ``x`` is stored so (and not also plainly contiguous), else contiguous.

    Every tensor the loops create is put in this format, so that a channels_last input
    stays channels_last (and the model keeps running its channels_last kernels).
    """
    if x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


def compact(keep: torch.Tensor, *tensors: Optional[torch.Tensor],
            fmt: torch.memory_format = torch.contiguous_format):
    """The rows ``keep`` of every tensor (None stays None), 4-D ones in memory format ``fmt``."""
    out = []
    for t in tensors:
        if t is not None:
            t = t[keep]
            if t.dim() == 4:
                t = t.contiguous(memory_format=fmt)
        out.append(t)
    return out


def _step(x_adv, grad, x, bounds, momentum, *, norm, eps, step_size, decay):
    """One update of I-FGSM / PGD / MI-FGSM from the input gradient; returns (x_adv, momentum)."""
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
    return x_adv, momentum


def _single_run(model: nn.Module, x: torch.Tensor, bounds, objective: _Objective,
                idx: Optional[torch.Tensor], *, eps: float, steps: int, step_size: float,
                norm: str, start: bool, decay: Optional[float],
                generator: Optional[torch.Generator], amp: bool,
                early_stop: bool = False) -> torch.Tensor:
    """One run of the loop from one start; ``idx`` maps these images to the objective's labels.

    With ``early_stop``, each forward pass also tells which images the current iterate
    already fools (the logits are there anyway): those are written to the output as
    they are and dropped from the batch, so the later steps run on the others only. The
    output is then each image's first successful iterate, or its last iterate.
    """
    fmt = memory_format(x)
    x_adv = random_start(x, eps, norm, generator) if start else x.clone()
    x_adv = x_adv.contiguous(memory_format=fmt)
    momentum = torch.zeros_like(x_adv) if decay is not None else None
    out = torch.empty_like(x_adv) if early_stop else None
    pos = torch.arange(x.shape[0], device=x.device)  # rows of ``out`` still attacked
    rows = idx  # the objective's labels of those rows (None: all, in order)
    for _ in range(steps):
        x_adv.requires_grad_(True)
        with autocast(x.device, amp):
            logits = model(x_adv)
        (grad,) = torch.autograd.grad(objective(logits, rows).sum(), x_adv)
        x_adv = x_adv.detach()
        if early_stop:
            done = objective.success(logits.detach(), rows)
            if bool(done.any()):
                out[pos[done]] = x_adv[done]
                keep = ~done
                if not bool(keep.any()):
                    return out
                pos, x, x_adv, grad, momentum = compact(keep, pos, x, x_adv, grad, momentum, fmt=fmt)
                rows = pos if idx is None else idx[pos]
                if bounds is not None:
                    bounds = tuple(compact(keep, *bounds, fmt=fmt))
        del logits
        x_adv, momentum = _step(x_adv, grad, x, bounds, momentum, norm=norm, eps=eps,
                                step_size=step_size, decay=decay)
    if not early_stop:
        return x_adv
    out[pos] = x_adv
    return out


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
        fmt = memory_format(x)
        sub_bounds = None if bounds is None else tuple(compact(idx, *bounds, fmt=fmt))
        (x_sub,) = compact(idx, x, fmt=fmt)
        cand = _single_run(model, x_sub, sub_bounds, objective, idx, norm=norm, eps=eps,
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
               batch_size: Optional[int] = None, progress: bool = True,
               early_stop: bool = False) -> torch.Tensor:
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
    if not isinstance(early_stop, bool):
        raise TypeError(f"early_stop must be True or False, got {early_stop!r}")

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
    bs = work_batch(batch_size, x)
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
                                  step_size=step_size, start=random_start, decay=decay,
                                  early_stop=early_stop)
            if out is None:
                return x_adv
            out[sl] = x_adv
    return out
