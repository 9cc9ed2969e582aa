"""Training a universal, targeted adversarial patch with expectation over transformations.

References
----------
- Brown, Mané, Roy, Abadi & Gilmer (2017), "Adversarial patch" (arXiv:1712.09665): one patch
  ``p`` for every image, trained to maximise ``E_{x, t, l} log Pr(target | A(p, x, l, t))``
  over images ``x``, locations ``l`` and transformations ``t`` (rotation, scale), so that it
  works wherever it is put.
- Athalye, Engstrom, Ilyas & Kwok (ICML 2018), "Synthesizing robust adversarial examples":
  expectation over transformation (EOT), the expectation above estimated by sampling a
  fresh transformation for every image of every mini-batch.
- Finlayson, Chung, Kohane & Beam (2018, arXiv:1804.05296; Science 2019): the study reproduced
  here. Targeted patches (one per target class, each evaluated on the images of the other
  class), circular mask, rotation up to 22.5 degrees, scale range 0.3-1.5, evaluated at scale
  0.4 of the image side. See :mod:`.geometry` for what scale means here and how their
  convention converts.

The loop
--------
Each step draws ``batch_size`` images (a fresh random order every pass over ``x``), pastes
the patch on each with its own random scale, rotation and location (:func:`~.geometry.
sample_placements`), and takes one Adam step (as ART's ``AdversarialPatchPyTorch``) on the
mean cross-entropy of the logits against the target class (Brown et al.'s objective), after
which the patch is clipped to [0, 1]. The patch starts uniform gray (0.5), as in ART and in
Finlayson et al.'s code (zeros in their [-1, 1] pixels). Finlayson et al. used plain gradient
descent (learning rate 5 in their [-1, 1] units, 7 epochs, batch 8); Adam's per-pixel step of
about ``lr`` makes the learning rate readable in [0, 1] pixel units.

Grayscale images (three identical channels, as advmed stores chest X-rays) get a gray patch:
one channel, replicated, since nobody can print colour into an X-ray.
"""
from __future__ import annotations

import math
import numbers
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ...device import module_device
from ..checks import check_images, check_steps, frozen_eval
from .geometry import (
    BASE,
    check_base,
    check_max_rotation,
    check_scale,
    check_shape,
    paste,
    sample_placements,
    shape_mask,
)

__all__ = ["PatchResult", "is_gray", "train_patch"]


@dataclass
class PatchResult:
    """Trained patches and how they were made.

    Attributes:
        patch: (T, C, s, s) float pixels in [0, 1], on the images' device; row ``i`` pushes
            images towards class ``targets[i]``. ``T = 1`` for an int target; ``T = 2`` for
            ``target="other"`` (row 0 targets class 0, row 1 class 1). A gray patch has C
            identical channels.
        mask: (1, 1, s, s) coverage of ``shape`` on the patch's own grid (what is printed).
        target: the ``target`` argument (an int or ``"other"``).
        targets: the class each row of ``patch`` targets.
        shape, base, scale_range, max_rotation: the geometry it was trained with.
        gray: whether the patch was trained on one channel (replicated).
        loss_history: (T, steps) mean cross-entropy to the target per step.
        success_history: (T, steps) share of each step's patched batch classified as the target.
        seconds: wall time of training (all rows).
    """

    patch: torch.Tensor
    mask: torch.Tensor
    target: int | str
    targets: tuple[int, ...]
    shape: str
    base: float
    scale_range: tuple[float, float]
    max_rotation: float
    gray: bool
    steps: int
    lr: float
    batch_size: int
    seed: int
    loss_history: np.ndarray = field(repr=False)
    success_history: np.ndarray = field(repr=False)
    seconds: float = 0.0

    @property
    def size(self) -> int:
        """The patch's side in its own pixels."""
        return int(self.patch.shape[-1])

    def patch_for(self, target: int) -> torch.Tensor:
        """The (1, C, s, s) patch that targets class ``target``."""
        if target not in self.targets:
            raise ValueError(f"no patch targets class {target!r}; this result has patches for {self.targets}")
        i = self.targets.index(int(target))
        return self.patch[i:i + 1]

    def summary(self) -> dict:
        """Everything but the tensors, for tables."""
        return {"target": self.target, "targets": self.targets, "size": self.size, "shape": self.shape,
                "base": self.base, "scale_range": self.scale_range, "max_rotation": self.max_rotation,
                "gray": self.gray, "steps": self.steps, "lr": self.lr, "batch_size": self.batch_size,
                "seed": self.seed, "seconds": self.seconds,
                "final_success": [float(h[-10:].mean()) for h in self.success_history]}


def is_gray(x: torch.Tensor) -> bool:
    """True when ``x`` (N, 3, H, W) has three identical channels (how advmed stores gray images)."""
    return x.shape[1] == 3 and bool(torch.equal(x[:, 0], x[:, 1]) and torch.equal(x[:, 0], x[:, 2]))


# ---------------------------------------------------------------------------- checks

def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def _check_scale_range(scale_range, hw, shape: str, max_rotation: float, base: float) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in scale_range)
    except (TypeError, ValueError):
        raise TypeError(f"scale_range must be a pair (min, max) of scales, got {scale_range!r}") from None
    check_scale(lo, hw, shape=shape, base=base, max_rotation=max_rotation, name="scale_range[0]")
    check_scale(hi, hw, shape=shape, base=base, max_rotation=max_rotation, name="scale_range[1]")
    if lo > hi:
        raise ValueError(f"scale_range must be (min, max) with min <= max, got {scale_range!r}")
    return lo, hi


def _check_target(target, n_classes: int) -> tuple[int, ...]:
    if isinstance(target, str):
        if target != "other":
            raise ValueError(f"unknown target {target!r}; valid: an int class or 'other' (binary tasks)")
        if n_classes != 2:
            raise ValueError(f"target='other' needs a binary model (2 logits); this one has {n_classes}; "
                             "pass an int target class")
        return (0, 1)
    if torch.is_tensor(target):
        raise TypeError("a universal patch has one target class; pass an int, or 'other' for one patch "
                        "per class of a binary task")
    if isinstance(target, bool) or not isinstance(target, numbers.Integral):
        raise TypeError(f"target must be an int class or 'other', got {target!r}")
    if not 0 <= int(target) < n_classes:
        raise ValueError(f"target class {target} is out of range for a model with {n_classes} logits")
    return (int(target),)


def _check_channels(channels, x: torch.Tensor) -> int:
    if channels is None:
        return 1 if is_gray(x) else int(x.shape[1])
    if isinstance(channels, bool) or channels not in (1, x.shape[1]):
        raise ValueError(f"channels must be None (detect), 1 (a gray patch) or {x.shape[1]} (the images' "
                         f"channels), got {channels!r}")
    return int(channels)


def _num_classes(model: nn.Module, x: torch.Tensor) -> int:
    dev = module_device(model)
    if dev != x.device:
        raise ValueError(f"model is on {dev} but x is on {x.device}; move one of them (the patch is "
                         "trained on the device of x)")
    with torch.no_grad():
        out = model(x[:1])
    if out.dim() != 2 or out.shape[1] < 2:
        raise ValueError(f"model must return logits (N, K) with K >= 2 (two for a binary task), got "
                         f"{tuple(out.shape)}")
    return int(out.shape[1])


# ---------------------------------------------------------------------------- the attack

def _batches(n: int, batch_size: int, generator: torch.Generator, device):
    """Endless full mini-batches of indices (``batch_size <= n``): a fresh random order for
    every pass over the images; the last partial batch of a pass is dropped."""
    while True:
        order = torch.randperm(n, generator=generator, device=device)
        for s in range(0, n - batch_size + 1, batch_size):
            yield order[s:s + batch_size]


def _train_one(model: nn.Module, x: torch.Tensor, target: int, *, size: int, channels: int,
               scale_range, max_rotation: float, shape: str, base: float, steps: int, lr: float,
               batch_size: int, seed: int, progress: bool):
    """One patch for one target class; returns (patch (1, channels, s, s), losses, successes)."""
    dev = x.device
    g = torch.Generator(device=dev).manual_seed(int(seed))
    patch = torch.full((1, channels, size, size), 0.5, device=dev, dtype=x.dtype, requires_grad=True)
    opt = torch.optim.Adam([patch], lr=lr)
    labels = torch.full((batch_size,), target, device=dev, dtype=torch.long)
    losses = torch.zeros(steps, device=dev)
    hits = torch.zeros(steps, device=dev)
    batches = _batches(x.shape[0], batch_size, g, dev)
    for step in tqdm(range(steps), desc=f"patch -> class {target}", disable=not progress, leave=False):
        idx = next(batches)
        pl = sample_placements(idx.numel(), x.shape[-2:], scale_range=scale_range, max_rotation=max_rotation,
                               shape=shape, base=base, generator=g, device=dev)
        logits = model(paste(x[idx], patch, pl, shape=shape, base=base))
        loss = F.cross_entropy(logits.float(), labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            patch.clamp_(0, 1)
            losses[step] = loss.detach()
            hits[step] = (logits.argmax(1) == target).float().mean()
    return patch.detach(), losses.cpu().numpy(), hits.cpu().numpy()


def train_patch(model: nn.Module, x: torch.Tensor, *, target: int | str, size: int | None = None,
                base: float = BASE, scale_range: tuple[float, float] = (0.3, 1.5),
                max_rotation: float = 22.5, shape: str = "circle", steps: int = 500, lr: float = 0.01,
                batch_size: int = 16, channels: int | None = None, seed: int = 0,
                progress: bool = True) -> PatchResult:
    """Train a universal targeted adversarial patch (Brown et al. 2017) with EOT.

    Args:
        model: returns logits (two for a binary task); run in eval mode with parameter
            gradients off (:func:`~advmed.attacks.checks.frozen_eval`), both restored; it must
            be on ``x``'s device.
        x: (N, C, H, W) float pixels in [0, 1], the images the patch is trained on (evaluate
            it on others).
        target: the class every patched image should be given, or ``"other"`` for a binary
            model: one patch per class (row ``t`` targets class ``t``), as Finlayson et al.,
            who applied the patch for class ``t`` to the images of the other class. Each row
            is exactly what ``target=t`` trains.
        size: the patch's side in its own pixels; default: the side it covers at the largest
            scale, ``ceil(scale_range[1] * base * min(H, W))``, so training never magnifies it.
        base: the side at scale 1 as a fraction of the image side (see :mod:`.geometry`).
        scale_range: (min, max) scale, uniform per image; the whole patch must fit inside the
            image at ``max`` and every rotation (at most :func:`~.geometry.max_scale`).
        max_rotation: rotations uniform in ``[-max_rotation, max_rotation]`` degrees.
        shape: ``"circle"`` (the study) or ``"square"``.
        steps: optimisation steps (mini-batches) per patch.
        lr: Adam learning rate, about the largest per-step change of a pixel ([0, 1] units).
        batch_size: images per step, each with its own random placement.
        channels: None detects gray images (three identical channels) and trains a gray patch;
            1 forces a gray patch, ``C`` a colour one.
        seed: seeds the image order and the placements (a ``torch.Generator`` on ``x``'s device).
        progress: a tqdm bar over steps.

    Returns:
        A :class:`PatchResult` (patch on ``x``'s device).

    Example:
        >>> import torch
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 2))
        >>> r = train_patch(model, torch.rand(8, 3, 32, 32), target=1, steps=3, progress=False)
        >>> tuple(r.patch.shape), r.targets   # side ceil(1.5 * 0.4 * 32) = 20
        ((1, 3, 20, 20), (1,))
    """
    check_images(x)
    if x.shape[0] == 0:
        raise ValueError("x is empty: a patch needs at least one training image")
    shape = check_shape(shape)
    base = check_base(base)
    max_rotation = check_max_rotation(max_rotation)
    hw = tuple(x.shape[-2:])
    scale_range = _check_scale_range(scale_range, hw, shape, max_rotation, base)
    size = math.ceil(scale_range[1] * base * min(hw)) if size is None else _positive_int(size, "size")
    if size < 2:
        raise ValueError(f"size must be at least 2 patch pixels, got {size}")
    steps = check_steps(steps)
    batch_size = _positive_int(batch_size, "batch_size")
    if isinstance(lr, bool) or not isinstance(lr, numbers.Real) or not math.isfinite(lr) or lr <= 0:
        raise ValueError(f"lr must be a finite number > 0 (Adam's step, about the per-pixel change "
                         f"per step in [0, 1] units), got {lr!r}")
    n_channels = _check_channels(channels, x)
    x = x.detach()
    with frozen_eval(model):
        targets = _check_target(target, _num_classes(model, x))
        if x.device.type == "cuda":
            torch.cuda.synchronize(x.device)
        t0 = time.perf_counter()
        rows = [_train_one(model, x, t, size=size, channels=n_channels, scale_range=scale_range,
                           max_rotation=max_rotation, shape=shape, base=base, steps=steps, lr=float(lr),
                           batch_size=min(batch_size, x.shape[0]), seed=seed, progress=progress)
                for t in targets]
        seconds = time.perf_counter() - t0
    patch = torch.cat([r[0] for r in rows]).expand(-1, x.shape[1], -1, -1).contiguous()
    return PatchResult(patch=patch, mask=shape_mask(size, shape, device=x.device), target=target,
                       targets=targets, shape=shape, base=base, scale_range=scale_range,
                       max_rotation=max_rotation, gray=n_channels == 1 and x.shape[1] > 1, steps=steps,
                       lr=float(lr), batch_size=batch_size, seed=int(seed),
                       loss_history=np.stack([r[1] for r in rows]),
                       success_history=np.stack([r[2] for r in rows]), seconds=seconds)
