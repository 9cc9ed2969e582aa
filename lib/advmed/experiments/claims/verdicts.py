"""The claims chapter's verdict rule, written once and applied to every claim.

A claim is a study's figure or bound, compared with our estimate and its 95 % interval:

- ``agrees``: our interval covers the study's figure, or our estimate lies within the
  study's stated bound (``> 0.80``, ``< 0.10``, "about 0": within :data:`ABOUT` of it);
- ``same direction``: the effect has the study's sign (an attack lowers accuracy, a defense
  raises it, one rate exceeds another), with an interval that excludes the study's figure,
  but another size;
- ``disagrees``: the effect is absent or has the opposite sign;
- ``not comparable``: our setting cannot test it (the profile lacks the task, model or
  experiment).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

VERDICTS = ("agrees", "same direction", "disagrees", "not comparable")
#: "About 0" (or "drops to 0") is read as at most this accuracy / AUC.
ABOUT = 0.05


@dataclass(frozen=True)
class Estimate3:
    """Our number with its interval (NaN bounds where there is no interval)."""

    value: float
    lo: float = math.nan
    hi: float = math.nan

    def fmt(self, digits: int = 3) -> str:
        if not math.isfinite(self.value):
            return "n/a"
        if math.isfinite(self.lo) and math.isfinite(self.hi):
            return f"{self.value:.{digits}f} [{self.lo:.{digits}f}, {self.hi:.{digits}f}]"
        return f"{self.value:.{digits}f}"

    def covers(self, x: float) -> bool:
        return math.isfinite(self.lo) and math.isfinite(self.hi) and self.lo <= x <= self.hi


@dataclass(frozen=True)
class Claim:
    """One study claim beside ours, with its computed verdict.

    Attributes:
        number: 1..12, the order of the chapter's table.
        study: the study key (``advmed.experiments.references.STUDIES``).
        statement: the claim in words.
        study_figure: the study's figure or bound, as text; study_setting: where it was measured.
        ours: our estimate (the quantity the claim is about); ours_text: how the table shows it.
        our_setting: where we measured it.
        difference: ours - study where both are numbers (NaN otherwise).
        verdict: one of :data:`VERDICTS`; rule: which part of the rule decided it.
        reason: the measured reason for a verdict other than ``agrees`` (or "unexplained").
        section: the chapter section that computed ours (a page and anchor, for a link).
        details: numbers behind the verdict, for the appendix.
    """

    number: int
    study: str
    statement: str
    study_figure: str
    study_setting: str
    ours: Estimate3
    ours_text: str
    our_setting: str
    difference: float
    verdict: str
    rule: str
    reason: str
    section: str
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"unknown verdict {self.verdict!r}; valid: {', '.join(VERDICTS)}")


def about_zero(ours: Estimate3, *, clean: float) -> tuple[str, str]:
    """"Drops to about 0": agrees when ours <= ABOUT; same direction when the attack lowers it
    below the clean value's level (ours < clean - ABOUT); disagrees otherwise."""
    if not math.isfinite(ours.value):
        return "not comparable", "no estimate"
    if ours.value <= ABOUT:
        return "agrees", f"ours {ours.value:.3f} <= {ABOUT} (about 0)"
    if ours.value < clean - ABOUT:
        return "same direction", f"ours {ours.value:.3f} is below clean {clean:.3f} but above {ABOUT}"
    return "disagrees", f"ours {ours.value:.3f} is not below clean {clean:.3f}"


def matches_figure(ours: Estimate3, figure: float, *, tolerance: float, lower_is_effect: bool,
                   reference: float) -> tuple[str, str]:
    """A study figure: agrees when our interval covers it or |ours - figure| <= tolerance;
    same direction when ours is on the figure's side of ``reference`` (e.g. below clean for
    an attack); disagrees otherwise."""
    if not math.isfinite(ours.value):
        return "not comparable", "no estimate"
    if ours.covers(figure) or abs(ours.value - figure) <= tolerance:
        return "agrees", f"ours {ours.fmt()} covers {figure} or is within {tolerance}"
    effect = ours.value < reference if lower_is_effect else ours.value > reference
    if effect:
        return "same direction", f"ours {ours.value:.3f} vs {figure}: the effect's sign, another size"
    return "disagrees", f"ours {ours.value:.3f}: no effect of the study's sign (reference {reference:.3f})"


def above_bound(ours: Estimate3, bound: float, *, control: float | None = None) -> tuple[str, str]:
    """"More than ``bound``": agrees when ours > bound; same direction when ours is above the
    control (or above 0.5 without one) but not the bound; disagrees otherwise."""
    if not math.isfinite(ours.value):
        return "not comparable", "no estimate"
    if ours.value > bound:
        return "agrees", f"ours {ours.value:.3f} > {bound}"
    floor = control if control is not None else 0.0
    if ours.value > floor and (ours.lo > floor if math.isfinite(ours.lo) else True):
        return "same direction", f"ours {ours.value:.3f} is above the control {floor:.3f} but not above {bound}"
    return "disagrees", f"ours {ours.value:.3f} is not above the control {floor:.3f}"


def not_comparable(why: str) -> tuple[str, str]:
    return "not comparable", why
