"""Figures of chapter 5: transfer heatmaps, success against queries, U-SimBA perturbations.

Every function returns a ``matplotlib.figure.Figure`` built without pyplot
(:func:`advmed.plots.new_figure`), in the book's style.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from ...plots import PALETTE, new_figure, show_image, show_perturbation, styled
from ..profiles import Profile
from ..universal.run import attack_name
from ..zoo import ModelKey
from . import run as bbrun  # module lookup: usimba_sets stays replaceable
from .run import QueryRun, USimBAKey, USimBARun


@styled
def transfer_heatmap(matrix: pd.DataFrame, *, title: str | None = None, cell: float = 0.55) -> Figure:
    """A transfer matrix (:func:`~.tables.transfer_matrix`) as a heatmap, 0 (all fooled) to 1."""
    mat = matrix.dropna(how="all")
    labels = [f"{s} | {a}" for s, a in mat.index]
    fig, axes = new_figure(1, 1, figsize=(2.2 + 1.3 * mat.shape[1], 1.2 + cell * mat.shape[0]))
    ax = axes[0, 0]
    sns.heatmap(mat.to_numpy(dtype=float), ax=ax, vmin=0, vmax=1, cmap="rocket", annot=True, fmt=".2f",
                annot_kws={"fontsize": "x-small"}, cbar_kws={"label": mat.columns.name or ""},
                xticklabels=list(mat.columns), yticklabels=labels)
    ax.set_xlabel("target")
    ax.set_ylabel("surrogate | attack")
    ax.tick_params(labelsize="x-small")
    if title:
        ax.set_title(title, fontsize="medium")
    return fig


@styled
def query_curves(queries: Sequence[QueryRun], *, cell: tuple[float, float] = (3.4, 2.7)) -> Figure:
    """Success rate (among the attacked images) against the per-image query budget, one
    panel per task, one line per attack; the x axis is logarithmic."""
    tasks = list(dict.fromkeys(q.task for q in queries)) or [""]
    attacks = list(dict.fromkeys(q.attack for q in queries))
    colors = dict(zip(attacks, sns.color_palette(PALETTE, max(len(attacks), 1))))
    fig, axes = new_figure(1, len(tasks), figsize=(cell[0] * len(tasks) + 0.4, cell[1] + 0.6))
    for ax, task in zip(axes[0], tasks):
        for q in (q for q in queries if q.task == task):
            grid = np.unique(np.geomspace(1, q.budget, 200).astype(int))
            ax.step(grid, [q.success_at(int(b)) for b in grid], where="post", color=colors[q.attack],
                    label=f"{q.attack} ({q.model.label})")
        ax.set_xscale("log")
        ax.set_ylim(-0.03, 1.03)
        ax.set_xlabel("queries per image")
        ax.set_title(task, fontsize="medium")
        ax.legend(fontsize="x-small", loc="lower right")
    axes[0, 0].set_ylabel("success rate")
    fig.suptitle("Score-based query attacks: success within a budget", fontsize="medium")
    return fig


@styled
def usimba_gallery(runs: Mapping[USimBAKey, USimBARun], profile: Profile, zoo: Mapping[tuple, Any], *,
                   cell: float = 1.9) -> Figure:
    """Each U-SimBA perturbation amplified (gain in the title), above a held-out image of its
    task with the perturbation added (at gain 1: what the model sees)."""
    keys = list(runs)
    images = {t: bbrun.usimba_sets(t, profile)[1] for t in dict.fromkeys(k.task for k in keys)}
    n = max(len(keys), 1)
    fig, axes = new_figure(2, n, figsize=(cell * n + 0.4, 2 * cell + 0.9))
    for ax in axes.flat:
        ax.set_axis_off()
    for j, k in enumerate(keys):
        r = runs[k]
        g = show_perturbation(axes[0, j], r.delta)
        classes = zoo[ModelKey(k.task, k.arch, k.init)].classes
        axes[0, j].set_title(f"{k.task}\n{k.norm}, zeta {k.zeta:g}\n{attack_name(k.target, classes)}\n"
                             f"gain x{g:.0f}", fontsize="x-small")
        x = images[k.task].float()[:1]
        d = r.delta.expand(-1, x.shape[1], -1, -1) if r.delta.shape[1] == 1 else r.delta
        show_image(axes[1, j], (x + d).clamp(0, 1)[0])
        axes[1, j].set_title("image + perturbation", fontsize="x-small")
    fig.suptitle("U-SimBA: universal perturbations from output scores only", fontsize="medium")
    return fig


__all__ = ["query_curves", "transfer_heatmap", "usimba_gallery"]
