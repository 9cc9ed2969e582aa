"""The Discussion and limitations chapter's tables, written from the verdicts: what holds, what
does not and why, what this profile cannot decide (the images a rule needs against the images
it has), what it shortens and what it does not test."""
from __future__ import annotations

from typing import NamedTuple

import pandas as pd

from .. import references
from .verdicts import SETTING_WORDS, Claim


def _row(c: Claim) -> dict:
    return {"no.": c.number, "study": references.STUDIES[c.study]["short"], "statement": c.statement}


def holds(claims: list[Claim]) -> pd.DataFrame:
    """Claims that agree at the study's setting and under the strongest evaluation."""
    return pd.DataFrame([_row(c) for c in claims if c.verdict == c.strongest == "agrees"],
                        columns=["no.", "study", "statement"])


def does_not_hold(claims: list[Claim]) -> pd.DataFrame:
    """Claims that disagree, or hold only in direction, at either setting, with the measured reason."""
    return pd.DataFrame([{**_row(c), "study's setting": c.verdict, "strongest": c.strongest, "why": c.reason}
                         for c in claims if {c.verdict, c.strongest} & {"disagrees", "same direction"}],
                        columns=["no.", "study", "statement", "study's setting", "strongest", "why"])


def cannot_decide(claims: list[Claim]) -> pd.DataFrame:
    """Inconclusive claims, one row each: the settings where they are, the images (or cases) the
    rule needs at our estimate, and what we have."""
    rows = []
    for c in claims:
        where = [v for v in c.verdicts if v.verdict == "inconclusive"]
        if where:
            rows.append({**_row(c), "setting": ", ".join(SETTING_WORDS[v.setting] for v in where),
                         "images needed": max(v.n_needed for v in where) or "", "images we have": c.n_have or ""})
    return pd.DataFrame(rows, columns=["no.", "study", "statement", "setting", "images needed", "images we have"])


def shortened(claims: list[Claim]) -> pd.DataFrame:
    """Claims that depend on a setting the profile shortens (a recipe, a model, a resolution)."""
    return pd.DataFrame([{**_row(c), "what the profile shortens": c.spec.recipe} for c in claims if c.spec.recipe],
                        columns=["no.", "study", "statement", "what the profile shortens"])


def untested(claims: list[Claim]) -> pd.DataFrame:
    """Claims this profile cannot test, and why."""
    return pd.DataFrame([{**_row(c), "why": c.at("study").rule} for c in claims if c.verdict == "not comparable"],
                        columns=["no.", "study", "statement", "why"])


def text_and_code(claims: list[Claim]) -> pd.DataFrame:
    """Where a study's text and its code differ, and what the book tests."""
    return pd.DataFrame([{**_row(c), "text vs code": c.spec.text_vs_code} for c in claims if c.spec.text_vs_code],
                        columns=["no.", "study", "statement", "text vs code"])


class Standing(NamedTuple):
    """How many claims fall in each of the chapter's groups (glued)."""

    holds: int
    does_not_hold: int
    inconclusive: int
    untested: int
    shortened: int


def standing(claims: list[Claim]) -> Standing:
    return Standing(len(holds(claims)), len(does_not_hold(claims)), len(cannot_decide(claims)),
                    len(untested(claims)), len(shortened(claims)))


__all__ = ["Standing", "cannot_decide", "does_not_hold", "holds", "shortened", "standing", "text_and_code",
           "untested"]
