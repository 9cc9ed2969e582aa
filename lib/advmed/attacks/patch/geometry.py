"""Where a patch goes, how large it is, and what it covers.

What "scale" means
------------------
A patch is a small image of ``size x size`` pixels (its own resolution, the pixels an
attacker would print). It is placed on an image of ``H x W`` pixels, with ``L = min(H, W)``,
as a shape of side (square) or diameter (circle)

    ``d = scale * base * L`` image pixels,

rotated by ``rotation`` degrees about its centre and centred at a chosen pixel. ``base`` is
the side at scale 1 as a fraction of the image side (default :data:`BASE` = 0.4), so
``scale * base`` is the side as a fraction of the image side. The placed patch covers

- circle: ``pi d^2 / 4`` pixels, a share ``pi (scale * base)^2 / 4`` of a square image;
- square: ``d^2`` pixels, a share ``(scale * base)^2`` of a square image (at any rotation).

With the default base 0.4, scale 1 is the size Finlayson et al. (2019) evaluated at (their
"scale 0.4": a disc whose diameter is 0.4 of the image side, covering 12.6 % of it), and the
default training range 0.3-1.5 spans sides of 0.12-0.6 of the image (1.1 %-28 % of its area).
Their code (``sgfin/adversarial-medicine``, ``patch_attacks/craft_attack_patch.py``) measured
scale against the whole image side (``base=1`` here): its ``train()`` passes
``scale=(0.1, 1.0)`` (the ``SCALE_MIN, SCALE_MAX = 0.3, 1.5`` globals are only the defaults
it overrides) and its evaluation uses 0.4. Scales above 1 there push the patch past the image
border; here the whole patch always stays inside the image (below).

Containment
-----------
A placement is valid when the nominal shape (the disc, or the rotated square) lies inside the
image rectangle ``[-0.5, W - 0.5] x [-0.5, H - 0.5]`` (pixel centres at integer coordinates).
Its half-extent along each axis is ``e = d / 2 * f`` with ``f = 1`` for a circle and
``f = |cos r| + |sin r|`` for a square rotated by ``r``, so the centre must lie within
``[e - 0.5, W - 0.5 - e]`` (columns) and ``[e - 0.5, H - 0.5 - e]`` (rows), and a scale is
possible only if ``scale <= 1 / (base * f)`` (the same for every image size): 2.5 for a
circle and 1.91 for a square at 22.5 degrees with the default base.

The mask
--------
The mask is computed from the geometry, not resampled: each image pixel's signed Euclidean
distance (in image pixels) to the shape's boundary, positive inside, gives its coverage
``clamp(distance + 0.5, 0, 1)``, a one-pixel linear ramp centred on the boundary. Its sum is
the analytic area up to a fraction of a pixel per boundary pixel, it is exactly rotation
invariant for a circle, and nothing of it falls outside the image when the nominal shape lies
inside (every pixel centre outside the image is at least half a pixel from the shape). The
patch's colours are resampled with kornia (``get_affine_matrix2d`` and ``warp_affine``,
bilinear, border padding so the boundary ramp shows the patch's own edge colours), which is
differentiable with respect to the patch; the mask is derived from the inverse of the same
matrix, so the two agree by construction.

Rotation follows ``kornia.geometry.transform.get_affine_matrix2d``: positive angles turn the
patch clockwise as displayed (rows growing downwards). Locations are ``(row, col)`` pixel
coordinates of the patch centre.
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import NamedTuple

import torch
from kornia.geometry.conversions import convert_affinematrix_to_homography
from kornia.geometry.grid import create_meshgrid
from kornia.geometry.linalg import transform_points
from kornia.geometry.transform import (
    get_affine_matrix2d,
    invert_affine_transform,
    warp_affine,
)

from ..checks import check_images

__all__ = [
    "BASE",
    "SHAPES",
    "Placements",
    "apply_patch",
    "check_patch",
    "check_shape",
    "max_scale",
    "paste",
    "patch_area",
    "sample_placements",
    "shape_mask",
    "side_fraction",
]

#: Patch side at scale 1, as a fraction of the image side (min(H, W)).
BASE = 0.4
#: The patch shapes: a disc (Brown et al. 2017; Finlayson et al. 2019) or a square.
SHAPES = ("circle", "square")


class Placements(NamedTuple):
    """Where each of ``N`` patches is put: ``scale`` (N,) relative to the base size,
    ``rotation`` (N,) in degrees (clockwise as displayed), ``center`` (N, 2) as (row, col)
    image pixel coordinates."""

    scale: torch.Tensor
    rotation: torch.Tensor
    center: torch.Tensor


# ---------------------------------------------------------------------------- checks

def check_shape(shape: str) -> str:
    """A patch shape name, or an error listing the valid ones."""
    if shape not in SHAPES:
        raise ValueError(f"unknown patch shape {shape!r}; valid shapes: {', '.join(SHAPES)}")
    return shape


def check_base(base: float) -> float:
    """``base`` is a fraction of the image side in (0, 1]."""
    if isinstance(base, bool) or not isinstance(base, numbers.Real) or not 0 < float(base) <= 1:
        raise ValueError(f"base must be a fraction of the image side in (0, 1] (default {BASE}), got {base!r}")
    return float(base)


def check_rotation(rotation: float, name: str = "rotation") -> float:
    if isinstance(rotation, bool) or not isinstance(rotation, numbers.Real) or not math.isfinite(rotation):
        raise ValueError(f"{name} must be a finite angle in degrees, got {rotation!r}")
    return float(rotation)


def check_max_rotation(max_rotation: float) -> float:
    r = check_rotation(max_rotation, "max_rotation")
    if not 0 <= r <= 180:
        raise ValueError(f"max_rotation must lie in [0, 180] degrees (the study: 22.5), got {r}")
    return r


def extent_factor(shape: str, rotation: torch.Tensor | float) -> torch.Tensor | float:
    """Half-extent along an image axis per half-side: 1 for a circle, |cos r| + |sin r| for a square."""
    if shape == "circle":
        return torch.ones_like(rotation) if torch.is_tensor(rotation) else 1.0
    if torch.is_tensor(rotation):
        rad = torch.deg2rad(rotation)
        return rad.cos().abs() + rad.sin().abs()
    rad = math.radians(rotation)
    return abs(math.cos(rad)) + abs(math.sin(rad))


def _worst_factor(shape: str, max_rotation: float) -> float:
    """Largest :func:`extent_factor` over rotations in [-max_rotation, max_rotation]."""
    if shape == "circle":
        return 1.0
    return float(extent_factor("square", min(abs(max_rotation), 45.0)))


def max_scale(*, shape: str = "circle", max_rotation: float = 0.0, base: float = BASE) -> float:
    """The largest scale whose patch fits inside the image at every rotation up to
    ``max_rotation`` degrees: ``1 / (base * f)`` (see the module docstring); independent
    of the image size."""
    return 1.0 / (check_base(base) * _worst_factor(check_shape(shape), check_max_rotation(max_rotation)))


def check_scale(scale: float, image_hw: Sequence[int], *, shape: str, base: float,
                max_rotation: float = 0.0, rotation: float | None = None, name: str = "scale") -> float:
    """A scale > 0 whose patch covers at least one pixel and fits inside the image, at every
    rotation up to ``max_rotation`` degrees or, when given, at the one ``rotation``."""
    if isinstance(scale, bool) or not isinstance(scale, numbers.Real) or not math.isfinite(scale) or scale <= 0:
        raise ValueError(f"{name} must be a finite number > 0 (the patch side relative to {base:g} of the "
                         f"image side), got {scale!r}")
    if rotation is None:
        top, at = max_scale(shape=shape, max_rotation=max_rotation, base=base), f"up to {max_rotation:g}"
    else:
        top, at = 1.0 / (base * float(extent_factor(shape, rotation))), f"of {rotation:g}"
    if scale > top * (1 + 1e-9):
        raise ValueError(f"{name}={scale:g} is out of range: a {shape} of side {scale:g} x {base:g} of the "
                         f"image side does not fit inside the image at rotations {at} degrees; the "
                         f"largest scale that fits is {top:.4g}")
    side = scale * base * min(image_hw)
    if side < 1:
        raise ValueError(f"{name}={scale:g} gives a patch of {side:.2f} pixels on a {min(image_hw)}-pixel "
                         "image; it must cover at least one pixel")
    return float(scale)


def side_fraction(scale: float, base: float = BASE) -> float:
    """The placed side (diameter) as a fraction of the image side: ``scale * base``."""
    return float(scale) * check_base(base)


# ---------------------------------------------------------------------------- placements

def _center_bounds(half: torch.Tensor, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Lowest and highest centre coordinate keeping a half-extent ``half`` inside ``length`` pixels."""
    return half - 0.5, (length - 0.5) - half


def sample_placements(n: int, image_hw: Sequence[int], *, scale_range: tuple[float, float],
                      max_rotation: float, shape: str, base: float,
                      generator: torch.Generator | None, device: torch.device | str) -> Placements:
    """``n`` random placements, each inside the image: scale uniform in ``scale_range``,
    rotation uniform in ``[-max_rotation, max_rotation]``, centre uniform over the positions
    that keep this patch (at its scale and rotation) inside the image. Arguments are
    assumed checked."""
    h, w = int(image_hw[0]), int(image_hw[1])
    u = torch.rand(n, 4, generator=generator, device=device)
    lo, hi = scale_range
    scale = lo + (hi - lo) * u[:, 0]
    rotation = max_rotation * (2 * u[:, 1] - 1)
    half = 0.5 * scale * base * min(h, w) * extent_factor(shape, rotation)
    rows = _uniform_between(*_center_bounds(half, h), u[:, 2])
    cols = _uniform_between(*_center_bounds(half, w), u[:, 3])
    return Placements(scale, rotation, torch.stack([rows, cols], dim=1))


def _uniform_between(lo: torch.Tensor, hi: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    # a patch that exactly fills an axis has lo == hi; rounding may make hi a hair smaller
    return lo + (hi - lo).clamp_min(0) * u


def fixed_placements(n: int, image_hw: Sequence[int], *, scale: float, rotation: float,
                     location, shape: str, base: float, generator: torch.Generator | None,
                     device: torch.device | str) -> Placements:
    """``n`` placements at one scale and rotation; ``location`` None (the image centre),
    ``"random"`` (uniform over the valid centres) or ``(row, col)`` (checked)."""
    h, w = int(image_hw[0]), int(image_hw[1])
    scale_t = torch.full((n,), float(scale), device=device)
    rot_t = torch.full((n,), float(rotation), device=device)
    half = 0.5 * float(scale) * base * min(h, w) * float(extent_factor(shape, float(rotation)))
    (r_lo, r_hi), (c_lo, c_hi) = (half - 0.5, h - 0.5 - half), (half - 0.5, w - 0.5 - half)
    if location is None:
        center = torch.tensor([(h - 1) / 2, (w - 1) / 2], device=device).expand(n, 2)
    elif isinstance(location, str):
        if location != "random":
            raise ValueError(f"unknown location {location!r}; valid: None (centre), 'random', or (row, col)")
        u = torch.rand(n, 2, generator=generator, device=device)
        center = torch.stack([r_lo + max(r_hi - r_lo, 0) * u[:, 0], c_lo + max(c_hi - c_lo, 0) * u[:, 1]], 1)
    else:
        row, col = _check_location(location, (r_lo, r_hi), (c_lo, c_hi))
        center = torch.tensor([row, col], device=device, dtype=torch.float32).expand(n, 2)
    return Placements(scale_t, rot_t, center.float().contiguous())


def _check_location(location, rows: tuple[float, float], cols: tuple[float, float]) -> tuple[float, float]:
    try:
        row, col = (float(v) for v in location)
    except (TypeError, ValueError):
        raise TypeError(f"location must be None, 'random' or a (row, col) pair of pixel coordinates, "
                        f"got {location!r}") from None
    eps = 1e-6
    if not (rows[0] - eps <= row <= rows[1] + eps and cols[0] - eps <= col <= cols[1] + eps):
        raise ValueError(f"location (row, col) = ({row:g}, {col:g}) puts the patch partly outside the image; "
                         f"at this scale and rotation its centre must lie in rows [{rows[0]:.2f}, {rows[1]:.2f}] "
                         f"and columns [{cols[0]:.2f}, {cols[1]:.2f}]")
    return row, col


# ---------------------------------------------------------------------------- pasting

def _matrices(pl: Placements, size: int, image_hw: Sequence[int], base: float) -> torch.Tensor:
    """(N, 3, 3) affine maps from patch pixel coordinates (x, y) to image pixel coordinates:
    the patch centre goes to ``pl.center`` and one patch pixel becomes ``d / size`` image pixels."""
    n = pl.scale.shape[0]
    side = pl.scale * base * min(int(image_hw[0]), int(image_hw[1]))
    k = (side / size).unsqueeze(1).expand(n, 2)
    c = torch.full((n, 2), (size - 1) / 2, device=pl.scale.device)
    center_xy = pl.center.flip(1)  # (row, col) -> (x, y)
    return get_affine_matrix2d(center_xy - c, c, k.contiguous(), pl.rotation)


def _coverage(v: torch.Tensor, half: torch.Tensor, shape: str) -> torch.Tensor:
    """Mask values from offsets ``v`` (N, P, 2) to the patch centre in the patch's own
    (unrotated) frame, in image pixels: ``clamp(signed distance + 0.5, 0, 1)``."""
    half = half.view(-1, 1)
    if shape == "circle":
        sdf = half - v.norm(dim=-1)
    else:  # Euclidean signed distance to an axis-aligned square of half-side `half`
        q = v.abs() - half.unsqueeze(-1)
        outside = q.clamp_min(0).norm(dim=-1)
        inside = q.amax(dim=-1).clamp_max(0)
        sdf = -(outside + inside)
    return (sdf + 0.5).clamp_(0, 1)


def _masks(matrices: torch.Tensor, pl: Placements, size: int, image_hw: Sequence[int], shape: str,
           base: float) -> torch.Tensor:
    """(N, 1, H, W) coverage of each placed patch, from the inverse of its affine map."""
    h, w = int(image_hw[0]), int(image_hw[1])
    n = matrices.shape[0]
    inverse = convert_affinematrix_to_homography(invert_affine_transform(matrices[:, :2]))
    grid = create_meshgrid(h, w, normalized_coordinates=False, device=matrices.device, dtype=matrices.dtype)
    src = transform_points(inverse, grid.reshape(1, -1, 2).expand(n, -1, 2))
    side = pl.scale * base * min(h, w)
    v = (src - (size - 1) / 2) * (side / size).view(-1, 1, 1)  # patch pixels -> image pixels
    return _coverage(v, side / 2, shape).view(n, 1, h, w)


def paste(x: torch.Tensor, patch: torch.Tensor, pl: Placements, *, shape: str, base: float) -> torch.Tensor:
    """Images with the patch pasted at each placement; differentiable w.r.t. ``patch``.

    ``x`` (N, C, H, W); ``patch`` (1 or N, 1 or C, s, s) on ``x``'s device; one channel is
    replicated to ``C`` (a gray patch). Returns ``x * (1 - m) + warped * m`` clamped to [0, 1].
    Arguments are assumed checked (see :func:`apply_patch` for the checked entry point).
    """
    n, c, h, w = x.shape
    size = patch.shape[-1]
    matrices = _matrices(pl, size, (h, w), base)
    src = patch.expand(n, -1, -1, -1) if patch.shape[0] == 1 else patch
    warped = warp_affine(src, matrices[:, :2], (h, w), mode="bilinear", padding_mode="border",
                         align_corners=True)
    if warped.shape[1] == 1 and c > 1:
        warped = warped.expand(-1, c, -1, -1)
    mask = _masks(matrices, pl, size, (h, w), shape, base)
    return (x * (1 - mask) + warped * mask).clamp(0, 1)


def shape_mask(size: int, shape: str = "circle", *, device: torch.device | str | None = None) -> torch.Tensor:
    """(1, 1, size, size) coverage of the shape on the patch's own pixel grid (the same
    one-pixel ramp as on the images)."""
    check_shape(shape)
    grid = create_meshgrid(size, size, normalized_coordinates=False, device=device)
    v = grid.reshape(1, -1, 2) - (size - 1) / 2
    return _coverage(v, torch.tensor([size / 2], device=device), shape).view(1, 1, size, size)


# ---------------------------------------------------------------------------- public helpers

def check_patch(patch, x: torch.Tensor) -> torch.Tensor:
    """A patch as (T, 1 or C, s, s) float on ``x``'s device (any number T of rows); a
    PatchResult gives its patches. Square, at least 2 pixels, finite pixels in [0, 1]."""
    p = getattr(patch, "patch", patch)
    if not torch.is_tensor(p) or not p.is_floating_point():
        raise TypeError("patch must be a float tensor (1, C, s, s) of pixels in [0, 1] or a PatchResult")
    if p.dim() == 3:
        p = p.unsqueeze(0)
    if p.dim() != 4 or p.shape[-1] != p.shape[-2] or p.shape[-1] < 2:
        raise ValueError(f"patch must have shape (1, C, s, s) with s >= 2, got {tuple(p.shape)}")
    check_images(p, "patch")
    if p.shape[1] not in (1, x.shape[1]):
        raise ValueError(f"patch has {p.shape[1]} channels; the images have {x.shape[1]} (a gray patch "
                         "may have 1)")
    return p.to(device=x.device, dtype=x.dtype)


def apply_patch(x: torch.Tensor, patch, *, scale: float, rotation: float = 0.0, location=None,
                shape: str = "circle", base: float = BASE, seed: int = 0) -> torch.Tensor:
    """Paste a patch on every image at one scale and rotation.

    The patch's side (circle: diameter) is ``scale * base`` of the image side
    ``min(H, W)``; the whole patch stays inside the image (see the module docstring).

    Args:
        x: images (N, C, H, W), float pixels in [0, 1].
        patch: (1, C, s, s) or (N, C, s, s) (one per image) in [0, 1]; one channel is
            replicated to the images' channels; a PatchResult with one patch also works.
        scale: patch side relative to ``base`` of the image side; at most
            :func:`max_scale` for this shape and rotation.
        rotation: degrees, clockwise as displayed.
        location: None (the image centre), ``"random"`` (uniform over the centres that keep
            the patch inside, seeded by ``seed``) or ``(row, col)`` of the patch centre.
        shape: ``"circle"`` or ``"square"``.
        base: the side at scale 1 as a fraction of the image side.
        seed: seeds ``location="random"``.

    Returns:
        The patched images, (N, C, H, W) in [0, 1], differentiable w.r.t. ``patch``.

    Example:
        >>> import torch
        >>> x = torch.zeros(2, 3, 32, 32)
        >>> out = apply_patch(x, torch.ones(1, 3, 8, 8), scale=1.0, shape="square")
        >>> bool(abs(out[0, 0].sum() - 12.8 ** 2) < 2)  # a square of side 0.4 x 32 = 12.8 pixels
        True
    """
    check_images(x)
    shape = check_shape(shape)
    base = check_base(base)
    rotation = check_rotation(rotation)
    scale = check_scale(scale, x.shape[-2:], shape=shape, base=base, rotation=rotation)
    p = check_patch(patch, x)
    if p.shape[0] not in (1, x.shape[0]):
        raise ValueError(f"patch has {p.shape[0]} rows; give one patch (1, C, s, s) or one per image "
                         f"({x.shape[0]}, C, s, s)")
    g = torch.Generator(device=x.device).manual_seed(int(seed))
    pl = fixed_placements(x.shape[0], x.shape[-2:], scale=scale, rotation=rotation, location=location,
                          shape=shape, base=base, generator=g, device=x.device)
    return paste(x, p, pl, shape=shape, base=base)


def patch_area(image, *, scale: float, shape: str = "circle", rotation: float = 0.0,
               base: float = BASE) -> float:
    """Share of the image (in [0, 1]) the patch covers, measured as the mean of its mask
    placed at the image centre.

    ``image`` is a tensor (..., H, W) or a size ``(H, W)``. The analytic share is
    ``pi d^2 / (4 H W)`` for a circle and ``d^2 / (H W)`` for a square, ``d = scale * base *
    min(H, W)``; the measured one differs from it only by pixel discretisation.

    Example:
        >>> round(patch_area((224, 224), scale=1.0), 3)  # the study's 0.4: pi 0.4^2 / 4
        0.126
    """
    hw = tuple(int(s) for s in (image.shape[-2:] if torch.is_tensor(image) else image))
    if len(hw) != 2 or min(hw) < 1:
        raise ValueError(f"image must be a tensor (..., H, W) or a size (H, W), got {image!r}")
    shape = check_shape(shape)
    base = check_base(base)
    rotation = check_rotation(rotation)
    scale = check_scale(scale, hw, shape=shape, base=base, rotation=rotation)
    pl = fixed_placements(1, hw, scale=scale, rotation=rotation, location=None, shape=shape, base=base,
                          generator=None, device="cpu")
    size = 16  # the mask does not depend on the patch's resolution
    mask = _masks(_matrices(pl, size, hw, base), pl, size, hw, shape, base)
    return float(mask.mean())
