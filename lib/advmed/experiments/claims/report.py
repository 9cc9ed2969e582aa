"""The abstract and the conclusion, written from the verdicts (nothing typed)."""
from __future__ import annotations

from .tables import verdict_counts
from .verdicts import Claim


def _which(claims: list[Claim], setting: str, verdict: str) -> str:
    nums = [str(x.number) for x in claims if x.at(setting).verdict == verdict]
    return f" ({'claim' if len(nums) == 1 else 'claims'} {', '.join(nums)})" if nums else ""


def abstract(claims: list[Claim], profile_name: str) -> str:
    """A short abstract: how many of the studies' claims hold at their own setting and under the
    book's strongest evaluation, by the registry's rules."""
    c, s = verdict_counts(claims, "study"), verdict_counts(claims, "strongest")
    return (f"Of the {len(claims)} claims we test from the three studies, at the studies' own settings "
            f"{c['agrees']} agree with our {profile_name}-profile measurements{_which(claims, 'study', 'agrees')}, "
            f"{c['same direction']} hold in direction but not in size{_which(claims, 'study', 'same direction')}, "
            f"{c['disagrees']} disagree{_which(claims, 'study', 'disagrees')}, {c['inconclusive']} are inconclusive "
            f"at our sample sizes{_which(claims, 'study', 'inconclusive')} and {c['not comparable']} cannot be tested "
            f"in this setting{_which(claims, 'study', 'not comparable')}. Under the book's strongest evaluation "
            f"{s['agrees']} agree, {s['same direction']} hold in direction, {s['disagrees']} disagree and "
            f"{s['inconclusive']} are inconclusive.")


def conclusion(claims: list[Claim]) -> str:
    """One bullet per claim that does not agree at either setting, with both verdicts and the
    measured reason that bears on it."""
    lines = [f"- Claim {x.number} ({x.statement}): **{x.verdict}** at the study's setting, **{x.strongest}** under "
             f"the strongest evaluation; {x.reason or 'unexplained'}."
             for x in claims if {x.verdict, x.strongest} - {"agrees", "not comparable"}]
    return "\n".join(lines) if lines else "Every testable claim agrees with our measurements."
