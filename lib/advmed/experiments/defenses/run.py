"""Defenses under oblivious and adaptive attack, at the scale of an experiment (chapter 7).

For each task of ``profile.defense`` and its defended model (``defense.model``, from the zoo),
every defense of the registry (:mod:`.registry`, one builder each in :mod:`.builders`) that the
profile measures (:func:`defense_names`):

- ``none``: the undefended model (the reference row);
- ``jpeg``: JPEG compression at ``defense.jpeg_quality`` (AdversarialMed: 20), the real codec;
- ``at_<method>``: adversarial training (``advmed.train.adversarial``: AdversarialMed's
  0.7 / 0.3 I-FGSM recipe; Madry et al.'s PGD where the profile asks), trained through the
  checkpoint cache (``TrainConfig(adversarial=...)``);
- ``vae``: VAE denoising (the posterior-mean reconstruction in front of the classifier);
- ``uap_retraining``: Hirano et al.'s adversarial retraining against UAPs;
- and, on one task, randomized smoothing (Cohen et al. 2019): certified accuracy against the
  L2 radius (:func:`~.smoothing.smoothing_results`).

Each defended model is measured on the same test images (:mod:`.evaluate`): clean accuracy and
AUC; the **oblivious** attacker (PGD crafted on the undefended model, transferred); the
**adaptive** attacker (Athalye, Carlini & Wagner 2018; Tramer et al. 2020), the per-image worst
case (lowest true-class margin) over chapter 2's robust ensemble on the defense itself (BPDA for
JPEG, end to end through the VAE), the defense's extra sources (PGD through kornia's
differentiable JPEG; EOT-PGD through the sampled VAE) and the oblivious images, nested over the
budgets: at least as strong as the oblivious one by construction. The masking diagnostics of
chapter 2 run on every defended model's attackable view, the undefended model as the transfer
surrogate; a defense flagged there is attacked harder (:mod:`.escalation`: more iterations and
restarts, the margin loss, transfer and Square, until the worst case stops moving or the
profile's cap is reached) and reported with the escalated worst case and its status (converged,
or an upper bound, not converged). Costs: training seconds and inference seconds per image.

Every result is memoised (:func:`advmed.cache.memo`) under the checkpoint keys, a digest of the
images and the settings. Every eps is in [0, 1] pixel units (``eps_255`` = eps x 255).

This module keeps the runs (:class:`DefenseRun`, :func:`defense_run`, :func:`task_defenses`,
:func:`defense_results`) and re-exports the family's public names the chapter and the tests use.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from torch import nn
from tqdm.auto import tqdm

from ...attacks import worst_case, worst_case_choice
from ...attacks.escalate import CONVERGED, NOT_CONVERGED
from ...cache import memo
from ...device import module_device
from ..kernel import ensemble_settings, images_key
from ..kernel.surrogates import primary_key
from ..profiles import Profile
from ..zoo import ModelKey
from .builders.adversarial import adversarial_config, adversarial_model, adversarial_train_config
from .builders.retraining import retraining_uap_kwargs
from .builders.vae import defense_vae
from .common import ATTACKERS, DEFENSE_VERSION, Defended, defense_images, defense_tasks, pixels
from .escalation import escalate_defense
from .evaluate import (AUC_ATTACK, AUC_SOURCE, NO_DIAGNOSTICS, OBLIVIOUS_SOURCE, STUDY_ATTACKS, Scores, curve_rows, diagnostics,
                       ensemble_images, ensemble_scores, evaluate_defense, study_attack_rows, transfer_images,
                       transfer_scores)
from .explorer import EXPLORER_VERSION, AttackedImages, attacked_images
from .registry import DEFENSES, LABELS, DefenseSpec, defended, defense_identity, defense_names, get_defense
from .regularisation import regularisation_results, regularisation_summary, regularisation_task
from .smoothing import CertifiedRun, smoothing_config, smoothing_results


# --------------------------------------------------------------------------- results
@dataclass
class DefenseRun:
    """One defense of one task: clean and robust numbers, diagnostics and costs.

    Attributes:
        task, defense, label: the task, the defense's name (:data:`DEFENSES`) and how tables name it.
        model: the defended architecture (``"arch:init"``); ``config_key``: the checkpoint key of
            the classifier behind the defense.
        clean: one row: ``accuracy, auc`` with ``_lo`` / ``_hi`` (bootstrap 95 %), ``n``.
        curves: one row per (attacker, eps): ``attacker`` (oblivious / adaptive), ``eps``, ``eps_255``,
            ``accuracy, auc`` with intervals, and the same after rounding to 8 bits (``_8bit``); the
            adaptive worst case includes APGD-margin run every iteration (:data:`.evaluate.AUC_SOURCE`),
            so its AUC is not inflated by images stopped at the boundary.
        sources: per adaptive source and eps, the accuracy it alone leaves (which source did the work).
        diagnostics: the masking checks (``check, passed, summary, numbers``).
        train_seconds: what the defense cost to build (0 for JPEG and none).
        infer_seconds: inference seconds per image of the defended model (batch of the test images).
        adaptive: how the adaptive attacker reached the defense.
        history: UAP retraining: Hirano et al.'s fooling rates per round; adversarial training: its
            epochs (robust and clean validation scores, the kept epoch); else empty.
        study_attacks: FGSM, I-FGSM, PGD, MI-FGSM at AdversarialMed's setting, per attacker
            (``attacker, attack, eps_255, steps, accuracy, auc`` with intervals; last iterate).
        escalation: a flagged defense's escalation path (:mod:`.escalation`): per budget the
            adaptive worst case it started from, then one row per stage (``stage, attack, source,
            attacked, newly_broken, accuracy, seconds, converged, status``); empty when the
            diagnostics passed. The ``adaptive`` curve is then the escalated worst case.
    """

    task: str
    defense: str
    label: str
    model: str
    config_key: str
    clean: pd.DataFrame
    curves: pd.DataFrame
    sources: pd.DataFrame
    diagnostics: pd.DataFrame
    train_seconds: float
    infer_seconds: float
    adaptive: str
    history: pd.DataFrame = field(default_factory=pd.DataFrame)
    study_attacks: pd.DataFrame = field(default_factory=pd.DataFrame)
    escalation: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def flagged(self) -> bool:
        """A masking check failed: the adaptive worst case was escalated (:attr:`evaluation`)."""
        return bool(len(self.diagnostics)) and not bool(self.diagnostics["passed"].all())

    @property
    def evaluation(self) -> str:
        """How far the robust numbers can be believed: ``"passed"`` (the diagnostics pass),
        :data:`~advmed.attacks.escalate.CONVERGED` (flagged, and the escalation stopped moving at
        every budget) or :data:`~advmed.attacks.escalate.NOT_CONVERGED` (flagged, and the cap was
        reached at some budget: the numbers are the tightest upper bounds found)."""
        if not self.flagged:
            return "passed"
        if not len(self.escalation):
            return NOT_CONVERGED
        return CONVERGED if bool(self.escalation["converged"].all()) else NOT_CONVERGED

    def escalation_at(self, eps_255: float) -> pd.DataFrame:
        """The escalation path at ``eps_255`` (empty when none ran)."""
        e = self.escalation
        return e[np.isclose(e.eps_255, float(eps_255))] if len(e) else e

    def robust(self, attacker: str, eps_255: float, metric: str = "accuracy") -> float:
        """The ``metric`` the ``attacker`` leaves at ``eps_255``."""
        c = self.curves
        row = c[(c.attacker == attacker) & np.isclose(c.eps_255, float(eps_255))]
        return float(row[metric].iloc[0]) if len(row) else float("nan")


@dataclass
class DefenseResults:
    """Every defense run of a profile, the certified baseline and AdversarialMed's regularisation
    experiment (:func:`~.regularisation.regularisation_results`; empty where not run)."""

    runs: list[DefenseRun]
    certified: CertifiedRun | None
    regularisation: pd.DataFrame = field(default_factory=pd.DataFrame)

    def get(self, task: str, defense: str) -> DefenseRun | None:
        return next((r for r in self.runs if r.task == task and r.defense == defense), None)

    @property
    def tasks(self) -> list[str]:
        return list(dict.fromkeys(r.task for r in self.runs))

    def training_curves(self) -> list[DefenseRun]:
        """The adversarially trained models' runs whose training history is kept (robust validation
        accuracy per epoch): what :func:`~.plots.at_curves` draws."""
        return [r for r in self.runs if len(r.history) and "val_robust_bal_acc" in r.history.columns]

    def curves(self) -> pd.DataFrame:
        """Every run's curves with leading ``task, defense, label`` columns, clean rows (eps 0) included."""
        frames = []
        for r in self.runs:
            clean = pd.concat([r.clean.assign(attacker=a, eps=0.0, eps_255=0.0) for a in ATTACKERS])
            frames.append(pd.concat([clean, r.curves], ignore_index=True).assign(
                task=r.task, defense=r.defense, label=r.label))
        out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        lead = ["task", "defense", "label", "attacker", "eps_255", "eps"]
        return out[lead + [c for c in out.columns if c not in lead]] if len(out) else out


# --------------------------------------------------------------------------- one defense
def _memo_key(profile: Profile, task: str, defense: str, model_key: str, images: Any, extra: Any = None) -> dict:
    s = profile.defense
    return {"version": DEFENSE_VERSION, "task": task, "defense": defense, "model": model_key,
            "images": images_key(images.images, images.labels), "eps_255": [float(e) for e in s.eps_255],
            "steps": int(s.steps), "study_steps": profile.whitebox.study_steps, "ensemble": ensemble_settings(profile),
            "n_boot": int(profile.eval.n_boot),
            "seed": profile.seed, "diag": {"images": s.diag_images, "eps": float(profile.whitebox.diag_eps_255),
                                           "steps": list(profile.whitebox.diag_steps),
                                           "grid": [float(e) for e in profile.whitebox.diag_eps_grid_255]},
            "escalation": {"factor": int(s.escalation_factor), "restarts": int(s.escalation_restarts),
                           "square_queries": s.escalation_square_queries},
            "extra": extra}


def _run(task: str, spec: DefenseSpec, model: str, d: Defended, undefended: nn.Module, images: Any,
         profile: Profile) -> dict[str, Any]:
    dev = module_device(undefended)
    x, y = pixels(images, dev)
    grid = [float(e) / 255 for e in sorted(profile.defense.eps_255)]
    out = evaluate_defense(d.evaluated, d.attackable, undefended, x, y, eps_grid=grid, profile=profile,
                           extra_sources=d.extra_sources)
    adaptive = out.pop("adaptive_scores")
    out["diagnostics"] = (pd.DataFrame(columns=list(NO_DIAGNOSTICS)) if spec.reference
                          else diagnostics(d.attackable, undefended, images, profile))
    if len(out["diagnostics"]) and not bool(out["diagnostics"]["passed"].all()):
        esc = escalate_defense(d, undefended, x, y, adaptive, eps_grid=grid, profile=profile)
        c = out["curves"]
        y_np = y.cpu().numpy()
        escalated = curve_rows("adaptive", y_np, esc.scores, grid, n_boot=int(profile.eval.n_boot), seed=profile.seed)
        out["curves"] = pd.concat([c[c.attacker != "adaptive"], pd.DataFrame(escalated)], ignore_index=True)
        out["escalation"] = esc.path
    out.update(task=task, defense=spec.name, label=spec.label, model=model, config_key=d.model_key,
               train_seconds=float(d.train_seconds), adaptive=d.adaptive)
    if len(d.history):
        out["history"] = d.history
    return out


def _as_run(d: Mapping[str, Any]) -> DefenseRun:
    return DefenseRun(task=d["task"], defense=d["defense"], label=d["label"], model=d["model"],
                      config_key=d["config_key"], clean=d["clean"], curves=d["curves"], sources=d["sources"],
                      diagnostics=d["diagnostics"], train_seconds=float(d["train_seconds"]),
                      infer_seconds=float(d["infer_seconds"]), adaptive=d["adaptive"],
                      history=d.get("history", pd.DataFrame()), study_attacks=d["study_attacks"],
                      escalation=d.get("escalation", pd.DataFrame()))


def defense_run(task: str, key: ModelKey, tm: Any, defense: str, profile: Profile, *, quality: int | None = None,
                refresh: bool = False) -> DefenseRun:
    """One defense of one task (:func:`~.registry.defended`) measured on :func:`~.common.defense_images`,
    memoised under the checkpoint keys, the images and the settings; ``quality``: JPEG's (None:
    the profile's, the chapter's run; the defense explorer asks for others). The defense is
    built only when the run is not stored (:func:`~.registry.defense_identity`)."""
    images = defense_images(task, profile)
    model_key, extra = defense_identity(task, defense, tm, profile, quality=quality)
    return _as_run(memo("defenses", _memo_key(profile, task, defense, model_key, images, extra),
                        lambda: _run(task, get_defense(defense), f"{key.arch}:{key.init}",
                                     defended(task, defense, tm, profile, quality=quality), tm.model.eval(), images,
                                     profile), refresh=refresh))


def task_defenses(task: str, key: ModelKey, tm: Any, profile: Profile, *, refresh: bool = False,
                  device: Any = None, only: Sequence[str] | None = None) -> list[DefenseRun]:
    """Every defense of ``defense`` for one task's model ``tm`` (a zoo ``TrainedModel``):
    :func:`defense_run` of each of :func:`~.registry.defense_names`.

    Args:
        only: compute just these defenses (names of :func:`~.registry.defense_names`), under
            the memo keys the full call uses: one build cell per defense (:mod:`.cells`).
    """
    return [defense_run(task, key, tm, name, profile, refresh=refresh) for name in defense_names(profile)
            if only is None or name in only]


# --------------------------------------------------------------------------- a profile
def defense_results(profile: Profile, zoo: Mapping[tuple, Any], *, refresh: bool = False, device: Any = None,
                    progress: bool = True) -> DefenseResults:
    """:func:`task_defenses` for every task of :func:`~.common.defense_tasks` (its
    ``defense.model`` from ``zoo``, else the task's first model), and
    :func:`~.smoothing.smoothing_results`."""
    if profile.defense is None:
        raise ValueError(f"profile {profile.name!r} has no defense section")
    runs: list[DefenseRun] = []
    tasks = [t for t in defense_tasks(profile) if any(k[0] == t for k in zoo)]
    for task in tqdm(tasks, desc="defenses", unit="task", disable=not progress):
        key = primary_key(profile, zoo, task, profile.defense.model)
        runs.extend(task_defenses(task, key, zoo[key], profile, refresh=refresh, device=device))
    reg_task = regularisation_task(profile)
    base = (zoo[primary_key(profile, zoo, reg_task, profile.defense.model)].config
            if reg_task is not None and any(k[0] == reg_task for k in zoo) else None)
    return DefenseResults(runs, smoothing_results(profile, zoo, refresh=refresh, device=device),
                          regularisation_results(profile, base, device=device))


__all__ = ["ATTACKERS", "AUC_ATTACK", "AUC_SOURCE", "DEFENSES", "DEFENSE_VERSION", "EXPLORER_VERSION", "LABELS", "OBLIVIOUS_SOURCE",
           "STUDY_ATTACKS", "AttackedImages", "Scores", "CertifiedRun", "Defended", "DefenseResults", "DefenseRun",
           "DefenseSpec", "ModelKey", "adversarial_config", "adversarial_model", "adversarial_train_config",
           "attacked_images", "defended", "defense_identity", "defense_images", "defense_names", "defense_results",
           "defense_run", "defense_tasks", "defense_vae", "diagnostics", "regularisation_results",
           "regularisation_summary", "ensemble_images", "ensemble_scores",
           "ensemble_settings", "evaluate_defense", "get_defense", "retraining_uap_kwargs",
           "smoothing_config", "smoothing_results", "study_attack_rows", "task_defenses", "transfer_images",
           "transfer_scores", "worst_case", "worst_case_choice"]
