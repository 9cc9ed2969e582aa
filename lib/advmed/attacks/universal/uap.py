"""Universal adversarial perturbations (UAPs): one perturbation ``delta`` for all images.

References
----------
- Moosavi-Dezfooli, Fawzi, Fawzi & Frossard (CVPR 2017), "Universal adversarial
  perturbations": the iterative algorithm (sweep the images, push each image that the
  current perturbation does not fool across the boundary, project onto the norm ball).
- Hirano & Takemoto (Algorithms 13(11):268, 2020), "Simple iterative method for generating
  targeted universal adversarial perturbations": the same loop with a *targeted* FGSM inner
  step (update only for images not yet classified as the target).
- Hirano, Minagi & Takemoto (BMC Medical Imaging 21:9, 2021), "Universal adversarial attacks
  on deep neural networks for medical image classification": the study reproduced here. It
  used ART's ``UniversalPerturbation`` / ``TargetedUniversalPerturbation`` with
  ``attacker="fgsm"``, FGSM ``eps=0.0024`` (an L-inf sign step: ART's FGSM default norm, also
  for the L2 UAPs), ``max_iter=15`` passes, ``delta=1e-6`` (i.e. stop only when every image
  is fooled), and the bound ``eps = zeta * mean image norm`` with zeta = 2 % or 4 %.
- Shafahi, Najibi, Xu, Dickerson, Davis & Goldstein (AAAI 2020), "Universal adversarial
  training": the *batched* variant, stochastic gradient ascent on ``delta`` over mini-batches
  (sign or Adam steps), projected each step, with an optional clamped loss.

Units
-----
Pixels are in [0, 1]; ``eps`` and ``step_size`` are in [0, 1] pixel units. The study's images
were ``(X - 128) / 128`` (range about [-1, 1]), so its FGSM step 0.0024 is
``0.0024 * 128 / 255 = 0.0012`` here (:data:`STUDY_STEP`), and its norms were measured in
that space on channel 0 only. ``zeta`` here is a fraction of the mean norm of the [0, 1]
images over **all** channels (L2: mean per-image L2 norm; L-inf: mean per-image max |pixel|);
``eps_from_zeta(..., convention="study")`` gives the study's bound converted to [0, 1] units.

The per-image original vs this implementation
---------------------------------------------
``method="iterative"`` with ``batch_size=1`` is ART's per-image algorithm step for step
(random image order, FGSM from ``x + v``, accept the step only if it changes the label /
reaches the target, ``v <- proj(clip(x + v + step) - x)``), except that ``x + v`` is clipped
to [0, 1] before the model sees it (ART predicts on the unclipped ``x + v``) and the random
order comes from a ``torch.Generator`` (ART uses Python's ``random``). With ``batch_size=B > 1``
the images are visited in random mini-batches of ``B``: the "not yet fooled" check and the FGSM
steps are computed for the whole mini-batch against the *same* ``v``, and the accepted
per-image increments ``clip(x_i + v + s_i) - x_i - v`` are **summed** into ``v`` before one
projection (a Jacobi instead of Gauss-Seidel sweep: image ``i`` does not see the increments of
the images before it in its own mini-batch). Stopping is checked after each pass, as in ART.

Measured on a small 5-class RetinaMNIST CNN (L-inf, zeta 4 %): both versions land, depending
on the image order, in one of two modes (fooling rate about 0.47 or 0.64 with 720 images);
``batch_size`` 1, 8, 32 and 64 gave the same modes with 720 images, but with only 100 images
``batch_size=32`` (3 mini-batches per pass) fell into the lower mode in 5 of 6 seeds while 1 and
8 did not. Keep at least ~16 mini-batches per pass (a warning says so).
"""
from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ...device import amp_enabled, autocast
from ...metrics import attack_success
from ..checks import check_eps, check_images, check_labels, check_norm, frozen_eval
from .evaluate import predict

__all__ = ["uap", "UAPResult", "eps_from_zeta", "mean_norm", "project", "perturbation_norms", "METHODS",
           "STUDY_STEP"]

METHODS = ("iterative", "batched")
OPTIMIZERS = ("sign", "adam")
#: The study's FGSM step 0.0024 (images in (X-128)/128 units) in [0, 1] pixel units.
STUDY_STEP = 0.0024 * 128 / 255


@dataclass
class UAPResult:
    """A universal perturbation and how it was made.

    ``delta``: (1, C, H, W) float tensor, in [0, 1] pixel units, on the images' device;
    ``eps``: the absolute bound (same units; L2 or L-inf per ``norm``); ``zeta``: ``eps`` as a
    fraction of the mean image norm (None when ``eps`` was given directly); ``target``: the
    target class or None; ``fooling_rate_history``: per pass, the share of build images whose
    prediction differs from the reference labels; ``success_rate_history`` (targeted only): per
    pass, the share of *all* build images classified as the target (ART's stopping quantity);
    ``passes``: passes over the images used; ``seconds``: wall time; ``norms``: actual
    ``{"l2", "linf"}`` of ``delta``; ``converged``: the target rate was reached.
    """

    delta: torch.Tensor
    eps: float
    zeta: float | None
    norm: str
    target: int | None
    method: str
    step_size: float
    fooling_rate_history: list[float]
    success_rate_history: list[float]
    passes: int
    seconds: float
    norms: dict
    converged: bool
    n_images: int
    seed: int
    optimizer: str | None = None
    extra: dict = field(default_factory=dict)

    @property
    def rate_history(self) -> list[float]:
        """The history that drives stopping: success rate if targeted, else fooling rate."""
        return self.success_rate_history if self.target is not None else self.fooling_rate_history

    def summary(self) -> dict:
        """Everything but the tensor, for tables."""
        return {"method": self.method, "optimizer": self.optimizer, "norm": self.norm,
                "zeta": self.zeta, "eps": self.eps, "target": self.target,
                "step_size": self.step_size, "passes": self.passes, "seconds": self.seconds,
                "l2": self.norms["l2"], "linf": self.norms["linf"],
                "final_rate": self.rate_history[-1] if self.rate_history else float("nan"),
                "converged": self.converged, "n_images": self.n_images, "seed": self.seed}


# ---------------------------------------------------------------------------- norms

def mean_norm(x: torch.Tensor, norm: str) -> float:
    """Mean per-image norm of ``x`` over all channels: L2 = mean ||x_i||_2, L-inf = mean max|x_i|."""
    norm = check_norm(norm)
    flat = x.reshape(x.shape[0], -1).float()
    per = flat.norm(dim=1) if norm == "l2" else flat.abs().amax(dim=1)
    return float(per.mean())


def eps_from_zeta(x: torch.Tensor, zeta: float, norm: str, *, convention: str = "advmed") -> float:
    """The absolute bound ``eps`` ([0, 1] pixel units) for a relative bound ``zeta``.

    ``convention="advmed"``: ``zeta * mean_norm(x, norm)`` over all channels of the [0, 1]
    images. ``convention="study"``: what Hirano, Minagi & Takemoto (2021) computed, converted
    to [0, 1] units: the mean norm of **channel 0 only** of the images mapped to
    ``(255 x - 128) / 128``, times ``zeta``, times ``128 / 255``. For RGB the study's L2 bound is
    therefore about ``1/sqrt(3)`` of a bound over all channels (and centred, not raw, pixels).
    """
    zeta = _check_zeta(zeta)
    if convention == "advmed":
        return zeta * mean_norm(x, norm)
    if convention == "study":
        xs = (x[:, :1] * 255.0 - 128.0) / 128.0
        return zeta * mean_norm(xs, norm) * 128.0 / 255.0
    raise ValueError(f"unknown convention {convention!r}; valid: 'advmed', 'study'")


def project(v: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    """Project ``v`` onto the ``norm`` ball of radius ``eps`` (whole tensor = one perturbation)."""
    if norm == "linf":
        return v.clamp(-eps, eps)
    n = v.norm()
    return v * min(1.0, eps / max(float(n), 1e-12)) if float(n) > eps else v


def perturbation_norms(delta: torch.Tensor) -> dict:
    """``{"l2": ||delta||_2, "linf": max|delta|}`` in [0, 1] pixel units."""
    d = delta.detach().float()
    return {"l2": float(d.norm()), "linf": float(d.abs().max()) if d.numel() else 0.0}


# ---------------------------------------------------------------------------- checks

def _check_zeta(zeta) -> float:
    try:
        z = float(zeta)
    except (TypeError, ValueError):
        raise TypeError(f"zeta must be a number (fraction of the mean image norm, e.g. 0.04), got {zeta!r}") from None
    if not math.isfinite(z) or z <= 0:
        raise ValueError(f"zeta must be > 0 (a fraction of the mean image norm, e.g. 0.02 or 0.04), got {zeta}")
    if z >= 1:
        raise ValueError(f"zeta={z:g} is not below 1: zeta is a fraction of the mean image norm "
                         f"(0.04 = 4 %); did you mean {z / 100:g}?")
    return z


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or int(value) != value or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def _num_classes(model: nn.Module, x: torch.Tensor) -> int:
    with torch.no_grad():
        out = model(x[:1])
    if out.dim() != 2:
        raise ValueError(f"model must return logits of shape (N, classes), got {tuple(out.shape)}")
    if out.shape[1] < 2:
        raise ValueError("model returns a single output; advmed models return one logit per class "
                         "(two for binary tasks)")
    return int(out.shape[1])


def _check_model_device(model: nn.Module, x: torch.Tensor) -> None:
    p = next(iter(model.parameters()), None)
    if p is not None and p.device != x.device:
        raise ValueError(f"model is on {p.device} but x is on {x.device}; move one of them "
                         "(UAPs run on the device of x)")


class _Arguments(NamedTuple):
    """:func:`uap`'s arguments once checked and resolved (absolute eps, step, labels)."""

    norm: str
    target: int | None
    eps: float
    zeta: float | None
    step: float
    max_passes: int
    batch_size: int
    eval_batch_size: int
    target_rate: float
    y_ref: torch.Tensor | None
    min_gain: float | None


def _check_arguments(model, x, y, *, zeta, eps, norm, target, method, step_size, max_passes, target_rate,
                     batch_size, optimizer, loss_clamp, eval_batch_size, min_gain=None) -> _Arguments:
    """Every check of :func:`uap`, before any gradient is taken; one forward pass on one image
    tells the number of classes."""
    check_images(x)
    if x.shape[0] == 0:
        raise ValueError("x is empty: a universal perturbation needs at least one image")
    norm = check_norm(norm)
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; valid methods: {', '.join(METHODS)}")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; valid: {', '.join(OPTIMIZERS)}")
    max_passes = _positive_int(max_passes, "max_passes")
    batch_size = _positive_int(batch_size, "batch_size")
    eval_batch_size = _positive_int(eval_batch_size, "eval_batch_size")
    target_rate = float(target_rate)
    if not 0 < target_rate <= 1:
        raise ValueError(f"target_rate must be in (0, 1], got {target_rate}")
    if loss_clamp is not None and not float(loss_clamp) > 0:
        raise ValueError(f"loss_clamp must be > 0 or None, got {loss_clamp}")
    if eps is None:
        zeta = _check_zeta(zeta)
        eps_abs = zeta * mean_norm(x, norm)
    else:
        eps_abs = check_eps(eps, norm=norm, x=x)
        if eps_abs == 0:
            raise ValueError("eps must be > 0 in [0, 1] pixel units: a UAP of size 0 is no perturbation")
        zeta = None
    if y is not None and target is None:
        check_labels(y, x)
    _check_model_device(model, x)
    with frozen_eval(model):
        n_classes = _num_classes(model, x)
    if target is not None:
        if isinstance(target, bool) or int(target) != target or not 0 <= int(target) < n_classes:
            raise ValueError(f"target {target!r} is not a class of the model's output; valid: "
                             f"0..{n_classes - 1}")
        target = int(target)
    y_ref = None
    if y is not None and target is None:
        if int(y.min()) < 0 or int(y.max()) >= n_classes:
            raise ValueError(f"y has labels outside 0..{n_classes - 1} (the model's classes)")
        y_ref = y.to(x.device).long()
    if step_size is None:
        step = STUDY_STEP if method == "iterative" else eps_abs / 10
        if method == "batched" and optimizer == "adam" and norm == "l2":
            step /= math.sqrt(x[0].numel())
    else:
        step = float(step_size)
        if not math.isfinite(step) or step <= 0:
            raise ValueError(f"step_size must be > 0 in [0, 1] pixel units, got {step_size}")
    if min_gain is not None and not (math.isfinite(float(min_gain)) and 0 <= float(min_gain) < 1):
        raise ValueError(f"min_gain is a rate gain per pass in [0, 1) or None, got {min_gain!r}")
    return _Arguments(norm, target, eps_abs, zeta, step, max_passes, batch_size, eval_batch_size,
                      target_rate, y_ref, None if min_gain is None else float(min_gain))


# ---------------------------------------------------------------------------- the attack

def uap(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None = None, *,
        zeta: float = 0.04, eps: float | None = None, norm: str = "linf",
        target: int | None = None, method: str = "iterative", step_size: float | None = None,
        max_passes: int = 15, target_rate: float = 1.0, batch_size: int = 64,
        optimizer: str = "sign", loss_clamp: float | None = None, eval_batch_size: int = 256,
        min_gain: float | None = None, seed: int = 0, progress: bool = True,
        amp: bool | None = None) -> UAPResult:
    """Build a universal adversarial perturbation from images ``x``.

    Moosavi-Dezfooli et al. (CVPR 2017) with the FGSM inner step of Hirano & Takemoto
    (Algorithms 2020; targeted), or the mini-batch ascent of Shafahi et al. (AAAI 2020).

    Args:
        model: returns logits (one per class; binary tasks have two). Run in eval mode with
            parameter gradients off (``frozen_eval``) and restored afterwards; must be on
            ``x``'s device.
        x: (N, C, H, W) float pixels in [0, 1], the images the UAP is built from (evaluate on
            others).
        y: reference labels for the non-targeted attack; None (default, as in the study) uses
            the model's clean predictions, so "fooled" means "prediction changed". Ignored if
            targeted.
        zeta: bound as a fraction of the mean image norm over all channels (L2: mean
            per-image L2 norm; L-inf: mean per-image max |pixel|); the study used 0.02 and
            0.04 and measured the norm on channel 0 of its [-1, 1] images
            (:func:`eps_from_zeta`). Must be in (0, 1).
        eps: absolute bound in [0, 1] pixel units; overrides ``zeta`` (``result.zeta`` is then
            None).
        norm: ``"linf"`` or ``"l2"``, the ball ``delta`` is projected onto.
        target: None for a non-targeted UAP, else a class index (Hirano & Takemoto 2020).
        method: ``"iterative"`` (Moosavi-Dezfooli et al. 2017 with an FGSM inner step, as the
            study) or ``"batched"`` (Shafahi et al. 2020: mini-batch gradient ascent on the
            mean loss).
        step_size: [0, 1] pixel units. Iterative: the FGSM step, always an L-inf sign step as
            in the study (default :data:`STUDY_STEP` = 0.0012, the study's 0.0024 in its
            [-1, 1] units). Batched: the learning rate; default ``eps / 10`` for ``"sign"``
            steps (L-inf: ``lr * sign(g)``; L2: ``lr * g / ||g||_2``) and for Adam (per-pixel;
            divided by ``sqrt(C*H*W)`` for L2).
        max_passes: passes over the images (the study: 15; ART's ``max_iter``).
        target_rate: stop after the pass at which the fooling rate (targeted: share of all
            build images classified as the target) reaches this. ART's ``delta`` is
            ``1 - target_rate``; the study set ``delta=1e-6``, i.e. it ran all 15 passes
            unless every image was fooled, hence the default 1.0.
        batch_size: images per mini-batch. Iterative: 1 is ART's per-image algorithm exactly;
            larger sums the accepted steps of a mini-batch (see the module docstring).
            Batched: the SGD mini-batch.
        optimizer: batched only, ``"sign"`` or ``"adam"``.
        loss_clamp: batched non-targeted only: clamp each image's cross-entropy at this value
            (Shafahi et al.'s clamped loss), so already fooled images stop dominating the
            gradient.
        eval_batch_size: batch size of the fooling-rate checks.
        min_gain: stop after a pass that raised the build-set rate (fooling rate, or targeted
            success) by less than this (e.g. 0.01: run to convergence, at most ``max_passes``);
            None runs every pass unless ``target_rate`` is reached, as ART does.
        seed: seeds the image order (same seed, same device -> same ``delta``).
        progress: tqdm bars over passes and mini-batches.
        amp: mixed precision for the model's forward passes (CUDA only; a no-op on CPU);
            None: the precision policy, :func:`advmed.device.amp_enabled` (``ADVMED_AMP``).

    Returns:
        :class:`UAPResult` with ``delta`` (1, C, H, W) on ``x``'s device.

    Example:
        >>> import torch
        >>> from advmed.attacks.universal import uap
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 2))
        >>> x = torch.rand(32, 3, 8, 8)
        >>> r = uap(model, x, zeta=0.04, norm="linf", method="batched", max_passes=2, progress=False)
        >>> r.delta.shape, bool(r.norms["linf"] <= r.eps + 1e-7)
        (torch.Size([1, 3, 8, 8]), True)
    """
    args = _check_arguments(model, x, y, zeta=zeta, eps=eps, norm=norm, target=target, method=method,
                            step_size=step_size, max_passes=max_passes, target_rate=target_rate,
                            batch_size=batch_size, optimizer=optimizer, loss_clamp=loss_clamp,
                            eval_batch_size=eval_batch_size, min_gain=min_gain)
    norm, target, eps_abs, zeta, step = args.norm, args.target, args.eps, args.zeta, args.step
    amp = amp_enabled() if amp is None else amp
    if not isinstance(amp, bool):
        raise TypeError(f"amp must be True, False or None (the ADVMED_AMP policy), got {amp!r}")
    with frozen_eval(model), autocast(x.device, amp):
        y_ref = args.y_ref if args.y_ref is not None else predict(model, x, batch_size=args.eval_batch_size)
        if x.device.type == "cuda":
            torch.cuda.synchronize(x.device)
        t0 = time.perf_counter()
        fn = _iterative if method == "iterative" else _batched
        v, fr_hist, sr_hist, passes, converged = fn(
            model, x, y_ref, eps=eps_abs, norm=norm, target=target, step=step,
            max_passes=args.max_passes, target_rate=args.target_rate, batch_size=args.batch_size,
            optimizer=optimizer, loss_clamp=loss_clamp, eval_batch_size=args.eval_batch_size,
            min_gain=args.min_gain, seed=seed, progress=progress)
        if x.device.type == "cuda":
            torch.cuda.synchronize(x.device)
        seconds = time.perf_counter() - t0

    v = v.detach()
    return UAPResult(delta=v, eps=eps_abs, zeta=zeta, norm=norm, target=target, method=method,
                     step_size=step, fooling_rate_history=fr_hist, success_rate_history=sr_hist,
                     passes=passes, seconds=seconds, norms=perturbation_norms(v),
                     converged=converged, n_images=int(x.shape[0]), seed=int(seed),
                     optimizer=optimizer if method == "batched" else None)


@torch.no_grad()
def _rates(model, x, y_ref, v, target, eval_batch_size) -> tuple[float, float | None]:
    """Fooling rate vs ``y_ref`` and (targeted) share of all images classified as the target."""
    adv = predict(model, x, v, batch_size=eval_batch_size)
    fr = float(attack_success(y_ref, adv).mean())
    sr = None if target is None else float(attack_success(y_ref, adv, target=target, among="all").mean())
    return fr, sr


def _record(model, x, y_ref, v, target, eval_batch_size, fr_hist, sr_hist, target_rate):
    fr, sr = _rates(model, x, y_ref, v, target, eval_batch_size)
    fr_hist.append(fr)
    if sr is not None:
        sr_hist.append(sr)
    rate = fr if target is None else sr
    return rate, rate >= target_rate


def _input_grad(model, xb, labels):
    """Gradient of the summed cross-entropy w.r.t. the input batch (one backward)."""
    xb = xb.detach().requires_grad_(True)
    loss = F.cross_entropy(model(xb), labels, reduction="sum")
    (g,) = torch.autograd.grad(loss, xb)
    return g


def _passes(model, x, y_ref, step_fn, *, target, max_passes, target_rate, batch_size,
            eval_batch_size, seed, progress, desc, min_gain=None):
    """The loop both methods share: per pass, shuffle the images (seeded), call
    ``step_fn(v, idx) -> v`` on each mini-batch of indices, then record the rates and
    stop once ``target_rate`` is reached, or (``min_gain``) once a pass raised the rate by
    less than ``min_gain``."""
    from tqdm.auto import tqdm

    n = x.shape[0]
    g = torch.Generator().manual_seed(int(seed))
    v = torch.zeros((1,) + tuple(x.shape[1:]), device=x.device, dtype=x.dtype)
    fr_hist: list[float] = []
    sr_hist: list[float] = []
    converged = False
    passes = 0
    bar = tqdm(total=max_passes, desc=f"UAP ({desc})", disable=not progress)
    for _ in range(max_passes):
        perm = torch.randperm(n, generator=g).to(x.device)
        for s in tqdm(range(0, n, batch_size), desc="mini-batches", leave=False,
                      disable=not progress or n <= batch_size):
            v = step_fn(v, perm[s:s + batch_size])
        passes += 1
        rate, converged = _record(model, x, y_ref, v, target, eval_batch_size, fr_hist,
                                  sr_hist, target_rate)
        bar.update(1)
        bar.set_postfix(rate=f"{rate:.3f}")
        history = fr_hist if target is None else sr_hist
        if not converged and min_gain is not None and len(history) >= 2:
            converged = history[-1] - history[-2] < min_gain
        if converged:
            break
    bar.close()
    return v, fr_hist, sr_hist, passes, converged


def _iterative(model, x, y_ref, *, eps, norm, target, step, max_passes, target_rate,
               batch_size, eval_batch_size, seed, progress, min_gain=None, **_):
    """Moosavi-Dezfooli et al. (2017) loop with an FGSM inner step (Hirano et al. 2020/2021)."""
    n = x.shape[0]
    if n / batch_size < 16 and batch_size > 1:
        warnings.warn(f"iterative UAP with {n} images and batch_size={batch_size} has only "
                      f"{math.ceil(n / batch_size)} mini-batches per pass; the summed steps then "
                      "drift from the per-image algorithm (use batch_size <= n / 16)", stacklevel=3)
    tgt = None if target is None else torch.full((n,), target, dtype=torch.long, device=x.device)

    def step_fn(v, idx):
        xb = x[idx]
        with torch.no_grad():
            pred = model((xb + v).clamp(0, 1)).argmax(1)
        # the images the current v does not yet fool / move to the target
        active = pred == y_ref[idx] if target is None else pred != target
        if not bool(active.any()):
            return v
        xa = xb[active]
        labels = y_ref[idx][active] if target is None else tgt[: xa.shape[0]]
        grad = _input_grad(model, (xa + v).clamp(0, 1), labels)
        sgn = grad.sign() if target is None else -grad.sign()   # targeted: descend toward target
        x_new = (xa + v + step * sgn).clamp(0, 1)
        with torch.no_grad():
            new_pred = model(x_new).argmax(1)
        ok = new_pred != labels if target is None else new_pred == target
        if bool(ok.any()):
            # per-image proposal clip(x + v + s) - x; their increments over v are summed
            inc = (x_new[ok] - xa[ok] - v).sum(0, keepdim=True)
            v = project(v + inc, eps, norm)
        return v

    return _passes(model, x, y_ref, step_fn, target=target, max_passes=max_passes,
                   target_rate=target_rate, batch_size=batch_size, eval_batch_size=eval_batch_size,
                   seed=seed, progress=progress, desc="iterative", min_gain=min_gain)


def _batched(model, x, y_ref, *, eps, norm, target, step, max_passes, target_rate, batch_size,
             optimizer, loss_clamp, eval_batch_size, seed, progress, min_gain=None, **_):
    """Shafahi et al. (2020): stochastic gradient ascent on ``v`` over mini-batches, projected."""
    shape = (1,) + tuple(x.shape[1:])
    adam = {"m": torch.zeros(shape, device=x.device, dtype=x.dtype),
            "s2": torch.zeros(shape, device=x.device, dtype=x.dtype), "t": 0}
    b1, b2 = 0.9, 0.999

    def step_fn(v, idx):
        xb = x[idx]
        vv = v.detach().requires_grad_(True)
        logits = model((xb + vv).clamp(0, 1))
        if target is None:
            loss = F.cross_entropy(logits, y_ref[idx], reduction="none")
            if loss_clamp is not None:
                loss = loss.clamp(max=float(loss_clamp))
            obj = loss.mean()                      # ascend: away from the reference labels
        else:
            tl = torch.full((xb.shape[0],), target, dtype=torch.long, device=x.device)
            obj = -F.cross_entropy(logits, tl)     # ascend: toward the target
        (grad,) = torch.autograd.grad(obj, vv)
        with torch.no_grad():
            if optimizer == "sign":
                upd = grad.sign() if norm == "linf" else grad / grad.norm().clamp_min(1e-12)
            else:  # Adam (ascent)
                adam["t"] += 1
                t, m, s2 = adam["t"], adam["m"], adam["s2"]
                m.mul_(b1).add_(grad, alpha=1 - b1)
                s2.mul_(b2).addcmul_(grad, grad, value=1 - b2)
                upd = (m / (1 - b1 ** t)) / ((s2 / (1 - b2 ** t)).sqrt() + 1e-12)
            return project(v + step * upd, eps, norm)

    return _passes(model, x, y_ref, step_fn, target=target, max_passes=max_passes,
                   target_rate=target_rate, batch_size=batch_size, eval_batch_size=eval_batch_size,
                   seed=seed, progress=progress, desc="batched", min_gain=min_gain)
