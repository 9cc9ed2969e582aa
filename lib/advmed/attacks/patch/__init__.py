"""Adversarial patches (threat model "patch"): universal, targeted, robust to placement.

Brown et al. (2017) "Adversarial patch", trained with expectation over transformations
(Athalye et al. 2018), as used by Finlayson et al. (2019) against medical classifiers.

- :func:`train_patch` -> :class:`PatchResult`: random location, rotation and scale per image.
- :func:`apply_patch`, :func:`patch_area`: paste a patch at one scale; the share it covers.
- :func:`natural_patch`: the control, a crop of a real image of the target class.
- :func:`evaluate_patch` -> :class:`PatchEvaluation`: accuracy / AUC after patching,
  targeted success, covered area, with bootstrap intervals.

Scale: the patch side (circle: diameter) is ``scale * base`` of the image side, ``base`` =
:data:`BASE` = 0.4 by default, so scale 1.0 is Finlayson et al.'s evaluation size ("0.4" in
their code, whose scale is relative to the whole image side); the whole patch always stays
inside the image. See :mod:`.geometry`.

Example:
    >>> import torch
    >>> from advmed.attacks.patch import apply_patch, train_patch
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 2))
    >>> x = torch.rand(8, 3, 32, 32)
    >>> r = train_patch(model, x, target=1, steps=5, progress=False)
    >>> x_patched = apply_patch(x, r.patch, scale=1.0, location="random", seed=0)
    >>> bool(x_patched.min() >= 0 and x_patched.max() <= 1)
    True
"""
from .evaluate import PatchEvaluation, evaluate_patch
from .geometry import BASE, SHAPES, Placements, apply_patch, max_scale, patch_area, shape_mask, side_fraction
from .natural import natural_patch
from .train import PatchResult, is_gray, train_patch

__all__ = ["BASE", "SHAPES", "PatchEvaluation", "PatchResult", "Placements", "apply_patch", "evaluate_patch",
           "is_gray", "max_scale", "natural_patch", "patch_area", "shape_mask", "side_fraction", "train_patch"]
