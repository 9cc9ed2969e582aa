"""The tables of chapters 3 and 4: every UAP beside its random control, the study's claims
setting by setting, natural-image UAPs beside medical ones, and Minagi et al.'s logged case.

Inputs are the :class:`~.run.UAPExperiment` results of :mod:`.run`. Rates are fooling rates
(non-targeted) or targeted success rates with bootstrap 95 % intervals (:func:`.run.rates`).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping, NamedTuple, Sequence

import numpy as np
import pandas as pd

from ...metrics import harm_split
from ...plots import model_label, task_label
from .. import references
from ..kernel import disease_ids
from ..profiles import Profile
from .run import NON_TARGETED, UAPExperiment, attack_name

#: The study's "> 80 %" success claim (Hirano, Minagi & Takemoto 2021).
CLAIM_THRESHOLD = float(references.HIRANO_UAP["claim_success_rate"])
#: The columns that judge the study's threshold, named by it (a generic "claim" header would
#: read as this claim on every other chapter's table).
CLAIM_COLUMN = f"> {CLAIM_THRESHOLD * 100:g} % claim"
ABOVE_COLUMN = f"above {CLAIM_THRESHOLD * 100:g} %"
#: The largest spread (max - min rate across architectures) still read as "depends very little on
#: the architecture": the study gives no number; this is our reading, shown beside the spread.
ARCH_SPREAD = 0.10


def _judged(rate: float, rate_all: float, targeted: bool) -> float:
    """The study's claim is judged on its own definition: ``rate_all`` for targeted UAPs."""
    return rate_all if targeted else rate


#: A UAP that sends at least this share of the held-out images to one class has collapsed them.
COLLAPSED = 0.95
#: A fooling rate within this of its ceiling (:func:`_collapse`) is read as "at the ceiling".
AT_CEILING = 0.01


def _collapse(run: Any) -> dict[str, float]:
    """How far a UAP collapses the held-out images into one class: ``dominant_share``, the
    share of their adversarial predictions in the most common class, and ``ceiling``, the
    share whose clean prediction is another class: the fooling rate a UAP that sends every
    image to that class reaches, and no more (a binary task's non-targeted UAP often does)."""
    adv, clean = np.asarray(run.adv).astype(int), np.asarray(run.clean).astype(int)  # predicted classes
    top = int(np.bincount(adv).argmax()) if len(adv) else 0
    return {"dominant_share": float(np.mean(adv == top)) if len(adv) else float("nan"),
            "ceiling": float(np.mean(clean != top)) if len(clean) else float("nan")}


def _harm(run: Any, tm: Any) -> dict[str, float]:
    """Which way a UAP's errors go on the held-out images (:func:`advmed.metrics.harm_split`,
    over the clean-correct ones): ``missed_rate`` (diseased sent to a non-disease class) and
    ``false_alarm_rate`` (the reverse); NaN when the task names no disease class."""
    disease = disease_ids(tm)
    if disease is None or not len(run.y):
        return {"missed_rate": float("nan"), "false_alarm_rate": float("nan")}
    h = harm_split(np.asarray(run.y), np.asarray(run.clean), np.asarray(run.adv), disease, n_boot=0)
    return {"missed_rate": h.missed.value, "false_alarm_rate": h.false_alarm.value}


def uap_table(exp: UAPExperiment, *, numeric: bool = False, digits: int = 3) -> pd.DataFrame:
    """One row per UAP: setting columns, rate and random control with 95 % intervals, claim check.

    Columns: task, arch, init, init_used, size (px), norm, zeta, eps ([0, 1] units; L2 over the
    UAP's channels or L-inf), eps_255 (L-inf only: eps x 255), uap_channels (1: a gray UAP for
    a grayscale task, replicated to the model's 3 channels; 3: colour), method, passes, n_build,
    n_eval, attack, target (-1: none), rate (non-targeted: fooling rate; targeted: share of all
    images classified as the target, the study's definition), rate_all (the same point estimate), random (the same for the random control of the same norm), claim ("> 80 %"
    holds: ``yes (0.912)`` / ``no (0.412)``, judged on the study's own definition), one_class
    and ceiling (the share of adversarial predictions in the most common class, and the
    fooling rate a UAP sending every image there would reach: :func:`_collapse`), and which
    way the errors go (:func:`_harm`: ``missed_rate`` and ``false_alarm_rate``; one
    "missed · false alarms" column in the display).
    ``numeric=True`` gives floats with ``_lo`` / ``_hi`` columns instead of strings, and
    names those two ``dominant_share`` / ``ceiling``.
    """
    rows = []
    for key, run in exp.runs.items():
        tm = exp.trained[key.model]
        r = exp.rates(key)
        summ = run.summary
        row: dict[str, Any] = {
            "task": key.task, "arch": key.arch, "init": key.init, "init_used": tm.init_used,
            "size": tm.config.size, "norm": key.norm, "zeta": key.zeta, "eps": summ["eps"],
            "eps_255": summ["eps"] * 255 if key.norm == "linf" else float("nan"),
            "uap_channels": 1 if summ.get("gray") else 3, "method": summ["method"], "passes": summ["passes"],
            "n_build": summ["n_images"], "n_eval": len(run.y), "source": summ.get("source", "medical"),
            "attack": attack_name(key.target, tm.classes), "target": -1 if key.target is None else key.target,
        }
        judged = _judged(r.rate.value, r.rate_all, key.target is not None)
        holds = bool(np.isfinite(judged) and judged > CLAIM_THRESHOLD)
        if numeric:
            row.update({"rate": r.rate.value, "rate_lo": r.rate.lo, "rate_hi": r.rate.hi, "rate_all": r.rate_all,
                        "random": r.random.value, "random_lo": r.random.lo, "random_hi": r.random.hi,
                        "random_all": r.random_all, "claim_holds": holds, **_collapse(run), **_harm(run, tm)})
        else:
            row["rate"] = r.rate.fmt(digits)
            row["rate_all"] = f"{r.rate_all:.{digits}f}" if key.target is not None else ""
            row["random"] = r.random.fmt(digits)
            row[CLAIM_COLUMN] = f"{'yes' if holds else 'no'} ({judged:.{digits}f})"
            c = _collapse(run)
            row["one_class"] = f"{c['dominant_share']:.{digits}f}"
            row["ceiling"] = f"{c['ceiling']:.{digits}f}"
            h = _harm(run, tm)
            row["missed · false alarms"] = ("–" if not np.isfinite(h["missed_rate"]) else
                                           f"{h['missed_rate']:.2f} · {h['false_alarm_rate']:.2f}")
        rows.append(row)
    df = pd.DataFrame(rows)
    if not numeric and len(df):
        df["eps"] = df["eps"].map(lambda v: f"{v:.4f}")
        df["eps_255"] = df["eps_255"].map(lambda v: "" if not np.isfinite(v) else f"{v:.2f}")
        df = df.drop(columns=["source"])
    return df


def claim_summary(table: pd.DataFrame) -> pd.DataFrame:
    """The study's two claims, checked per setting, from ``uap_table(..., numeric=True)``.

    One row per task x norm x zeta x attack: how many models exceed :data:`CLAIM_THRESHOLD`
    (on the study's definition), the lowest and highest rate across architectures, their
    spread (max - min) and whether it is within :data:`ARCH_SPREAD`.
    """
    rows = []
    judged = table["rate_all"].where(table["target"] >= 0, table["rate"])
    t = table.assign(judged=judged)
    for (task, norm, zeta, attack), g in t.groupby(["task", "norm", "zeta", "attack"], sort=False):
        spread = float(g["judged"].max() - g["judged"].min())
        rows.append({"task": task, "norm": norm, "zeta": zeta, "attack": attack, "models": len(g),
                     ABOVE_COLUMN: f"{int((g['judged'] > CLAIM_THRESHOLD).sum())} of {len(g)}",
                     "lowest": round(float(g["judged"].min()), 3), "highest": round(float(g["judged"].max()), 3),
                     "random_highest": round(float(g["random_all"].where(g["target"] >= 0, g["random"]).max()), 3),
                     "spread": round(spread, 3),
                     "little_arch_dependence": f"{'yes' if spread <= ARCH_SPREAD else 'no'} ({spread:.3f})"})
    return pd.DataFrame(rows)


class ClaimCounts(NamedTuple):
    """Counts behind the chapter's sentence on the study's claims."""

    rows: int  # UAPs
    hold: int  # UAPs above the threshold
    non_targeted: int
    non_targeted_hold: int
    above_random: int  # non-targeted UAPs whose interval lies above their control's
    settings: int  # rows of the claim summary
    little: int  # settings with little architecture dependence


def claim_counts(numeric: pd.DataFrame, claims: pd.DataFrame) -> ClaimCounts:
    """How many UAPs pass the threshold, how many beat their control, how many settings show
    little architecture dependence (from the numeric UAP table and the claim summary)."""
    non = numeric[numeric["attack"] == NON_TARGETED]
    return ClaimCounts(
        rows=len(numeric), hold=int(numeric["claim_holds"].sum()), non_targeted=len(non),
        non_targeted_hold=int(non["claim_holds"].sum()), above_random=int((non["rate_lo"] > non["random_hi"]).sum()),
        settings=len(claims), little=int(claims["little_arch_dependence"].str.startswith("yes").sum()))


class CollapseCounts(NamedTuple):
    """How many non-targeted UAPs (at one zeta) send the held-out images into one class, and
    what that does to their fooling rate."""

    zeta: float
    non_targeted: int
    collapsed: int  # dominant_share >= COLLAPSED
    at_ceiling: int  # of those, fooling rate within AT_CEILING of the ceiling
    median_ceiling: float  # over the collapsed ones (nan: none)
    median_rate: float
    above_threshold_possible: int  # collapsed ones whose ceiling exceeds the study's threshold


def collapse_counts(numeric: pd.DataFrame, *, zeta: float | None = None) -> CollapseCounts:
    """:class:`CollapseCounts` of the non-targeted rows of ``uap_table(..., numeric=True)`` at
    ``zeta`` (default: the largest)."""
    non = numeric[numeric["attack"] == NON_TARGETED]
    zeta = float(non["zeta"].max() if zeta is None else zeta) if len(non) else float("nan")
    return count_collapse(non[np.isclose(non["zeta"].astype(float), zeta)], zeta)


def count_collapse(non: pd.DataFrame, zeta: float) -> CollapseCounts:
    """:class:`CollapseCounts` of rows already selected (the non-targeted UAPs at ``zeta``,
    with ``rate``, ``dominant_share`` and ``ceiling``)."""
    hit = non[non["dominant_share"] >= COLLAPSED]
    return CollapseCounts(
        zeta=zeta, non_targeted=len(non), collapsed=len(hit),
        at_ceiling=int((hit["rate"] >= hit["ceiling"] - AT_CEILING).sum()),
        median_ceiling=float(hit["ceiling"].median()) if len(hit) else float("nan"),
        median_rate=float(hit["rate"].median()) if len(hit) else float("nan"),
        above_threshold_possible=int((hit["ceiling"] > CLAIM_THRESHOLD).sum()))


def natural_vs_medical(natural: UAPExperiment, medical: UAPExperiment, *, digits: int = 3) -> pd.DataFrame:
    """Natural-image UAPs beside medical-image UAPs and random controls, same model, norm, zeta.

    One row per task x model x norm x zeta x attack (non-targeted, or targeted toward a class:
    then both rates are the targeted success rate, the share of all held-out images classified as
    the target, and the medical-image UAP is chapter 3's targeted one). ``eps`` is the common absolute bound
    (from the medical images, as Minagi et al.); ``eps_if_natural_ref`` is the bound the photos'
    own mean norm would have given. Columns starting with ``_`` hold the numbers behind the
    formatted ones.
    """
    rows = []
    for key, run in natural.runs.items():
        tm = natural.trained[key.model]
        rn = natural.rates(key)
        rm = medical.rates(key) if key in medical.runs else None
        ref = natural.references[(key.task, key.norm, key.zeta)]
        rows.append({
            "task": key.task, "arch": key.arch, "init": key.init, "init_used": tm.init_used,
            "size": tm.config.size, "norm": key.norm, "zeta": key.zeta,
            "attack": attack_name(key.target, tm.classes), "eps": round(run.summary["eps"], 4),
            "eps_if_natural_ref": round(ref["eps_natural_ref"], 4), "method": run.summary["method"],
            "n_natural": run.summary["n_images"], "n_eval": len(run.y),
            "natural_uap": rn.rate.fmt(digits), "medical_uap": rm.rate.fmt(digits) if rm else "n/a",
            "random": rn.random.fmt(digits),
            "natural_minus_random": round(rn.rate.value - rn.random.value, digits),
            "natural_above_random": "yes" if rn.rate.lo > rn.random.hi else "no (intervals overlap)",
            "_natural": rn.rate.value, "_medical": rm.rate.value if rm else float("nan"), "_random": rn.random.value,
        })
    return pd.DataFrame(rows)


def natural_display(table: pd.DataFrame) -> pd.DataFrame:
    """:func:`natural_vs_medical` without the numeric helper columns (those starting with ``_``)."""
    return table[[c for c in table.columns if not str(c).startswith("_")]]


def transfer_learning_table(table: pd.DataFrame) -> pd.DataFrame:
    """Per task, norm and zeta: the photo-built UAP's fooling rate of each initialisation, and
    how much of the medical-image UAP's effect the photos recover (natural / medical)."""
    pivot = table.pivot_table(index=["task", "norm", "zeta"], columns="init", values="_natural")
    ratio = (table.assign(recovered=table["_natural"] / table["_medical"].where(table["_medical"] > 0))
             .pivot_table(index=["task", "norm", "zeta"], columns="init", values="recovered"))
    return pivot.round(3).join(ratio.round(2), lsuffix=": natural UAP", rsuffix=": natural / medical")


def minagi_comparison(table: pd.DataFrame, reference: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """Minagi et al.'s one logged case beside ours with the same task, norm and zeta.

    ``table`` is :func:`natural_vs_medical`; ``reference`` defaults to
    :data:`advmed.experiments.references.MINAGI_NATURAL_UAP`. Our rows differ in architecture,
    resolution and dataset sizes; the columns say how.
    """
    ref = dict(reference or references.MINAGI_NATURAL_UAP)
    rows = [{"source": "Minagi et al. 2022", "task": ref["task"], "arch": ref["arch"], "init": ref["init"],
             "size": ref["resolution"], "norm": ref["norm"], "zeta": ref["zeta"], "n_natural": "see the study",
             "n_eval": "their test set", "natural_uap": ref["fooling_rate"], "random": ref["random_fooling_rate"],
             "difference": round(ref["fooling_rate"] - ref["random_fooling_rate"], 3)}]
    ours = table[(table["task"] == ref["task"]) & (table["norm"] == ref["norm"])
                 & np.isclose(table["zeta"].astype(float), ref["zeta"])]
    for _, r in ours.iterrows():
        rows.append({"source": "ours", "task": r["task"], "arch": r["arch"], "init": r["init_used"],
                     "size": r["size"], "norm": r["norm"], "zeta": r["zeta"], "n_natural": r["n_natural"],
                     "n_eval": r["n_eval"], "natural_uap": round(r["_natural"], 3), "random": round(r["_random"], 3),
                     "difference": round(r["_natural"] - r["_random"], 3)})
    out = pd.DataFrame(rows)
    out.attrs["cite"] = references.STUDIES["minagi"]["cite"]
    return out


def perceptibility_summary(perc: pd.DataFrame) -> pd.DataFrame:
    """:func:`~.run.perceptibility` per task, norm and zeta, the most visible UAP of the models and
    attacks: the largest L-inf and L2 norms (grey levels) and the lowest median PSNR and SSIM."""
    if perc.empty:
        return perc
    g = perc.groupby(["task", "norm", "zeta"], sort=False)
    out = g.agg(linf=("linf_255", "max"), l2=("l2_255", "max"), psnr=("psnr_db", "min"), ssim=("ssim", "min"),
                uaps=("arch", "size")).reset_index()
    return pd.DataFrame({"task": out["task"].map(task_label), "norm": out["norm"], "zeta": out["zeta"],
                         "UAPs": out["uaps"], "L-inf (/255), largest": out["linf"].round(1),
                         "L2 (/255), largest": out["l2"].round(0), "PSNR (dB), lowest": out["psnr"].round(1),
                         "SSIM, lowest": out["ssim"].round(3)})


def settings_table(profile: Profile) -> pd.DataFrame:
    """The profile's UAP settings as a two-column table for the book, with the claim thresholds,
    the seed and the bootstrap resamples."""
    d = {**dataclasses.asdict(profile.uap), "claim_threshold": CLAIM_THRESHOLD, "arch_spread": ARCH_SPREAD,
         "seed": profile.seed, "n_boot": profile.eval.n_boot}
    return pd.DataFrame({"value": [", ".join(map(str, v)) if isinstance(v, tuple) else v for v in d.values()]},
                        index=pd.Index(list(d), name="setting"))




# --------------------------------------------------------------------------- the page's summaries
# In-text tables of a dozen rows at most and a few short columns, for every profile; the long
# tables above go to the chapters' appendices.
def settings_brief(profile: Profile, *, natural: bool = False) -> pd.DataFrame:
    """The UAP settings a reader needs to read the page (the full list: :func:`settings_table`)."""
    u = profile.uap
    rows = {"method": u.method, "passes over the build images": u.max_passes,
            "build images per UAP" if not natural else "photos per UAP": u.natural_images if natural else u.n_build,
            "held-out evaluation images": "all" if u.n_eval is None else u.n_eval,
            "zeta (fraction of the mean image norm)": ", ".join(f"{z:g}" for z in u.zetas),
            "norms": ", ".join(u.norms), "random control (L-inf)": u.random_kind,
            "the study's success claim": f"> {CLAIM_THRESHOLD:.0%}", "seed": profile.seed,
            "bootstrap resamples": profile.eval.n_boot}
    if not natural:
        rows["targeted UAPs at zeta"] = ("none" if not u.targeted else "every zeta" if u.targeted_zetas is None
                                         else ", ".join(f"{z:g}" for z in u.targeted_zetas))
        rows["'little dependence on the architecture'"] = f"spread ≤ {ARCH_SPREAD:.2f}"
    return pd.DataFrame({"setting": list(rows), "value": [str(v) for v in rows.values()]})


def fooling_summary(numeric: pd.DataFrame, *, zeta: float | None = None) -> pd.DataFrame:
    """Non-targeted fooling rates at one zeta (default: the largest): one row per model and norm,
    one column per task, cells ``"UAP (random control)"``, e.g. ``"0.42 (0.05)"``."""
    non = numeric[numeric["attack"] == NON_TARGETED]
    zeta = float(non["zeta"].max() if zeta is None else zeta)
    non = non[np.isclose(non["zeta"].astype(float), zeta)]
    rows: dict[tuple, dict[str, str]] = {}
    for r in non.itertuples(index=False):
        key = (r.arch, r.init_used, r.norm)
        row = rows.setdefault(key, {"model": model_label(r.arch, r.init_used), "norm": r.norm})
        row[task_label(r.task)] = f"{r.rate:.2f} ({r.random:.2f})"
    return pd.DataFrame(list(rows.values())).fillna("–")


class NaturalHeadline(NamedTuple):
    """The numbers of chapter 4 that the book's abstract quotes (glued, never typed)."""

    rows: int  # natural-image UAPs (task x model x norm x zeta)
    above_random: int  # whose interval lies above their random control's
    settings: int  # task x norm x zeta with both initialisations
    imagenet_more: int  # settings where the ImageNet-initialised model is fooled more


def natural_headline(table: pd.DataFrame) -> NaturalHeadline:
    """Count chapter 4's orderings from :func:`natural_vs_medical`."""
    pivot = table.pivot_table(index=["task", "norm", "zeta"], columns="init", values="_natural")
    both = {"imagenet", "scratch"} <= set(pivot.columns)
    diff = (pivot["imagenet"] - pivot["scratch"]).dropna() if both else pd.Series(dtype=float)
    return NaturalHeadline(rows=len(table), above_random=int(table["natural_above_random"].eq("yes").sum()),
                           settings=len(diff), imagenet_more=int((diff > 0).sum()))


def natural_summary(table: pd.DataFrame, *, zeta: float | None = None, norm: str | None = None) -> pd.DataFrame:
    """Chapter 4 at one zeta (default: the largest) and, if given, one norm: one row per task,
    norm and attack (the attack column only where the table has several kinds); per
    initialisation, the rate of the UAP from photos and of the UAP from medical images; and the
    highest random control of the row."""
    if table.empty:
        return table
    zeta = float(table["zeta"].max() if zeta is None else zeta)
    t = table[np.isclose(table["zeta"].astype(float), zeta)]
    if norm is not None:
        t = t[t["norm"] == norm]
    if "attack" not in t.columns:
        t = t.assign(attack=NON_TARGETED)
    rows = []
    for (task, row_norm, attack), g in t.groupby(["task", "norm", "attack"], sort=False):
        row: dict[str, Any] = {"task": task_label(task), "norm": row_norm, "attack": attack}
        for init, gi in g.groupby("init", sort=False):
            row[f"{init}: photos"] = float(gi["_natural"].iloc[0])
            row[f"{init}: medical"] = float(gi["_medical"].iloc[0])
        row["random (highest)"] = float(g["_random"].max())
        rows.append(row)
    out = pd.DataFrame(rows)
    # a column that would only repeat one value (one kind of attack, the one norm asked for)
    same = [c for c in ("attack",) if len(out) and out[c].nunique() == 1] + (["norm"] if norm is not None else [])
    return out.drop(columns=same)


def source_table(rows: Sequence[Any], *, numeric: bool = False, digits: int = 3) -> pd.DataFrame:
    """Minagi et al.'s cross-dataset finding (:func:`~.run.compare_sources`), one row per task,
    model and norm: each photo source's UAP's fooling rate on the held-out medical images, their
    paired difference with its 95 % interval and exact McNemar p, each UAP's fooling rate on the
    *other* source's photos, and the larger random control. ``numeric=True`` gives floats."""
    out = []
    for r in rows:
        a, b = r.sources
        if numeric:
            row: dict[str, Any] = {"task": r.key.task, "model": f"{r.key.arch} ({r.key.init})", "norm": r.key.norm,
                                   "zeta": r.key.zeta}
            for src, med, ph in zip(r.sources, r.medical, r.photos):
                row.update({f"{src}_medical": med.value, f"{src}_medical_lo": med.lo, f"{src}_medical_hi": med.hi,
                            f"{src}_on_other_photos": ph.value, f"{src}_on_other_photos_lo": ph.lo,
                            f"{src}_on_other_photos_hi": ph.hi})
            row.update({"difference": r.difference.value, "difference_lo": r.difference.lo,
                        "difference_hi": r.difference.hi, "p_mcnemar": r.p_mcnemar, "random": r.random.value,
                        "n_photos_per_source": r.n_photos, "n_eval": r.n_eval})
        else:
            row = {"task": task_label(r.key.task), "model, norm": f"{model_label(r.key.arch, r.key.init)}, {r.key.norm}",
                   f"UAP from {a}": r.medical[0].fmt(digits), f"UAP from {b}": r.medical[1].fmt(digits),
                   f"{a} − {b}": f"{r.difference.fmt(digits)}, p {r.p_mcnemar:.2g}",
                   "on the other photos": f"{r.photos[0].value:.2f} · {r.photos[1].value:.2f}",
                   "random": f"{r.random.value:.{digits}f}"}
        out.append(row)
    return pd.DataFrame(out)


def minagi_summary(comparison: pd.DataFrame) -> pd.DataFrame:
    """:func:`minagi_comparison` with the columns a reader compares: who, which model at which
    resolution, the rate of the UAP from photos, the random control and the difference."""
    if comparison.empty:
        return comparison
    return pd.DataFrame({"source": comparison["source"],
                         "model": [f"{a} ({i})" for a, i in zip(comparison["arch"], comparison["init"])],
                         "pixels": comparison["size"], "UAP from photos": comparison["natural_uap"],
                         "random control": comparison["random"], "difference": comparison["difference"]})


def transfer_table(matrices: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """The transfer matrices of :func:`~.run.transfer_matrices` as one long table: task, the model
    the UAP was built on, the model it was applied to, fooling rate."""
    rows = []
    for task, mat in matrices.items():
        for built in mat.index:
            for applied in mat.columns:
                rows.append({"task": task, "built on": built, "applied to": applied,
                             "fooling rate": float(mat.loc[built, applied])})
    return pd.DataFrame(rows)


__all__ = ["ABOVE_COLUMN", "ARCH_SPREAD", "AT_CEILING", "CLAIM_COLUMN", "CLAIM_THRESHOLD", "COLLAPSED", "ClaimCounts", "CollapseCounts",
           "NaturalHeadline", "claim_counts", "perceptibility_summary", "claim_summary", "collapse_counts", "count_collapse",
           "fooling_summary", "minagi_comparison", "minagi_summary", "natural_display", "natural_headline", "natural_summary",
           "natural_vs_medical", "settings_brief", "settings_table", "source_table", "transfer_learning_table",
           "transfer_table", "uap_table"]
