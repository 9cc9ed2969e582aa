"""The prose of chapter 7 and the typed numbers of its claims (4, 5 and 12 of the claims chapter).

Each reading returns Markdown computed from :mod:`.run` and :mod:`.tables`, so the chapter's
words change when the numbers do. :func:`claim_numbers` gives the claims chapter what its
verdicts need, as typed values (never a dict indexed by position).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Mapping, NamedTuple

import pandas as pd

from ...attacks.escalate import CONVERGED
from ...plots import task_label
from ...train import AdversarialConfig
from .. import references
from ..kernel.records import DefensesRecord, make_record
from ..profiles import PROFILES, Profile
from ..zoo import ModelKey, stopping
from .builders.adversarial import adversarial_train_config
from .registry import DEFENSES, REFERENCE, claimed, is_reference
from .evaluate import STUDY_ATTACKS
from .regularisation import regularisation_summary
from .run import DefenseResults
from .tables import PARTIAL_GAIN, RETRAINING_HELPED, adversarialmed_eps_255, nearest_eps

#: The profile whose sizes are the full ones, that :func:`budget_note` compares a profile with.
FULL_PROFILE = "paper"


class DefenseStudy(NamedTuple):
    """The settings chapter 7's prose quotes (glued, never typed): AdversarialMed's JPEG quality
    (:mod:`advmed.experiments.references`) and the profile's; AdversarialMed's adversarial training
    as :class:`advmed.train.AdversarialConfig` runs it (loss weights; eps and step in
    ImageNet-normalised units, eps also in /255; iterations); the study budget in /255; and our
    readings of the studies' words (:data:`.tables.PARTIAL_GAIN`, :data:`.tables.RETRAINING_HELPED`)."""

    jpeg_quality_study: int
    jpeg_quality: int
    at_clean_weight: float
    at_adv_weight: float
    at_eps: float
    at_eps_255: float
    at_step: float
    at_steps: int
    eps_255: float
    partial_gain: float
    retraining_helped: float


def study_numbers(profile: Profile) -> DefenseStudy:
    """:class:`DefenseStudy` for ``profile``."""
    at = AdversarialConfig("adversarialmed")
    std = references.IMAGENET_MEAN_STD
    return DefenseStudy(
        jpeg_quality_study=int(references.ADVERSARIALMED_DEFENSES["jpeg_quality"]),
        jpeg_quality=int(profile.defense.jpeg_quality), at_clean_weight=round(float(at.clean_weight), 6),
        at_adv_weight=round(1 - float(at.clean_weight), 6), at_eps=round(float(at.eps) / std, 6),
        at_eps_255=round(float(at.eps) * 255, 2), at_step=round(float(at.step_size) / std, 6),
        at_steps=int(at.steps), eps_255=round(adversarialmed_eps_255(), 2), partial_gain=PARTIAL_GAIN,
        retraining_helped=RETRAINING_HELPED)


# --------------------------------------------------------------------------- claims
@dataclass(frozen=True)
class ATNumbers:
    """Claim 4 (AdversarialMed: adversarial training keeps AUC > 0.95 attacked, about 0.97 clean).

    ``robust_auc_*``: under the robust ensemble at ``eps_255`` (the grid budget nearest 1.15/255);
    ``study_attacks_min_auc_*``: the lowest AUC of FGSM, I-FGSM, PGD and MI-FGSM at AdversarialMed's
    own setting (1.15/255, last iterate), the study's measure."""

    task: str
    model: str
    eps_255: float
    clean_auc: float
    robust_auc_oblivious: float
    robust_auc_adaptive: float
    robust_accuracy_adaptive: float
    undefended_robust_auc_adaptive: float
    flagged: bool
    study_attacks_min_auc_oblivious: float = math.nan
    study_attacks_min_auc_adaptive: float = math.nan
    study_clean_auc: float = references.ADVERSARIALMED_DEFENSES["at_clean_auc"]
    study_robust_auc_min: float = references.ADVERSARIALMED_DEFENSES["at_robust_auc_min"]
    evaluation: str = "passed"
    study_eps_255: float = math.nan
    strongest_auc_at_study_eps: float = math.nan
    undefended_robust_accuracy_adaptive: float = math.nan
    defense: str = "at_adversarialmed"

    @property
    def accuracy_gain(self) -> float:
        """Robust accuracy (adaptive attacker) the training adds over the undefended model."""
        return self.robust_accuracy_adaptive - self.undefended_robust_accuracy_adaptive


@dataclass(frozen=True)
class PreprocessingNumbers:
    """Claim 5 (AdversarialMed: JPEG and VAE protect partly), one defense of one task."""

    task: str
    defense: str
    eps_255: float
    clean_accuracy: float
    oblivious_accuracy: float
    adaptive_accuracy: float
    undefended_accuracy: float
    flagged: bool
    evaluation: str = "passed"

    @property
    def adaptive_gain(self) -> float:
        """Robust accuracy the defense adds over the undefended model against the adaptive attacker."""
        return self.adaptive_accuracy - self.undefended_accuracy


@dataclass(frozen=True)
class RetrainingNumbers:
    """Claim 12 (Hirano et al.: retraining helps against UAPs in only a few cases), one case."""

    task: str
    model: str
    rounds: int
    fooling_before: float
    fooling_same_after: float
    fooling_after: float
    accuracy_before: float
    accuracy_after: float

    @property
    def helped(self) -> bool:
        """A fresh UAP of the retrained model fools at least :data:`RETRAINING_HELPED` fewer images."""
        return self.fooling_before - self.fooling_after >= RETRAINING_HELPED


@dataclass(frozen=True)
class RegularisationNumbers:
    """Claim 14 (AdversarialMed: the adversarial loss regularises when data are scarce), one
    training fraction: clean test AUC of each recipe (mean over seeds) and the paired difference,
    adversarial minus standard, with its 95 % t-interval over seeds (NaN with one seed)."""

    task: str
    fraction: float
    n_train: int
    seeds: int
    standard_auc: float
    adversarial_auc: float
    difference: float
    difference_lo: float
    difference_hi: float


@dataclass(frozen=True)
class DefenseClaims:
    """What claims 4, 5, 12 and 13 need, per task (empty lists where a family did not run)."""

    adversarial_training: list[ATNumbers] = field(default_factory=list)
    preprocessing: list[PreprocessingNumbers] = field(default_factory=list)
    retraining: list[RetrainingNumbers] = field(default_factory=list)
    fgsm_training: list[ATNumbers] = field(default_factory=list)
    regularisation: list[RegularisationNumbers] = field(default_factory=list)

    @property
    def helped_share(self) -> float:
        """The share of retraining cases that helped (NaN without any)."""
        cases = self.retraining
        return sum(c.helped for c in cases) / len(cases) if cases else math.nan


def _study_min(run) -> tuple[float, float]:
    """The lowest AUC over the studies' four attacks at AdversarialMed's setting, oblivious and adaptive."""
    sa = run.study_attacks
    sa = sa[sa.attack.isin(STUDY_ATTACKS)] if len(sa) else sa
    if not len(sa):
        return math.nan, math.nan
    return (float(sa[sa.attacker == "oblivious"].auc.min()), float(sa[sa.attacker == "adaptive"].auc.min()))


def _strongest_at_study_eps(run) -> tuple[float, float]:
    """AdversarialMed's eps (/255) and the lowest AUC any adaptive attack run there left: the
    studies' four and APGD-margin, every iteration (an AUC no early stop inflates)."""
    sa = run.study_attacks
    if not len(sa):
        return math.nan, math.nan
    ada = sa[sa.attacker == "adaptive"]
    return float(sa.eps_255.iloc[0]), float(ada.auc.min()) if len(ada) else math.nan


def claim_numbers(results: DefenseResults) -> DefenseClaims:
    """Claims 4, 5, 12 and 13 from the results, at the grid budget nearest AdversarialMed's 1.15/255."""
    eps = nearest_eps(results, adversarialmed_eps_255())
    at, fgsm, pre, rt = [], [], [], []
    for task in results.tasks:
        none = results.get(task, REFERENCE)
        base_acc = none.robust("adaptive", eps) if none else math.nan
        parts = [("adversarial_training", at), ("fgsm_training", fgsm)]
        for name, out in ((name, out) for part, out in parts for name in claimed(part)):
            run = results.get(task, name)
            if run is None:
                continue
            study_eps, strongest = _strongest_at_study_eps(run)
            out.append(ATNumbers(task, run.model, eps, float(run.clean.auc.iloc[0]), run.robust("oblivious", eps, "auc"),
                                 run.robust("adaptive", eps, "auc"), run.robust("adaptive", eps),
                                 none.robust("adaptive", eps, "auc") if none else math.nan, run.flagged,
                                 *_study_min(run), evaluation=run.evaluation, study_eps_255=study_eps,
                                 strongest_auc_at_study_eps=strongest, undefended_robust_accuracy_adaptive=base_acc,
                                 defense=name))
        for name in claimed("preprocessing"):
            run = results.get(task, name)
            if run is not None:
                pre.append(PreprocessingNumbers(task, name, eps, float(run.clean.accuracy.iloc[0]),
                                                run.robust("oblivious", eps), run.robust("adaptive", eps), base_acc,
                                                run.flagged, run.evaluation))
        for run in (results.get(task, name) for name in claimed("retraining")):
            if run is None or not len(run.history):
                continue
            h = run.history
            rt.append(RetrainingNumbers(task, run.model, len(h), float(h.fooling_before.iloc[0]),
                                        float(h.fooling_same_after.iloc[-1]), float(h.fooling_after.iloc[-1]),
                                        float(h.accuracy_before.iloc[0]), float(h.accuracy_after.iloc[-1])))
    summary = regularisation_summary(results.regularisation)
    reg = [RegularisationNumbers(r.task, float(r.fraction), int(r.n_train), int(r.seeds), float(r.standard_auc),
                                 float(r.adversarial_auc), float(r.difference), float(r.difference_lo),
                                 float(r.difference_hi)) for r in summary.itertuples()]
    return DefenseClaims(at, pre, rt, fgsm, reg)


# --------------------------------------------------------------------------- readings
def budget_note(profile: Profile) -> str:
    """Which sizes this profile runs smaller than the full profile (:data:`FULL_PROFILE`; empty
    for that profile itself)."""
    if profile.name == FULL_PROFILE:
        return ""
    s, p = profile.defense, PROFILES[FULL_PROFILE].defense
    gaps = []
    for name, mine, full in (("test images per task", s.n_images, p.n_images),
                             ("retraining rounds", s.retrain_rounds, p.retrain_rounds),
                             ("UAPs per round", s.retrain_uaps, p.retrain_uaps),
                             ("smoothing votes per image", s.smoothing_n, p.smoothing_n),
                             ("oblivious PGD iterations", s.steps, p.steps)):
        if mine is not None and (full is None or mine < full):
            gaps.append(f"{name}: {mine:,} ({FULL_PROFILE} profile: {'all' if full is None else f'{full:,}'})")
    if s.at_train:
        gaps.append("adversarial training: " + ", ".join(f"{k} {v}" for k, v in s.at_train.items())
                    + f" ({FULL_PROFILE} profile: the zoo's recipe)")
    missing = sorted(set(p.adversarial) - set(s.adversarial))
    if missing:
        gaps.append("adversarial training methods not run: " + ", ".join(missing))
    if not gaps:
        return ""
    return (f"**What the `{profile.name}` profile runs smaller** (to fit its time budget):\n\n"
            + "\n".join(f"- {g}" for g in gaps))


def at_reading(claims: DefenseClaims) -> str:
    """Claim 4 in a sentence per task."""
    out = []
    for c in claims.adversarial_training:
        holds = c.robust_auc_adaptive > c.study_robust_auc_min
        out.append(f"On {task_label(c.task)}, adversarial training (AdversarialMed's recipe) keeps a clean AUC of {c.clean_auc:.3f} "
                   f"(study: about {c.study_clean_auc:.2f}); at {c.eps_255:g}/255 its AUC is {c.robust_auc_oblivious:.3f} "
                   f"against the oblivious attacker and {c.robust_auc_adaptive:.3f} against the adaptive one "
                   f"(undefended: {c.undefended_robust_auc_adaptive:.3f}), so the study's AUC > {c.study_robust_auc_min:.2f} "
                   f"{'holds' if holds else 'does not hold'} here"
                   + (f" (its masking diagnostics flag it; attacked harder, the escalation {_escalated(c.evaluation)})."
                      if c.flagged else ".")
                   + (f" With the study's own four attacks at its setting the lowest AUC is "
                      f"{c.study_attacks_min_auc_oblivious:.3f} oblivious and {c.study_attacks_min_auc_adaptive:.3f} "
                      "adaptive." if math.isfinite(c.study_attacks_min_auc_adaptive) else ""))
    return " ".join(out) or "Adversarial training did not run in this profile."


def preprocessing_reading(claims: DefenseClaims) -> str:
    """Claim 5: what JPEG and the VAE add over the undefended model, oblivious against adaptive."""
    out = []
    for c in claims.preprocessing:
        name = DEFENSES[c.defense].said if c.defense in DEFENSES else c.defense
        out.append(f"On {task_label(c.task)} at {c.eps_255:g}/255, {name} leaves a robust accuracy of {c.oblivious_accuracy:.3f} "
                   f"against the oblivious attacker and {c.adaptive_accuracy:.3f} against the adaptive one "
                   f"(undefended {c.undefended_accuracy:.3f}; clean with the defense {c.clean_accuracy:.3f})"
                   + (f"; its diagnostics flag it, and the escalation {_escalated(c.evaluation)}." if c.flagged
                      else "."))
    return " ".join(out)


def retraining_reading(claims: DefenseClaims) -> str:
    """Claim 12: fooling rates of fresh UAPs before and after retraining, per case."""
    if not claims.retraining:
        return "UAP retraining did not run in this profile."
    parts = [f"{c.task}: {c.fooling_before:.3f} -> {c.fooling_after:.3f} over {c.rounds} round(s) "
             f"({'helped' if c.helped else 'did not help'}; the UAPs it was retrained on fool "
             f"{c.fooling_same_after:.3f} of the retrained model)" for c in claims.retraining]
    return (f"A fresh UAP of the retrained model fooled, before and after retraining: {'; '.join(parts)}. "
            f"Retraining helped (a drop of at least {RETRAINING_HELPED:g}) in {claims.helped_share:.0%} of the cases.")


def _escalated(evaluation: str) -> str:
    return ("converged: the numbers are the escalated worst case" if evaluation == CONVERGED
            else "reached its cap still breaking images: the numbers are upper bounds, not converged")


def regularisation_reading(claims: DefenseClaims) -> str:
    """Claim 14: the paired difference in clean test AUC at each training fraction, in words."""
    rows = claims.regularisation
    if not rows:
        return "The regularisation experiment did not run in this profile."
    parts = [f"with {r.fraction:.0%} of the training images ({r.n_train}) adversarial training gives {r.difference:+.3f}"
             + (f" [{r.difference_lo:+.3f}, {r.difference_hi:+.3f}]" if math.isfinite(r.difference_lo) else "")
             for r in rows]
    small = min(rows, key=lambda r: r.fraction)
    above = math.isfinite(small.difference_lo) and small.difference_lo > 0
    below = math.isfinite(small.difference_hi) and small.difference_hi < 0
    verdict = ("the adversarial loss helps where data are scarcest" if above else
               "the adversarial loss costs clean AUC even where data are scarcest" if below else
               "the seeds cannot tell the two recipes apart where data are scarcest")
    return (f"Clean test AUC, adversarial minus standard training, paired by seed over {small.seeds} seeds: "
            + "; ".join(parts) + f". On these runs {verdict}.")


def diagnostics_reading(results: DefenseResults) -> str:
    """Which defended models the masking diagnostics flag, and what their escalation found."""
    flagged = [r for r in results.runs if r.flagged]
    checked = [r for r in results.runs if not is_reference(r.defense)]
    if not flagged:
        return f"The masking diagnostics pass on all {len(checked)} defended models."
    converged = [r for r in flagged if r.evaluation == CONVERGED]
    bounds = [f"{task_label(r.task)} / {r.label}" for r in flagged if r.evaluation != CONVERGED]
    return (f"The masking diagnostics flag {len(flagged)} of the {len(checked)} defended models ("
            + "; ".join(f"{task_label(r.task)} / {r.label}" for r in flagged) + "). Each was attacked again with more "
            "iterations and restarts, the margin loss, transfer from the undefended model and the defense's other "
            "sources, and Square; the tables report the escalated worst case. "
            + (f"The escalation converged on {len(converged)} of them" if converged else "It converged on none")
            + (f"; on {'; '.join(bounds)} it reached its cap still breaking images, so their robust accuracy is an "
               "upper bound, not converged." if bounds else ".")
            + " Every path is in the appendix.")


def at_training_reading(results: DefenseResults, zoo: Mapping[Any, Any], profile: Profile) -> str:
    """How each adversarially trained model's training ended (:func:`advmed.experiments.zoo.stopping`
    on its robust validation accuracy): stopped by its patience, ran to the epoch cap after its
    best epoch, or still improving at the cap (more epochs might have made it more robust)."""
    runs = results.training_curves()
    if not runs:
        return ""
    ended, configs, still = [], [], []
    for r in runs:
        arch, init = r.model.split(":", 1)
        cfg = adversarial_train_config(zoo[ModelKey(r.task, arch, init)].config, r.defense.removeprefix("at_"), profile)
        kept = r.history.loc[r.history["best"].astype(bool), "epoch"]
        best = int(kept.iloc[0]) if len(kept) else 0
        how = stopping(SimpleNamespace(history=r.history, config=cfg, best_epoch=best))
        ended.append(how)
        configs.append(cfg)
        if how == "cap, still improving":
            still.append(f"{task_label(r.task)} / {r.label}, epoch {best} of {cfg.epochs}")
    caps = sorted({int(c.epochs) for c in configs})
    patience = sorted({int(c.patience) for c in configs})
    text = (f"Of the {len(runs)} adversarially trained models, {ended.count('early')} stopped when robust validation "
            f"accuracy had not improved for {', '.join(map(str, patience))} epochs and "
            f"{ended.count('cap, plateaued')} ran to the cap of {', '.join(map(str, caps))} epochs after their best")
    if still:
        text += (f"; {len(still)} kept one of their last epochs at the cap, still improving ({'; '.join(still)}): "
                 "their robust accuracy had not plateaued, and more epochs might have made them more robust than "
                 "the tables show")
    return text + "."


def certified_reading(results: DefenseResults) -> str:
    """The certified baseline in a sentence."""
    c = results.certified
    if c is None:
        return "Randomized smoothing did not run in this profile."
    r0 = float(c.curve.certified_accuracy.iloc[0])
    rows = c.curve[c.curve.radius > 0]
    at = "; ".join(f"{a:.3f} at L2 radius {r:.3g}" for r, a in zip(rows.radius, rows.certified_accuracy))
    return (f"Randomized smoothing on {task_label(c.task)} (sigma {c.sigma:g}, {c.n:,} votes per image, {c.n_images} images) "
            f"certifies {r0:.3f} of the images correct at radius zero and {at}; it abstains on {c.abstain:.3f}. "
            f"Radii are in {c.units}; with {c.n:,} votes no image can be certified beyond {c.max_radius:.3g}, the "
            "last radius of the curve. An L-inf "
            f"budget eps contains L2 perturbations of norm up to eps x sqrt(pixels), so these radii are not the "
            "L-inf budgets of the other defenses.")


# --------------------------------------------------------------------------- the record
_CLAIM_PARTS = {"adversarial_training": ATNumbers, "fgsm_training": ATNumbers, "preprocessing": PreprocessingNumbers,
                "retraining": RetrainingNumbers, "regularisation": RegularisationNumbers}


def headline_record(profile: Profile, zoo: Mapping[tuple, Any], claims: DefenseClaims,
                    results: DefenseResults | None = None) -> DefensesRecord:
    """Chapter 7's record for chapter 8: the typed numbers of claims 4, 5 and 12 (:func:`claim_numbers`),
    one table per part; with the chapter's ``results``, the images and the defended models' checkpoints."""
    frames = {part: pd.DataFrame([dataclasses.asdict(c) for c in getattr(claims, part)],
                                 columns=[f.name for f in dataclasses.fields(cls)])
              for part, cls in _CLAIM_PARTS.items()}
    runs = results.runs if results is not None else []
    sources = [tm.config.key() for tm in zoo.values()] + [r.config_key for r in runs if r.config_key]
    n = max([int(r.clean["n"].max()) for r in runs if "n" in r.clean.columns and len(r.clean)], default=0)
    return make_record(DefensesRecord, profile, **frames, sources=sources, n=n)


def claims_from_record(record: DefensesRecord) -> DefenseClaims:
    """The :class:`DefenseClaims` a :func:`headline_record` holds."""
    def rows(part: str, cls: type) -> list:
        return [cls(**{k: (v.item() if hasattr(v, "item") else v) for k, v in r.items()})
                for r in getattr(record, part).to_dict(orient="records")]

    return DefenseClaims(**{part: rows(part, cls) for part, cls in _CLAIM_PARTS.items()})


__all__ = ["ATNumbers", "DefenseClaims", "PreprocessingNumbers", "RegularisationNumbers", "RetrainingNumbers", "at_reading",
           "at_training_reading", "budget_note", "certified_reading", "claim_numbers", "claims_from_record",
           "diagnostics_reading", "headline_record", "preprocessing_reading", "regularisation_reading",
           "retraining_reading"]
