"""Figures of the fidelity measurements: weight drift per block, the resolution ablation."""
from __future__ import annotations

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from ...plots import PALETTE, new_figure, styled


@styled
def drift_plot(drift: pd.DataFrame, *, title: str | None = None) -> Figure:
    """Relative weight change from ImageNet per block (network order), one line per model."""
    fig, axes = new_figure(figsize=(8.0, 3.2))
    ax = axes[0, 0]
    groups = list(drift.groupby(["task", "arch", "size"], sort=False))
    colors = sns.color_palette(PALETTE, max(len(groups), 1))
    for ((task, arch, size), g), c in zip(groups, colors):
        ax.plot(np.arange(len(g)), g["relative_change"], "o-", ms=3, color=c, label=f"{task} ({int(size)} px)")
    blocks = list(groups[0][1]["block"]) if groups else []
    ax.set_xticks(np.arange(len(blocks)), blocks, rotation=90, fontsize="x-small")
    ax.set(ylabel="||w - w_ImageNet|| / ||w_ImageNet||", xlabel="block (input to output)")
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    if title:
        ax.set_title(title)
    return fig


@styled
def ablation_plot(ablation: pd.DataFrame, *, title: str | None = None) -> Figure:
    """Clean AUC, robust accuracy and photo-UAP fooling rate against image size (small multiples)."""
    panels = [("auc", "clean AUC"), ("robust_accuracy", "robust accuracy"), ("photo_uap", "photo-UAP fooling rate")]
    lo_hi = {"auc": ("auc_lo", "auc_hi"), "robust_accuracy": ("robust_lo", "robust_hi"),
             "photo_uap": ("photo_uap_lo", "photo_uap_hi")}
    fig, axes = new_figure(1, 3, figsize=(9.0, 2.8))
    sizes = ablation["size"].to_numpy()
    for ax, (col, label) in zip(axes[0], panels):
        lo, hi = lo_hi[col]
        y = ablation[col].to_numpy(float)
        err = np.vstack([y - ablation[lo].to_numpy(float), ablation[hi].to_numpy(float) - y])
        ax.errorbar(sizes, y, yerr=np.clip(np.nan_to_num(err), 0, None), fmt="o-", capsize=3,
                    color=sns.color_palette(PALETTE)[0])
        ax.set(xlabel="image side (px)", title=label, ylim=(-0.03, 1.03))
        ax.set_xticks(sizes)
    if title:
        fig.suptitle(title)
    return fig
