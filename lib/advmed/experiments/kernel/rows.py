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
- ``missed_rate`` / ``false_alarm_rate`` (where the task's disease classes are known): of the
  diseased / non-diseased images classified correctly without the attack, the share the attack
  moves out of / into the disease classes (:func:`advmed.metrics.harm_split`).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ...metrics import attack_success, classification_metrics, harm_split

#: What each rate of a metric row is taken over.
DENOMINATORS: dict[str, str] = {
    "flip_rate": "images classified correctly without the attack",
    "target_rate": "all images (share classified as the target)",
    "missed_rate": "diseased images classified correctly without the attack (share moved out of the disease)",
    "false_alarm_rate": "non-diseased images classified correctly without the attack (share moved into a disease)",
}
#: The harm split's columns, each with ``_lo`` / ``_hi``.
HARM: tuple[str, ...] = ("missed_rate", "false_alarm_rate")
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
               target: Any = None, metrics: Sequence[str] = METRICS,
               disease: Sequence[int] | None = None) -> dict[str, float]:
    """Accuracy, AUC, ... (each with its bootstrap 95 % interval as ``_lo`` / ``_hi``) of
    ``proba`` against ``y``, the flip rate, the target rate (NaN when untargeted), and with the
    task's ``disease`` class ids the missed-diagnosis and false-alarm rates with intervals."""
    m = classification_metrics(y, proba, n_boot=n_boot, seed=seed)
    row: dict[str, float] = {}
    for name in metrics:
        row[name], row[f"{name}_lo"], row[f"{name}_hi"] = m[name]
    pred = np.asarray(proba).argmax(1)
    row["flip_rate"] = flip_rate(y, clean_pred, pred)
    row["target_rate"] = target_rate(clean_pred, pred, target) if target is not None else float("nan")
    if disease is not None:
        h = harm_split(y, clean_pred, pred, disease, n_boot=n_boot, seed=seed)
        for name, est in zip(HARM, (h.missed, h.false_alarm)):
            row[name], row[f"{name}_lo"], row[f"{name}_hi"] = est
        row["n_disease"], row["n_normal"] = h.n_disease, h.n_normal
    return row


__all__ = ["DENOMINATORS", "HARM", "METRICS", "flip_rate", "metric_row", "target_rate"]
