"""What identifies a result in the memo cache: the one image-set fingerprint, the run keys
shared by the families, and the columns that say which model a row is about.

Every memo key that names images is built here (:func:`images_key` for tensors,
:func:`selection_key` for an ``ImageSet`` with its name and split), so two families can never
fingerprint the same images two ways.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import torch

from ...cache import tensor_digest
from ..zoo import ModelKey


def images_key(x: Any, y: Any) -> dict[str, Any]:
    """A short description of a test-image selection for memo keys: shape, dtype and a
    SHA-256 of the pixels and labels (:func:`advmed.cache.tensor_digest`), so a different
    subset can never reuse a stored result."""
    xs = torch.as_tensor(x.images if hasattr(x, "images") else x)
    ys = torch.as_tensor(y).long()
    return {"shape": list(xs.shape), "dtype": str(xs.dtype), "sha256": tensor_digest(xs, ys)}


def selection_key(ds: Any, **extra: Any) -> dict[str, Any]:
    """:func:`images_key`'s fingerprint of an ``ImageSet`` plus its dataset name and split
    (and ``extra``), for results built from a named selection (UAPs, patches, U-SimBA)."""
    return {"name": ds.name, "split": ds.split, "shape": list(ds.images.shape),
            "sha256": tensor_digest(ds.images, ds.labels), **extra}


class RunKey(NamedTuple):
    """One universal perturbation (a UAP, a U-SimBA perturbation): which model, which bound
    (norm and zeta, a fraction of the mean image norm), which target (None: non-targeted)."""

    task: str
    arch: str
    init: str
    norm: str
    zeta: float
    target: int | None

    @property
    def model(self) -> ModelKey:
        return ModelKey(self.task, self.arch, self.init)


#: How tables name a non-targeted universal perturbation.
NON_TARGETED = "non-targeted"


def attack_name(target: int | None, classes: Any) -> str:
    """``"non-targeted"`` or ``"targeted -> <class>"`` (how tables name a universal perturbation)."""
    return NON_TARGETED if target is None else f"targeted -> {list(classes)[target]}"


def model_columns(key: tuple, tm: Any) -> dict[str, Any]:
    """The columns that say which model a row is about: task, arch, init, init_used, size."""
    task, arch, init = key
    return {"task": task, "arch": arch, "init": init,
            "init_used": getattr(tm, "init_used", init),
            "size": getattr(getattr(tm, "config", None), "size", None)}


__all__ = ["ModelKey", "NON_TARGETED", "RunKey", "attack_name", "images_key", "model_columns", "selection_key"]
