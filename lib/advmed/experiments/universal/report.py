"""The prose of chapters 3 and 4: every sentence with a number is written here from results.

Each function returns Markdown text (a ``str``) computed from :mod:`.tables`, so the
chapter displays it and the words change when the numbers do.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping, NamedTuple, Sequence

import pandas as pd

from ...attacks.universal import STUDY_STEP
from ...plots import model_label
from .. import references
from ..kernel.records import NaturalRecord, UniversalRecord, make_record
from ..profiles import ModelSpec, Profile
from .tables import ARCH_SPREAD, AT_CEILING, CLAIM_THRESHOLD, COLLAPSED, ClaimCounts, CollapseCounts


def study_step_note() -> str:
    """The study's FGSM step, passes and resolution in our units (computed, not typed)."""
    h = references.HIRANO_UAP
    return (f"FGSM step of the study: {h['step']} in the study's $(X - 128)/128$ units = {STUDY_STEP:.5f} in "
            f"[0, 1] pixel units = {STUDY_STEP * 255:.3f}/255; passes: {h['max_passes']}; resolution "
            f"{h['resolution']} px.")


class UAPStudy(NamedTuple):
    """The studies' settings that the prose of chapters 3 and 4 quotes, from
    :mod:`advmed.experiments.references` (glued, never typed): Hirano et al.'s resolution,
    success claim (percent), zetas and passes; Minagi et al.'s logged case (resolution, norm,
    zeta)."""

    resolution: int
    claim_pct: float
    zetas: str
    passes: int
    minagi_resolution: int
    minagi_norm: str
    minagi_zeta: str


def _pct(z: float) -> str:
    return f"{100 * float(z):g} %"


def study_numbers() -> UAPStudy:
    """:class:`UAPStudy` from the references."""
    h, m = references.HIRANO_UAP, references.MINAGI_NATURAL_UAP
    zetas = [_pct(z) for z in h["zetas"]]
    return UAPStudy(resolution=int(h["resolution"]), claim_pct=round(100 * CLAIM_THRESHOLD, 6),
                    zetas=" and ".join([", ".join(zetas[:-1]), zetas[-1]]) if len(zetas) > 1 else zetas[0],
                    passes=int(h["max_passes"]), minagi_resolution=int(m["resolution"]),
                    minagi_norm=NORM_NAMES.get(m["norm"], m["norm"]), minagi_zeta=_pct(m["zeta"]))


#: How the prose names a norm.
NORM_NAMES = {"l2": "L2", "linf": "L-inf"}


def method_sentence(profile: Profile) -> str:
    """Which algorithm this profile builds its UAPs with, and how much effort (chapter 3)."""
    u = profile.uap
    effort = f"at most {u.max_passes} passes over {u.n_build:,} build images"
    if u.method == "iterative":
        return f"This profile (`{profile.name}`) builds its UAPs with `iterative`, the study's algorithm: {effort}."
    return (f"This profile (`{profile.name}`) builds its UAPs with `{u.method}` ({effort}) to fit its time budget: "
            "the same kind of attack (one perturbation, the same norm ball) with a different optimiser, so it is "
            "named in every row of the appendix.")


def differences(profile: Profile) -> str:
    """Chapter 3's differences from Hirano et al. that depend on the profile, as bullets:
    resolution, models, build set and optimiser."""
    h = references.HIRANO_UAP
    study = int(h["resolution"])
    sides = sorted({int(s) for s in profile.tasks.values()})
    resolution = (f"- **Resolution.** The study worked at {study} px, this profile at "
                  f"{', '.join(str(s) for s in sides)} px. For the same per-pixel budget, the change a perturbation "
                  "can make to a model's output grows with the number of input pixels (the linearity argument of "
                  "{cite:t}`goodfellow2015explaining`; {cite:t}`simongabriel2019first`), and zeta fixes the "
                  "per-pixel budget, not the total.")
    if sides[0] < study:
        ratio = (study / sides[0]) ** 2
        resolution += (f" At {sides[0]} px there are {ratio:.{0 if ratio >= 10 else 1}f}× fewer pixels than at "
                       f"{study} px, so lower rates at low resolution are expected, not a contradiction.")
    scratch = [m for m in profile.models if m.init == "scratch"]
    models = (f"- **Models.** The study fine-tuned large ImageNet networks (VGG, ResNet-50, Inception, DenseNet). "
              f"This profile trains {', '.join(model_label(m.arch, m.init) for m in profile.models)}"
              + ("; those trained from scratch never saw ImageNet." if scratch else "."))
    u = profile.uap
    build = (f"- **Build set and optimiser.** {u.n_build:,} build images and at most {u.max_passes} `{u.method}` "
             f"passes here, against up to {h['max_passes']} passes of the iterative algorithm over the whole "
             f"training set in the study: where ours is the smaller effort, our UAPs are, if anything, weaker, so a "
             f"rate below {_pct(CLAIM_THRESHOLD)} here is a lower bound on what a more patient attacker achieves.")
    return "\n".join([resolution, models, build])


def natural_models_sentence(models: Iterable[str]) -> str:
    """Chapter 4: whether the profile has one architecture both fine-tuned from ImageNet and
    trained from scratch (``models``: the ``"arch:init"`` labels the chapter attacks), which
    isolates the effect of transfer learning from that of the architecture."""
    specs = [ModelSpec.parse(m) for m in models]
    inits: dict[str, set[str]] = {}
    for s in specs:
        inits.setdefault(s.arch, set()).add(s.init)
    twins = [a for a, i in inits.items() if {"imagenet", "scratch"} <= i]
    if twins:
        return (f"Here the profile has the same architecture twice, {twins[0]} fine-tuned from ImageNet and trained "
                "from scratch, so the effect of transfer learning is isolated from the effect of the architecture "
                "({numref}`fig-natural-rates`, {numref}`tab-natural-rates`).")
    return (f"This profile attacks {', '.join(model_label(s.arch, s.init) for s in specs)} only: without one "
            "architecture both fine-tuned from ImageNet and trained from scratch, the effect of transfer learning is "
            "not isolated from that of the architecture here ({numref}`fig-natural-rates`, "
            "{numref}`tab-natural-rates`).")


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

    ``table`` is :func:`~.tables.natural_vs_medical`; where the profile lacks one of the two
    initialisations, a sentence that says so (an empty Markdown output shows its repr).
    """
    pivot = table.pivot_table(index=["task", "norm", "zeta"], columns="init", values="_natural")
    if not {"imagenet", "scratch"} <= set(pivot.columns):
        # an empty Markdown cell would print its repr on the page
        return ("The profile attacks one initialisation only, so this comparison needs a profile with the "
                "architecture both fine-tuned and trained from scratch.")
    diff = (pivot["imagenet"] - pivot["scratch"]).dropna()
    return (f"The fine-tuned model is fooled more by photo-built UAPs than the one trained from scratch in "
            f"{int((diff > 0).sum())} of {len(diff)} settings (median difference {diff.median():+.3f}). "
            f"Natural-image UAPs beat their random control (disjoint intervals) in "
            f"{int(table['natural_above_random'].eq('yes').sum())} of {len(table)} rows.")


def targeted_natural_sentence(table: pd.DataFrame) -> str:
    """Chapter 4: how many targeted photo-built UAPs beat their random control (disjoint 95 %
    intervals), and how much of the medical-image UAP's targeted success they reach (median
    ratio). ``table`` is :func:`~.tables.natural_vs_medical` of the targeted UAPs."""
    if table.empty:
        return "The profile builds no targeted UAP, so this section has no rows."
    ratio = (table["_natural"] / table["_medical"].where(table["_medical"] > 0)).dropna()
    return (f"Targeted photo-built UAPs beat their random control (disjoint intervals) in "
            f"{int(table['natural_above_random'].eq('yes').sum())} of {len(table)} rows"
            + (f"; their targeted success rate is a median {ratio.median():.2f} of the medical-image UAP's."
               if len(ratio) else "."))


#: The level at which two photo sources' UAPs are said to differ (exact McNemar test).
SOURCE_ALPHA = 0.05


def source_sentence(rows: Sequence[Any]) -> str:
    """Chapter 4: do UAPs from the two disjoint photo sources both beat the random control, and
    do they differ (paired interval excluding zero and exact McNemar p < :data:`SOURCE_ALPHA`)?"""
    if not rows:
        return ""
    above = sum(all(m.lo > r.random.hi for m in r.medical) for r in rows)
    differ = [r for r in rows if r.p_mcnemar < SOURCE_ALPHA and not (r.difference.lo <= 0 <= r.difference.hi)]
    a, b = rows[0].sources
    return (f"UAPs from both photo sources beat the random control (disjoint intervals) in {above} of {len(rows)} "
            f"settings; the {a} and the {b} UAP differ on the same images (paired interval excluding zero, "
            f"McNemar p < {SOURCE_ALPHA:g}) in {len(differ)}"
            + (f", the {a} one stronger in {sum(r.difference.value > 0 for r in differ)}." if differ else "."))


# --------------------------------------------------------------------------- the records
def headline_record(profile: Profile, zoo: Mapping[tuple, Any], numeric: pd.DataFrame,
                    perceptibility: pd.DataFrame) -> UniversalRecord:
    """Chapter 3's record for chapter 8: every UAP beside its control (:func:`.tables.uap_table`,
    numeric) and how visible it is (:func:`.run.perceptibility`)."""
    return make_record(UniversalRecord, profile, uap=numeric, perceptibility=perceptibility,
                       sources=[tm.config.key() for tm in zoo.values()])


def natural_record(profile: Profile, zoo: Mapping[tuple, Any], natural: pd.DataFrame, drift: pd.DataFrame,
                   ablation: pd.DataFrame, *, targeted: pd.DataFrame, cross_source: pd.DataFrame,
                   transfer: pd.DataFrame) -> NaturalRecord:
    """Chapter 4's record for chapter 8: natural vs medical UAPs, non-targeted and targeted
    (:func:`.tables.natural_vs_medical`), the two photo sources (:func:`.tables.source_table`,
    numeric), the photo-built UAPs' transfer (:func:`.tables.transfer_table`), the weight drift
    and the resolution ablation (:mod:`.fidelity`)."""
    sources = [tm.config.key() for tm in zoo.values()]
    if "checkpoint" in ablation.columns:  # the ablation's own models
        sources += [str(k) for k in ablation["checkpoint"].dropna()]
    return make_record(NaturalRecord, profile, natural=natural, targeted=targeted, cross_source=cross_source,
                       transfer=transfer, drift=drift, ablation=ablation, sources=sources)
