"""The abstract and the conclusion, written from the verdicts (nothing typed)."""
from __future__ import annotations

from .tables import verdict_counts
from .verdicts import Claim


def abstract(claims: list[Claim], profile_name: str) -> str:
    """A short abstract: how many of the studies' claims hold in our setting, and which not."""
    c = verdict_counts(claims)

    def which(verdict: str) -> str:
        nums = [str(x.number) for x in claims if x.verdict == verdict]
        return f" ({'claim' if len(nums) == 1 else 'claims'} {', '.join(nums)})" if nums else ""

    return (f"Of the three studies' {len(claims)} claims, {c['agrees']} agree with our {profile_name}-profile "
            f"measurements{which('agrees')}, {c['same direction']} hold in direction but not in size"
            f"{which('same direction')}, {c['disagrees']} disagree{which('disagrees')} and "
            f"{c['not comparable']} cannot be tested in this setting{which('not comparable')}.")


def conclusion(claims: list[Claim]) -> str:
    """One bullet per claim that does not agree, with the measured reason."""
    lines = [f"- Claim {x.number} ({x.statement}): **{x.verdict}**; {x.reason or 'unexplained'}."
             for x in claims if x.verdict in ("same direction", "disagrees")]
    return "\n".join(lines) if lines else "Every testable claim agrees with our measurements."
