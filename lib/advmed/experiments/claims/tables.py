"""The claims chapter's tables: the verdicts at both settings, every claim in full, the
registry's quotes and rules, and the records read."""
from __future__ import annotations

from typing import Iterable, NamedTuple

import pandas as pd

from .. import references
from ..kernel.records import Record
from .registry import CLAIMS, DIRECTIONS, rules_table
from .verdicts import SETTING_WORDS, SETTINGS, VERDICTS, Claim


def _study(c: Claim) -> str:
    return references.STUDIES[c.study].get("short", c.study)


def _chapter(c: Claim) -> int | str:
    return int(c.section.split("_")[0]) if c.section[:2].isdigit() else c.section


def testable(claims: list[Claim]) -> list[Claim]:
    """The claims this profile can test at one setting at least (the others are listed by
    :func:`untested_sentence` and in the Discussion chapter)."""
    return [c for c in claims if {c.verdict, c.strongest} != {"not comparable"}]


def untested_sentence(claims: list[Claim]) -> str:
    """One sentence naming the claims this profile cannot test, and why (empty when none)."""
    kept = testable(claims)
    out = [c for c in claims if c not in kept]
    if not out:
        return ""
    items = "; ".join(f"claim {c.number} ({c.statement}): {c.at('study').rule}" for c in out)
    return f"Not testable with this profile, and left out of the table: {items}."


def claims_summary(claims: list[Claim], studies: Iterable[str] | None = None, *,
                   exclude: Iterable[str] = ()) -> pd.DataFrame:
    """One row per testable claim (:func:`testable`) of ``studies`` (study keys; None: all) but
    not of ``exclude``: whose it is, the claim, its verdict at the study's setting and under the
    book's strongest evaluation, and the chapter that measured it."""
    keep, drop = None if studies is None else set(studies), set(exclude)
    return pd.DataFrame([{"no.": c.number, "study": _study(c), "statement": c.statement,
                          SETTING_WORDS["study"]: c.verdict, SETTING_WORDS["strongest"]: c.strongest,
                          "chapter": _chapter(c)} for c in testable(claims)
                         if (keep is None or c.study in keep) and c.study not in drop])


def claims_table(claims: list[Claim]) -> pd.DataFrame:
    """Every claim at both settings: what ran, ours with its interval, the rule's sentence per
    part, the verdict, the images the rule needs and the images we have, and the measured
    reason for a verdict other than agrees (one row per claim and setting)."""
    rows = []
    for c in claims:
        for s in SETTINGS:
            v = c.at(s)
            rows.append({"no.": c.number, "study": _study(c), "statement": c.statement, "setting": SETTING_WORDS[s],
                         "what ran": v.label, "study setting": c.spec.setting, "ours": v.estimates,
                         "our setting": c.our_setting, "rule": v.rule, "verdict": v.verdict,
                         "images needed": v.n_needed or "", "images we have": c.n_have or "",
                         "why": c.reason if v.verdict != "agrees" else "", "recipe": c.spec.recipe,
                         "section": c.section})
    return pd.DataFrame(rows)


def quotes_table() -> pd.DataFrame:
    """The registry: each claim's sentence as the study wrote it, its seed file, where the
    figure comes from, which way the errors behind its number go (missed diagnoses, false
    alarms or both), and where the study's text and code differ."""
    return pd.DataFrame([{"no.": c.number, "study": references.STUDIES[c.study]["short"], "the study's words": c.quote,
                          "seed file": c.seed, "figure from": c.figure_source, "direction of the errors":
                          DIRECTIONS[c.number], "aggregation": c.aggregation, "why": c.why,
                          "text vs code": c.text_vs_code} for c in CLAIMS])


def rules(digits: int = 4) -> pd.DataFrame:
    """The registry's rules (:func:`.registry.rules_table`), rounded for reading."""
    return rules_table().round(digits)


def records_table(records: list[Record]) -> pd.DataFrame:
    """Where chapter 8's numbers come from: one row per headline record read (the chapter that
    wrote it, its images, checkpoints, the commit and time of writing in UTC to the minute, the
    settings fingerprint; the profile is the page's)."""
    return pd.DataFrame([{"chapter": r.chapter, "record": type(r).__name__, "images": r.n,
                          "checkpoints": len(r.sources), "commit": r.commit[:10] + r.commit[40:],
                          "written (UTC)": r.created[:16].replace("T", " "), "settings": r.fingerprint}
                         for r in records])


class VerdictTally(NamedTuple):
    """How many claims got each verdict at one setting (the numbers the pages glue)."""

    agrees: int
    same_direction: int
    inconclusive: int
    disagrees: int
    not_comparable: int


def verdict_tally(claims: list[Claim], setting: str = "study") -> VerdictTally:
    """:func:`verdict_counts` as a typed tuple."""
    return VerdictTally(*(int(v) for v in verdict_counts(claims, setting)))


def verdict_counts(claims: list[Claim], setting: str = "study") -> pd.Series:
    """How many claims got each verdict at ``setting``."""
    counts = pd.Series([c.at(setting).verdict for c in claims], dtype=object).value_counts()
    return counts.reindex(list(VERDICTS), fill_value=0)
