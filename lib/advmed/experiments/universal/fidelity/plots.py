"""Figures of the fidelity measurements: weight drift per block, the resolution ablation.

Page-width figures in the book's style (:mod:`advmed.plots`): one colour per model across
chapters, legends under the panels.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ....plots import PAGE_WIDTH, BookFigure, legend_outside, model_color, styled, task_label


@styled
def drift_plot(drift: pd.DataFrame) -> Figure:
    """Relative weight change from ImageNet per block (network order): one line per fine-tuned
    model (its colour), one line style per task; a note instead when no model started from
    ImageNet weights."""
    fig = BookFigure(figsize=(PAGE_WIDTH, 3.4), layout="constrained")
    ax = fig.subplots()
    if drift.empty:
        ax.set_axis_off()
        ax.text(0.5, 0.5, "no model of this profile started from ImageNet weights", ha="center", va="center")
        return fig
    styles = ["-", "--", ":", "-."]
    tasks = list(dict.fromkeys(drift["task"]))
    blocks: list[str] = []
    for (task, arch, init, size), g in drift.groupby(["task", "arch", "init", "size"], sort=False):
        ax.plot(np.arange(len(g)), g["relative_change"], "o", ls=styles[tasks.index(task) % len(styles)], ms=2.5,
                lw=1.3, color=model_color(arch, init), label=f"{task_label(task)}, {arch} ({int(size)} px)")
        if len(g) > len(blocks):
            blocks = list(g["block"])
    ax.set_xticks(np.arange(len(blocks)), blocks, rotation=90, fontsize="x-small")
    ax.tick_params(axis="y", labelsize="x-small")
    ax.set_ylabel("‖w − w_ImageNet‖ / ‖w_ImageNet‖", fontsize="small")
    ax.set_xlabel("block (input to output)", fontsize="small")
    legend_outside(fig)
    return fig


@styled
def ablation_plot(ablation: pd.DataFrame) -> Figure:
    """Clean AUC, robust accuracy and photo-UAP fooling rate against the image side (three
    small multiples, 95 % intervals as error bars)."""
    panels = [("auc", "auc_lo", "auc_hi", "clean AUC"),
              ("robust_accuracy", "robust_lo", "robust_hi", "robust accuracy"),
              ("photo_uap", "photo_uap_lo", "photo_uap_hi", "photo-UAP fooling rate")]
    fig = BookFigure(figsize=(PAGE_WIDTH, 2.4), layout="constrained")
    axes = fig.subplots(1, 3, squeeze=False)[0]
    a = ablation.sort_values("size") if not ablation.empty else ablation
    sizes = a["size"].to_numpy() if not a.empty else np.array([])
    for ax, (col, lo, hi, label) in zip(axes, panels):
        if not a.empty:
            y = a[col].to_numpy(float)
            err = np.vstack([y - a[lo].to_numpy(float), a[hi].to_numpy(float) - y])
            arch, _, init = str(a["model"].iloc[0]).partition(":") if "model" in a else ("", "", "")
            ax.errorbar(sizes, y, yerr=np.clip(np.nan_to_num(err), 0, None), fmt="o-", capsize=3, ms=3,
                        color=model_color(arch, init or None) if arch else "0.2")
            ax.set_xticks(sizes, [f"{int(s)}" for s in sizes])
        ax.set_ylim(-0.03, 1.03)
        ax.set_title(label, fontsize="small")
        ax.set_xlabel("image side (px)", fontsize="small")
        ax.tick_params(labelsize="x-small")
    return fig
