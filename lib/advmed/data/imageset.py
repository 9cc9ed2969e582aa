"""``ImageSet``: decoded images with their labels, classes and patient/lesion groups.

Images are stored as ``uint8`` tensors ``(N, C, H, W)`` (0..255) so that a whole split
fits in memory at 224 px; ``.float()`` gives the float32 ``[0, 1]`` pixels every other
module works in (DESIGN.md, Conventions).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch


@dataclass
class ImageSet:
    """A split of a dataset, decoded.

    Attributes:
        images: ``torch.uint8`` tensor ``(N, C, H, W)``, pixel values 0..255.
        labels: ``torch.int64`` tensor ``(N,)``; index into ``classes`` (``-1``: no label,
            only in ``imagenet_samples``).
        classes: class names, in label order.
        groups: numpy array (N,) of patient / lesion ids (str), or None when the dataset
            has none. Images sharing a group never cross splits.
        paths: where each image came from (path relative to the data root, ``zip:member``,
            or ``file.npz:split/i``), or None.
        name: dataset (``ham10000`` or ``ham10000:mel_vs_nv``) or task name.
        split: ``train`` / ``val`` / ``test`` (or an ``imagenet_samples`` split).
        meta: provenance from the loader (``cache_path``, ``from_cache``, ``seconds``,
            ``origin``: ``local:<root>`` or ``download:<folder>``).
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    groups: np.ndarray | None = None
    paths: list[str] | None = None
    name: str = ""
    split: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.images = torch.as_tensor(self.images)
        self.labels = torch.as_tensor(self.labels, dtype=torch.int64).reshape(-1)
        self.classes = list(self.classes)
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise ValueError(
                f"ImageSet.images must be uint8 (N, C, H, W); got {self.images.dtype} "
                f"{tuple(self.images.shape)}"
            )
        n = self.images.shape[0]
        if self.labels.shape[0] != n:
            raise ValueError(f"ImageSet has {n} images but {self.labels.shape[0]} labels")
        if self.groups is not None:
            self.groups = np.asarray(self.groups)
            if self.groups.shape[0] != n:
                raise ValueError(f"ImageSet has {n} images but {self.groups.shape[0]} groups")
        if self.paths is not None:
            self.paths = list(self.paths)
            if len(self.paths) != n:
                raise ValueError(f"ImageSet has {n} images but {len(self.paths)} paths")

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __repr__(self) -> str:  # the dataclass default would print every pixel
        n, c, h, w = self.images.shape
        return (
            f"ImageSet(name={self.name!r}, split={self.split!r}, n={n}, shape=({c}, {h}, {w}), "
            f"classes={self.classes!r}, counts={self.class_counts()})"
        )

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def channels(self) -> int:
        return int(self.images.shape[1])

    @property
    def size(self) -> int:
        """Image height in pixels (images are square for every registered dataset)."""
        return int(self.images.shape[2])

    def float(self) -> torch.Tensor:
        """Pixels as float32 in [0, 1] (uint8 / 255), shape (N, C, H, W)."""
        return self.images.to(torch.float32).div_(255.0)

    def subset(self, idx: Any) -> ImageSet:
        """A new ImageSet with the rows ``idx`` (int indices, a boolean mask, or a slice)."""
        if isinstance(idx, slice):
            rows = np.arange(len(self))[idx]
        else:
            rows = np.asarray(idx.cpu() if isinstance(idx, torch.Tensor) else idx)
            if rows.dtype == bool:
                if rows.shape != (len(self),):
                    raise IndexError(f"boolean mask of shape {rows.shape} for {len(self)} images")
                rows = np.flatnonzero(rows)
            rows = rows.astype(np.int64).reshape(-1)
        t = torch.from_numpy(rows)
        return ImageSet(
            images=self.images[t],
            labels=self.labels[t],
            classes=list(self.classes),
            groups=None if self.groups is None else self.groups[rows],
            paths=None if self.paths is None else [self.paths[i] for i in rows],
            name=self.name,
            split=self.split,
            meta=dict(self.meta),
        )

    def class_counts(self) -> dict[str, int]:
        """Images per class, in class order; unlabelled images (-1) under ``"unlabelled"``."""
        labels = self.labels.numpy()
        counts = np.bincount(labels[labels >= 0], minlength=len(self.classes))
        out = {c: int(counts[i]) for i, c in enumerate(self.classes)}
        missing = int((labels < 0).sum())
        if missing:
            out["unlabelled"] = missing
        return out
