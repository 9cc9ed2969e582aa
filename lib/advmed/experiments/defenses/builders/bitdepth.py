"""Bit-depth reduction in front of the classifier (feature squeezing's simplest squeezer; Xu,
Evans & Qi 2018), the peers' baseline beside JPEG: the rounding as deployed; the adaptive attacker
reaches it through BPDA (the rounding forward, the identity backward; Athalye et al. 2018)."""
from __future__ import annotations

from typing import Any

from ....defenses import DefendedModel
from ....defenses.bitdepth import BitDepthReduction
from ...profiles import Profile
from ..common import Defended


def build(task: str, tm: Any, profile: Profile) -> Defended:
    """The zoo model behind ``defense.bitdepth_bits``-bit rounding."""
    bits = int(profile.defense.bitdepth_bits)
    real = DefendedModel(BitDepthReduction(bits, "real"), tm.model.eval())
    return Defended(real, real.with_defense(BitDepthReduction(bits, "bpda")), {},
                    f"BPDA (the {bits}-bit rounding forward, identity backward)", tm.config.key(),
                    extra={"bits": bits})


def identity(task: str, tm: Any, profile: Profile) -> tuple[str, Any]:
    """The zoo model's checkpoint key and the bit depth."""
    return tm.config.key(), {"bits": int(profile.defense.bitdepth_bits)}


def applies(profile: Profile) -> bool:
    """Measured where the profile sets a bit depth (``defense.bitdepth_bits`` not None)."""
    return profile.defense.bitdepth_bits is not None


__all__ = ["applies", "build", "identity"]
