"""The kernel's own cells (:mod:`advmed.experiments.cells`): work that several chapters read.

``zoo/train/<task>/<arch:init>/seed<n>``: one zoo model (every chapter loads it).

``blackbox/surrogate/<task>/<kind>``: a separately trained surrogate of a task's target
(:mod:`.surrogates`), the source of chapter 5's transfer, chapter 6's black-box patch and
chapter 7's transfer attacker (stage 0).

``whitebox/robust/<task>/<arch:init>``: the robust accuracy of one model, the ensemble's worst
case (:func:`.evaluation.robust_results`), read by chapter 2 (its curves), chapter 5 (its check
against the black box) and chapter 7 (the undefended model). Every family that needs it lists
the same cell (the same name, so a build computes it once).
"""
from __future__ import annotations

from typing import Any

from ...train import get_trained_model
from ..cells import Cell, task_classes
from ..estimate import forward_gmac, n_images, train_cost
from ..profiles import Profile
from ..zoo import ModelKey, configs_for_profile, test_split_args, train_cell, trained_models
from .evaluation import robust_results
from .surrogates import primary_key, seed_config, surrogate_configs


def robust_cell(profile: Profile, task: str, model: str) -> str:
    """Robust accuracy of one model (:func:`.evaluation.robust_results`)."""
    zoo = trained_models(profile, tasks=[task], models=[model], progress=False)
    res = robust_results(profile, zoo, progress=False)
    return f"{task}/{model}: {len(res.curves)} robust-accuracy rows"


def _robust_forwards(profile: Profile, task: str, num_classes: int) -> float:
    s = profile.whitebox
    members = s.robust_restarts * (1 + (min(9, num_classes - 1) if num_classes >= 4 else 1)) + s.pgd_restarts
    n_eps = len([e for e in s.eps_255 if float(e) > 0])
    return 3 * s.robust_steps * members * n_eps * n_images(task, "test", s.n_images)


def robust_cells(profile: Profile, tasks: set[str] | None = None) -> list[Cell]:
    """The robust-accuracy cell of every zoo model of ``tasks`` (None: every task)."""
    out = []
    for c in configs_for_profile(profile):
        if tasks is not None and c.task not in tasks:
            continue
        label = f"{c.arch}:{c.init}"
        gmac = forward_gmac(c.arch, c.net_size or c.size)
        out.append(Cell("whitebox", f"whitebox/robust/{c.task}/{label}", robust_cell,
                        {"profile": profile, "task": c.task, "model": label},
                        cost_gmac=_robust_forwards(profile, c.task, len(task_classes(c.task))) * gmac))
    return out


# --------------------------------------------------------------------------- the zoo (stage 0)
def train_cells(profile: Profile) -> list:
    """Stage-0 cells (:mod:`advmed.experiments.cells`): one :func:`~advmed.experiments.zoo.train_cell` per model of the
    profile, the checkpoints every chapter loads through :func:`~advmed.experiments.zoo.trained_models`."""
    return [Cell("zoo", f"zoo/train/{c.task}/{c.arch}:{c.init}/seed{c.seed}", train_cell,
                 {"config": c, "test": test_split_args(c.task, profile)},
                 stage=0, cost_gmac=train_cost(c)) for c in configs_for_profile(profile)]


# --------------------------------------------------------------------------- targets and surrogates
def task_configs(profile: Profile, task: str, models: Any = None) -> dict[ModelKey, Any]:
    """The TrainConfigs of a task's models (``models``: as :meth:`Profile.select` takes them),
    keyed like the zoo, without training or loading anything."""
    return {ModelKey(c.task, c.arch, c.init): c
            for c in configs_for_profile(profile.select(tasks=[task], models=models))}


def target(profile: Profile, task: str, model: str, models: Any = None) -> tuple[ModelKey, Any]:
    """A task's target (``model``, else its first model, as :func:`.surrogates.primary_key`
    picks it) and its TrainConfig."""
    configs = task_configs(profile, task, models)
    key = primary_key(profile, configs, task, model)
    return key, configs[key]


def target_zoo(profile: Profile, task: str, model: str, models: Any = None) -> dict[ModelKey, Any]:
    """A one-entry zoo: the task's target, from the checkpoint cache (stage 0 trained it).
    The chapters' functions pick the same target from it as from the whole zoo."""
    key, _ = target(profile, task, model, models)
    return trained_models(profile, tasks=[task], models=[f"{key.arch}:{key.init}"], progress=False)


def surrogate_cell(profile: Profile, task: str, kind: str) -> str:
    """Train (or load) one surrogate of the task's target, as :func:`.surrogates.trained_surrogates` does."""
    _, cfg = target(profile, task, profile.blackbox.model)
    plan = surrogate_configs(profile, cfg)
    sur = plan.seed if kind == "seed" else plan.disjoint
    if sur is None:
        return f"{task}: no {kind} surrogate ({plan.why})"
    tm = get_trained_model(sur, progress=False)
    return f"{task}: {kind} surrogate, val AUC {tm.val_auc:.3f}"


def surrogate_cells(profile: Profile, tasks: list[str], kinds: tuple[str, ...] = ("seed", "disjoint")) -> list[Cell]:
    """Stage 0: the surrogates of the targets of ``tasks``."""
    out = []
    for task in tasks:
        _, cfg = target(profile, task, profile.blackbox.model)
        for kind in kinds:
            if kind == "disjoint" and cfg.max_train is None:
                continue  # the target saw the whole split: no disjoint surrogate to train
            out.append(Cell("blackbox", f"blackbox/surrogate/{task}/{kind}", surrogate_cell,
                            {"profile": profile, "task": task, "kind": kind}, stage=0,
                            cost_gmac=train_cost(seed_config(profile, cfg))))
    return out


__all__ = ["train_cells", "robust_cell", "robust_cells", "surrogate_cell", "surrogate_cells", "target", "target_zoo", "task_configs"]
