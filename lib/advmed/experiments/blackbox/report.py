"""The prose of chapter 5: every sentence with a number is written here from results.

Each function returns Markdown text computed from :mod:`.tables` and :mod:`.run`, so the
chapter displays it and the words change when the numbers do.
"""
from __future__ import annotations

from typing import Any, Mapping, NamedTuple

import pandas as pd

from .. import references
from ..kernel.records import BlackboxRecord, make_record
from ..kernel.surrogates import SurrogateSet
from ..profiles import PROFILES, Profile
from .run import WhiteboxCheck
from .tables import BLACKBOX_SUCCESS, NEEDS

#: The profile whose sizes are the full ones, that :func:`budget_note` compares a profile with.
FULL_PROFILE = "paper"


def _mapping_gaps(name: str, ours: Mapping[str, int], full_sizes: Mapping[str, int], unit: str) -> list[str]:
    out = []
    missing: dict[int, list[str]] = {}  # tasks not run, one line per full size
    for task, full in full_sizes.items():
        mine = ours.get(task)
        if mine is None:
            missing.setdefault(full, []).append(task)
        elif mine < full:
            out.append(f"{name} on {task}: {mine:,} {unit}, {full / mine:.0f}x below the {FULL_PROFILE} profile's "
                       f"{full:,}")
    out += [f"{name}: not run on {', '.join(tasks)} here ({FULL_PROFILE} profile: {full:,} {unit})"
            for full, tasks in missing.items()]
    return out


def _count_gap(name: str, mine: Any, full: Any) -> list[str]:
    if mine is None or mine == full:
        return []
    if full is None:
        return [f"{name}: {mine:,} ({FULL_PROFILE} profile: all)"]
    return [f"{name}: {mine:,} ({FULL_PROFILE} profile: {full:,})"] if mine < full else []


class BlackboxStudy(NamedTuple):
    """The studies' settings that chapter 5's prose quotes, from :mod:`advmed.experiments.references`
    (glued, never typed): the resolution of Finlayson et al.'s models and of Koga & Takemoto's."""

    finlayson_size: int
    koga_size: int


def study_numbers() -> BlackboxStudy:
    """:class:`BlackboxStudy` from the references."""
    return BlackboxStudy(finlayson_size=int(references.FINLAYSON_PGD["setting"]["size"]),
                         koga_size=int(references.KOGA_USIMBA["resolution"]))


def budget_note(profile: Profile) -> str:
    """Which of chapter 5's requirements this profile runs smaller than the full profile
    (:data:`FULL_PROFILE`), and by how much (empty for that profile itself)."""
    if profile.name == FULL_PROFILE:
        return ""
    s, p = profile.blackbox, PROFILES[FULL_PROFILE].blackbox
    gaps = (_mapping_gaps("query budget", s.query_budgets, p.query_budgets, "queries per image")
            + _mapping_gaps("U-SimBA", s.usimba_iterations, p.usimba_iterations, "iterations")
            + _count_gap("transfer images per task", s.n_images, p.n_images)
            + _count_gap("query images per task", s.query_images, p.query_images)
            + _count_gap("iterations on the surrogate", s.steps, p.steps))
    if s.surrogate_train and not p.surrogate_train:
        gaps.append("surrogates: " + ", ".join(f"{k} {v}" for k, v in s.surrogate_train.items())
                    + f" ({FULL_PROFILE} profile: the target's recipe)")
    if not gaps:
        return ""
    return (f"**What the `{profile.name}` profile runs smaller** (to fit its time budget; the `{FULL_PROFILE}` "
            "profile runs the full sizes):\n\n" + "\n".join(f"- {g}" for g in gaps))


def surrogates_reading(surrogates: Mapping[str, SurrogateSet]) -> str:
    """How many surrogates were trained, and where the disjoint one could not be."""
    made = sum(len(s.trained()) for s in surrogates.values())
    missing = [f"{t} ({s.disjoint.note})" for t, s in surrogates.items() if not s.disjoint.available]
    text = f"{made} surrogates were trained for {len(surrogates)} task(s)."
    if missing:
        text += " No disjoint-data surrogate for " + "; ".join(missing) + "."
    return text


def disjoint_reading(rows: pd.DataFrame) -> str:
    """Does the attacker who never saw the target's data do worse than one who trained on it?"""
    sub = rows[rows["source_kind"].isin(["seed", "disjoint"])]
    if sub.empty or "disjoint" not in set(sub["source_kind"]):
        return ""
    piv = sub.pivot_table(index=["task", "target", "attack"], columns="source_kind", values="accuracy").dropna()
    if piv.empty:
        return ""
    diff = piv["disjoint"] - piv["seed"]
    return (f"Against the same targets and attacks, the disjoint-data surrogate leaves the target's accuracy "
            f"{diff.median():+.3f} (median over {len(diff)} cells; range {diff.min():+.3f} to {diff.max():+.3f}) "
            "compared with the surrogate trained on the target's kind of data with another seed: positive means "
            "the attacker who never saw the target's images transfers less.")


def finlayson_reading(fin: pd.DataFrame, profile: Profile | None = None) -> str:
    """Our black-box rows against the study's finding that black-box attacks still succeed;
    with ``profile``, whether our images are smaller than the study's."""
    if fin.empty:
        return "*This profile has no binary task with a trained surrogate: no Finlayson black-box comparison.*"
    ok = fin["target_rate"] >= BLACKBOX_SUCCESS
    study_size = int(references.FINLAYSON_PGD["setting"]["size"])
    if profile is None:
        tail = "; the same per-pixel budget buys less at fewer pixels."
    else:
        smaller = sorted({profile.task_size(t) for t in fin["task"] if profile.task_size(t) < study_size})
        tail = (f"; the same per-pixel budget buys less at our {', '.join(f'{s} px' for s in smaller)}."
                if smaller else "; ours are no smaller.")
    return (f"Finlayson et al. report that {references.FINLAYSON_BLACKBOX_PGD['finding']}; our sources give no "
            f"figure for it, so we read it as \"at least {BLACKBOX_SUCCESS:.0%} of the images are moved to the "
            f"other class\". It holds in {int(ok.sum())} of {len(fin)} rows here (to the other class "
            f"{fin['target_rate'].min():.3f}-{fin['target_rate'].max():.3f}; black-box accuracy "
            f"{fin['accuracy'].min():.3f}-{fin['accuracy'].max():.3f}, against "
            f"{fin['white_accuracy'].min():.3f}-{fin['white_accuracy'].max():.3f} in white box). Their eps is "
            f"{fin['eps_255'].iloc[0]:.2f}/255 at {study_size} px" + tail)


def adversarialmed_reading(am: pd.DataFrame) -> str:
    """AdversarialMed's attacks transferred, against the same attacks in white box."""
    if am.empty:
        return "*This profile has no chest X-ray task with trained surrogates: no AdversarialMed black-box rows.*"
    it = am[am["attack"] != "fgsm"]
    one = am[am["attack"] == "fgsm"]
    gap = (am["accuracy"] - am["white_accuracy"]).astype(float)

    def span(v) -> str:
        lo, hi = float(v.min()), float(v.max())
        return f"{lo:.3f}" if round(lo, 3) == round(hi, 3) else f"{lo:.3f}-{hi:.3f}"
    return (f"AdversarialMed's text says they studied black-box attacks as well but reports white-box figures "
            f"only, so these rows have no study number beside them. Crafted on a surrogate at their budget "
            f"({am['eps_255'].iloc[0]:.2f}/255), FGSM left the target's accuracy at "
            f"{span(one['accuracy'])} and the iterative attacks at {span(it['accuracy'])}, against "
            f"{span(am['white_accuracy'])} in white box (black-box minus "
            f"white-box accuracy {gap.min():+.3f} to {gap.max():+.3f}; the white box on chapter 2's {int(am['white_n'].iloc[0])} test images, the black box on "
            f"{int(am['n'].iloc[0])} of them).")


def koga_reading(table: pd.DataFrame) -> str:
    """Koga & Takemoto's logged case beside our runs with the same norm and zeta."""
    ref = references.KOGA_USIMBA
    ours = table[table["source"] == "ours"]
    head = (f"Koga & Takemoto logged {ref['success_rate']:.0%} success on {ref['rate_on']} after "
            f"{ref['iterations']:,} iterations ({ref['task']}, {ref['arch']}, {ref['resolution']} px, L2 zeta "
            f"{ref['zeta']:.0%}) in {ref['hours']:g} h (source: {ref['source']}).")
    if ours.empty:
        return head + " This profile runs no U-SimBA at that norm and zeta."
    lines = [f"- {r['task']} / {r['model']} at {r['size']} px: {r['rate (input images)']:.3f} on its "
             f"{r['images']} input images, {r['rate (held out)']:.3f} on held-out images, after {r['iterations']:,} "
             f"iterations in {r['hours'] * 3600:.0f} s" for _, r in ours.iterrows()]
    return head + " Ours at the same bound:\n\n" + "\n".join(lines)


def check_reading(check: WhiteboxCheck) -> str:
    """Whether any black-box result beat chapter 2's white-box worst case."""
    t = check.table
    if t.empty:
        return "*No L-inf black-box result to check against the white-box worst case.*"
    beaten = t[t["beaten"] > 0]
    text = (f"Of {len(t)} L-inf black-box results, {len(t) - len(beaten)} fooled no image that chapter 2's white-box "
            "ensemble left standing at the same or a larger budget")
    if beaten.empty:
        return text + ": every black-box success is contained in the white-box one, as it must be for a sound evaluation."
    names = ", ".join(sorted(set(beaten["task"] + " / " + beaten["model"])))
    return (text + f"; {len(beaten)} did ({int(beaten['beaten'].sum())} images in all), on {names}. Those models' "
            "masking diagnostics from chapter 2 are shown below: a black-box attack that beats the white-box "
            "worst case means the white-box evaluation is not a worst case there.")


def cost_reading(costs: pd.DataFrame) -> str:
    """The cheapest and the most query-hungry attacks, from the cost table."""
    if costs.empty:
        return ""
    per_image = costs[costs["needs"] == NEEDS["query"]].dropna(subset=["queries to the target per image"])
    if per_image.empty:
        return ""
    hungry = per_image.loc[per_image["queries to the target per image"].idxmax()]
    return (f"A transfer attack sends the target one image per attack; the score-based attacks need "
            f"{per_image['queries to the target per image'].min():,.0f} to "
            f"{hungry['queries to the target per image']:,.0f} queries per image (most: {hungry['attack']}).")


# --------------------------------------------------------------------------- the record
def headline_record(profile: Profile, zoo: Mapping[tuple, Any], finlayson: pd.DataFrame,
                    surrogates: Mapping[str, SurrogateSet] | None = None, *,
                    queries: pd.DataFrame) -> BlackboxRecord:
    """Chapter 5's record for chapter 8: Finlayson et al.'s black box (:func:`.run.finlayson_blackbox`)
    and the query attacks (:func:`.tables.query_record`), its sources the targets' and the
    surrogates' checkpoints."""
    sources = [tm.config.key() for tm in zoo.values()]
    sources += [s.model.config.key() for ss in (surrogates or {}).values() for s in ss.trained()]
    return make_record(BlackboxRecord, profile, finlayson=finlayson, queries=queries, sources=sources)


__all__ = ["adversarialmed_reading", "budget_note", "check_reading", "cost_reading", "disjoint_reading", "finlayson_reading",
           "headline_record", "koga_reading", "study_numbers", "surrogates_reading"]
