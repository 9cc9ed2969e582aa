"""APGD: auto-PGD (Croce & Hein, ICML 2020, "Reliable evaluation of adversarial robustness
with an ensemble of diverse parameter-free attacks"), the first attacks of AutoAttack.

PGD without a step size to tune: a momentum step and a per-image step size that starts
at ``2 * eps`` and is halved at checkpoints when the loss stops improving.

    z       = P( x_k + eta_k * d(grad f(x_k)) )               d = sign (L-inf), g/||g|| (L2)
    x_{k+1} = P( x_k + alpha (z - x_k) + (1 - alpha)(x_k - x_{k-1}) ),   alpha = 0.75
                                                              (alpha = 1 at the first step)

Checkpoints ``w_j = p_j * steps`` with ``p_0 = 0, p_1 = 0.22`` and
``p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06)``. At each checkpoint the step of an
image is halved, and the image restarts from its best point so far (with that point's
gradient), if

1. the loss rose in at most a fraction ``rho`` (0.75) of the steps since the last
   checkpoint, or
2. the step was not halved at the last checkpoint and the best loss has not improved
   since.

Losses (``loss=``), all ascended:

- ``"ce"``: cross-entropy (APGD-CE);
- ``"margin"``: the Carlini & Wagner logit margin ``max_{j != y} z_j - z_y``;
- ``"dlr"``: the difference of logits ratio ``-(z_y - max_{j != y} z_j) / (z_pi1 - z_pi3)``
  (Croce & Hein, eq. 6; ``pi`` sorts the logits decreasingly): at least 3 classes;
- ``"dlr-targeted"``: APGD-T, the targeted DLR
  ``-(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2)`` run once towards each of the
  ``n_target_classes`` classes ranked 2, 3, ... by the clean logits, each run only on
  the images still classified correctly, as AutoAttack does; success is any
  misclassification. At least 4 classes.

DLR is undefined below 3 classes (the denominator needs the third logit; AutoAttack
issue #70, ART issue #2399), so binary tasks use ``"ce"`` and ``"margin"``; asking for
DLR on a model with too few classes raises an error that lists the valid losses.

Implementation follows the authors' code (``autoattack/autopgd_base.py``) and
``torchattacks.APGD`` / ``APGDT`` 3.5.1, whose conventions it keeps, so that its numbers
are theirs: the random start is a point on the surface of the ball (``eps * t / ||t||``
with ``t`` uniform in [-1, 1]^d for L-inf, Gaussian for L2); condition 1 counts the loss
increases over the last checkpoint interval and, as in their code, compares the first
loss of the first interval with 0 (the paper compares it with the loss at the start);
the count must be ``<= rho * interval``; restarts and target classes only attack the
images not yet fooled; images already fooled at ``x`` are returned as ``x``, unattacked.
With ``early_stop=False`` a fooled image is returned at its *last* successful iterate
(as the reference does). Two differences, both deliberate: an image never fooled is
returned at its highest-loss iterate (the reference returns the clean ``x``), so that
the scores of what the attack reached can be read off the output; and with
``early_stop=True`` (default) an image is returned at its *first* successful iterate
and not attacked further (see :mod:`._loop`). ``eps`` is in [0, 1] pixel units (L2: the
L2 norm over all pixels and channels).

Example:
    >>> import torch
    >>> from advmed.attacks import apgd
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 2))
    >>> x, y = torch.rand(4, 3, 8, 8), torch.tensor([0, 1, 0, 1])
    >>> x_adv = apgd(model, x, y, eps=2 / 255, steps=10, loss="margin", progress=False)
    >>> bool((x_adv - x).abs().max() <= 2 / 255 + 1e-7)
    True
"""
from __future__ import annotations

import itertools
import math
import numbers
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from ...device import autocast, work_batch
from ..checks import check_eps, check_images, check_labels, check_norm, check_steps, frozen_eval
from ..losses import Target, check_target, margin, resolve_labels
from ._loop import compact, linf_bounds, memory_format

#: APGD's losses and the fewest classes each needs.
APGD_LOSSES = {"ce": 2, "margin": 2, "dlr": 3, "dlr-targeted": 4}
_ALIASES = {"cross_entropy": "ce", "cw": "margin", "dlr_targeted": "dlr-targeted",
            "dlr-t": "dlr-targeted", "apgd-t": "dlr-targeted"}


def dlr_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-image DLR loss (Croce & Hein 2020, eq. 6), written as in their code."""
    z, _ = logits.sort(dim=1)
    top_is_y = (logits.argmax(dim=1) == y).to(logits.dtype)
    z_y = logits.gather(1, y[:, None]).squeeze(1)
    return -(z_y - z[:, -2] * top_is_y - z[:, -1] * (1.0 - top_is_y)) / (z[:, -1] - z[:, -3] + 1e-12)


def dlr_targeted_loss(logits: torch.Tensor, y: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Per-image targeted DLR loss of APGD-T (Croce & Hein 2020, sec. 5)."""
    z, _ = logits.sort(dim=1)
    z_y = logits.gather(1, y[:, None]).squeeze(1)
    z_t = logits.gather(1, t[:, None]).squeeze(1)
    return -(z_y - z_t) / (z[:, -1] - 0.5 * z[:, -3] - 0.5 * z[:, -4] + 1e-12)


def check_apgd_loss(loss: str) -> str:
    if not isinstance(loss, str):
        raise TypeError(f"APGD takes a loss by name; valid losses: {', '.join(APGD_LOSSES)}")
    key = _ALIASES.get(loss.lower(), loss.lower())
    if key not in APGD_LOSSES:
        raise ValueError(f"unknown loss {loss!r} for APGD; valid losses: {', '.join(APGD_LOSSES)}")
    return key


def check_loss_classes(loss: str, num_classes: int) -> None:
    """Refuse a DLR loss on a model with too few classes, listing the valid ones."""
    need = APGD_LOSSES[loss]
    if num_classes < need:
        valid = [name for name, k in APGD_LOSSES.items() if k <= num_classes]
        raise ValueError(
            f"loss {loss!r} needs a model with at least {need} classes; this one has "
            f"{num_classes}. DLR divides by z_pi1 - z_pi3 (the targeted form by z_pi1 - (z_pi3 + "
            f"z_pi4) / 2) and is undefined below 3 classes (AutoAttack issue #70). Valid losses "
            f"for a model with {num_classes} classes: {', '.join(valid)}")


@dataclass
class _Goal:
    """What an APGD run ascends and when it has succeeded, for the images ``rows``."""

    loss: str
    y: torch.Tensor                    # true labels of the batch
    t: Optional[torch.Tensor]          # target classes (targeted loss or targeted success)
    targeted: bool                     # success = classified as t (else: misclassified)

    def value(self, logits: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        z, y = logits.float(), self.y[rows]
        t = None if self.t is None else self.t[rows]
        if self.loss == "dlr-targeted":
            return dlr_targeted_loss(z, y, t)
        if self.loss == "dlr":
            return dlr_loss(z, y)
        fn = F.cross_entropy if self.loss == "ce" else margin
        if self.targeted:  # descend the loss taken against the target
            return -(fn(z, t, reduction="none") if self.loss == "ce" else fn(z, t))
        return fn(z, y, reduction="none") if self.loss == "ce" else fn(z, y)

    def success(self, logits: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        pred = logits.argmax(dim=1)
        return pred == self.t[rows] if self.targeted else pred != self.y[rows]


def checkpoint_intervals(steps: int) -> tuple[int, ...]:
    """Lengths of the intervals between APGD's checkpoints (p_j schedule), as in the
    authors' code: first ``int(0.22 steps)``, then 0.03 steps shorter each time, at
    least ``int(0.06 steps)`` (each at least 1)."""
    k, k_min, decr = max(int(0.22 * steps), 1), max(int(0.06 * steps), 1), max(int(0.03 * steps), 1)
    out, total = [], 0
    while total + k <= steps:
        out.append(k)
        total += k
        k = max(k - decr, k_min)
    return tuple(out)


def _project(v: torch.Tensor, x: torch.Tensor, eps: float, norm: str, bounds, pad: float = 0.0):
    """Onto the ball around ``x`` and the [0, 1] box (the L2 form of the authors' code)."""
    if norm == "linf":
        return torch.clamp(v, bounds[0], bounds[1])
    d = v - x
    n = (d ** 2).sum(dim=(1, 2, 3), keepdim=True).sqrt()
    return (x + d / (n + 1e-12) * torch.clamp(n + pad, max=eps)).clamp_(0.0, 1.0)


def _random_start(x: torch.Tensor, eps: float, norm: str, generator) -> torch.Tensor:
    if norm == "linf":
        t = 2 * torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype) - 1
        scale = t.reshape(t.shape[0], -1).abs().max(dim=1, keepdim=True)[0].reshape(-1, 1, 1, 1)
    else:
        t = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        scale = (t ** 2).sum(dim=(1, 2, 3), keepdim=True).sqrt() + 1e-12
    return (x + eps * t / scale).clamp(0.0, 1.0)


class _State:
    """Per-image state of one APGD run on the images still attacked (rows of the batch)."""

    FIELDS = ("rows", "x", "lo", "hi", "x_adv", "x_old", "grad", "x_best", "grad_best",
              "loss_best", "loss_prev", "loss_last_check", "step", "rises", "reduced_last")

    def __init__(self, **kw):
        for name in self.FIELDS:
            setattr(self, name, kw.get(name))

    def keep(self, keep: torch.Tensor, fmt) -> None:
        values = compact(keep, *(getattr(self, n) for n in self.FIELDS), fmt=fmt)
        for name, v in zip(self.FIELDS, values):
            setattr(self, name, v)


def _grad(model, x_adv, goal, rows, amp):
    x_adv = x_adv.detach().requires_grad_(True)
    with autocast(x_adv.device, amp):
        logits = model(x_adv)
    value = goal.value(logits, rows)
    (grad,) = torch.autograd.grad(value.sum(), x_adv)
    return value.detach(), grad, logits.detach()


class _Run:
    """One APGD run (one start) on a batch; the output rows are filled as images finish."""

    def __init__(self, model, x, goal, rows, *, eps, norm, steps, rho, generator, amp, early_stop):
        self.model, self.goal, self.eps, self.norm = model, goal, eps, norm
        self.rho, self.amp, self.early_stop = rho, amp, early_stop
        self.fmt = memory_format(x)
        self.intervals = checkpoint_intervals(steps)
        self.steps = steps
        n = x.shape[0]
        self.out = torch.empty_like(x)          # last (or first) successful iterate
        self.ok = torch.zeros(n, dtype=torch.bool, device=x.device)
        self.best = torch.empty_like(x)         # highest-loss iterate
        self.best_loss = torch.full((n,), -math.inf, device=x.device)
        lo, hi = linf_bounds(x, eps) if norm == "linf" else (None, None)
        x_adv = _random_start(x, eps, norm, generator).contiguous(memory_format=self.fmt)
        loss, grad, logits = _grad(model, x_adv, goal, rows, amp)
        self.s = _State(rows=rows, x=x, lo=lo, hi=hi, x_adv=x_adv, x_old=x_adv.clone(), grad=grad,
                        x_best=x_adv.clone(), grad_best=grad.clone(), loss_best=loss.clone(),
                        loss_prev=torch.zeros_like(loss), loss_last_check=loss.clone(),
                        step=torch.full((n, 1, 1, 1), 2.0 * eps, device=x.device, dtype=x.dtype),
                        rises=torch.zeros_like(loss), reduced_last=torch.ones_like(loss, dtype=torch.bool))
        self.pos = torch.arange(n, device=x.device)   # rows of the outputs still attacked
        self._record(logits, x_adv)

    def _record(self, logits, x_adv) -> bool:
        """Note the successful iterates; with early stopping drop them. False: none left."""
        done = self.goal.success(logits, self.s.rows)
        self.out[self.pos[done]] = x_adv[done]
        self.ok[self.pos[done]] = True
        if self.early_stop and bool(done.any()):
            keep = ~done
            self.pos = self.pos[keep]
            self.s.keep(keep, self.fmt)
        return self.pos.numel() > 0

    def _move(self, i: int) -> torch.Tensor:
        s, bounds = self.s, (self.s.lo, self.s.hi)
        a = 0.75 if i > 0 else 1.0
        grad2 = s.x_adv - s.x_old
        s.x_old = s.x_adv
        if self.norm == "linf":
            z = _project(s.x_adv + s.step * torch.sign(s.grad), s.x, self.eps, "linf", bounds)
            return _project(s.x_adv + (z - s.x_adv) * a + grad2 * (1 - a), s.x, self.eps, "linf", bounds)
        gn = (s.grad ** 2).sum(dim=(1, 2, 3), keepdim=True).sqrt() + 1e-12
        z = _project(s.x_adv + s.step * s.grad / gn, s.x, self.eps, "l2", None)
        return _project(s.x_adv + (z - s.x_adv) * a + grad2 * (1 - a), s.x, self.eps, "l2", None,
                        pad=1e-12)

    def _checkpoint(self, k: int) -> None:
        """Halve the step where the loss stalled (the two conditions) and restart there
        from the best point."""
        s = self.s
        reduce = (s.rises <= k * self.rho) | (~s.reduced_last & (s.loss_last_check >= s.loss_best))
        s.reduced_last, s.loss_last_check = reduce, s.loss_best.clone()
        s.rises = torch.zeros_like(s.rises)
        if bool(reduce.any()):
            s.step[reduce] /= 2.0
            s.x_adv[reduce] = s.x_best[reduce]
            s.grad[reduce] = s.grad_best[reduce]

    def run(self):
        lengths = dict(zip(itertools.accumulate(self.intervals), self.intervals))
        for i in range(self.steps):
            if self.pos.numel() == 0:
                break
            x_new = self._move(i)
            loss, grad, logits = _grad(self.model, x_new, self.goal, self.s.rows, self.amp)
            s = self.s
            s.x_adv, s.grad = x_new, grad
            better = loss > s.loss_best
            s.x_best[better], s.grad_best[better], s.loss_best[better] = x_new[better], grad[better], loss[better]
            s.rises += (loss > s.loss_prev).to(s.rises.dtype)
            s.loss_prev = loss
            if not self._record(logits, x_new):
                break
            if i + 1 in lengths:
                self._checkpoint(lengths[i + 1])
        self._finish()
        return self.out, self.ok, self.best, self.best_loss

    def _finish(self) -> None:
        s = self.s
        self.best[self.pos] = s.x_best
        self.best_loss[self.pos] = s.loss_best


def _targets(loss, targeted, t, logits0, n_target_classes):
    """The target classes of each pass: the given ones, or APGD-T's runner-up classes."""
    if loss != "dlr-targeted" or targeted:
        return [t]
    order = logits0.sort(dim=1)[1]
    k = min(int(n_target_classes), logits0.shape[1] - 1)  # at most the K - 1 other classes
    return [order[:, -c] for c in range(2, k + 2)]


def _apgd_batch(model, x, y, t, *, loss, targeted, restarts, n_target_classes, amp, **run_kw):
    """APGD on one batch: every target class, every restart, each on the images left."""
    fmt = memory_format(x)
    with torch.no_grad(), autocast(x.device, amp):
        logits0 = model(x).float()
    rows_all = torch.arange(x.shape[0], device=x.device)
    ok = _Goal(loss, y, t, targeted).success(logits0, rows_all)  # fooled at x: left as x
    out, best = x.clone(), x.clone()
    best_loss = torch.full((x.shape[0],), -math.inf, device=x.device)
    for t_c in _targets(loss, targeted, t, logits0, n_target_classes):
        goal = _Goal(loss, y, t_c, targeted)
        for _ in range(restarts):
            rows = (~ok).nonzero().squeeze(1)
            if rows.numel() == 0:
                break
            (xs,) = compact(rows, x, fmt=fmt)
            o, k, b, bl = _Run(model, xs, goal, rows, amp=amp, **run_kw).run()
            out[rows[k]], ok[rows[k]] = o[k], True
            upd = ~k & (bl > best_loss[rows])
            best[rows[upd]], best_loss[rows[upd]] = b[upd], bl[upd]
    best[ok] = out[ok]
    return best


def _check_options(restarts, n_target_classes, rho, seed, early_stop, amp, batch_size):
    for name, v in (("restarts", restarts), ("n_target_classes", n_target_classes)):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
    if isinstance(rho, bool) or not isinstance(rho, (int, float)) or not 0 < rho <= 1:
        raise ValueError(f"rho (the fraction of loss increases below which the step is halved) "
                         f"must be in (0, 1], got {rho!r}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)):
        raise TypeError(f"seed must be an int or None, got {seed!r}")
    for name, v in (("early_stop", early_stop), ("amp", amp)):
        if not isinstance(v, bool):
            raise TypeError(f"{name} must be True or False, got {v!r}")
    if batch_size is not None and (int(batch_size) != batch_size or batch_size < 1):
        raise ValueError(f"batch_size must be an integer >= 1 or None, got {batch_size!r}")


def apgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float, norm: str = "linf",
         steps: int = 100, loss: str = "ce", restarts: int = 1, targeted: bool = False,
         target: Target = None, n_target_classes: int = 9, seed: Optional[int] = 0,
         early_stop: bool = True, rho: float = 0.75, batch_size: Optional[int] = None,
         amp: bool = False, progress: bool = True) -> torch.Tensor:
    """Auto-PGD (Croce & Hein 2020): step-size-free PGD with momentum; returns ``x_adv``.

    Args:
        model: returns logits; run in eval mode with parameter gradients off, and left
            in the mode it was found in.
        x: float images ``(N, C, H, W)`` in [0, 1], on the model's device.
        y: true labels ``(N,)``.
        eps: budget in [0, 1] pixel units, in the norm ``norm``.
        norm: ``"linf"`` or ``"l2"``.
        steps: iterations per run (AutoAttack: 100).
        loss: ``"ce"``, ``"margin"``, ``"dlr"`` (>= 3 classes) or ``"dlr-targeted"``
            (APGD-T, >= 4 classes); see the module doc.
        restarts: runs from new random starts, each on the images not yet fooled.
        targeted, target: ``targeted=True`` with ``target`` an int, an integer tensor
            ``(N,)`` or ``"other"`` (binary tasks) attacks towards the target (loss
            ``"ce"``, ``"margin"`` or ``"dlr-targeted"``); success is then being
            classified as the target.
        n_target_classes: APGD-T's number of target classes (the runner-up classes of
            the clean logits; at most ``K - 1`` are used). AutoAttack: 9.
        seed: seeds the random starts (a generator on ``x``'s device; on CPU its draws
            are torchattacks' with the same seed); ``None`` uses torch's global generator.
        early_stop: return each image at its first successful iterate and stop attacking
            it (default); ``False``: at its last successful iterate, as the reference.
        rho: condition 1's fraction (0.75).
        batch_size: attack ``x`` in chunks of this many images (None: all at once, on a CPU
            cache-sized chunks: :func:`advmed.device.work_batch`).
        amp: mixed precision for the forward pass (CUDA only; a no-op on CPU).
        progress: a tqdm bar when there is more than one chunk.

    Returns:
        ``x_adv`` (same shape, dtype and memory format as ``x``): each fooled image at a
        successful iterate, each other image at its highest-loss iterate, images fooled
        already at ``x`` as ``x``.

    Raises:
        ValueError: bad budgets, pixels, labels or options; a DLR loss on a model with
            too few classes (the message lists the valid losses).

    Example:
        >>> # APGD-T on a 7-class model, AutoAttack's setting:
        >>> # x_adv = apgd(model, x, y, eps=8 / 255, loss="dlr-targeted", steps=100)
    """
    check_images(x)
    check_labels(y, x)
    norm = check_norm(norm)
    eps = check_eps(eps, norm=norm, x=x)
    steps = check_steps(steps)
    loss = check_apgd_loss(loss)
    check_target(targeted, target, x)
    if targeted and loss == "dlr":
        raise ValueError("the untargeted DLR loss takes no target; use loss='dlr-targeted' (or "
                         "'ce' / 'margin') with targeted=True")
    _check_options(restarts, n_target_classes, rho, seed, early_stop, amp, batch_size)
    x, y = x.detach(), y.detach().to(device=x.device, dtype=torch.int64)
    if torch.is_tensor(target):
        target = target.detach().to(device=x.device, dtype=torch.int64)
    if x.shape[0] == 0:
        return x.clone()
    generator = None if seed is None else torch.Generator(device=x.device).manual_seed(int(seed))
    bs = work_batch(batch_size, x)
    starts = range(0, x.shape[0], bs)
    if len(starts) > 1 and progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="apgd", unit="batch")
    out = torch.empty_like(x)
    with frozen_eval(model), torch.enable_grad():
        with torch.no_grad(), autocast(x.device, amp):  # the number of classes, before any work
            probe = model(x[:1]).float()
        if probe.dim() == 2 and probe.shape[0] == 1:
            probe = probe.expand(x.shape[0], -1)
        t = resolve_labels(probe, y, targeted, target)  # checks labels and targets against K
        check_loss_classes(loss, probe.shape[1])
        for s in starts:
            sl = slice(s, s + bs)
            out[sl] = _apgd_batch(model, x[sl], y[sl], t[sl] if targeted else None, loss=loss,
                                  targeted=targeted, restarts=int(restarts),
                                  n_target_classes=n_target_classes, amp=amp, eps=eps, norm=norm,
                                  steps=steps, rho=float(rho), generator=generator,
                                  early_stop=early_stop)
    return out
