"""The claims chapter's table: one row per claim, the study beside ours and the verdict."""
from __future__ import annotations

import math
from typing import NamedTuple

import pandas as pd

from .. import references
from ..kernel.records import Record
from .verdicts import VERDICTS, Claim


def claims_table(claims: list[Claim]) -> pd.DataFrame:
    """Study figure and setting, ours and our setting, the difference, the verdict and the
    reason, one row per claim (in claim order)."""
    rows = []
    for c in claims:
        rows.append({"no.": c.number, "study": references.STUDIES[c.study].get("short", c.study),
                     "statement": c.statement, "study figure": c.study_figure, "study setting": c.study_setting,
                     "ours": c.ours_text, "our setting": c.our_setting,
                     "ours - study": "" if not math.isfinite(c.difference) else f"{c.difference:+.3f}",
                     "verdict": c.verdict, "why": c.reason if c.verdict != "agrees" else "", "section": c.section})
    return pd.DataFrame(rows)


def claims_summary(claims: list[Claim]) -> pd.DataFrame:
    """:func:`claims_table` for the page: the claim, whose it is, ours in short, the verdict
    and the chapter that measured it (the settings, rules and reasons are in the appendix)."""
    return pd.DataFrame([{"no.": c.number, "study": references.STUDIES[c.study].get("short", c.study),
                          "statement": c.statement, "verdict": c.verdict,
                          "chapter": int(c.section.split("_")[0]) if c.section[:2].isdigit() else c.section}
                         for c in claims])


def records_table(records: list[Record]) -> pd.DataFrame:
    """Where chapter 8's numbers come from: one row per headline record read (the chapter that
    wrote it, its images, checkpoints, the commit and time of writing in UTC to the minute, the
    settings fingerprint; the profile is the page's)."""
    return pd.DataFrame([{"chapter": r.chapter, "record": type(r).__name__, "images": r.n,
                          "checkpoints": len(r.sources), "commit": r.commit[:10],
                          "written (UTC)": r.created[:16].replace("T", " "), "settings": r.fingerprint}
                         for r in records])


class VerdictTally(NamedTuple):
    """How many claims got each verdict (the numbers the pages glue)."""

    agrees: int
    same_direction: int
    disagrees: int
    not_comparable: int


def verdict_tally(claims: list[Claim]) -> VerdictTally:
    """:func:`verdict_counts` as a typed tuple."""
    return VerdictTally(*(int(v) for v in verdict_counts(claims)))


def verdict_counts(claims: list[Claim]) -> pd.Series:
    """How many claims got each verdict."""
    counts = pd.Series([c.verdict for c in claims]).value_counts()
    return counts.reindex(list(VERDICTS), fill_value=0)
