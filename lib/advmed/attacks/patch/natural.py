"""The "natural" patch control: a piece of a real image of the target class.

Finlayson et al. (2019) compared their adversarial patches with a natural patch of the same
size cut from an image of the target class (for dermoscopy, a mole cropped from a melanoma
image; ``patch_attacks/crop_mole.ipynb`` in their code): if the model merely reacts to
evidence of the target class pasted into the image, the natural patch should fool it too.
It did not (accuracy / AUC 0.68 / 0.49 derm, 0.92 / 0.54 CXR, 0.79 / 0.83 DR after the natural
patch, against about 0 / 0 for the adversarial ones).
"""
from __future__ import annotations

import numbers

import torch

from ..checks import check_images, check_labels

__all__ = ["LOCATIONS", "natural_patch"]

#: Where the crop is taken: the image centre (where the lesion or organ usually is) or at random.
LOCATIONS = ("center", "random")


def natural_patch(images: torch.Tensor, labels: torch.Tensor, target: int | str, *, size: int,
                  seed: int = 0, location: str = "center") -> torch.Tensor:
    """A ``size x size`` crop of a random image of the target class, to use as a patch.

    Args:
        images: (N, C, H, W) float pixels in [0, 1] to cut from (e.g. training images, not the
            images the control is evaluated on).
        labels: (N,) their true labels.
        target: an int class, or ``"other"`` for a binary task: one crop per class (row ``t``
            from an image of class ``t``), matching ``train_patch(target="other")``.
        size: the crop's side in pixels; give the adversarial patch's ``size`` so both are
            pasted at the same resolution (at most ``min(H, W)``).
        seed: chooses the image (and the crop's position when ``location="random"``).
        location: ``"center"`` (the crop centred in the image) or ``"random"``.

    Returns:
        (T, C, size, size) float pixels in [0, 1] on ``images``' device (T = 1, or 2 for "other").
        Gray images give a gray crop (their three channels are equal).

    Example:
        >>> import torch
        >>> x, y = torch.rand(6, 3, 28, 28), torch.tensor([0, 1, 0, 1, 0, 1])
        >>> tuple(natural_patch(x, y, "other", size=12).shape)
        (2, 3, 12, 12)
    """
    check_images(images, "images")
    check_labels(labels, images, "labels")
    if location not in LOCATIONS:
        raise ValueError(f"unknown location {location!r}; valid: {', '.join(LOCATIONS)}")
    h, w = images.shape[-2:]
    if isinstance(size, bool) or not isinstance(size, numbers.Integral) or not 2 <= size <= min(h, w):
        raise ValueError(f"size must be an integer in [2, {min(h, w)}] (the crop fits in the images), got {size!r}")
    if isinstance(target, str):
        if target != "other":
            raise ValueError(f"unknown target {target!r}; valid: an int class or 'other' (binary tasks)")
        classes = (0, 1)
    elif isinstance(target, bool) or not isinstance(target, numbers.Integral):
        raise TypeError(f"target must be an int class or 'other', got {target!r}")
    else:
        classes = (int(target),)
    g = torch.Generator().manual_seed(int(seed))
    labels = labels.cpu()
    return torch.cat([_crop(images, labels, c, size, g, location) for c in classes])


def _crop(images, labels, cls: int, size: int, g: torch.Generator, location: str) -> torch.Tensor:
    pool = (labels == cls).nonzero().squeeze(1)
    if pool.numel() == 0:
        raise ValueError(f"no image of class {cls} to cut a natural patch from (labels present: "
                         f"{sorted(labels.unique().tolist())})")
    i = int(pool[torch.randint(pool.numel(), (1,), generator=g)])
    h, w = images.shape[-2:]
    if location == "center":
        top, left = (h - size) // 2, (w - size) // 2
    else:
        top = int(torch.randint(h - size + 1, (1,), generator=g))
        left = int(torch.randint(w - size + 1, (1,), generator=g))
    return images[i:i + 1, :, top:top + size, left:left + size].clone()
