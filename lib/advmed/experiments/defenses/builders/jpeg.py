"""JPEG compression in front of the classifier (AdversarialMed: quality 20), the real libjpeg
codec as deployed; the adaptive attacker reaches it through BPDA (the real codec forward, the
identity backward; Athalye et al. 2018) and through kornia's differentiable JPEG."""
from __future__ import annotations

from typing import Any

from ....defenses import DefendedModel, JPEGCompression
from ...profiles import Profile
from ..common import Defended, transfer_cost

#: The extra adaptive source: PGD crafted through kornia's differentiable codec.
DIFFERENTIABLE = "differentiable JPEG"
#: How the explorer names the extra source (one short line under a panel).
SOURCES = {DIFFERENTIABLE: "PGD via differentiable JPEG"}


def quality_of(profile: Profile, quality: int | None) -> int:
    """The libjpeg quality: ``quality``, else the profile's ``defense.jpeg_quality``."""
    return int(profile.defense.jpeg_quality if quality is None else quality)


def build(task: str, tm: Any, profile: Profile, *, quality: int | None = None) -> Defended:
    """The zoo model behind the real codec at ``quality`` (None: ``defense.jpeg_quality``)."""
    q = quality_of(profile, quality)
    real = DefendedModel(JPEGCompression(q, "real"), tm.model.eval())
    return Defended(real, real.with_defense(JPEGCompression(q, "bpda")),
                    {DIFFERENTIABLE: real.with_defense(JPEGCompression(q, "differentiable"))},
                    f"BPDA (real codec forward, identity backward); PGD through kornia's differentiable JPEG "
                    f"(q {q})", tm.config.key(), extra={"quality": q})


def identity(task: str, tm: Any, profile: Profile, *, quality: int | None = None) -> tuple[str, Any]:
    """The zoo model's checkpoint key and the quality."""
    return tm.config.key(), {"quality": quality_of(profile, quality)}


def cost(profile: Profile, task: str, cfg: Any) -> float:
    """PGD through the differentiable codec at every budget (one more source)."""
    return transfer_cost(profile, task, 1)


__all__ = ["DIFFERENTIABLE", "SOURCES", "build", "cost", "identity", "quality_of"]
