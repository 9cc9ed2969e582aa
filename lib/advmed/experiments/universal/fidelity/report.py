"""The prose of the fidelity measurements, computed from the results."""
from __future__ import annotations

import pandas as pd


def ablation_sentence(ablation: pd.DataFrame) -> str:
    """How clean AUC, robust accuracy and the photo-UAP fooling rate move with image size."""
    if ablation.empty:
        return ""
    a = ablation.sort_values("size")
    lo, hi = a.iloc[0], a.iloc[-1]

    def move(col: str) -> str:
        d = float(hi[col] - lo[col])
        return f"{lo[col]:.3f} → {hi[col]:.3f} ({d:+.3f})"

    return (f"From {int(lo['size'])} to {int(hi['size'])} px (same recipe, {int(lo['n_train'])} training images): "
            f"clean AUC {move('auc')}, robust accuracy {move('robust_accuracy')}, photo-UAP fooling rate "
            f"{move('photo_uap')}.")


def drift_sentence(drift: pd.DataFrame, summary: pd.DataFrame) -> str:
    """The spread of the fine-tuned models' weight drift (``drift`` per block, ``summary``
    from :func:`~.tables.drift_summary`)."""
    if summary.empty:
        return "No model of this profile was initialised from ImageNet weights, so there is no drift to measure."
    top = drift.loc[drift.groupby(["task", "size"], sort=False)["relative_change"].idxmax(), "block"]
    return (f"Fine-tuning moved the ImageNet weights by {summary['overall'].min():.3f}–{summary['overall'].max():.3f} "
            f"of their norm overall (parameter-weighted over blocks), least in the first block "
            f"({summary['first block'].min():.3f}–{summary['first block'].max():.3f}) and most in "
            f"{', '.join(sorted(set(top)))}.")
