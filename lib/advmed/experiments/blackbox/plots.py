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

from ...attacks import attack_label
from ...plots import (
    PAGE_WIDTH,
    BookFigure,
    attack_color,
    legend_outside,
    new_figure,
    panel_grid,
    show_image,
    show_perturbation,
    styled,
    task_label,
)
from ..kernel import attack_name
from ..profiles import Profile
from ..zoo import ModelKey
from . import run as bbrun
from . import tables
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
def query_curves(queries: Sequence[QueryRun], *, ncols: int = 2, cell: tuple[float, float] = (3.2, 2.3)) -> Figure:
    """Success rate (among the attacked images) against the per-image query budget: one panel
    per task (``ncols`` a row), one line per attack in the book's colour, one legend under the
    panels; the x axis is logarithmic."""
    tasks = list(dict.fromkeys(q.task for q in queries)) or [""]
    fig, axes = panel_grid(len(tasks), ncols, cell=cell, sharey=True)
    for ax, task in zip(axes, tasks):
        for q in (q for q in queries if q.task == task):
            grid = np.unique(np.geomspace(1, q.budget, 200).astype(int))
            ax.step(grid, [q.success_at(int(b)) for b in grid], where="post", color=attack_color(q.attack),
                    label=attack_label(q.attack))
        ax.set_xscale("log")
        ax.set_ylim(-0.03, 1.03)
        ax.set_xlabel("queries per image")
        ax.set_title(task_label(task), fontsize="medium")
    axes[0].set_ylabel("success rate")
    legend_outside(fig)
    return fig


@styled
def usimba_gallery(runs: Mapping[USimBAKey, USimBARun], profile: Profile, zoo: Mapping[tuple, Any], *,
                   pairs: int = 2, max_panels: int = 8) -> Figure:
    """The non-targeted U-SimBA perturbations (all of them when none is non-targeted; at most
    ``max_panels``), ``pairs`` a row: each amplified (gain in its title) beside a held-out image
    of its task with the perturbation added at gain 1 (what the model sees)."""
    keys = ([k for k in runs if k.target is None] or list(runs))[:max_panels]
    images = {t: bbrun.usimba_sets(t, profile)[1] for t in dict.fromkeys(k.task for k in keys)}
    nrows = max(int(np.ceil(len(keys) / pairs)), 1)
    side = (PAGE_WIDTH - 0.3) / (2 * pairs)
    fig = BookFigure(figsize=(PAGE_WIDTH, nrows * (side + 0.55) + 0.1), layout="constrained")
    axes = fig.subplots(nrows, 2 * pairs, squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for j, k in enumerate(keys):
        row, col = j // pairs, 2 * (j % pairs)
        r = runs[k]
        g = show_perturbation(axes[row, col], r.delta)
        classes = zoo[ModelKey(k.task, k.arch, k.init)].classes
        axes[row, col].set_title(f"{task_label(k.task)}\n{k.norm}, zeta {k.zeta:g}, "
                                 f"{attack_name(k.target, classes)}\ngain ×{g:.0f}", fontsize="x-small")
        x = images[k.task].float()[:1]
        d = r.delta.expand(-1, x.shape[1], -1, -1) if r.delta.shape[1] == 1 else r.delta
        show_image(axes[row, col + 1], (x + d).clamp(0, 1)[0])
        axes[row, col + 1].set_title("image + perturbation\n(gain 1)", fontsize="x-small")
    return fig


def _heatmap(ax: Any, mat: pd.DataFrame, *, ylabels: bool) -> Any:
    """One transfer matrix on ``ax``: cells annotated, sources as rows (their labels if ``ylabels``)."""
    values = mat.to_numpy(dtype=float)
    mesh = ax.pcolormesh(values, vmin=0, vmax=1, cmap="rocket")
    for (i, j), v in np.ndenumerate(values):
        if np.isfinite(v):
            ax.text(j + 0.5, i + 0.5, f"{v:.2f}", ha="center", va="center", fontsize="x-small",
                    color="white" if v < 0.6 else "black")
    ax.set_yticks(np.arange(len(mat)) + 0.5, [f"{a} on {s}" for s, a in mat.index] if ylabels else [],
                  fontsize="x-small")
    # model names are longer than a cell is wide: slanted, so that neighbours cannot overlap
    ax.set_xticks(np.arange(mat.shape[1]) + 0.5, [str(c) for c in mat.columns], fontsize="x-small", rotation=30,
                  ha="right", rotation_mode="anchor")
    ax.invert_yaxis()
    ax.grid(False)
    return mesh


@styled
def transfer_grid(transfer: Any, *, metric: str = "accuracy", max_side_by_side: int = 6) -> Figure:
    """Every task's transfer matrix (:func:`~.tables.transfer_matrix`) as a heatmap, one panel per
    task, one shared colour bar (0: every image fooled, 1: none). Tasks sit side by side, sharing
    the source labels, when every task has the same sources and their targets number at most
    ``max_side_by_side`` in all; otherwise one task a row."""
    tasks = list(transfer.images) or [""]
    pairs = [(t, tables.transfer_matrix(transfer, t, metric=metric).dropna(how="all")) for t in tasks]
    pairs = [(t, m) for t, m in pairs if not m.empty]
    tasks, mats = [t for t, _ in pairs], [m for _, m in pairs]
    if not mats:
        fig, _ = new_figure(1, 1, figsize=(PAGE_WIDTH, 1.0))
        return fig
    same = all(list(m.index) == list(mats[0].index) for m in mats)
    side = same and sum(m.shape[1] for m in mats) <= max_side_by_side
    if side:
        fig = BookFigure(figsize=(PAGE_WIDTH, len(mats[0]) * 0.3 + 1.3), layout="constrained")
        axes = fig.subplots(1, len(mats), squeeze=False, gridspec_kw={"width_ratios": [m.shape[1] for m in mats]})[0]
    else:
        heights = [len(m) * 0.28 + 0.9 for m in mats]
        fig = BookFigure(figsize=(PAGE_WIDTH, sum(heights) + 0.3), layout="constrained")
        axes = fig.subplots(len(mats), 1, squeeze=False, gridspec_kw={"height_ratios": heights})[:, 0]
    for i, (ax, task, mat) in enumerate(zip(axes, tasks, mats)):
        mesh = _heatmap(ax, mat, ylabels=not side or i == 0)
        ax.set_title(task_label(task), fontsize="medium")
        ax.set_xlabel("target model" if side or i == len(mats) - 1 else "", fontsize="small")
    fig.colorbar(mesh, ax=list(axes), label=f"{metric} of the target", shrink=0.8)
    return fig


__all__ = ["query_curves", "transfer_grid", "transfer_heatmap", "usimba_gallery"]
