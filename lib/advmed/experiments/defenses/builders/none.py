"""The undefended model: the reference row every defense is read against."""
from __future__ import annotations

from typing import Any

from ...profiles import Profile
from ..common import Defended


def build(task: str, tm: Any, profile: Profile) -> Defended:
    """The zoo model ``tm`` itself; the adaptive attacker is the robust ensemble on it."""
    base = tm.model.eval()
    return Defended(base, base, {}, "the robust ensemble on the model", tm.config.key())


def identity(task: str, tm: Any, profile: Profile) -> tuple[str, Any]:
    """The zoo model's checkpoint key, nothing else."""
    return tm.config.key(), None


__all__ = ["build", "identity"]
