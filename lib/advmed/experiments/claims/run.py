"""The registry's claims (:mod:`.registry`), each measured from the book's results (the headline
records the chapters wrote, :mod:`advmed.experiments.kernel.records`) at two settings and
decided by :func:`.verdicts.judge`.

Every claim is a function ``claim_N(ctx) -> Claim`` registered in :data:`CLAIMS`; ``ctx`` is a
:class:`Context` that reads each family's record once and computes nothing (it never calls a
family's run functions and loads no model). The functions gather evidence only: the study's
figures, margins and rules are the registry's, so nothing here decides a verdict by itself.
"""
from __future__ import annotations

import math
from typing import Callable, Iterable

import numpy as np
import pandas as pd

from ...attacks.escalate import CONVERGED
from ...train import AdversarialConfig
from .. import references
from ..blackbox.tables import LABEL_ONLY_ATTACK
from ..defenses.report import claims_from_record
from ..defenses.tables import RETRAINING_HELPED
from ..kernel.records import (RECORDS, BlackboxRecord, DefensesRecord, MissingRecord, NaturalRecord, PatchesRecord,
                              Record, UniversalRecord, WhiteboxRecord, ZooRecord, read_record)
from ..profiles import Profile
from ..universal.tables import COLLAPSED, count_collapse
from .registry import BY_NUMBER, IMPERCEPTIBLE_SSIM, ClaimSpec
from .statistics import Interval, bootstrap_statistic, hanley_mcneil, newcombe_difference, wilson
from .verdicts import SETTINGS, Claim, Evidence, Part, judge, untested

_SIDES = (references.ADVERSARIALMED_ATTACKS["setting"]["size"], references.FINLAYSON_PGD["setting"]["size"],
          references.HIRANO_UAP["resolution"], references.MINAGI_NATURAL_UAP["resolution"])
#: The smallest and largest side the studies worked at (pixels), for the resolution reasons.
STUDY_SIDES = (min(_SIDES), max(_SIDES))
#: The smallest change across the ablation's sizes that the claims cite as an effect of
#: resolution (about the bootstrap half-width of the ablation's 200 images).
RESOLUTION_EFFECT = 0.05
#: The reference of a difference: an effect is measured from zero.
NO_EFFECT = Interval(0.0, 0.0, 0.0)
#: Image-count columns of the records' tables, most specific first.
N_COLUMNS = ("n", "n_eval", "n_images", "n_test", "white_n")


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
              "uap": (UniversalRecord, "uap"), "perceptibility": (UniversalRecord, "perceptibility"),
              "natural": (NaturalRecord, "natural"), "natural_targeted": (NaturalRecord, "targeted"),
              "cross_source": (NaturalRecord, "cross_source"), "natural_transfer": (NaturalRecord, "transfer"),
              "ablation": (NaturalRecord, "ablation"), "drift": (NaturalRecord, "drift"),
              "finlayson_blackbox": (BlackboxRecord, "finlayson"), "queries": (BlackboxRecord, "queries"), "patches": (PatchesRecord, "finlayson")}

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

    def n_of(self, name: str, row: pd.Series | None = None) -> int:
        """The images behind ``row`` of table ``name`` (its own count where it keeps one, else
        the record's largest)."""
        if row is not None:
            for col in N_COLUMNS:
                if col in row.index and pd.notna(row[col]) and float(row[col]) > 0:
                    return int(row[col])
        cls = DefensesRecord if name == "defenses" else self.TABLES[name][0]
        return int(self.record(cls).n)

    def model_row(self, key: tuple) -> pd.Series:
        m = self.models
        return m[(m["task"] == key[0]) & (m["arch"] == key[1]) & (m["init"] == key[2])].iloc[0]

    def model(self, task: str, init: str = "imagenet", arch: str = "mobilenet_v1_075") -> tuple | None:
        """The zoo key of (task, arch, init), or None when the profile lacks it."""
        m = self.models
        found = len(m) and ((m["task"] == task) & (m["arch"] == arch) & (m["init"] == init)).any()
        return (task, arch, init) if found else None


def _est(row: pd.Series, metric: str, n: int, *, value: str | None = None) -> Interval:
    """A record's estimate (column ``value``, default ``metric``) with the chapter's bootstrap
    interval ``metric_lo`` / ``metric_hi`` (or Wilson's from ``n`` where it kept none)."""
    lo, hi = float(row.get(f"{metric}_lo", math.nan)), float(row.get(f"{metric}_hi", math.nan))
    v = float(row[value or metric])
    if math.isfinite(lo) and math.isfinite(hi):
        return Interval(v, lo, hi, n, "bootstrap over images (the chapter's)")
    return wilson(v, n)


def _setting(ctx: Context, key: tuple) -> str:
    m = ctx.model_row(key)
    return f"{key[0]}, {key[1]} ({m['init_used']}), {int(m['size'])} px, {ctx.profile.name} profile"


def _ablation_reason(ctx: Context, column: str, what: str) -> str:
    """The resolution ablation, cited only where it moved the quantity (chapter 4); "" when it
    did not move it or did not run (then it explains nothing)."""
    try:
        a = ctx.ablation.sort_values("size")
    except MissingRecord:
        raise
    except Exception:  # a profile without the ablation's task
        return ""
    lo, hi = a.iloc[0], a.iloc[-1]
    if abs(float(hi[column]) - float(lo[column])) < RESOLUTION_EFFECT:
        return ""
    if column == "robust_accuracy":
        what = f"{what} at {ctx.profile.ablation.eps_255:g}/255"
    return (f"resolution (measured, chapter 4): {what} {lo[column]:.3f} at {int(lo['size'])} px, "
            f"{hi[column]:.3f} at {int(hi['size'])} px; the study worked at {STUDY_SIDES[0]}-{STUDY_SIDES[1]} px")


def _reasons(*parts: str) -> str:
    kept = [p.strip().rstrip(";") for p in parts if p and p.strip()]
    return "; ".join(kept) if kept else "unexplained"


def _claim(spec: ClaimSpec, study: Evidence, strongest: Evidence | None, *, ours_text: str, our_setting: str,
           reason: str, section: str, n_have: int, details: dict | None = None) -> Claim:
    """The claim with both verdicts; ``strongest`` None: the study's setting is the strongest
    evaluation of this threat model in the book (the registry's ``strongest`` says so), so both
    verdicts come from the same evidence."""
    evidence = {"study": study, "strongest": strongest or Evidence(f"as the study's ({spec.strongest})", study.parts,
                                                                   study.flagged, study.missing)}
    verdicts = tuple(judge(spec, s, evidence[s]) for s in SETTINGS)
    agreed = all(v.verdict == "agrees" for v in verdicts)
    return Claim(spec, ours_text, our_setting, verdicts, "" if agreed else reason, section, n_have, details or {})


# --------------------------------------------------------------------------- the claims
def claim_1(ctx: Context) -> Claim:
    spec = BY_NUMBER[1]
    ref = next(r for r in references.CLEAN if r["study"] == "adversarialmed")
    key = ctx.model(ref["task"])
    if key is None:
        return untested(spec, f"no fine-tuned MobileNet on {ref['task']} in this profile", "01_models")
    c = ctx.clean
    row = c[(c["task"] == key[0]) & (c["arch"] == key[1]) & (c["init"] == key[2])].iloc[0]
    n = ctx.n_of("clean", row)
    acc, auc = _est(row, "accuracy", n), _est(row, "auc", n)
    study = Evidence("clean test images", (Part("accuracy", acc), Part("AUC", auc)))
    val = float(ctx.model_row(key)["val_auc"])
    shift = (f"the Kermany train/test shift: validation AUC {val:.3f} vs test {auc.value:.3f} (chapter 1)"
             if val - auc.hi > 0 else "")
    return _claim(spec, study, None, ours_text=f"accuracy {acc.fmt()}, AUC {auc.fmt()}", our_setting=_setting(ctx, key),
                  reason=_reasons(shift, _ablation_reason(ctx, "auc", "clean AUC")), section="01_models", n_have=n,
                  details={"accuracy": acc.value, "auc": auc.value})


def _adversarialmed_rows(ctx: Context) -> tuple[tuple | None, pd.DataFrame]:
    key = ctx.model(references.ADVERSARIALMED_ATTACKS["task"])
    r = ctx.adversarialmed
    if key is None or r.empty:
        return None, r.iloc[:0]
    return key, r[(r["arch"] == key[1]) & (r["init"] == key[2])]


def _row(rows: pd.DataFrame, attack: str) -> pd.Series | None:
    sel = rows[rows["attack"] == attack]
    return sel.iloc[0] if not sel.empty else None


def _strongest_of(ctx: Context, rows: pd.DataFrame, label: str) -> Evidence:
    """The lowest accuracy and the lowest AUC over the attacks in ``rows`` (each its own row)."""
    acc_row = rows.loc[rows["accuracy"].astype(float).idxmin()]
    auc_row = rows.loc[rows["auc"].astype(float).idxmin()]
    return Evidence(f"{label}: accuracy {acc_row['attack']}, AUC {auc_row['attack']}",
                    (Part("accuracy", _est(acc_row, "accuracy", ctx.n_of("adversarialmed", acc_row))),
                     Part("AUC", _est(auc_row, "auc", ctx.n_of("adversarialmed", auc_row)))))


def claim_2(ctx: Context) -> Claim:
    spec = BY_NUMBER[2]
    key, rows = _adversarialmed_rows(ctx)
    fgsm, clean = (_row(rows, "fgsm"), _row(rows, "clean")) if key else (None, None)
    if fgsm is None or clean is None:
        return untested(spec, "no pneumonia_cxr fine-tuned model in this profile", "02_whitebox")
    n = ctx.n_of("adversarialmed", fgsm)
    acc, auc = _est(fgsm, "accuracy", n), _est(fgsm, "auc", n)
    c_acc, c_auc = _est(clean, "accuracy", n), _est(clean, "auc", n)
    study = Evidence("FGSM at the study's eps", (Part("accuracy", acc, c_acc), Part("AUC", auc, c_auc)))
    attacked = rows[rows["attack"] != "clean"]
    return _claim(spec, study, _strongest_of(ctx, attacked, "the study's four attacks"),
                  ours_text=f"accuracy {c_acc.value:.3f} -> {acc.fmt()}, AUC {c_auc.value:.3f} -> {auc.fmt()}",
                  our_setting=_setting(ctx, key) + ", the study's eps in pixels",
                  reason=_reasons(_ablation_reason(ctx, "robust_accuracy", "robust accuracy")), section="02_whitebox",
                  n_have=n, details={"accuracy": acc.value, "auc": auc.value})


def claim_3(ctx: Context) -> Claim:
    spec = BY_NUMBER[3]
    key, rows = _adversarialmed_rows(ctx)
    it = rows[rows["attack"].isin(["ifgsm", "pgd", "mifgsm"])] if key else rows
    clean = _row(rows, "clean") if key else None
    if it.empty or clean is None:
        return untested(spec, "no pneumonia_cxr fine-tuned model in this profile", "02_whitebox")
    weak_acc = it.loc[it["accuracy"].astype(float).idxmax()]
    weak_auc = it.loc[it["auc"].astype(float).idxmax()]
    n = ctx.n_of("adversarialmed", weak_acc)
    acc, auc = _est(weak_acc, "accuracy", n), _est(weak_auc, "auc", n)
    study = Evidence(f"the weakest iterative attack: accuracy {weak_acc['attack']}, AUC {weak_auc['attack']}",
                     (Part("accuracy", acc, _est(clean, "accuracy", n)), Part("AUC", auc, _est(clean, "auc", n))))
    strongest = _strongest_of(ctx, it, "the strongest iterative attack")
    return _claim(spec, study, strongest,
                  ours_text=f"highest accuracy {acc.fmt()} ({weak_acc['attack']}), highest AUC {auc.fmt()}",
                  our_setting=_setting(ctx, key) + f", {int(weak_acc['steps'])} steps",
                  reason=_reasons(_ablation_reason(ctx, "robust_accuracy", "robust accuracy")), section="02_whitebox",
                  n_have=n, details={r["attack"]: float(r["accuracy"]) for _, r in it.iterrows()})


def _not_believed(case) -> str:
    """Why chapter 7's number for ``case`` is not believed ("" when it is): the masking
    diagnostics fired and the escalated attack reached its cap still breaking images, so its
    robust number is an upper bound, not converged. A flagged case whose escalation converged is
    believed (its number is the escalated worst case)."""
    if not case.flagged or case.evaluation == CONVERGED:
        return ""
    return "the masking diagnostics flag it and the escalated attack did not converge (an upper bound)"


def _accuracy_gain(defended: float, undefended: float, n: int) -> Interval:
    """A defense's robust-accuracy gain over the undefended model on the same ``n`` images: unpaired
    (the record keeps rates, not per-image outcomes), Newcombe's difference of Wilson intervals."""
    return newcombe_difference(wilson(defended, n), wilson(undefended, n))


def claim_4(ctx: Context) -> Claim:
    spec = BY_NUMBER[4]
    cases = ctx.defenses.adversarial_training
    if not cases:
        return untested(spec, "no adversarially trained model in this profile's defense section", "07_defenses")
    n = ctx.n_of("defenses")
    half = max(n // 2, 1)

    def auc(x: float) -> Interval:
        # the record keeps AUCs and n, not per-image scores: Hanley-McNeil at balanced classes
        return hanley_mcneil(x, half, n - half)

    # both settings at the study's eps (1.15/255), every attack run to its last iteration: an early-stopped
    # attack's AUC is an upper bound; the grid's worst case (nearest eps) where the record has no such row
    at_study_eps = lambda c: math.isfinite(c.study_attacks_min_auc_adaptive)  # noqa: E731
    study_auc = lambda c: c.study_attacks_min_auc_adaptive if at_study_eps(c) else c.robust_auc_oblivious  # noqa: E731
    # the lowest adaptive AUC at the study's eps, the four study attacks included
    strongest_auc = lambda c: (c.strongest_auc_at_study_eps  # noqa: E731
                               if math.isfinite(c.strongest_auc_at_study_eps) else c.robust_auc_adaptive)
    eps_of = lambda c: c.study_eps_255 if math.isfinite(c.study_eps_255) else c.eps_255  # noqa: E731
    cs = min(cases, key=study_auc)
    ca = min(cases, key=strongest_auc)
    flag = _not_believed
    study = Evidence(f"the study's attacks on {cs.task} at {eps_of(cs):.2f}/255",
                     (Part("AUC attacked", auc(study_auc(cs)), auc(cs.undefended_robust_auc_adaptive)),
                      Part("AUC clean", auc(cs.clean_auc))), flagged=flag(cs))
    strongest = Evidence(f"the adaptive attacker on {ca.task} at {eps_of(ca):.2f}/255 (the study's four attacks "
                         "and APGD-margin, every iteration)",
                         (Part("AUC attacked", auc(strongest_auc(ca)), auc(ca.undefended_robust_auc_adaptive)),
                          Part("AUC clean", auc(ca.clean_auc))), flagged=flag(ca))
    reason = _reasons(f"{ca.task}: {_not_believed(ca)}" if _not_believed(ca) else "",
                      f"recipe shortened: {spec.recipe}")
    return _claim(spec, study, strongest,
                  ours_text=f"AUC {strongest_auc(ca):.3f} under the adaptive attacker at {eps_of(ca):.2f}/255 "
                            f"(undefended {ca.undefended_robust_auc_adaptive:.3f} at {ca.eps_255:g}/255), "
                            f"{ca.clean_auc:.3f} clean",
                  our_setting=f"{', '.join(c.task for c in cases)}; {ca.model}, AdversarialMed's recipe",
                  reason=reason, section="07_defenses", n_have=n,
                  details={c.task: strongest_auc(c) for c in cases})


def claim_5(ctx: Context) -> Claim:
    spec = BY_NUMBER[5]
    cases = ctx.defenses.preprocessing
    if not cases:
        return untested(spec, "no JPEG or VAE defense in this profile's defense section", "07_defenses")
    n = ctx.n_of("defenses")

    def gain(c, attacker: str) -> Interval:
        acc = c.oblivious_accuracy if attacker == "oblivious" else c.adaptive_accuracy
        return _accuracy_gain(acc, c.undefended_accuracy, n)

    low_o = min(cases, key=lambda c: gain(c, "oblivious").value)
    low_a = min(cases, key=lambda c: gain(c, "adaptive").value)
    study = Evidence(f"the attacker ignores the defense: smallest gain {low_o.defense} on {low_o.task}",
                     (Part("gain", gain(low_o, "oblivious")),))
    strongest = Evidence(f"the adaptive attacker: smallest gain {low_a.defense} on {low_a.task}",
                         (Part("gain", gain(low_a, "adaptive")),), flagged=_not_believed(low_a))
    reason = _reasons("the protection does not survive an attacker who knows the defense (BPDA / end-to-end, "
                      "chapter 7)" if gain(low_o, "oblivious").value > gain(low_a, "adaptive").value else "")
    return _claim(spec, study, strongest,
                  ours_text="; ".join(f"{c.defense}/{c.task}: {c.oblivious_accuracy:.3f} oblivious, "
                                      f"{c.adaptive_accuracy:.3f} adaptive (undefended {c.undefended_accuracy:.3f})"
                                      for c in cases),
                  our_setting=f"eps {low_a.eps_255:g}/255", reason=reason, section="07_defenses", n_have=n,
                  details={f"{c.defense}/{c.task}": c.adaptive_accuracy - c.undefended_accuracy for c in cases})


def claim_6(ctx: Context) -> Claim:
    spec = BY_NUMBER[6]
    r = ctx.finlayson
    tasks = [row["task"] for row in references.FINLAYSON_PGD["rows"]]
    adv = r[(r["attack"] != "clean") & r["task"].isin(tasks)] if not r.empty else r
    if adv.empty:
        return untested(spec, "none of the study's tasks is in this profile", "02_whitebox")
    weakest = adv.loc[adv["accuracy"].astype(float).idxmax()]
    clean = r[(r["attack"] == "clean") & (r["task"] == weakest["task"]) & (r["arch"] == weakest["arch"])
              & (r["init"] == weakest["init"])].iloc[0]
    n = ctx.n_of("finlayson", weakest)
    study = Evidence(f"targeted PGD, the weakest case: {weakest['task']} / {weakest['arch']}",
                     (Part("accuracy", _est(weakest, "accuracy", n), _est(clean, "accuracy", n)),))
    per = "; ".join(f"{t}: <= {g['accuracy'].max():.3f}" for t, g in adv.groupby("task", sort=False))
    return _claim(spec, study, None, ours_text=f"highest accuracy {study.parts[0].estimate.fmt()} ({per})",
                  our_setting=f"{', '.join(sorted(set(adv['task'])))}; every model of the profile",
                  reason=_reasons(_ablation_reason(ctx, "robust_accuracy", "robust accuracy")), section="02_whitebox",
                  n_have=n, details={f"{t}/{a}/{i}": float(x) for t, a, i, x in
                                     zip(adv["task"], adv["arch"], adv["init"], adv["accuracy"])})


def claim_7(ctx: Context) -> Claim:
    spec = BY_NUMBER[7]
    r = ctx.finlayson_blackbox
    if r.empty:
        return untested(spec, "no surrogate of a study task in this profile", "05_blackbox")
    sep = r[r["surrogate_kind"] == "seed"]
    if sep.empty:
        return untested(spec, "no separately trained surrogate of a study task in this profile", "05_blackbox")

    def evidence(rows: pd.DataFrame, label: str) -> Evidence:
        w = rows.loc[rows["target_rate"].astype(float).idxmin()]
        n = ctx.n_of("finlayson_blackbox", w)
        return Evidence(f"{label}: {w['task']}, {w['surrogate']}",
                        (Part("to the other class", wilson(float(w["target_rate"]), n),
                              wilson(float(1 - w["clean_accuracy"]), n)),))

    best = r.loc[r.groupby("task")["target_rate"].idxmax()]
    study = evidence(sep, "a separately trained surrogate (another seed), the weakest task")
    strongest = evidence(best, "the most successful surrogate per task, the weakest task")
    w = sep.loc[sep["target_rate"].astype(float).idxmin()]
    reason = _reasons(f"white box at the same setting reaches {float(w['white_target_rate']):.3f} on {w['task']}: "
                      "transfer, not the attack, falls short")
    per = "; ".join(f"{t}: {g['target_rate'].min():.3f}" for t, g in sep.groupby("task", sort=False))
    return _claim(spec, study, strongest, ours_text=f"lowest share pushed to the other class ({per})",
                  our_setting=f"{', '.join(dict.fromkeys(sep['task']))}", reason=reason, section="05_blackbox",
                  n_have=ctx.n_of("finlayson_blackbox", w),
                  details={f"{t}/{k}": float(x) for t, k, x in zip(r["task"], r["surrogate_kind"], r["target_rate"])})


def claim_8(ctx: Context) -> Claim:
    spec = BY_NUMBER[8]
    t = ctx.patches
    if t.empty:
        return untested(spec, "no patch task in this profile", "06_patches")

    def highest(kind: str) -> pd.Series:
        g = t[t["patch"] == kind]
        return g.loc[g["accuracy ours"].astype(float).idxmax()]

    def est(row: pd.Series) -> Interval:
        return _est(row, "accuracy", ctx.n_of("patches", row), value="accuracy ours")

    white, black = highest("white-box"), highest("black-box")
    nat = t[t["patch"] == "natural"]
    low_nat = nat.loc[(nat["accuracy ours"] - nat["clean accuracy"]).astype(float).idxmin()]
    n_nat = ctx.n_of("patches", low_nat)
    drop = newcombe_difference(wilson(float(low_nat["clean accuracy"]), n_nat), est(low_nat))
    clean = lambda row: wilson(float(row["clean accuracy"]), ctx.n_of("patches", row))  # noqa: E731
    study = Evidence("the study's patch (white-box, black-box) and a natural patch",
                     (Part("white-box", est(white), clean(white)), Part("black-box", est(black), clean(black)),
                      Part("natural drop", drop)))
    return _claim(spec, study, None,
                  ours_text=f"highest accuracy: white-box {est(white).fmt()}, black-box {est(black).fmt()}; natural "
                            f"{low_nat['accuracy ours']:.3f} (clean {low_nat['clean accuracy']:.3f})",
                  our_setting=f"{', '.join(dict.fromkeys(t['task']))}; {white['our model']}", reason="unexplained",
                  section="06_patches", n_have=ctx.n_of("patches", white),
                  details={f"{task}/{kind}": float(acc) for task, kind, acc in
                           zip(t["task"], t["patch"], t["accuracy ours"])})


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
            f"otherwise (median ceiling {c.median_ceiling:.3f}, their median rate {c.median_rate:.3f})")


def _spread(rows: pd.DataFrame, ctx: Context) -> Interval:
    """The largest spread of fooling rates across models (same task, norm, zeta), with a
    conservative interval from each UAP's own interval."""
    worst = Interval(math.nan)
    for _, g in rows.groupby(["task", "norm"]):
        if len(g) < 2:
            continue
        ivs = [_est(r, "rate", ctx.n_of("uap", r)) for _, r in g.iterrows()]
        value = max(i.value for i in ivs) - min(i.value for i in ivs)
        lo = max(0, max(i.lo for i in ivs) - min(i.hi for i in ivs))
        hi = max(i.hi for i in ivs) - min(i.lo for i in ivs)
        if not math.isfinite(worst.value) or value > worst.value:
            worst = Interval(value, lo, hi, len(g), "range of the models' intervals")
    return worst


def claim_9(ctx: Context) -> Claim:
    spec = BY_NUMBER[9]
    rows = _uap_rows(ctx, targeted=False)
    if rows.empty:
        return untested(spec, "no non-targeted UAP at the study's zeta in this profile", "03_uap")
    med = bootstrap_statistic(rows["rate"].astype(float).tolist(), seed=ctx.profile.seed)
    ctrl = bootstrap_statistic(rows["random"].astype(float).tolist(), seed=ctx.profile.seed)
    parts = [Part("fooling rate", med, ctrl)]
    spread = _spread(rows, ctx)
    if math.isfinite(spread.value):
        parts.append(Part("architecture spread", spread))
    study = Evidence(f"the median of {len(rows)} non-targeted UAPs", tuple(parts))
    bound = float(references.HIRANO_UAP["claim_success_rate"])
    return _claim(spec, study, None, ours_text=f"median {med.fmt()} over {len(rows)} UAPs; "
                                               f"{int((rows['rate'] > bound).sum())} above {bound:.0%}; random "
                                               f"controls median {ctrl.value:.3f}; largest spread across models "
                                               f"{spread.fmt()}",
                  our_setting=f"{len(set(rows['task']))} tasks x {len(set(rows['arch'] + rows['init']))} models x "
                              f"{len(set(rows['norm']))} norms, zeta {max(ctx.profile.uap.zetas):g}",
                  reason=_reasons(_collapse_reason(rows), _ablation_reason(ctx, "photo_uap", "photo-UAP fooling rate")),
                  section="03_uap", n_have=len(rows),
                  details={"n_uaps": len(rows), "above": int((rows["rate"] > bound).sum())})


def claim_10(ctx: Context) -> Claim:
    spec = BY_NUMBER[10]
    rows = _uap_rows(ctx, targeted=True)
    if rows.empty:
        return untested(spec, "no targeted UAP in this profile", "03_uap")
    med = bootstrap_statistic(rows["rate_all"].astype(float).tolist(), seed=ctx.profile.seed)
    excess = bootstrap_statistic((rows["rate_all"] - rows["random_all"]).astype(float).tolist(), seed=ctx.profile.seed)
    study = Evidence(f"the median of {len(rows)} targeted UAPs", (Part("success", med, bootstrap_statistic(
        rows["random_all"].astype(float).tolist(), seed=ctx.profile.seed)), Part("success - random", excess, NO_EFFECT)))
    return _claim(spec, study, None, ours_text=f"median {med.fmt()} over {len(rows)} targeted UAPs; excess over the "
                                               f"random control {excess.fmt()}",
                  our_setting=f"zeta {max(ctx.profile.uap.zetas):g}, {ctx.profile.name} profile",
                  reason=_reasons(_ablation_reason(ctx, "photo_uap", "photo-UAP fooling rate")), section="03_uap",
                  n_have=len(rows), details={"n_uaps": len(rows)})


def claim_11(ctx: Context) -> Claim:
    spec = BY_NUMBER[11]
    ref = references.MINAGI_NATURAL_UAP
    t = ctx.natural
    sel = t[(t["task"] == ref["task"]) & (t["norm"] == ref["norm"]) & np.isclose(t["zeta"].astype(float), ref["zeta"])] \
        if not t.empty else t
    ft = sel[sel["init"] == "imagenet"] if not sel.empty else sel
    if ft.empty:
        return untested(spec, f"no fine-tuned model on {ref['task']} with the study's norm and zeta", "04_natural_uap")
    f = ft.iloc[0]
    n = ctx.n_of("natural", f)
    photo, rnd, med = wilson(float(f["_natural"]), n), wilson(float(f["_random"]), n), wilson(float(f["_medical"]), n)
    parts = [Part("photo UAP", photo, rnd), Part("photo - random", newcombe_difference(photo, rnd), NO_EFFECT),
             Part("medical - photo", newcombe_difference(med, photo))]
    sc = sel[sel["init"] == "scratch"]
    if not sc.empty:
        parts.append(Part("fine-tuned - scratch", newcombe_difference(photo, wilson(float(sc.iloc[0]["_natural"]),
                                                                                     ctx.n_of("natural", sc.iloc[0])))))
    study = Evidence(f"the study's logged case: {ref['task']}, {f['arch']}", tuple(parts))
    drift = ctx.drift
    d = drift[drift["task"] == ref["task"]] if not drift.empty else drift
    drift_text = (f"weight drift from ImageNet of the fine-tuned model: "
                  f"{np.sqrt((d['relative_change'] ** 2 * d['parameters']).sum() / d['parameters'].sum()):.3f} of "
                  f"the norm (chapter 4)") if not d.empty else ""
    return _claim(spec, study, None, ours_text=f"fine-tuned {f['_natural']:.3f} vs random {f['_random']:.3f}, medical "
                                               f"UAP {f['_medical']:.3f}"
                                               + (f"; scratch {sc.iloc[0]['_natural']:.3f}" if not sc.empty else ""),
                  our_setting=f"{ref['task']}, {f['arch']}, {int(f['size'])} px, {int(f['n_natural'])} photos",
                  reason=_reasons(drift_text, _ablation_reason(ctx, "photo_uap", "photo-UAP fooling rate")),
                  section="04_natural_uap", n_have=n,
                  details={p.name: p.estimate.value for p in parts})


def claim_12(ctx: Context) -> Claim:
    spec = BY_NUMBER[12]
    d = ctx.defenses
    if not d.retraining:
        return untested(spec, "no UAP retraining in this profile's defense section", "07_defenses")
    k = len(d.retraining)
    share = wilson(d.helped_share, k)
    study = Evidence(f"{k} retrained models; helped = fooling rate down by >= {RETRAINING_HELPED:g}",
                     (Part("share helped", share), Part("some helped", share)))
    return _claim(spec, study, None, ours_text="; ".join(f"{c.task}: fresh-UAP fooling {c.fooling_before:.3f} -> "
                                                         f"{c.fooling_after:.3f} after {c.rounds} rounds"
                                                         for c in d.retraining),
                  our_setting=f"{k} cases", reason="unexplained", section="07_defenses", n_have=k,
                  details={c.task: c.fooling_before - c.fooling_after for c in d.retraining})


def claim_13(ctx: Context) -> Claim:
    spec = BY_NUMBER[13]
    cases = ctx.defenses.fgsm_training
    if not cases:
        return untested(spec, "the profile trains no one-step FGSM model (defense.adversarial lacks "
                              "'adversarialmed_fgsm')", "07_defenses")
    n = ctx.n_of("defenses")

    def gain(c) -> Interval:
        return _accuracy_gain(c.robust_accuracy_adaptive, c.undefended_robust_accuracy_adaptive, n)

    low = min(cases, key=lambda c: gain(c).value)
    w = AdversarialConfig("adversarialmed_fgsm").clean_weight
    both = Evidence(f"the adaptive attacker on {low.task} at {low.eps_255:g}/255", (Part("gain", gain(low)),),
                    flagged=_not_believed(low))
    return _claim(spec, both, None,
                  ours_text="; ".join(f"{c.task}: {c.robust_accuracy_adaptive:.3f} FGSM-trained vs "
                                      f"{c.undefended_robust_accuracy_adaptive:.3f} undefended" for c in cases),
                  our_setting=f"{', '.join(c.task for c in cases)}; {low.model}, one FGSM step of AdversarialMed's eps, "
                              f"loss {w:g} clean + {1 - w:g} adversarial",
                  reason=_reasons(f"{low.task}: {_not_believed(low)}" if _not_believed(low) else "",
                                  "the study's attack is the adaptive attacker here: the text names no attack"),
                  section="07_defenses", n_have=n, details={c.task: c.accuracy_gain for c in cases})


def claim_14(ctx: Context) -> Claim:
    spec = BY_NUMBER[14]
    rows = ctx.defenses.regularisation
    if not rows:
        return untested(spec, "the profile runs no regularisation experiment (defense.regularisation_fractions is "
                              "empty)", "07_defenses")
    small = min(rows, key=lambda r: r.fraction)
    gain = Interval(small.difference, small.difference_lo, small.difference_hi, small.seeds,
                    "paired t-interval over seeds")
    both = Evidence(f"{small.task}, {small.fraction:.0%} of the training images ({small.n_train}), "
                    f"{small.seeds} seeds", (Part("AUC gain", gain),))
    return _claim(spec, both, None,
                  ours_text="; ".join(f"{r.fraction:.0%}: {r.adversarial_auc:.3f} adversarial vs {r.standard_auc:.3f} "
                                      f"standard" for r in rows),
                  our_setting=f"{small.task}; the defended model's recipe with and without AdversarialMed's "
                              "adversarial loss, paired by seed",
                  reason=_reasons("" if small.seeds >= 2 else "one seed: no interval over seeds"),
                  section="07_defenses", n_have=small.seeds,
                  details={f"{r.fraction:g}": r.difference for r in rows})


def claim_15(ctx: Context) -> Claim:
    spec = BY_NUMBER[15]
    t = ctx.perceptibility
    z = max(ctx.profile.uap.zetas)
    rows = t[np.isclose(t["zeta"].astype(float), z)] if len(t) else t
    if rows.empty:
        return untested(spec, "no UAP at the study's zeta in this profile", "03_uap")
    ssim = bootstrap_statistic(rows["ssim"].astype(float).tolist(), seed=ctx.profile.seed)
    study = Evidence(f"the median of {len(rows)} UAPs at zeta {z:g}", (Part("SSIM", ssim),))
    return _claim(spec, study, None,
                  ours_text=f"median SSIM {ssim.fmt()} over {len(rows)} UAPs (lowest {rows['ssim'].min():.3f}); "
                            f"largest L-inf {rows['linf_255'].max():.1f}/255, lowest median PSNR "
                            f"{rows['psnr_db'].min():.1f} dB",
                  our_setting=f"zeta {z:g}, {len(set(rows['norm']))} norms; SSIM on held-out images",
                  reason=_reasons(f"{int((rows['ssim'] < IMPERCEPTIBLE_SSIM).sum())} of {len(rows)} UAPs below SSIM "
                                  f"{IMPERCEPTIBLE_SSIM:g}" if (rows["ssim"] < IMPERCEPTIBLE_SSIM).any() else ""),
                  section="03_uap", n_have=len(rows), details={"n_uaps": len(rows)})


def claim_16(ctx: Context) -> Claim:
    spec = BY_NUMBER[16]
    t = ctx.natural_targeted
    if t.empty:
        return untested(spec, "no targeted photo UAP in this profile", "04_natural_uap")
    excess = bootstrap_statistic((t["_natural"] - t["_random"]).astype(float).tolist(), seed=ctx.profile.seed)
    study = Evidence(f"the median of {len(t)} targeted photo UAPs", (Part("success - random", excess, NO_EFFECT),))
    return _claim(spec, study, None,
                  ours_text=f"median excess over the random control {excess.fmt()} over {len(t)} targeted photo UAPs; "
                            f"median success {t['_natural'].median():.3f} (medical-image UAPs "
                            f"{t['_medical'].median():.3f})",
                  our_setting=f"{len(set(t['task']))} tasks, {len(set(t['arch'] + t['init']))} models, "
                              f"{len(set(t['norm']))} norms; zeta {', '.join(f'{z:g}' for z in sorted(set(t['zeta'])))}",
                  reason=_reasons(_ablation_reason(ctx, "photo_uap", "photo-UAP fooling rate")),
                  section="04_natural_uap", n_have=len(t), details={"n_uaps": len(t)})


def claim_17(ctx: Context) -> Claim:
    spec = BY_NUMBER[17]
    cs, tr = ctx.cross_source, ctx.natural_transfer
    parts, texts = [], []
    if not cs.empty:
        a, b = [c[: -len("_medical")] for c in cs.columns if c.endswith("_medical")]
        weaker = (np.minimum(cs[f"{a}_medical"], cs[f"{b}_medical"]) - cs["random"]).astype(float)
        parts.append(Part("weaker source - random", bootstrap_statistic(weaker.tolist(), seed=ctx.profile.seed),
                          NO_EFFECT))
        texts.append(f"{a} vs {b} photos: medians {cs[f'{a}_medical'].median():.3f} and {cs[f'{b}_medical'].median():.3f}"
                     f" (random {cs['random'].median():.3f}) over {len(cs)} settings")
    off = tr[tr["built on"] != tr["applied to"]] if not tr.empty else tr
    if not off.empty:
        parts.append(Part("other architecture", bootstrap_statistic(off["fooling rate"].astype(float).tolist(),
                                                                    seed=ctx.profile.seed), NO_EFFECT))
        texts.append(f"applied to another model: median {off['fooling rate'].median():.3f} over {len(off)} pairs")
    if not parts:
        return untested(spec, "no second photo source and no other model of a task in this profile", "04_natural_uap")
    study = Evidence("the medians over settings and model pairs", tuple(parts))
    return _claim(spec, study, None, ours_text="; ".join(texts),
                  our_setting=f"animal vs other ImageNet classes, zeta {max(ctx.profile.uap.zetas):g}",
                  reason=_reasons("the second collection is a split of the same ImageNet photos, not Open Images"),
                  section="04_natural_uap", n_have=len(cs) + len(off),
                  details={p.name: p.estimate.value for p in parts})


def claim_18(ctx: Context) -> Claim:
    spec = BY_NUMBER[18]
    t = ctx.natural
    keys = ["task", "arch", "norm", "zeta"]
    pivot = t.pivot_table(index=keys, columns="init", values="_natural") if not t.empty else pd.DataFrame()
    if not {"imagenet", "scratch"} <= set(pivot.columns):
        return untested(spec, "no architecture both fine-tuned and trained from scratch in this profile",
                        "04_natural_uap")
    both = pivot.dropna(subset=["imagenet", "scratch"])
    rnd = t[t["init"] == "scratch"].set_index(keys)["_random"].reindex(both.index).astype(float)
    diff = (both["imagenet"] - both["scratch"]).astype(float)
    excess = (both["scratch"] - rnd).astype(float)
    parts = (Part("fine-tuned - scratch", bootstrap_statistic(diff.tolist(), seed=ctx.profile.seed)),
             Part("scratch - random", bootstrap_statistic(excess.tolist(), seed=ctx.profile.seed)))
    study = Evidence(f"the medians over {len(both)} settings", parts)
    return _claim(spec, study, None,
                  ours_text=f"fine-tuned minus scratch: median {diff.median():+.3f}; scratch minus its random control: "
                            f"median {excess.median():+.3f} ({len(both)} settings)",
                  our_setting=f"{', '.join(sorted(set(both.index.get_level_values('arch'))))}, fine-tuned and from "
                              "scratch",
                  reason=_reasons(_ablation_reason(ctx, "photo_uap", "photo-UAP fooling rate")),
                  section="04_natural_uap", n_have=len(both), details={p.name: p.estimate.value for p in parts})


def claim_19(ctx: Context) -> Claim:
    spec = BY_NUMBER[19]
    q = ctx.queries
    rows = q[q["attack"] == LABEL_ONLY_ATTACK] if not q.empty else q
    if rows.empty or int(rows["n"].sum()) == 0:
        return untested(spec, "no label-only attack in this profile's black-box chapter", "05_blackbox")
    n = int(rows["n"].sum())
    fooled = float((rows["success"] * rows["n"]).sum()) / n
    study = Evidence(f"{n} attacked images over {len(rows)} tasks", (Part("label-only success", wilson(fooled, n)),))
    return _claim(spec, study, None,
                  ours_text="; ".join(f"{r.task}: {r.success:.3f} of {int(r.n)} within {int(r.budget):,} queries"
                                      for r in rows.itertuples()),
                  our_setting=f"HopSkipJump, L-inf {rows['eps'].max() * 255:g}/255, "
                              f"{int(rows['budget'].min()):,}-{int(rows['budget'].max()):,} queries per image",
                  reason="", section="05_blackbox", n_have=n, details={r.task: r.success for r in rows.itertuples()})


CLAIMS: dict[int, Callable[[Context], Claim]] = {
    1: claim_1, 2: claim_2, 3: claim_3, 4: claim_4, 5: claim_5, 6: claim_6, 7: claim_7, 8: claim_8, 9: claim_9,
    10: claim_10, 11: claim_11, 12: claim_12, 13: claim_13, 14: claim_14, 15: claim_15, 16: claim_16,
    17: claim_17, 18: claim_18, 19: claim_19,
}


def read_records(profile: Profile) -> list[Record]:
    """Every family's record of ``profile``, in chapter order (what :func:`all_claims` reads)."""
    return [read_record(cls, profile) for cls in RECORDS.values()]


def all_claims(profile: Profile, *, records: Iterable[Record] = ()) -> list[Claim]:
    """Every registry claim, from the headline records chapters 1-7 wrote for ``profile``
    (``records``: any to use instead of the cache's)."""
    ctx = Context(profile, records=records)
    return [CLAIMS[n](ctx) for n in sorted(CLAIMS)]


__all__ = ["CLAIMS", "RESOLUTION_EFFECT", "STUDY_SIDES", "Context", "all_claims", "read_records"]
