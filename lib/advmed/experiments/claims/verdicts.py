"""A claim's verdicts: the registry's rule (:mod:`.registry`) applied by
:func:`~.statistics.decide` to the evidence the chapters recorded, at two settings.

- ``agrees``: every part passes its rule (TOST within the margin, or the whole interval on the
  study's side of a bound);
- ``same direction``: a part fails at the study's size, but its effect is at least the
  registry's ``effect`` with its whole interval;
- ``inconclusive``: an interval straddles the margin (n cannot decide), or the measurement is
  flagged or not converged: a number the evaluation does not believe yields neither "agrees"
  nor "disagrees";
- ``disagrees``: a part's interval lies wholly beyond the margin, without the effect;
- ``not comparable``: the profile cannot test it (a task, model or experiment it lacks).

Each claim has two verdicts: at the **study's setting** (their attack, eps, steps) and under
the **book's strongest evaluation** for that claim (:attr:`.registry.ClaimSpec.strongest`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .registry import ClaimSpec
from .statistics import Decision, Interval, decide, images_needed

VERDICTS = ("agrees", "same direction", "inconclusive", "disagrees", "not comparable")
#: How two parts combine: the later in this order wins (a claim agrees only when all parts do).
_ORDER = {v: i for i, v in enumerate(VERDICTS)}
SETTINGS = ("study", "strongest")
SETTING_WORDS = {"study": "study's setting", "strongest": "strongest evaluation"}


@dataclass(frozen=True)
class Part:
    """Our estimate of one part of a claim (named as in the registry), with the reference an
    effect is measured against (clean accuracy, a random control), if any."""

    name: str
    estimate: Interval
    reference: Interval | None = None


@dataclass(frozen=True)
class Evidence:
    """What one setting measured for a claim.

    ``label``: what ran (attack, eps, model); ``flagged``: why the evaluation does not believe
    the number ("" when it does); ``missing``: why this setting was not measured ("" when it
    was).
    """

    label: str
    parts: tuple[Part, ...] = ()
    flagged: str = ""
    missing: str = ""


@dataclass(frozen=True)
class Verdict:
    """One claim's verdict at one setting, with the rule's sentence per part and each part's
    (name, estimate, verdict) in ``parts``."""

    setting: str
    label: str
    verdict: str
    rule: str
    estimates: str
    n_needed: int = 0
    parts: tuple[tuple[str, Interval, str], ...] = ()

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"unknown verdict {self.verdict!r}; valid: {', '.join(VERDICTS)}")


@dataclass(frozen=True)
class Claim:
    """One registry claim beside ours, with its two verdicts.

    Attributes:
        spec: the registry's entry (quote, source, rules).
        ours_text: our numbers as the table shows them; our_setting: where we measured.
        verdicts: one :class:`Verdict` per setting (:data:`SETTINGS`).
        reason: the measured reason for a verdict other than ``agrees`` that bears on this
            claim, or "unexplained".
        section: the chapter that computed ours; n_have: the images (or cases) behind ours.
        details: numbers behind the verdicts, for the appendix.
    """

    spec: ClaimSpec
    ours_text: str
    our_setting: str
    verdicts: tuple[Verdict, ...]
    reason: str
    section: str
    n_have: int = 0
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def number(self) -> int:
        return self.spec.number

    @property
    def study(self) -> str:
        return self.spec.study

    @property
    def statement(self) -> str:
        return self.spec.statement

    def at(self, setting: str) -> Verdict:
        return next(v for v in self.verdicts if v.setting == setting)

    @property
    def verdict(self) -> str:
        """The verdict at the study's setting."""
        return self.at("study").verdict

    @property
    def strongest(self) -> str:
        """The verdict under the book's strongest evaluation."""
        return self.at("strongest").verdict

    @property
    def n_needed(self) -> int:
        return max((v.n_needed for v in self.verdicts), default=0)


def worst(decisions: list[Decision]) -> Decision:
    """The least favourable of several parts' decisions."""
    return max(decisions, key=lambda d: _ORDER[d.verdict])


def judge(spec: ClaimSpec, setting: str, ev: Evidence) -> Verdict:
    """``ev`` decided by ``spec``'s rules at ``setting`` (the strongest setting uses the
    registry's ``strongest_rules`` where it has them)."""
    if ev.missing or not ev.parts:
        return Verdict(setting, ev.label, "not comparable", ev.missing or "no estimate", "n/a")
    rules = dict(spec.rules_at(setting))
    unknown = [p.name for p in ev.parts if p.name not in rules]
    if unknown:
        raise KeyError(f"claim {spec.number}: no rule for part(s) {unknown}; the registry's: {', '.join(rules)}")
    decisions, needed = [], 0
    for p in ev.parts:
        r = rules[p.name]
        d = decide(r.kind, p.estimate, r.figure, r.margin, effect=r.effect, reference=p.reference,
                   lower_is_effect=r.lower_is_effect)
        decisions.append(Decision(d.verdict, f"{p.name}: {d.why}"))
        needed = max(needed, images_needed(r.kind, p.estimate.value, r.figure, r.margin))
    w = worst(decisions)
    rule = "; ".join(d.why for d in decisions)
    verdict = w.verdict
    if ev.flagged and verdict in ("agrees", "same direction", "disagrees"):
        verdict, rule = "inconclusive", f"not believed ({ev.flagged}): {rule}"
    estimates = "; ".join(f"{p.name} {p.estimate.fmt()}" for p in ev.parts)
    parts = tuple((p.name, p.estimate, d.verdict) for p, d in zip(ev.parts, decisions))
    return Verdict(setting, ev.label, verdict, rule, estimates, needed, parts)


def untested(spec: ClaimSpec, why: str, section: str) -> Claim:
    """A claim this profile cannot test at either setting."""
    ev = Evidence("not run", missing=why)
    return Claim(spec, "n/a", "", tuple(judge(spec, s, ev) for s in SETTINGS), "", section)


__all__ = ["Claim", "Evidence", "Part", "SETTINGS", "SETTING_WORDS", "VERDICTS", "Verdict", "judge", "untested",
           "worst"]
