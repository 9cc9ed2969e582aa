"""The studies' twelve claims, each computed from the book's results (the headline records
the chapters wrote, :mod:`advmed.experiments.kernel.records`) with a verdict from
:mod:`.verdicts`.

Every claim is a function ``claim_N(ctx) -> Claim`` registered in :data:`CLAIMS`; ``ctx`` is
a :class:`Context` that reads each family's record once and computes nothing (it never calls
a family's run functions and loads no model). Nothing here types a study number: figures and
settings come from :mod:`advmed.experiments.references`; the module constants below are this
book's readings of the studies' words (a tolerance, "a few"), each saying why.
"""
from __future__ import annotations

import math
from typing import Callable, Iterable

import numpy as np
import pandas as pd

from ...attacks.patch import BASE as PATCH_SCALE
from ...train import AdversarialConfig
from .. import references
from ..blackbox.tables import BLACKBOX_SUCCESS
from ..defenses.report import claims_from_record
from ..defenses.tables import PARTIAL_GAIN, RETRAINING_HELPED
from ..kernel.records import (RECORDS, BlackboxRecord, DefensesRecord, MissingRecord, NaturalRecord, PatchesRecord,
                              Record, UniversalRecord, WhiteboxRecord, ZooRecord, read_record)
from ..profiles import Profile
from ..universal.tables import COLLAPSED, count_collapse
from .verdicts import ABOUT, Claim, Estimate3, about_zero, above_bound, matches_figure, not_comparable

_ORDER = {"agrees": 0, "same direction": 1, "disagrees": 2, "not comparable": 3}

#: A study figure without an interval (a clean accuracy or AUC, AdversarialMed's "about" clean AUC)
#: agrees with ours when ours lies within this of it, even where our interval excludes it: the
#: studies report one run, rounded to two or three digits, without an interval.
FIGURE_TOLERANCE = 0.02
#: Minagi et al. log one case (one fooling rate of one model): ours agrees within this of it,
#: the width the book reads as "about" (:data:`~.verdicts.ABOUT`).
FOOLING_TOLERANCE = ABOUT
#: Chance AUC (and accuracy) of a binary task: a clean figure above it has the claim's sign.
CHANCE = 0.5
#: Finlayson et al.'s black-box patch leaves accuracy below this on every task (their table,
#: :data:`~advmed.experiments.references.FINLAYSON_PATCH`; a test checks it), as the claim states it.
PATCH_BLACKBOX_BOUND = 0.1
#: "A natural patch keeps accuracy": it lowers clean accuracy by at most this (our reading:
#: Finlayson et al. give the natural patch's accuracy without a clean figure beside it).
NATURAL_PATCH_DROP = 0.1
#: Hirano et al.'s retraining helped "in only very few cases": more than none, at most this share.
FEW_CASES = 0.5


def _pct(x: float) -> str:
    """A share as the claims' texts write it: 0.04 -> "4 %"."""
    return f"{x * 100:g} %"


_SIDES = (references.ADVERSARIALMED_ATTACKS["setting"]["size"], references.FINLAYSON_PGD["setting"]["size"],
          references.HIRANO_UAP["resolution"], references.MINAGI_NATURAL_UAP["resolution"])
#: The smallest and largest side the studies worked at (pixels), for the resolution reasons.
STUDY_SIDES = (min(_SIDES), max(_SIDES))

# The studies' settings as the claims' texts write them.
_AM = references.ADVERSARIALMED_ATTACKS
_AM_EPS_255 = references.eps_to_pixels(_AM["eps_normalised"], "imagenet_normalised") * 255
_AM_SETTING = f"{_AM['setting']['model']}, {_AM['setting']['size']} px"
_FIN = references.FINLAYSON_PGD
_FIN_EPS_255 = references.eps_to_pixels(_FIN["eps_minus1_1"], "minus1_1") * 255
_HIRANO = references.HIRANO_UAP
_HIRANO_ZETA = max(_HIRANO["zetas"])
_HIRANO_SETTING = (f"{references.STUDY_SETTINGS['hirano']['architecture']} (ImageNet transfer), "
                   f"{_HIRANO['resolution']} px")


def worst(*verdicts: tuple[str, str]) -> tuple[str, str]:
    """The least favourable of several (verdict, rule) pairs: a claim with two parts agrees
    only when both do."""
    return max(verdicts, key=lambda v: _ORDER[v[0]])


class Context:
    """The profile's results as its chapters recorded them (:mod:`advmed.experiments.kernel.records`),
    each record read once, on first use. Nothing is computed here: a chapter that has not run
    with this profile's settings is a :class:`~advmed.experiments.kernel.MissingRecord` naming it.

    ``records``: the records to use instead of the cache's (any family not given is read)."""

    def __init__(self, profile: Profile, *, records: Iterable[Record] = ()):
        self.profile = profile
        self.records: dict[type, Record] = {type(r): r for r in records}

    #: The tables the claims read: attribute -> (record type, its field).
    TABLES = {"models": (ZooRecord, "models"), "clean": (ZooRecord, "clean"),
              "adversarialmed": (WhiteboxRecord, "adversarialmed"), "finlayson": (WhiteboxRecord, "finlayson"),
              "uap": (UniversalRecord, "uap"), "natural": (NaturalRecord, "natural"),
              "ablation": (NaturalRecord, "ablation"), "drift": (NaturalRecord, "drift"),
              "finlayson_blackbox": (BlackboxRecord, "finlayson"), "patches": (PatchesRecord, "finlayson")}

    def record(self, cls: type[Record]) -> Record:
        """The profile's record of type ``cls`` (read once)."""
        if cls not in self.records:
            self.records[cls] = read_record(cls, self.profile)
        return self.records[cls]

    def __getattr__(self, name: str):
        """Each table on first use, from its record (``models``: one row per zoo model with
        init_used, size, val_auc; ``defenses``: chapter 7's :class:`DefenseClaims`)."""
        if name == "defenses":
            value = claims_from_record(self.record(DefensesRecord))
        elif name in self.TABLES:
            cls, field = self.TABLES[name]
            value = getattr(self.record(cls), field)
        else:
            raise AttributeError(f"{type(self).__name__} has no {name!r}")
        self.__dict__[name] = value
        return value

    def model_row(self, key: tuple) -> pd.Series:
        m = self.models
        return m[(m["task"] == key[0]) & (m["arch"] == key[1]) & (m["init"] == key[2])].iloc[0]

    def model(self, task: str, init: str = "imagenet", arch: str = "mobilenet_v1_075") -> tuple | None:
        """The zoo key of (task, arch, init), or None when the profile lacks it."""
        m = self.models
        found = len(m) and ((m["task"] == task) & (m["arch"] == arch) & (m["init"] == init)).any()
        return (task, arch, init) if found else None


def _est(row: pd.Series, metric: str) -> Estimate3:
    return Estimate3(float(row[metric]), float(row.get(f"{metric}_lo", math.nan)),
                     float(row.get(f"{metric}_hi", math.nan)))


def _setting(ctx: Context, key: tuple) -> str:
    m = ctx.model_row(key)
    return f"{key[0]}, {key[1]} ({m['init_used']}), {int(m['size'])} px, {ctx.profile.name} profile"


#: The smallest change across the ablation's sizes that the claims cite as an effect of
#: resolution (about the bootstrap half-width of the ablation's 200 images).
RESOLUTION_EFFECT = 0.05


def _ablation_reason(ctx: Context, column: str, what: str) -> str:
    try:
        a = ctx.ablation.sort_values("size")
    except MissingRecord:
        raise
    except Exception as err:  # a profile without the ablation's task
        return f"unexplained (the resolution ablation did not run: {err})"
    lo, hi = a.iloc[0], a.iloc[-1]
    if column == "robust_accuracy":
        what = f"{what} at {ctx.profile.ablation.eps_255:g}/255"
    numbers = (f"{what} {lo[column]:.3f} at {int(lo['size'])} px, {hi[column]:.3f} at {int(hi['size'])} px; "
               f"the study worked at {STUDY_SIDES[0]}-{STUDY_SIDES[1]} px")
    # a change below the ablation's noise is no explanation: say so rather than list it as one
    if abs(float(hi[column]) - float(lo[column])) < RESOLUTION_EFFECT:
        return f"not resolution (measured, chapter 4: {numbers})"
    return f"resolution (measured, chapter 4): {numbers}"


def _untested(base: dict, why: str) -> Claim:
    """A claim this profile cannot test: no estimate, the verdict "not comparable" and why."""
    v, rule = not_comparable(why)
    return Claim(**base, ours=Estimate3(math.nan), ours_text="n/a", our_setting="", difference=math.nan, verdict=v,
                 rule=rule, reason="")


# --------------------------------------------------------------------------- the claims
def claim_1(ctx: Context) -> Claim:
    ref = next(r for r in references.CLEAN if r["study"] == "adversarialmed")
    key = ctx.model(ref["task"])
    base = dict(number=1, study="adversarialmed", statement="Clean PneuNet accuracy and AUC",
                study_figure=f"accuracy {ref['accuracy']}, AUC {ref['auc']}",
                study_setting=f"{ref['arch']}, {ref['size']} px, Kermany test folder", section="01_models")
    if key is None:
        return _untested(base, f"no fine-tuned MobileNet on {ref['task']} in this profile")
    row = ctx.clean[(ctx.clean["task"] == key[0]) & (ctx.clean["arch"] == key[1]) & (ctx.clean["init"] == key[2])].iloc[0]
    acc, auc = _est(row, "accuracy"), _est(row, "auc")
    v = worst(matches_figure(acc, ref["accuracy"], tolerance=FIGURE_TOLERANCE, lower_is_effect=False,
                             reference=CHANCE),
              matches_figure(auc, ref["auc"], tolerance=FIGURE_TOLERANCE, lower_is_effect=False, reference=CHANCE))
    reason = "" if v[0] == "agrees" else (
        f"the Kermany train/test shift (validation AUC {float(ctx.model_row(key)['val_auc']):.3f} vs test {auc.value:.3f}, "
        f"chapter 1); " + _ablation_reason(ctx, "auc", "clean AUC"))
    return Claim(**base, ours=auc, ours_text=f"accuracy {acc.fmt()}, AUC {auc.fmt()}", our_setting=_setting(ctx, key),
                 difference=auc.value - ref["auc"], verdict=v[0], rule=v[1], reason=reason,
                 details={"accuracy": acc.value, "auc": auc.value})


def _adversarialmed_row(ctx: Context, attack: str) -> tuple[tuple | None, pd.Series | None]:
    key = ctx.model(references.ADVERSARIALMED_ATTACKS["task"])
    if key is None or ctx.adversarialmed.empty:
        return None, None
    r = ctx.adversarialmed
    sel = r[(r["arch"] == key[1]) & (r["init"] == key[2]) & (r["attack"] == attack)]
    return (key, sel.iloc[0]) if not sel.empty else (None, None)


def claim_2(ctx: Context) -> Claim:
    study = {r["attack"]: r for r in references.ADVERSARIALMED_ATTACKS["rows"]}
    ref, clean_ref = study["fgsm"], study["clean"]
    key, row = _adversarialmed_row(ctx, "fgsm")
    _, clean_row = _adversarialmed_row(ctx, "clean")
    base = dict(number=2, study="adversarialmed",
                statement=f"FGSM at eps {_AM['eps_normalised']:g} (normalised) drops accuracy and AUC",
                study_figure=f"accuracy {clean_ref['accuracy']} -> {ref['accuracy']}, AUC {clean_ref['auc']} -> {ref['auc']}",
                study_setting=f"{_AM_SETTING}, eps {_AM['eps_normalised']:g} normalised = {_AM_EPS_255:.2f}/255",
                section="02_whitebox")
    if row is None:
        return _untested(base, "no pneumonia_cxr fine-tuned model in this profile")
    acc, auc = _est(row, "accuracy"), _est(row, "auc")
    v = worst(matches_figure(acc, ref["accuracy"], tolerance=ABOUT, lower_is_effect=True,
                             reference=float(clean_row["accuracy_lo"])),
              matches_figure(auc, ref["auc"], tolerance=ABOUT, lower_is_effect=True, reference=float(clean_row["auc_lo"])))
    reason = "" if v[0] == "agrees" else _ablation_reason(ctx, "robust_accuracy", "robust accuracy")
    return Claim(**base, ours=acc, ours_text=f"accuracy {float(clean_row['accuracy']):.3f} -> {acc.fmt()}, "
                                             f"AUC {float(clean_row['auc']):.3f} -> {auc.fmt()}",
                 our_setting=_setting(ctx, key) + ", same eps", difference=acc.value - ref["accuracy"],
                 verdict=v[0], rule=v[1], reason=reason, details={"accuracy": acc.value, "auc": auc.value})


def claim_3(ctx: Context) -> Claim:
    key, _ = _adversarialmed_row(ctx, "clean")
    base = dict(number=3, study="adversarialmed", statement="The iterative attacks (I-FGSM, PGD, MI-FGSM) drive "
                "accuracy and AUC to 0", study_figure="accuracy 0, AUC 0 for all three",
                study_setting=f"{_AM_SETTING}, eps {_AM_EPS_255:.2f}/255", section="02_whitebox")
    rows = [r for r in (_adversarialmed_row(ctx, a)[1] for a in ("ifgsm", "pgd", "mifgsm")) if r is not None]
    if key is None or not rows:
        return _untested(base, "no pneumonia_cxr fine-tuned model in this profile")
    clean = _adversarialmed_row(ctx, "clean")[1]
    weakest = max(rows, key=lambda r: float(r["accuracy"]))
    acc, auc = _est(weakest, "accuracy"), _est(max(rows, key=lambda r: float(r["auc"])), "auc")
    v = worst(about_zero(acc, clean=float(clean["accuracy"])), about_zero(auc, clean=float(clean["auc"])))
    return Claim(**base, ours=acc, ours_text=f"highest accuracy {acc.fmt()} ({weakest['attack']}), highest AUC {auc.fmt()}",
                 our_setting=_setting(ctx, key) + f", {int(weakest['steps'])} steps", difference=acc.value,
                 verdict=v[0], rule=v[1],
                 reason="" if v[0] == "agrees" else _ablation_reason(ctx, "robust_accuracy", "robust accuracy"),
                 details={r["attack"]: float(r["accuracy"]) for r in rows})


def claim_6(ctx: Context) -> Claim:
    r = ctx.finlayson
    base = dict(number=6, study="finlayson",
                statement=f"Targeted PGD at eps {_FIN['eps_minus1_1']:g} in [-1, 1] drives accuracy and AUC to about 0 "
                          "on all three tasks", study_figure="accuracy and AUC about 0 (derm, CXR, DR)",
                study_setting=f"{_FIN['setting']['model']}, {_FIN['setting']['size']} px, {_FIN['steps']} steps, "
                              f"eps {_FIN_EPS_255:.2f}/255", section="02_whitebox")
    tasks = [row["task"] for row in references.FINLAYSON_PGD["rows"]]
    adv = r[(r["attack"] != "clean") & r["task"].isin(tasks)] if not r.empty else r
    if adv.empty:
        return _untested(base, "none of the study's tasks is in this profile")
    weakest = adv.loc[adv["accuracy"].idxmax()]
    clean = r[(r["attack"] == "clean") & (r["task"] == weakest["task"]) & (r["arch"] == weakest["arch"])
              & (r["init"] == weakest["init"])].iloc[0]
    acc = _est(weakest, "accuracy")
    v = about_zero(acc, clean=float(clean["accuracy"]))
    per = "; ".join(f"{t}: <= {g['accuracy'].max():.3f}" for t, g in adv.groupby("task", sort=False))
    return Claim(**base, ours=acc, ours_text=f"highest accuracy {acc.fmt()} ({weakest['task']} / {weakest['arch']} "
                                             f"{weakest['init_used']}); {per}",
                 our_setting=f"{', '.join(sorted(set(adv['task'])))}; every model of the profile", difference=acc.value,
                 verdict=v[0], rule=v[1],
                 reason="" if v[0] == "agrees" else _ablation_reason(ctx, "robust_accuracy", "robust accuracy"),
                 details={f"{t}/{a}/{i}": float(x) for t, a, i, x in
                          zip(adv["task"], adv["arch"], adv["init"], adv["accuracy"])})


def _uap_rows(ctx: Context, targeted: bool) -> pd.DataFrame:
    t = ctx.uap
    z = max(ctx.profile.uap.zetas)
    sel = t[np.isclose(t["zeta"].astype(float), z)]
    return sel[sel["target"] >= 0] if targeted else sel[sel["target"] < 0]


def _collapse_reason(rows: pd.DataFrame) -> str:
    """Why non-targeted fooling rates stay low where the UAPs collapse the images into one class
    (measured in chapter 3: the adversarial predictions), with the ceiling that puts on them."""
    if "dominant_share" not in rows or rows["dominant_share"].isna().all():
        return ""
    c = count_collapse(rows, float(rows["zeta"].iloc[0]))
    if c.collapsed == 0:
        return ""
    return (f"{c.collapsed} of {c.non_targeted} non-targeted UAPs send at least {COLLAPSED:.0%} of the held-out "
            f"images to one class (measured, chapter 3), which caps their fooling rate at the share predicted "
            f"otherwise (median ceiling {c.median_ceiling:.3f}, their median rate {c.median_rate:.3f}); ")


def claim_9(ctx: Context) -> Claim:
    bound = float(references.HIRANO_UAP["claim_success_rate"])
    rows = _uap_rows(ctx, targeted=False)
    base = dict(number=9, study="hirano", statement=f"Non-targeted UAPs at zeta {_pct(_HIRANO_ZETA)} reach > "
                f"{_pct(bound)} fooling rate, almost independent of architecture",
                study_figure=f"> {bound:.0%}, for every architecture",
                study_setting=f"{_HIRANO_SETTING}, iterative UAP, <= {_HIRANO['max_passes']} passes", section="03_uap")
    if rows.empty:
        return _untested(base, f"no non-targeted UAP at zeta {_pct(_HIRANO_ZETA)} in this profile")
    med = Estimate3(float(rows["rate"].median()), float(rows["rate"].min()), float(rows["rate"].max()))
    v = above_bound(med, bound, control=float(rows["random"].median()))
    spread = rows.groupby(["task", "norm"])["rate"].agg(lambda s: s.max() - s.min())
    return Claim(**base, ours=med, ours_text=f"median {med.value:.3f} (range {med.lo:.3f}-{med.hi:.3f}) over "
                                             f"{len(rows)} UAPs; {int((rows['rate'] > bound).sum())} above {bound:.0%}; "
                                             f"largest spread across models {spread.max():.3f}",
                 our_setting=f"{len(set(rows['task']))} tasks x {len(set(rows['arch'] + rows['init']))} models x "
                             f"{len(set(rows['norm']))} norms, {ctx.profile.name} profile",
                 difference=med.value - bound, verdict=v[0], rule=v[1],
                 reason="" if v[0] == "agrees" else _collapse_reason(rows) + _ablation_reason(
                     ctx, "photo_uap", "photo-UAP fooling rate"),
                 details={"n_uaps": len(rows), "above": int((rows["rate"] > bound).sum()),
                          "random_median": float(rows["random"].median()), "max_spread": float(spread.max())})


def claim_10(ctx: Context) -> Claim:
    bound = float(references.HIRANO_UAP["claim_success_rate"])
    rows = _uap_rows(ctx, targeted=True)
    base = dict(number=10, study="hirano", statement=f"Targeted UAPs reach > {_pct(bound)} success; random controls "
                "stay low", study_figure=f"> {bound:.0%} (share of all images classified as the target)",
                study_setting=_HIRANO_SETTING, section="03_uap")
    if rows.empty:
        return _untested(base, "no targeted UAP in this profile")
    med = Estimate3(float(rows["rate_all"].median()), float(rows["rate_all"].min()), float(rows["rate_all"].max()))
    ctrl = float(rows["random_all"].median())
    v = above_bound(med, bound, control=ctrl)
    return Claim(**base, ours=med, ours_text=f"median {med.value:.3f} (range {med.lo:.3f}-{med.hi:.3f}) over {len(rows)} "
                                             f"targeted UAPs; random controls median {ctrl:.3f}",
                 our_setting=f"zeta {max(ctx.profile.uap.zetas):g}, {ctx.profile.name} profile",
                 difference=med.value - bound, verdict=v[0], rule=v[1],
                 reason="" if v[0] == "agrees" else _ablation_reason(ctx, "photo_uap", "photo-UAP fooling rate"),
                 details={"n_uaps": len(rows), "random_median": ctrl})


def claim_11(ctx: Context) -> Claim:
    ref = references.MINAGI_NATURAL_UAP
    base = dict(number=11, study="minagi", statement="UAPs from natural photos fool transfer-learned models far more "
                "than random controls, less than medical UAPs; models trained from scratch are less vulnerable",
                study_figure=f"fooling rate {ref['fooling_rate']} vs random {ref['random_fooling_rate']}",
                study_setting=f"{ref['task']}, {ref['arch']}, {ref['resolution']} px, {ref['norm']}, zeta {ref['zeta']}",
                section="04_natural_uap")
    t = ctx.natural
    sel = t[(t["task"] == ref["task"]) & (t["norm"] == ref["norm"]) & np.isclose(t["zeta"].astype(float), ref["zeta"])]
    ft, sc = sel[sel["init"] == "imagenet"], sel[sel["init"] == "scratch"]
    if ft.empty:
        return _untested(base, f"no fine-tuned model on {ref['task']} with {ref['norm']} zeta {ref['zeta']}")
    f = ft.iloc[0]
    ours = Estimate3(float(f["_natural"]))
    parts = [matches_figure(ours, ref["fooling_rate"], tolerance=FOOLING_TOLERANCE, lower_is_effect=False,
                            reference=float(f["_random"]) + ABOUT)]
    parts.append(("agrees", "below the medical UAP") if f["_natural"] <= f["_medical"] else
                 ("disagrees", f"photo UAP {f['_natural']:.3f} above the medical one {f['_medical']:.3f}"))
    if not sc.empty:
        s = sc.iloc[0]
        parts.append(("agrees", "scratch model fooled less") if s["_natural"] < f["_natural"] else
                     ("disagrees", f"scratch model fooled more ({s['_natural']:.3f} vs {f['_natural']:.3f})"))
    v = worst(*parts)
    reason = ""
    if v[0] != "agrees":
        drift = ctx.drift
        d = drift[drift["task"] == ref["task"]] if not drift.empty else drift
        drift_text = (f"weight drift from ImageNet of the fine-tuned model: {np.sqrt((d['relative_change'] ** 2 * d['parameters']).sum() / d['parameters'].sum()):.3f} "
                      f"of the norm (chapter 4)") if not d.empty else "no drift measured"
        reason = f"{drift_text}; " + _ablation_reason(ctx, "photo_uap", "photo-UAP fooling rate")
    return Claim(**base, ours=ours, ours_text=f"fine-tuned {f['_natural']:.3f} vs random {f['_random']:.3f}, medical UAP "
                                              f"{f['_medical']:.3f}" + (f"; scratch {sc.iloc[0]['_natural']:.3f}" if not sc.empty else ""),
                 our_setting=f"{ref['task']}, {f['arch']}, {int(f['size'])} px, {int(f['n_natural'])} photos",
                 difference=ours.value - ref["fooling_rate"], verdict=v[0], rule="; ".join(p[1] for p in parts),
                 reason=reason, details={"parts": [p[0] for p in parts]})


def claim_7(ctx: Context) -> Claim:
    ref = references.FINLAYSON_BLACKBOX_PGD
    base = dict(number=7, study="finlayson", statement="Black-box attacks crafted on a separately trained model "
                "still succeed", study_figure=f"{ref['finding']} (no figure published)",
                study_setting=f"targeted PGD, eps {_FIN['eps_minus1_1']:g} in [-1, 1], crafted on a separately "
                              "trained model",
                section="05_blackbox")
    r = ctx.finlayson_blackbox
    sep = r[r["surrogate_kind"] == "seed"] if not r.empty else r
    if sep.empty:
        return _untested(base, "no separately trained surrogate of a study task in this profile")
    weakest = sep.loc[sep["target_rate"].idxmin()]
    ours = Estimate3(float(weakest["target_rate"]))
    # the control: the share of images the target already gives the other class, clean
    control = float(1 - weakest["clean_accuracy"])
    v = above_bound(ours, BLACKBOX_SUCCESS, control=control)
    per = "; ".join(f"{t}: {g['target_rate'].min():.3f}" for t, g in sep.groupby("task", sort=False))
    reason = "" if v[0] == "agrees" else (
        f"white box at the same setting reaches {float(weakest['white_target_rate']):.3f} on {weakest['task']}: "
        "transfer, not the attack, falls short; " + _ablation_reason(ctx, "robust_accuracy", "robust accuracy"))
    return Claim(**base, ours=ours, ours_text=f"lowest share pushed to the other class {ours.fmt()} ({per})",
                 our_setting=f"{', '.join(dict.fromkeys(sep['task']))}; surrogate {weakest['surrogate']}",
                 difference=math.nan, verdict=v[0], rule=v[1] + f" (success: > {BLACKBOX_SUCCESS:g} to the other class)",
                 reason=reason, details={f"{t}/{k}": float(x) for t, k, x in
                                         zip(r["task"], r["surrogate_kind"], r["target_rate"])})


def claim_8(ctx: Context) -> Claim:
    natural = [r["natural_acc"] for r in references.FINLAYSON_PATCH]
    base = dict(number=8, study="finlayson", statement="The adversarial patch drives accuracy to about 0 white-box "
                f"and < {PATCH_BLACKBOX_BOUND:g} black-box; a natural patch keeps accuracy",
                study_figure=f"white-box about 0, black-box < {PATCH_BLACKBOX_BOUND:g}, natural "
                             f"{min(natural):g}-{max(natural):g}",
                study_setting=f"ResNet-50, {_FIN['setting']['size']} px, patch at scale {PATCH_SCALE:g}",
                section="06_patches")
    t = ctx.patches
    if t.empty:
        return _untested(base, "no patch task in this profile")

    def highest(kind: str) -> pd.Series:
        g = t[t["patch"] == kind]
        return g.loc[g["accuracy ours"].idxmax()]

    white, black = highest("white-box"), highest("black-box")
    nat = t[t["patch"] == "natural"]
    low_nat = nat.loc[(nat["accuracy ours"] - nat["clean accuracy"]).idxmin()]
    w = Estimate3(float(white["accuracy ours"]), float(white["accuracy_lo"]), float(white["accuracy_hi"]))
    b = Estimate3(float(black["accuracy ours"]), float(black["accuracy_lo"]), float(black["accuracy_hi"]))
    parts = [about_zero(w, clean=float(white["clean accuracy"])),
             ("agrees", f"black box {b.value:.3f} < {PATCH_BLACKBOX_BOUND:g}") if b.value < PATCH_BLACKBOX_BOUND else
             about_zero(b, clean=float(black["clean accuracy"])),
             ("agrees", f"natural patch keeps {low_nat['accuracy ours']:.3f} of clean {low_nat['clean accuracy']:.3f}")
             if low_nat["accuracy ours"] >= low_nat["clean accuracy"] - NATURAL_PATCH_DROP else
             ("disagrees", f"the natural patch lowers accuracy to {low_nat['accuracy ours']:.3f} from "
                           f"{low_nat['clean accuracy']:.3f}")]
    v = worst(*parts)
    return Claim(**base, ours=w, ours_text=f"highest accuracy: white-box {w.fmt()}, black-box {b.fmt()}; natural "
                                           f"{low_nat['accuracy ours']:.3f} (clean {low_nat['clean accuracy']:.3f})",
                 our_setting=f"{', '.join(dict.fromkeys(t['task']))}; {white['our model']}", difference=math.nan,
                 verdict=v[0], rule="; ".join(p[1] for p in parts),
                 reason="" if v[0] == "agrees" else _ablation_reason(ctx, "robust_accuracy", "robust accuracy"),
                 details={f"{task}/{kind}": float(acc) for task, kind, acc in
                          zip(t["task"], t["patch"], t["accuracy ours"])})




def claim_4(ctx: Context) -> Claim:
    ref = references.ADVERSARIALMED_DEFENSES
    w = AdversarialConfig(method="adversarialmed").clean_weight
    base = dict(number=4, study="adversarialmed",
                statement=f"Adversarial training keeps AUC > {ref['at_robust_auc_min']} under attack and about "
                          f"{ref['at_clean_auc']} clean", study_figure=f"AUC > {ref['at_robust_auc_min']} "
                f"attacked, about {ref['at_clean_auc']} clean",
                study_setting=f"{_AM_SETTING}, {w:g} clean + {1 - w:g} adversarial loss, eps "
                              f"{ref['attack_eps_normalised']:g} normalised", section="07_defenses")
    cases = ctx.defenses.adversarial_training
    if not cases:
        return _untested(base, "no adversarially trained model in this profile's defense section")
    c = min(cases, key=lambda n: n.robust_auc_adaptive)
    robust, clean = Estimate3(c.robust_auc_adaptive), Estimate3(c.clean_auc)
    parts = [above_bound(robust, ref["at_robust_auc_min"], control=c.undefended_robust_auc_adaptive),
             matches_figure(clean, ref["at_clean_auc"], tolerance=FIGURE_TOLERANCE, lower_is_effect=False,
                            reference=CHANCE)]
    if c.flagged and parts[0][0] == "agrees":
        # a robust number the masking diagnostics do not believe is no evidence for the claim
        parts[0] = not_comparable("the masking diagnostics flag the adversarially trained model")
    v = worst(*parts)
    return Claim(**base, ours=robust, ours_text=f"AUC {c.robust_auc_adaptive:.3f} under the adaptive attacker at "
                                                f"{c.eps_255:g}/255 (undefended {c.undefended_robust_auc_adaptive:.3f}), "
                                                f"{c.clean_auc:.3f} clean",
                 our_setting=f"{c.task}, {c.model}, AdversarialMed's recipe", difference=robust.value - ref[
                     "at_robust_auc_min"], verdict=v[0], rule="; ".join(p[1] for p in parts),
                 reason="" if v[0] == "agrees" else ("diagnostics flag the model; " if c.flagged else "")
                 + _ablation_reason(ctx, "robust_accuracy", "robust accuracy"),
                 details={f"{n.task}": n.robust_auc_adaptive for n in cases})


def claim_5(ctx: Context) -> Claim:
    base = dict(number=5, study="adversarialmed", statement="JPEG compression and VAE denoising protect partly",
                study_figure="partial protection (no figure published)",
                study_setting=f"JPEG quality {references.ADVERSARIALMED_DEFENSES['jpeg_quality']}; VAE denoiser; "
                              "attacks that ignore the defense", section="07_defenses")
    cases = ctx.defenses.preprocessing
    if not cases:
        return _untested(base, "no JPEG or VAE defense in this profile's defense section")
    parts = []
    for c in cases:
        oblivious_gain = c.oblivious_accuracy - c.undefended_accuracy
        if c.adaptive_gain >= PARTIAL_GAIN and not c.flagged:
            parts.append(("agrees", f"{c.defense} on {c.task}: +{c.adaptive_gain:.3f} against the adaptive attacker"))
        elif oblivious_gain >= PARTIAL_GAIN:
            parts.append(("same direction", f"{c.defense} on {c.task}: +{oblivious_gain:.3f} against the oblivious "
                                            f"attacker only ({c.adaptive_gain:+.3f} adaptive"
                                            f"{', flagged' if c.flagged else ''})"))
        else:
            parts.append(("disagrees", f"{c.defense} on {c.task}: {oblivious_gain:+.3f} oblivious, "
                                       f"{c.adaptive_gain:+.3f} adaptive"))
    v = worst(*parts)
    low = min(cases, key=lambda n: n.adaptive_gain)
    return Claim(**base, ours=Estimate3(low.adaptive_accuracy),
                 ours_text="; ".join(f"{c.defense}/{c.task}: {c.oblivious_accuracy:.3f} oblivious, "
                                     f"{c.adaptive_accuracy:.3f} adaptive (undefended {c.undefended_accuracy:.3f})"
                                     for c in cases),
                 our_setting=f"eps {low.eps_255:g}/255; protection = robust accuracy gain >= {PARTIAL_GAIN:g}",
                 difference=math.nan, verdict=v[0], rule="; ".join(p[1] for p in parts),
                 reason="" if v[0] == "agrees" else "the protection does not survive an attacker who knows the "
                 "defense (BPDA / end-to-end, chapter 7)" if v[0] == "same direction" else "unexplained",
                 details={f"{c.defense}/{c.task}": c.adaptive_gain for c in cases})


def claim_12(ctx: Context) -> Claim:
    base = dict(number=12, study="hirano", statement="Adversarial retraining raises robustness against UAPs in only "
                "a few cases", study_figure="helps in a few cases",
                study_setting=f"{references.HIRANO_RETRAINING['rounds']} rounds of retraining on UAP-perturbed images",
                section="07_defenses")
    d = ctx.defenses
    if not d.retraining:
        return _untested(base, "no UAP retraining in this profile's defense section")
    share = d.helped_share
    ours = Estimate3(share)
    if 0 < share <= FEW_CASES:
        v = ("agrees", f"retraining helped in {share:.2f} of the cases (a few: > 0 and <= {FEW_CASES:g})")
    elif share == 0:
        v = ("same direction", "retraining helped in none of the cases (the study: a few)")
    else:
        v = ("disagrees", f"retraining helped in {share:.2f} of the cases (more than half)")
    return Claim(**base, ours=ours, ours_text="; ".join(f"{c.task}: fresh-UAP fooling {c.fooling_before:.3f} -> "
                                                        f"{c.fooling_after:.3f} after {c.rounds} rounds"
                                                        for c in d.retraining),
                 our_setting=f"helped = fooling rate down by >= {RETRAINING_HELPED:g}", difference=math.nan,
                 verdict=v[0], rule=v[1], reason="" if v[0] == "agrees" else "unexplained",
                 details={c.task: c.fooling_before - c.fooling_after for c in d.retraining})


CLAIMS: dict[int, Callable[[Context], Claim]] = {
    1: claim_1, 2: claim_2, 3: claim_3, 6: claim_6, 7: claim_7, 8: claim_8, 9: claim_9, 10: claim_10, 11: claim_11,
    4: claim_4, 5: claim_5, 12: claim_12,
}


def read_records(profile: Profile) -> list[Record]:
    """Every family's record of ``profile``, in chapter order (what :func:`all_claims` reads)."""
    return [read_record(cls, profile) for cls in RECORDS.values()]


def all_claims(profile: Profile, *, records: Iterable[Record] = ()) -> list[Claim]:
    """Every claim, 1 to 12, from the headline records chapters 1-7 wrote for ``profile``
    (``records``: any to use instead of the cache's)."""
    ctx = Context(profile, records=records)
    return [CLAIMS[n](ctx) for n in sorted(CLAIMS)]


__all__ = ["CHANCE", "CLAIMS", "FEW_CASES", "FIGURE_TOLERANCE", "FOOLING_TOLERANCE", "NATURAL_PATCH_DROP",
           "PATCH_BLACKBOX_BOUND", "RESOLUTION_EFFECT", "STUDY_SIDES", "Context", "all_claims", "read_records", "worst"]
