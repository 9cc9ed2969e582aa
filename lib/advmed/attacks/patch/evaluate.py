"""Evaluating a patch: accuracy and AUC after patching, targeted success, covered area.

Protocol (Finlayson et al. 2019, ``report_opp`` / ``attack_combined`` in their code): every
test image gets the patch at one fixed scale (theirs: 0.4 of the image side, scale 1.0 here
with the default base), at a random location and a random rotation within the training
range, and the model's scores on the patched images give accuracy and AUC against the true
labels. With ``target="other"`` (binary tasks) the image of class ``c`` gets the patch that
targets ``1 - c``, as they did; with an int target every image gets the one patch.

- accuracy, AUC (and the other metrics of :func:`advmed.metrics.classification_metrics`):
  binary AUC from the class-1 score, multiclass macro one-vs-rest, with bootstrap intervals.
- targeted success rate (:func:`advmed.metrics.attack_success`): share of patched images
  classified as their target, among the images whose clean prediction is not already the
  target (``among="non_target"``; Finlayson et al. divided by all images of the other
  class, which includes images the model already gave the target class).
- area: the share of the image the patch covers, measured from its mask
  (:func:`~.geometry.patch_area`).

``n_placements`` > 1 repeats the random placement; metrics are then pooled over
(image, placement) pairs and the bootstrap resamples *images*, each with all its
placements (a cluster bootstrap), so intervals do not pretend the placements of one image
are independent images.
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ... import metrics as M
from ..checks import check_images, check_labels, frozen_eval
from .geometry import (
    BASE,
    check_base,
    check_max_rotation,
    check_patch,
    check_scale,
    check_shape,
    paste,
    patch_area,
    sample_placements,
    side_fraction,
)

__all__ = ["PatchEvaluation", "evaluate_patch"]


@dataclass
class PatchEvaluation:
    """How a patch did on a set of images (bootstrap 95 % intervals in every :class:`Estimate`).

    Attributes:
        accuracy, auc: of the patched images' scores against the true labels.
        success_rate: share classified as the target, among images whose clean prediction is
            not the target (``n_success`` of them).
        area: share of the image covered by the patch (measured from its mask).
        side_fraction: the patch side (diameter) as a fraction of the image side.
        metrics: every metric of ``classification_metrics`` on the patched images.
        clean: the same metrics on the clean images.
    """

    accuracy: M.Estimate
    auc: M.Estimate
    success_rate: M.Estimate
    area: float
    side_fraction: float
    scale: float
    shape: str
    target: int | str
    max_rotation: float
    n_images: int
    n_success: int
    n_placements: int
    metrics: dict = field(repr=False)
    clean: dict = field(repr=False)

    def summary(self) -> dict:
        """A flat row for tables: point estimates and intervals."""
        row = {"scale": self.scale, "side_fraction": self.side_fraction, "area": self.area,
               "shape": self.shape, "target": self.target, "n_images": self.n_images,
               "n_placements": self.n_placements}
        for name, est in (("clean_accuracy", self.clean["accuracy"]), ("clean_auc", self.clean["auc"]),
                          ("accuracy", self.accuracy), ("auc", self.auc), ("success_rate", self.success_rate)):
            row[name], row[f"{name}_lo"], row[f"{name}_hi"] = est.value, est.lo, est.hi
        return row


# ---------------------------------------------------------------------------- inputs

def _settings(patch, target, shape, base, max_rotation):
    """The patch's geometry and targets: from a PatchResult unless overridden."""
    from_result = hasattr(patch, "targets")
    target = target if target is not None else (patch.target if from_result else None)
    if target is None:
        raise ValueError("target= is needed for a patch tensor: the int class it targets, or 'other' "
                         "(row t of a (2, C, s, s) tensor targets class t)")
    shape = check_shape(shape if shape is not None else (patch.shape if from_result else "circle"))
    base = check_base(base if base is not None else (patch.base if from_result else BASE))
    max_rotation = check_max_rotation(max_rotation if max_rotation is not None else
                                      (patch.max_rotation if from_result else 22.5))
    targets = tuple(patch.targets) if from_result else None
    return target, shape, base, max_rotation, targets


def _image_targets(target, y: torch.Tensor, n_classes: int) -> torch.Tensor:
    if isinstance(target, str):
        if target != "other":
            raise ValueError(f"unknown target {target!r}; valid: an int class or 'other' (binary tasks)")
        if n_classes != 2:
            raise ValueError(f"target='other' needs a binary model (2 logits); this one has {n_classes}")
        return 1 - y
    if isinstance(target, bool) or not isinstance(target, numbers.Integral):
        raise TypeError(f"target must be an int class or 'other', got {target!r}")
    if not 0 <= int(target) < n_classes:
        raise ValueError(f"target class {target} is out of range for a model with {n_classes} logits")
    return torch.full_like(y, int(target))


def _rows(p: torch.Tensor, targets: tuple[int, ...] | None, image_targets: torch.Tensor) -> torch.Tensor:
    """Which row of ``p`` each image gets: the one that targets its target class."""
    if targets is None:  # a plain tensor: one patch, or row t targets class t
        needed = image_targets.unique().tolist()
        if p.shape[0] == 1 and len(needed) == 1:
            return torch.zeros_like(image_targets)
        if p.shape[0] < max(needed) + 1:
            raise ValueError(f"the images need patches for classes {needed}, but the patch tensor has "
                             f"{p.shape[0]} row(s); row t must target class t")
        return image_targets
    lookup = {t: i for i, t in enumerate(targets)}
    missing = sorted(set(image_targets.unique().tolist()) - set(lookup))
    if missing:
        raise ValueError(f"the images need patches for classes {missing}; this result has patches for {targets}")
    table = torch.full((max(max(lookup), int(image_targets.max())) + 1,), -1, dtype=torch.long)
    for t, i in lookup.items():
        table[t] = i
    return table.to(image_targets.device)[image_targets]


def _check_model(model: nn.Module, x: torch.Tensor) -> int:
    from ...device import module_device

    if module_device(model) != x.device:
        raise ValueError(f"model is on {module_device(model)} but x is on {x.device}; move one of them")
    with torch.no_grad():
        out = model(x[:1])
    if out.dim() != 2 or out.shape[1] < 2:
        raise ValueError(f"model must return logits (N, K) with K >= 2, got {tuple(out.shape)}")
    return int(out.shape[1])


# ---------------------------------------------------------------------------- scores

@torch.no_grad()
def _proba(model: nn.Module, x: torch.Tensor, batch_size: int, patch=None, rows=None, placements=None,
           *, shape: str = "circle", base: float = BASE) -> np.ndarray:
    """Softmax scores (N, K) in float64 of ``x``, or of ``x`` with patch rows pasted."""
    out = []
    for s in range(0, x.shape[0], batch_size):
        xb = x[s:s + batch_size]
        if patch is not None:
            sl = slice(s, s + batch_size)
            pl = type(placements)(*(t[sl] for t in placements))
            xb = paste(xb, patch[rows[sl]], pl, shape=shape, base=base)
        out.append(torch.softmax(model(xb).double(), dim=1).cpu())
    return torch.cat(out).numpy()


def _pooled_metrics(y: np.ndarray, proba: np.ndarray, n_boot: int, seed: int) -> dict:
    """classification_metrics over (placement, image) pairs, bootstrapping images (clusters).

    ``proba`` is (P, N, K). With P = 1 this is exactly ``classification_metrics``.
    """
    p_count, n = proba.shape[:2]
    if p_count == 1:
        return M.classification_metrics(y, proba[0], n_boot=n_boot, seed=seed)
    return M.classification_metrics(np.tile(y, p_count), proba.reshape(p_count * n, -1), n_boot=n_boot,
                                    seed=seed, groups=np.tile(np.arange(n), p_count))


# ---------------------------------------------------------------------------- the evaluation

def evaluate_patch(model: nn.Module, x: torch.Tensor, y: torch.Tensor, patch, *, scale: float,
                   target: int | str | None = None, shape: str | None = None, base: float | None = None,
                   max_rotation: float | None = None, n_placements: int = 1, batch_size: int = 256,
                   seed: int = 0, n_boot: int = 1000, progress: bool = False) -> PatchEvaluation:
    """Accuracy, AUC and targeted success of a patch pasted at one scale on every image.

    Args:
        model: returns logits; evaluated in eval mode (restored afterwards), on ``x``'s device.
        x: (N, C, H, W) float pixels in [0, 1], images the patch was **not** trained on.
        y: (N,) true labels.
        patch: a :class:`~.train.PatchResult` or a tensor (T, C, s, s) in [0, 1] (row ``t``
            targets class ``t`` when ``target="other"``; one row for an int target), e.g. a
            :func:`~.natural.natural_patch` control.
        scale: the patch side relative to ``base`` of the image side (1.0 with the default
            base is Finlayson et al.'s evaluation size, 0.4 of the image side).
        target: an int class or ``"other"``; default: the PatchResult's.
        shape, base, max_rotation: default: the PatchResult's (else circle, 0.4, 22.5).
            Each placement is rotated uniformly within ``[-max_rotation, max_rotation]``.
        n_placements: random placements per image (1: Finlayson et al.'s protocol).
        batch_size: images per forward pass.
        seed: seeds the placements and the bootstrap.
        n_boot: bootstrap resamples (0: no intervals).
        progress: a tqdm bar over placements.

    Returns:
        A :class:`PatchEvaluation`.
    """
    check_images(x)
    check_labels(y, x)
    if x.shape[0] == 0:
        raise ValueError("x is empty: metrics over zero images are undefined")
    target, shape, base, max_rotation, targets = _settings(patch, target, shape, base, max_rotation)
    scale = check_scale(scale, x.shape[-2:], shape=shape, base=base, max_rotation=max_rotation)
    if isinstance(n_placements, bool) or not isinstance(n_placements, numbers.Integral) or n_placements < 1:
        raise ValueError(f"n_placements must be an integer >= 1, got {n_placements!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    p = check_patch(patch, x)
    y = y.to(device=x.device, dtype=torch.long)
    with frozen_eval(model):
        n_classes = _check_model(model, x)
        if int(y.min()) < 0 or int(y.max()) >= n_classes:
            raise ValueError(f"labels y must lie in [0, {n_classes - 1}] for a model with {n_classes} logits")
        t_img = _image_targets(target, y, n_classes)
        rows = _rows(p, targets, t_img)
        clean = _proba(model, x, batch_size)
        g = torch.Generator(device=x.device).manual_seed(int(seed))
        patched = []
        for _ in tqdm(range(n_placements), desc="placements", disable=not progress, leave=False):
            pl = sample_placements(x.shape[0], x.shape[-2:], scale_range=(scale, scale),
                                   max_rotation=max_rotation, shape=shape, base=base, generator=g,
                                   device=x.device)
            patched.append(_proba(model, x, batch_size, p, rows, pl, shape=shape, base=base))
    return _summarise(y.cpu().numpy(), t_img.cpu().numpy(), clean, np.stack(patched), n_boot=n_boot,
                      seed=seed, scale=scale, shape=shape, base=base, target=target,
                      max_rotation=max_rotation, hw=tuple(x.shape[-2:]))


def _summarise(y, t_img, clean, patched, *, n_boot, seed, scale, shape, base, target, max_rotation,
               hw) -> PatchEvaluation:
    metrics = _pooled_metrics(y, patched, n_boot, seed)
    clean_pred = clean.argmax(1)
    # per image: share of its placements classified as its target (attack_success per placement)
    hits = np.stack([M.attack_success(clean_pred, pr.argmax(1), target=t_img) for pr in patched])
    success = M.mean_interval(hits.mean(0), n_boot=n_boot, seed=seed)
    return PatchEvaluation(
        accuracy=metrics["accuracy"], auc=metrics["auc"], success_rate=success,
        area=patch_area(hw, scale=scale, shape=shape, base=base), side_fraction=side_fraction(scale, base),
        scale=scale, shape=shape, target=target, max_rotation=max_rotation, n_images=len(y),
        n_success=int(hits.shape[1]), n_placements=int(patched.shape[0]), metrics=metrics,
        clean=M.classification_metrics(y, clean, n_boot=n_boot, seed=seed))
