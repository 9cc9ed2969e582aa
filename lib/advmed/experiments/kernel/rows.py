"""One metric row per attacked image set, and the one definition of each rate in it.

Every family that scores adversarial images (white-box sweeps, transfer, the studies'
settings) builds its rows with :func:`metric_row`, so accuracy, AUC and the rates mean the
same thing in every chapter. Each rate names its denominator in :data:`DENOMINATORS`:

- ``flip_rate``: of the images the model classified correctly without the attack, the share
  the attack makes it get wrong.
- ``target_rate`` (targeted attacks): the share of **all** images classified as the target
  (Finlayson et al. 2019 and Hirano et al. 2021 report it so), whose control is the share
  already classified as the target without the attack (for "the other class" of a binary
  task: 1 - clean accuracy).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ...metrics import attack_success, classification_metrics

#: What each rate of a metric row is taken over.
DENOMINATORS: dict[str, str] = {
    "flip_rate": "images classified correctly without the attack",
    "target_rate": "all images (share classified as the target)",
}
#: Metrics reported per row by default, each with ``_lo`` / ``_hi`` bootstrap bounds.
METRICS: tuple[str, ...] = ("accuracy", "auc", "balanced_accuracy")


def flip_rate(y: np.ndarray, clean_pred: np.ndarray, adv_pred: np.ndarray) -> float:
    """Share of the clean-correct images whose prediction the attack changes (NaN if none)."""
    ok = np.asarray(clean_pred) == np.asarray(y)
    flips = attack_success(np.asarray(clean_pred)[ok], np.asarray(adv_pred)[ok])
    return float(flips.mean()) if flips.size else float("nan")


def target_rate(clean_pred: np.ndarray, adv_pred: np.ndarray, target: Any) -> float:
    """Share of all images classified as ``target`` (an int or one class per image)."""
    hit = attack_success(clean_pred, adv_pred, target=target, among="all")
    return float(hit.mean()) if hit.size else float("nan")


def metric_row(y: np.ndarray, proba: np.ndarray, clean_pred: np.ndarray, *, n_boot: int, seed: int,
               target: Any = None, metrics: Sequence[str] = METRICS) -> dict[str, float]:
    """Accuracy, AUC, ... (each with its bootstrap 95 % interval as ``_lo`` / ``_hi``) of
    ``proba`` against ``y``, the flip rate, and the target rate (NaN when untargeted)."""
    m = classification_metrics(y, proba, n_boot=n_boot, seed=seed)
    row: dict[str, float] = {}
    for name in metrics:
        row[name], row[f"{name}_lo"], row[f"{name}_hi"] = m[name]
    pred = np.asarray(proba).argmax(1)
    row["flip_rate"] = flip_rate(y, clean_pred, pred)
    row["target_rate"] = target_rate(clean_pred, pred, target) if target is not None else float("nan")
    return row


__all__ = ["DENOMINATORS", "METRICS", "flip_rate", "metric_row", "target_rate"]
