"""Adversarial images as an attacker delivers them: rounded to 8 bits.

An attack works in float32, but the image that reaches a deployed classifier is a file: PNG,
JPEG or an 8-bit DICOM export stores 256 grey levels per channel, so the attacker delivers
``round(255 x_adv) / 255``. A perturbation smaller than half a grey level mostly vanishes in
that rounding (Carlini & Wagner 2017 discretise their adversarial images to valid 8-bit ones
for this reason; AutoAttack's and RobustBench's budgets are whole grey levels). Two
consequences the book reports:

- **Budgets below one grey level** (``eps < 1/255`` in L-inf) are the *float* threat model
  only: no 8-bit file lies strictly inside such a ball around an 8-bit image except the
  image itself. :func:`deliverable` says which budgets a file can carry.
- Every adversarial image is also judged **after rounding** (:func:`to_8bit`): the float
  accuracy is the attack's strength in the threat model of the paper, the 8-bit accuracy what
  survives the export. A defense that rounds internally (JPEG) gains nothing from rounding the
  attacker did not do, so the difference tells how much of its "robustness" at sub-grey budgets
  is that rounding.

The book's test images are resized from 8-bit originals, so they are not on the 8-bit grid
themselves; the rounded image then lies within ``eps + 0.5/255`` of the clean one (half a grey
level of export error added to the budget, the same for every attack and defense).

Example:
    >>> import torch
    >>> x = torch.tensor([0.0, 0.3 / 255, 0.6 / 255, 1.0])
    >>> (to_8bit(x) * 255).tolist()
    [0.0, 0.0, 1.0, 255.0]
    >>> deliverable(0.5 / 255), deliverable(1 / 255)
    (False, True)
"""
from __future__ import annotations

import torch

from .checks import check_images

#: One grey level of an 8-bit image, in [0, 1] pixel units.
GREY_LEVEL = 1 / 255
#: What the tables call the two threat models.
FLOAT, EIGHT_BIT = "float", "8-bit"


def to_8bit(x: torch.Tensor) -> torch.Tensor:
    """``x`` rounded to the nearest of the 256 grey levels (ties to even, torch's rounding),
    clipped to [0, 1]; same shape, dtype and device, no gradient.

    Args:
        x: images in [0, 1] (any shape; float).
    """
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"x must be a float tensor of images in [0, 1], got {type(x).__name__}"
                        + (f" of dtype {x.dtype}" if isinstance(x, torch.Tensor) else ""))
    if x.dim() == 4:
        check_images(x)
    return (torch.round(x.detach() * 255).clamp_(0, 255) / 255).to(x.dtype)


def deliverable(eps: float, norm: str = "linf") -> bool:
    """Whether an 8-bit file can carry a perturbation of budget ``eps`` ([0, 1] pixel units):
    at least one grey level in L-inf. L2 budgets spread over many pixels, so any positive L2
    budget of at least one grey level counts."""
    if norm not in ("linf", "l2"):
        raise ValueError(f"norm must be 'linf' or 'l2', got {norm!r}")
    return float(eps) >= GREY_LEVEL * (1 - 1e-6)


__all__ = ["EIGHT_BIT", "FLOAT", "GREY_LEVEL", "deliverable", "to_8bit"]
