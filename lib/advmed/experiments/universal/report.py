"""The prose of chapters 3 and 4: every sentence with a number is written here from results.

Each function returns Markdown text (a ``str``) computed from :mod:`.tables`, so the
chapter displays it and the words change when the numbers do.
"""
from __future__ import annotations

from typing import Any, Mapping

import pandas as pd

from ...attacks.universal import STUDY_STEP
from .. import references
from ..kernel.records import NaturalRecord, UniversalRecord, make_record
from ..profiles import Profile
from .tables import ARCH_SPREAD, AT_CEILING, CLAIM_THRESHOLD, COLLAPSED, ClaimCounts, CollapseCounts


def study_step_note() -> str:
    """The study's FGSM step, passes and resolution in our units (computed, not typed)."""
    h = references.HIRANO_UAP
    return (f"FGSM step of the study: {h['step']} in the study's (X - 128)/128 units = {STUDY_STEP:.5f} in "
            f"[0, 1] pixel units = {STUDY_STEP * 255:.3f}/255; passes: {h['max_passes']}; resolution "
            f"{h['resolution']} px.")


def claims_sentence(counts: ClaimCounts) -> str:
    """Chapter 3's verdict on the study's two claims, counted row by row."""
    return (f"**Checked row by row.** The > {CLAIM_THRESHOLD:.0%} claim holds for {counts.hold} of {counts.rows} "
            f"UAPs ({counts.non_targeted_hold} of {counts.non_targeted} non-targeted). In {counts.above_random} of "
            f"{counts.non_targeted} non-targeted rows the UAP's 95 % interval lies entirely above its random "
            f"control's. The spread across architectures is within {ARCH_SPREAD:.2f} in {counts.little} of "
            f"{counts.settings} settings.")


def collapse_sentence(c: CollapseCounts) -> str:
    """Chapter 3: how many non-targeted UAPs collapse the images into one class, and the
    ceiling that sets on their fooling rate (empty when none does)."""
    if c.collapsed == 0:
        return (f"No non-targeted UAP at zeta {c.zeta:.0%} sends {COLLAPSED:.0%} or more of the held-out images "
                "to one class.")
    return (f"**Collapse into one class.** {c.collapsed} of {c.non_targeted} non-targeted UAPs at zeta "
            f"{c.zeta:.0%} send at least {COLLAPSED:.0%} of the held-out images to one class. Such a UAP cannot "
            f"fool the images the model already put in that class, so its fooling rate is capped by the share "
            f"predicted otherwise (the `ceiling` column of the appendix): median ceiling {c.median_ceiling:.3f}, "
            f"median rate {c.median_rate:.3f}; {c.at_ceiling} of the {c.collapsed} are within {AT_CEILING:.2f} of "
            f"their ceiling, and only {c.above_threshold_possible} have a ceiling above "
            f"{CLAIM_THRESHOLD:.0%}."
            + (" For most of them the study's threshold measures the test set's class balance rather than the "
               "attack's strength." if 2 * c.at_ceiling >= c.collapsed else ""))


def transfer_learning_sentence(table: pd.DataFrame) -> str:
    """Chapter 4: is the fine-tuned model fooled more by photo-built UAPs than the scratch one?

    ``table`` is :func:`~.tables.natural_vs_medical`; empty text when the profile lacks one of
    the two initialisations.
    """
    pivot = table.pivot_table(index=["task", "norm", "zeta"], columns="init", values="_natural")
    if not {"imagenet", "scratch"} <= set(pivot.columns):
        return ""
    diff = (pivot["imagenet"] - pivot["scratch"]).dropna()
    return (f"The fine-tuned model is fooled more by photo-built UAPs than the one trained from scratch in "
            f"{int((diff > 0).sum())} of {len(diff)} settings (median difference {diff.median():+.3f}). "
            f"Natural-image UAPs beat their random control (disjoint intervals) in "
            f"{int(table['natural_above_random'].eq('yes').sum())} of {len(table)} rows.")


# --------------------------------------------------------------------------- the records
def headline_record(profile: Profile, zoo: Mapping[tuple, Any], numeric: pd.DataFrame) -> UniversalRecord:
    """Chapter 3's record for chapter 8: every UAP beside its control (:func:`.tables.uap_table`, numeric)."""
    return make_record(UniversalRecord, profile, uap=numeric, sources=[tm.config.key() for tm in zoo.values()])


def natural_record(profile: Profile, zoo: Mapping[tuple, Any], natural: pd.DataFrame, drift: pd.DataFrame,
                   ablation: pd.DataFrame) -> NaturalRecord:
    """Chapter 4's record for chapter 8: natural vs medical UAPs (:func:`.tables.natural_vs_medical`),
    the weight drift and the resolution ablation (:mod:`.fidelity`)."""
    sources = [tm.config.key() for tm in zoo.values()]
    if "checkpoint" in ablation.columns:  # the ablation's own models
        sources += [str(k) for k in ablation["checkpoint"].dropna()]
    return make_record(NaturalRecord, profile, natural=natural, drift=drift, ablation=ablation, sources=sources)
