"""The tables of chapter 7: settings, every defense clean / oblivious / adaptive, the studies'
claims beside ours, masking diagnostics, UAP retraining rounds, the certified baseline, costs.

Inputs are the typed results of :mod:`.run`. Accuracy and AUC carry percentile-bootstrap 95 %
intervals where the table says so; every eps is an L-inf budget in /255 pixel levels.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from ...plots import task_label
from .. import references
from ..profiles import Profile
from ...attacks.escalate import NOT_CONVERGED
from .evaluate import AUC_ATTACK, STUDY_ATTACKS
from .registry import REFERENCE, claimed, is_reference
from .regularisation import regularisation_summary
from .run import CertifiedRun, DefenseResults, DefenseRun

#: Our reading of Hirano et al.'s "helped": a fresh UAP of the retrained model fools at least
#: this share of images fewer than the UAPs of the model before retraining did (the study gives
#: no threshold in our sources).
RETRAINING_HELPED = 0.10
#: Our reading of "protects partly": the defense keeps at least this much more robust accuracy
#: than the undefended model at the same budget, yet less than its own clean accuracy.
PARTIAL_GAIN = 0.05


def adversarialmed_eps_255() -> float:
    """AdversarialMed's attack budget (0.02 ImageNet-normalised) in /255 pixel levels (1.15)."""
    return references.eps_to_pixels(references.ADVERSARIALMED_DEFENSES["attack_eps_normalised"],
                                    "imagenet_normalised") * 255


def nearest_eps(results: DefenseResults, eps_255: float) -> float:
    """The budget of the results' grid closest to ``eps_255`` (the grid the profile ran)."""
    grid = sorted({float(e) for r in results.runs for e in r.curves.eps_255})
    return min(grid, key=lambda e: abs(e - float(eps_255))) if grid else float("nan")


def settings_table(profile: Profile) -> pd.DataFrame:
    """The chapter's settings, one row each (``profile.defense``)."""
    s = profile.defense
    values = {
        "defended model of each task": s.model, "tasks": ", ".join(s.tasks or profile.tasks),
        "test images per task": "all" if s.n_images is None else s.n_images,
        "eps grid (L-inf, /255)": ", ".join(f"{e:g}" for e in s.eps_255),
        "oblivious attack": f"PGD on the undefended model, {s.steps} iterations, transferred",
        "adaptive attack": (f"robust ensemble ({profile.whitebox.robust_steps} iterations per member) on the "
                            "defended model (BPDA for JPEG, end to end through the VAE), PGD through kornia's "
                            f"differentiable JPEG, EOT-PGD ({s.eot_samples} draws) through the sampled VAE, "
                            "and the oblivious images; the worst case per image"),
        "JPEG quality": s.jpeg_quality,
        "adversarial training": ", ".join(s.adversarial) + (f" (PGD / fast FGSM at {s.pgd_eps_255:g}/255)"
                                                             if set(s.adversarial) - {"adversarialmed"} else ""),
        "adversarial-training recipe (differs from the zoo's)": ", ".join(
            [f"{k}={v}" for k, v in s.at_train.items()]
            + (["fine-tunes the zoo model"] if s.at_warm_start else [])) or "none",
        "VAE": f"{'patches of ' + str(s.vae_patch) + ' px' if s.vae_patch else 'whole images'}, width {s.vae_width}, "
               f"{s.vae_latent} latent channels, {s.vae_levels} levels, {s.vae_epochs} epochs",
        "UAP retraining": f"{s.retrain_rounds} rounds x {s.retrain_uaps} UAPs ({s.retrain_norm}, zeta {s.retrain_zeta:g}, "
                          f"{s.retrain_uap_images} images each), {s.retrain_epochs} epoch(s) per round",
        "randomized smoothing": (f"{s.smoothing_task}, sigma {s.smoothing_sigma:g}, n0 {s.smoothing_n0}, n "
                                 f"{s.smoothing_n:,}, alpha {s.smoothing_alpha:g}, {s.smoothing_images} images")
        if s.smoothing_task else "not run",
        "masking diagnostics": f"{s.diag_images} images per defended model; surrogate: the undefended model",
        "bootstrap resamples": profile.eval.n_boot, "seed": profile.seed,
    }
    return pd.DataFrame({"value": [str(v) for v in values.values()]}, index=pd.Index(list(values), name="setting"))


def _verdict(run: DefenseRun) -> str:
    if is_reference(run.defense):
        return "reference"
    if not len(run.diagnostics):
        return "not checked"
    failed = run.diagnostics.loc[~run.diagnostics["passed"].astype(bool), "check"].tolist()
    return "passed" if not failed else f"flagged ({', '.join(failed)}), escalated: {run.evaluation}"


def _escalation_note(run: DefenseRun, eps_255: float) -> str:
    """What the escalation did at ``eps_255``: accuracy before -> after, the stages that broke
    images (how many each) and the budget's status; empty when none ran."""
    path = run.escalation_at(eps_255)
    if not len(path):
        return ""
    before, after = float(path.accuracy.iloc[0]), float(path.accuracy.iloc[-1])
    broke = path[path.newly_broken > 0]
    found = ", ".join(f"{st} ({int(k)})" for st, k in zip(broke.stage, broke.newly_broken)) or "no stage broke an image"
    return f"{before:.3f} -> {after:.3f}; {found}; {path.status.iloc[-1]}"


def defense_table(results: DefenseResults, eps_255: float) -> pd.DataFrame:
    """One row per (task, defense) at ``eps_255``: clean accuracy / AUC, oblivious and adaptive
    robust accuracy / AUC side by side (each also after rounding the adversarial images to 8
    bits), the masking diagnostics' verdict and the costs (numbers)."""
    rows = []
    for r in results.runs:
        c = r.clean.iloc[0]
        row = {"task": r.task, "defense": r.label, "clean_accuracy": c.accuracy, "clean_auc": c.auc}
        for a in ("oblivious", "adaptive"):
            row[f"{a}_accuracy"] = r.robust(a, eps_255)
            row[f"{a}_auc"] = r.robust(a, eps_255, "auc")
            row[f"{a}_accuracy_8bit"] = r.robust(a, eps_255, "accuracy_8bit")
        row["adaptive_minus_oblivious"] = row["adaptive_accuracy"] - row["oblivious_accuracy"]
        row["diagnostics"] = _verdict(r)
        row["escalation"] = _escalation_note(r, eps_255)
        row["train_s"] = r.train_seconds
        row["infer_ms_per_image"] = 1000 * r.infer_seconds
        rows.append(row)
    return pd.DataFrame(rows)


def _row(study, claim, figure, setting, ours_obl, ours_ada, ours_setting, difference, reading):
    return {"study": study, "statement": claim, "study figure": figure, "study setting": setting,
            "ours (oblivious)": ours_obl, "ours (adaptive)": ours_ada, "our setting": ours_setting,
            "difference (adaptive - study)": difference, "reading": reading}


def _fmt(v: float) -> str:
    return "n/a" if v is None or not np.isfinite(v) else f"{v:.3f}"


def _partial_reading(run: DefenseRun, none: DefenseRun | None, eps: float) -> str:
    if none is None:
        return ""
    base = none.robust("adaptive", eps)
    obl, ada = run.robust("oblivious", eps) - base, run.robust("adaptive", eps) - base
    what = ("protects partly" if ada >= PARTIAL_GAIN else "does not protect against the adaptive attacker")
    return (f"over the undefended model's {base:.3f}: +{obl:.3f} oblivious, +{ada:.3f} adaptive; {what}"
            + (f"; diagnostics flag it, escalated: {run.evaluation}" if run.flagged else ""))


def study_table(results: DefenseResults) -> pd.DataFrame:
    """AdversarialMed's and Hirano et al.'s defense claims beside ours, oblivious and adaptive
    side by side. Robust numbers are at the grid budget nearest AdversarialMed's 1.15/255."""
    ref, hir = references.ADVERSARIALMED_DEFENSES, references.HIRANO_RETRAINING
    eps = nearest_eps(results, adversarialmed_eps_255())
    set_am = f"DenseNet-121 (CheXNet), 224 px, {ref['task']}, eps 0.02 normalised (1.15/255)"
    rows = []
    for task in results.tasks:
        first = len(rows)
        none = results.get(task, REFERENCE)
        model = next(r.model for r in results.runs if r.task == task)  # every defense of a task: one architecture
        ours = f"{task}, {model}, eps {eps:g}/255"
        for at in (results.get(task, name) for name in claimed("adversarial_training")):
            if at is None:
                continue
            clean = float(at.clean.auc.iloc[0])
            rows.append(_row("AdversarialMed", "adversarial training: clean AUC", f"about {ref['at_clean_auc']:.2f}",
                             set_am, _fmt(clean), _fmt(clean), ours, clean - ref["at_clean_auc"],
                             "clean: no attacker"))
            obl, ada = at.robust("oblivious", eps, "auc"), at.robust("adaptive", eps, "auc")
            rows.append(_row("AdversarialMed", "adversarial training: AUC under attack",
                             f"> {ref['at_robust_auc_min']:.2f}", set_am, _fmt(obl), _fmt(ada), ours,
                             ada - ref["at_robust_auc_min"],
                             ("holds" if ada > ref["at_robust_auc_min"] else "does not hold") + " under the adaptive "
                             "attacker (with APGD-margin run every iteration among its sources)"
                             + (f"; diagnostics flag it, escalated: {at.evaluation}" if at.flagged else "")))
            sa = at.study_attacks
            if len(sa):
                four = sa[sa.attack.isin(STUDY_ATTACKS)]
                lo = {a: float(four[four.attacker == a].auc.min()) for a in ("oblivious", "adaptive")}
                rows.append(_row("AdversarialMed", "adversarial training: lowest AUC under FGSM / I-FGSM / PGD / "
                                 "MI-FGSM at the study's setting", f"> {ref['at_robust_auc_min']:.2f}", set_am,
                                 _fmt(lo["oblivious"]), _fmt(lo["adaptive"]),
                                 f"{task}, {at.model}, eps {float(sa.eps_255.iloc[0]):.2f}/255, "
                                 f"{int(four.steps.iloc[0])} steps", lo["adaptive"] - ref["at_robust_auc_min"],
                                 "the study's own measure (last iterate)"))
                strong = sa[sa.attack == AUC_ATTACK]
                if len(strong):
                    low = {a: float(sa[sa.attacker == a].auc.min()) for a in ("oblivious", "adaptive")}
                    rows.append(_row("AdversarialMed", "adversarial training: lowest AUC under any attack at the "
                                     "study's eps (the four and APGD-margin, every iteration)",
                                     f"> {ref['at_robust_auc_min']:.2f}", set_am, _fmt(low["oblivious"]),
                                     _fmt(low["adaptive"]), f"{task}, {at.model}, eps {float(sa.eps_255.iloc[0]):.2f}"
                                     f"/255, APGD-margin {int(strong.steps.iloc[0])} steps",
                                     low["adaptive"] - ref["at_robust_auc_min"],
                                     ("holds" if low["adaptive"] > ref["at_robust_auc_min"] else "does not hold")
                                     + ": the strongest AUC measure (no early stop)"))
        for name in claimed("preprocessing"):
            run = results.get(task, name)
            if run is None:
                continue
            rows.append(_row("AdversarialMed", f"{run.label}: robust accuracy", ref.get(name, "not studied"), set_am,
                             _fmt(run.robust("oblivious", eps)), _fmt(run.robust("adaptive", eps)), ours, float("nan"),
                             _partial_reading(run, none, eps)))
        for rt in (results.get(task, name) for name in claimed("retraining")):
            if rt is None or not len(rt.history):
                continue
            h = rt.history
            before, after = float(h.fooling_before.iloc[0]), float(h.fooling_after.iloc[-1])
            helped = before - after >= RETRAINING_HELPED
            rows.append(_row("Hirano et al.", "UAP retraining: fooling rate of a fresh UAP, before -> after",
                             "helps in only very few cases", f"{hir['rounds']} rounds x {hir['uaps_per_round']} UAPs "
                             f"({hir['source']})",
                             f"{before:.3f} -> {after:.3f}", f"{before:.3f} -> {after:.3f}",
                             f"{task}, {rt.model}, {len(h)} round(s)", after - before,
                             ("helped" if helped else "did not help") + f" (our threshold: a drop >= {RETRAINING_HELPED:g})"))
        for row in rows[first:]:
            row["task"] = task
    out = pd.DataFrame(rows)
    return out[["task"] + [c for c in out.columns if c != "task"]] if len(out) else out


def study_attacks_table(results: DefenseResults, metric: str = "auc") -> pd.DataFrame:
    """AdversarialMed's four attacks at their setting: one row per (task, defense), one column per
    attack and attacker (``metric`` of the last iterate on the defended model)."""
    frames = [r.study_attacks.assign(task=r.task, defense=r.label) for r in results.runs
              if len(r.study_attacks) and metric in r.study_attacks]
    if not frames:
        return pd.DataFrame()
    out = pd.concat(frames, ignore_index=True)
    wide = out.pivot_table(index=["task", "defense"], columns=["attack", "attacker"], values=metric, sort=False)
    wide.columns = [f"{a} ({k})" for a, k in wide.columns]
    return wide.reset_index()


def curves_table(results: DefenseResults) -> pd.DataFrame:
    """Every curve (clean rows included), for the appendix."""
    return results.curves()


def sources_table(results: DefenseResults) -> pd.DataFrame:
    """Which adaptive source did the work: the accuracy each leaves alone, per eps."""
    frames = [r.sources.assign(task=r.task, defense=r.label) for r in results.runs]
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return out.pivot_table(index=["task", "defense", "source"], columns="eps_255", values="accuracy",
                           sort=False) if len(out) else out


def escalation_table(results: DefenseResults) -> pd.DataFrame:
    """Every escalation path (flagged defenses only): per task, defense and budget the adaptive
    worst case it started from, then each stage: images attacked, newly broken, the accuracy
    after it, seconds, and the budget's status."""
    frames = [r.escalation.assign(task=r.task, defense=r.label) for r in results.runs if len(r.escalation)]
    if not frames:
        return pd.DataFrame({"note": ["the masking diagnostics flagged no defense: nothing was escalated"]})
    out = pd.concat(frames, ignore_index=True)
    lead = ["task", "defense", "eps_255", "stage", "source", "attacked", "newly_broken", "accuracy", "seconds",
            "status"]
    return out[lead]


def diagnostics_table(results: DefenseResults) -> pd.DataFrame:
    """The masking checks of every defended model."""
    frames = [r.diagnostics.assign(task=r.task, defense=r.label) for r in results.runs if len(r.diagnostics)]
    if not frames:
        return pd.DataFrame()
    out = pd.concat(frames, ignore_index=True)
    return out[["task", "defense", "check", "passed", "summary", "numbers"]]


def retraining_table(results: DefenseResults) -> pd.DataFrame:
    """Hirano et al.'s rounds: fooling rates before, of the same UAPs after, of fresh UAPs after."""
    frames = [r.history.assign(task=r.task) for r in results.runs if r.defense == "uap_retraining" and len(r.history)]
    if not frames:
        return pd.DataFrame()
    out = pd.concat(frames, ignore_index=True)
    return out[["task"] + [c for c in out.columns if c != "task"]]


def regularisation_table(results: DefenseResults) -> pd.DataFrame:
    """AdversarialMed's regularisation experiment per training fraction: each recipe's clean test
    AUC (mean over seeds [95 % t-interval]) and the paired difference, adversarial minus standard."""
    s = regularisation_summary(results.regularisation)
    if s.empty:
        return pd.DataFrame({"note": ["the profile runs no regularisation experiment"]})

    def cell(v: float, lo: float, hi: float) -> str:
        return f"{v:.3f}" + (f" [{lo:.3f}, {hi:.3f}]" if np.isfinite(lo) else "")

    return pd.DataFrame({"task": s.task, "training images": [f"{f:.0%} ({n})" for f, n in zip(s.fraction, s.n_train)],
                         "seeds": s.seeds,
                         "standard": [cell(*v) for v in zip(s.standard_auc, s.standard_lo, s.standard_hi)],
                         "adversarial": [cell(*v) for v in zip(s.adversarial_auc, s.adversarial_lo, s.adversarial_hi)],
                         "adversarial - standard": [cell(*v) for v in zip(s.difference, s.difference_lo,
                                                                           s.difference_hi)]})


def certified_table(cert: CertifiedRun | None) -> pd.DataFrame:
    """Certified accuracy against the L2 radius ([0, 1] pixels; also in /255 L2 units)."""
    if cert is None:
        return pd.DataFrame()
    return cert.curve.assign(radius_255=cert.curve.radius * 255)[["radius", "radius_255", "certified_accuracy"]]


def cost_table(results: DefenseResults) -> pd.DataFrame:
    """Training seconds and inference milliseconds per image of each defense."""
    rows = [{"task": r.task, "defense": r.label, "train_s": r.train_seconds,
             "infer_ms_per_image": 1000 * r.infer_seconds} for r in results.runs]
    if results.certified is not None:
        c = results.certified
        rows.append({"task": c.task, "defense": f"randomized smoothing (sigma {c.sigma:g})", "train_s": c.train_seconds,
                     "infer_ms_per_image": 1000 * c.certify_seconds / max(1, c.n_images)})
    return pd.DataFrame(rows)


__all__ = ["PARTIAL_GAIN", "RETRAINING_HELPED", "adversarialmed_eps_255", "certified_table", "cost_table",
           "curves_table", "defense_table", "escalation_table", "regularisation_table", "study_attacks_table", "diagnostics_table", "nearest_eps", "retraining_table",
           "settings_table", "sources_table", "study_table"]


# --------------------------------------------------------------------------- the page's summaries
# In-text tables: a few short columns; the long tables above go to the chapter's appendix.
SETTINGS_BRIEF = ("defended model of each task", "tasks", "test images per task", "eps grid (L-inf, /255)",
                  "JPEG quality", "adversarial training")


def settings_brief(profile: Profile) -> pd.DataFrame:
    """The few settings a reader needs to read the chapter (every one is in the appendix)."""
    full = settings_table(profile)
    keep = [r for r in SETTINGS_BRIEF if r in full.index]
    return full.loc[keep].reset_index()


def study_summary(results: DefenseResults) -> pd.DataFrame:
    """:func:`study_table` in five columns: the task, the claim, the study's figure, ours against
    the oblivious and against the adaptive attacker."""
    t = study_table(results)
    if t.empty:
        return t
    return pd.DataFrame({"task": t["task"], "the study's claim": t["study"] + ": " + t["statement"],
                         "study": t["study figure"],
                         "ours, oblivious": t["ours (oblivious)"], "ours, adaptive": t["ours (adaptive)"]})


def defense_summary(results: DefenseResults, eps_255: float) -> pd.DataFrame:
    """:func:`defense_table` for the page: accuracy clean, against the oblivious and against
    the adaptive attacker (as found, and rounded to 8 bits), and whether the diagnostics believe
    the number."""
    t = defense_table(results, eps_255)
    if t.empty:
        return t
    return pd.DataFrame({"task": t["task"], "defense": t["defense"], "clean": t["clean_accuracy"],
                         "oblivious": t["oblivious_accuracy"], "adaptive": t["adaptive_accuracy"],
                         "8-bit": t["adaptive_accuracy_8bit"],
                         "evaluation": t["diagnostics"].astype(str).map(_evaluation_short)})


def _evaluation_short(d: str) -> str:
    """A diagnostics verdict in a word: passed, not checked, reference, converged or upper bound."""
    if not d.startswith("flagged"):
        return d
    return "upper bound" if d.endswith(NOT_CONVERGED) else "converged"


def study_attacks_summary(results: DefenseResults) -> pd.DataFrame:
    """:func:`study_attacks_table` in short: per defense the lowest AUC over the studies' four
    attacks, oblivious and adaptive; APGD-margin's (adaptive, every iteration); and the lowest
    adaptive AUC of all five once the images are rounded to 8 bits."""
    t = study_attacks_table(results)
    if t.empty:
        return t
    def cols(frame: pd.DataFrame, attacker: str, attacks: Sequence[str]) -> list[str]:
        return [f"{a} ({attacker})" for a in attacks if f"{a} ({attacker})" in frame.columns]

    t8 = study_attacks_table(results, "auc_8bit")
    out = pd.DataFrame({"task": t["task"], "defense": t["defense"],
                        "the four, oblivious": t[cols(t, "oblivious", STUDY_ATTACKS)].min(axis=1),
                        "the four, adaptive": t[cols(t, "adaptive", STUDY_ATTACKS)].min(axis=1)})
    strong = cols(t, "adaptive", (AUC_ATTACK,))
    if strong:
        out["APGD-margin, adaptive"] = t[strong[0]]
    every = cols(t8, "adaptive", (*STUDY_ATTACKS, AUC_ATTACK))
    out["all five, adaptive, 8-bit"] = t8[every].min(axis=1) if every and len(t8) == len(t) else np.nan
    return out


#: Up to this many defended tasks the ranking shows a column per task; beyond, the worst and best.
RANKING_TASK_COLUMNS = 3


def defense_ranking(results: DefenseResults, eps_255: float) -> pd.DataFrame:
    """One row per defense, best first: the adaptive attacker's robust accuracy at ``eps_255``
    on each task (a column each) and its mean, the clean accuracy it costs (mean over tasks,
    against the undefended model) and how the number is believed (the worst over its tasks:
    "upper bound" if any task's escalation did not converge)."""
    t = defense_table(results, eps_255)
    if t.empty:
        return t
    t = t.assign(evaluation=t["diagnostics"].astype(str).map(_evaluation_short))
    undefended = {}
    for r in results.runs:
        if is_reference(r.defense):
            undefended[r.task] = float(r.clean.iloc[0].accuracy)
    order = ("upper bound", "converged", "passed", "not checked", "reference")
    per_task = t["task"].nunique() <= RANKING_TASK_COLUMNS
    rows = []
    for label, g in t.groupby("defense", sort=False):
        row = {"defense": label}
        if per_task:
            for _, r in g.iterrows():
                row[task_label(r["task"])] = float(r["adaptive_accuracy"])
        else:
            row["worst task"], row["best task"] = float(g["adaptive_accuracy"].min()), float(g["adaptive_accuracy"].max())
        row["mean"] = float(g["adaptive_accuracy"].mean())
        row["clean cost"] = float(np.mean([undefended.get(r["task"], np.nan) - r["clean_accuracy"]
                                           for _, r in g.iterrows()]))
        row["evaluation"] = min(g["evaluation"], key=lambda e: order.index(e) if e in order else len(order))
        rows.append(row)
    return pd.DataFrame(rows).sort_values("mean", ascending=False, kind="stable").reset_index(drop=True)
