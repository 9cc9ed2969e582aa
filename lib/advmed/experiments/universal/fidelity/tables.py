"""Tables of the fidelity measurements: weight drift per model, the resolution ablation."""
from __future__ import annotations

import pandas as pd

from ....metrics import fmt_interval


def drift_summary(drift: pd.DataFrame) -> pd.DataFrame:
    """Per fine-tuned model: the relative weight change from ImageNet, overall (parameter-
    weighted root mean square over blocks), in the first block and the last block, and the
    block that moved most."""
    rows = []
    for (task, arch, init, size), g in drift.groupby(["task", "arch", "init", "size"], sort=False):
        w = g["parameters"].to_numpy(float)
        overall = float(((g["relative_change"] ** 2) * w).sum() / w.sum()) ** 0.5
        top = g.loc[g["relative_change"].idxmax()]
        rows.append({"task": task, "model": f"{arch} ({init})", "size (px)": int(size),
                     "overall": round(overall, 3), "first block": round(float(g["relative_change"].iloc[0]), 3),
                     "last block": round(float(g["relative_change"].iloc[-1]), 3),
                     "most moved": f"{top['block']} ({top['relative_change']:.3f})"})
    return pd.DataFrame(rows)


def ablation_table(ablation: pd.DataFrame, *, digits: int = 3) -> pd.DataFrame:
    """The resolution ablation for the page: one row per size."""
    out = pd.DataFrame({
        "size (px)": ablation["size"].astype(int),
        "training images": ablation["n_train"].astype(int),
        "epochs run": ablation["epochs"].astype(int),
        "clean AUC": [fmt_interval(v, lo, hi, digits) for v, lo, hi in
                      zip(ablation["auc"], ablation["auc_lo"], ablation["auc_hi"])],
        "robust accuracy": [fmt_interval(v, lo, hi, digits) for v, lo, hi in
                            zip(ablation["robust_accuracy"], ablation["robust_lo"], ablation["robust_hi"])],
        "photo-UAP fooling rate": [fmt_interval(v, lo, hi, digits) for v, lo, hi in
                                   zip(ablation["photo_uap"], ablation["photo_uap_lo"], ablation["photo_uap_hi"])],
        "random control": ablation["random"].round(digits),
        "training seconds": ablation["train_seconds"].round(0).astype(int),
    })
    return out
