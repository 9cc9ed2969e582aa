"""The abstract and the conclusion, written from the verdicts (nothing typed)."""
from __future__ import annotations

from .tables import verdict_counts
from .verdicts import Claim


def abstract(claims: list[Claim], profile_name: str) -> str:
    """A short abstract: how many of the studies' claims hold in our setting, and which not."""
    c = verdict_counts(claims)
    held = [x.number for x in claims if x.verdict == "agrees"]
    other = [f"{x.number} ({x.verdict})" for x in claims if x.verdict not in ("agrees", "not comparable")]
    missing = [x.number for x in claims if x.verdict == "not comparable"]
    text = (f"Of the three studies' {len(claims)} claims, {c['agrees']} agree with our {profile_name}-profile "
            f"measurements (claims {', '.join(map(str, held)) or 'none'}), {c['same direction']} hold in direction "
            f"but not in size and {c['disagrees']} disagree")
    text += f" ({', '.join(other)})" if other else ""
    text += f"; {c['not comparable']} cannot be tested in this setting" + (f" ({', '.join(map(str, missing))})." if missing else ".")
    return text


def conclusion(claims: list[Claim]) -> str:
    """One bullet per claim that does not agree, with the measured reason."""
    lines = [f"- Claim {x.number} ({x.statement.lower()}): {x.verdict}; {x.reason or 'unexplained'}."
             for x in claims if x.verdict in ("same direction", "disagrees")]
    return "\n".join(lines) if lines else "Every testable claim agrees with our measurements."
