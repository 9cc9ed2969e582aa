"""Does the adversarial loss regularise when data are scarce? AdversarialMed's second claim
(claim 14): "the adversarial loss provides extra regularization power ... beneficial in
preventing overfitting, especially when the tasks don't have sufficient amount of data".

The experiment the sentence implies: the defended model's recipe (the zoo's, with
``defense.at_train``) trained twice on the same shrinking training sets, once with the plain
loss and once with AdversarialMed's adversarial loss (``0.7 L(x) + 0.3 L(x_adv)``, 10-step
I-FGSM), for several seeds; the clean test AUC of each (:func:`regularisation_results`). A
regulariser shows as a positive difference (adversarial minus standard) that grows as the
training set shrinks. Runs are paired by seed (same subset of training images, same
initialisation), so the difference is read with a paired t-interval over seeds
(:func:`regularisation_summary`); with fewer than two seeds there is no interval.

Both arms keep the epoch with the best **clean** validation AUC (the adversarial arm through
``AdversarialConfig(robust_val_images=0)``): the claim is about clean generalisation, and the
defended models' robust selection would, from ImageNet weights, keep a first epoch that predicts
one class (see ``advmed.train.adversarial``), biasing the comparison against the adversarial loss.

Every training goes through the checkpoint cache (its TrainConfig is its key); the clean test
AUCs are memoised under the checkpoint keys and the test images.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from ...cache import memo
from ...device import module_device
from ...metrics import classification_metrics
from ...models import predict_proba
from ...train import AdversarialConfig, TrainConfig, get_trained_model
from ..estimate import n_images
from ..kernel import images_key, test_images
from ..profiles import Profile
from .common import DEFENSE_VERSION, defense_tasks, pixels

#: The two recipes compared, as the tables name them.
STANDARD, ADVERSARIAL = "standard", "adversarial (AdversarialMed)"


def regularisation_task(profile: Profile) -> str | None:
    """The task of the experiment: ``defense.regularisation_task``, else the first defended task."""
    s = profile.defense
    if not s.regularisation_fractions:
        return None
    tasks = defense_tasks(profile)
    task = s.regularisation_task or (tasks[0] if tasks else None)
    return task if task in profile.tasks else None


def recipe_config(base: TrainConfig, profile: Profile, fraction: float, seed: int, adversarial: bool) -> TrainConfig:
    """The zoo model's recipe with ``defense.regularisation_train`` (else ``at_train``),
    ``fraction`` of its training images (at least one batch), ``seed``, and AdversarialMed's
    adversarial loss or the plain one; from the zoo's initialisation (no warm start: the
    experiment asks what the loss does to a model trained on fewer images)."""
    s = profile.defense
    fields = s.at_train if s.regularisation_train is None else s.regularisation_train
    cfg = dataclasses.replace(base, **dict(fields))
    full = n_images(cfg.task, "train", cfg.max_train)
    n = max(int(round(float(fraction) * full)), min(full, cfg.batch_size))
    return dataclasses.replace(cfg, max_train=n, seed=int(seed),
                               adversarial=AdversarialConfig("adversarialmed", robust_val_images=0)
                               if adversarial else None)


def regularisation_configs(profile: Profile, base: TrainConfig) -> list[tuple[float, str, TrainConfig]]:
    """Every training of the experiment: ``(fraction, recipe, config)`` per fraction, seed and recipe."""
    s = profile.defense
    return [(fraction, recipe, recipe_config(base, profile, fraction, profile.seed + seed, adversarial))
            for fraction in sorted(float(f) for f in s.regularisation_fractions)
            for seed in range(int(s.regularisation_seeds))
            for recipe, adversarial in ((STANDARD, False), (ADVERSARIAL, True))]


def regularisation_results(profile: Profile, base: TrainConfig | None, *, device: Any = None,
                           progress: bool = False) -> pd.DataFrame:
    """One row per (fraction, seed, recipe): ``fraction``, ``n_train``, ``seed``, ``recipe``,
    ``clean_auc``, ``clean_accuracy``, ``val_auc`` and ``best_epoch`` of the kept epoch, from the
    defended model's recipe ``base`` (the zoo model's TrainConfig on :func:`regularisation_task`);
    empty when the profile runs no such experiment or ``base`` is None."""
    task = regularisation_task(profile)
    if task is None or base is None:
        return pd.DataFrame()
    if base.task != task:
        raise ValueError(f"the regularisation experiment runs on {task!r}; got the recipe of {base.task!r}")
    images = test_images(task, profile)
    rows = []
    for fraction, recipe, cfg in regularisation_configs(profile, base):
        key = {"version": DEFENSE_VERSION, "model": cfg.key(), "images": images_key(images.images, images.labels)}

        def compute(cfg=cfg) -> dict[str, float]:
            tm = get_trained_model(cfg, device=device, progress=progress)
            x, y = pixels(images, module_device(tm.model))
            m = classification_metrics(y.cpu().numpy(), predict_proba(tm.model, x), n_boot=0)
            return {"clean_auc": float(m["auc"].value), "clean_accuracy": float(m["accuracy"].value),
                    "val_auc": float(tm.val_auc), "best_epoch": int(tm.best_epoch)}

        out = memo("defenses_regularisation", key, compute)
        rows.append({"task": task, "fraction": fraction, "n_train": int(cfg.max_train), "seed": cfg.seed,
                     "recipe": recipe, **out})
    return pd.DataFrame(rows)


def _t_interval(values: np.ndarray, bounds: tuple[float, float]) -> tuple[float, float, float]:
    """Mean and 95 % t-interval over seeds, clipped to ``bounds`` (what the quantity can be: [0, 1]
    for an AUC, [-1, 1] for a difference of two); NaN bounds with fewer than two seeds."""
    v = np.asarray(values, dtype=float)
    mean = float(v.mean()) if len(v) else math.nan
    if len(v) < 2:
        return mean, math.nan, math.nan
    half = float(stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v)))
    return mean, max(mean - half, bounds[0]), min(mean + half, bounds[1])


def regularisation_summary(results: pd.DataFrame) -> pd.DataFrame:
    """Per fraction: each recipe's mean clean test AUC over seeds with its 95 % t-interval, and
    the paired difference (adversarial minus standard, seed by seed) with its t-interval."""
    if results.empty:
        return pd.DataFrame()
    rows = []
    for (task, fraction), g in results.groupby(["task", "fraction"], sort=True):
        wide = g.pivot_table(index="seed", columns="recipe", values="clean_auc")
        row: dict[str, Any] = {"task": task, "fraction": float(fraction), "n_train": int(g.n_train.iloc[0]),
                               "seeds": len(wide)}
        for recipe, name in ((STANDARD, "standard"), (ADVERSARIAL, "adversarial")):
            row[f"{name}_auc"], row[f"{name}_lo"], row[f"{name}_hi"] = _t_interval(wide[recipe].to_numpy(), (0, 1))
        row["difference"], row["difference_lo"], row["difference_hi"] = _t_interval(
            (wide[ADVERSARIAL] - wide[STANDARD]).to_numpy(), (-1, 1))
        rows.append(row)
    return pd.DataFrame(rows)


__all__ = ["ADVERSARIAL", "STANDARD", "recipe_config", "regularisation_configs", "regularisation_results",
           "regularisation_summary", "regularisation_task"]
