"""Figures of chapters 3 and 4: the perturbations, images before / after, confusion matrices
under a UAP, transfer heatmaps and rate-vs-control bar charts.

Every function returns a ``matplotlib.figure.Figure`` built without pyplot (see
:mod:`advmed.plots`), in the book's style. Inputs are the :class:`~.run.UAPExperiment` of
:func:`~.run.uap_experiment` / :func:`~.run.natural_uap_experiment` and the tables built
from them. Pixels are in [0, 1].
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import seaborn as sns
import torch
from matplotlib.figure import Figure

from ...plots import PALETTE, confusion_matrix, new_figure, show_image, show_perturbation, styled
from .run import RunKey, UAPExperiment


def _run_title(key: RunKey, classes: Sequence[str] | None = None) -> str:
    att = "non-targeted" if key.target is None else f"-> {classes[key.target] if classes else key.target}"
    return f"{key.arch} ({key.init})\n{key.norm}, zeta {key.zeta:g}, {att}"


@styled
def uap_gallery(exp: UAPExperiment, keys: Sequence[RunKey] | None = None, *, gain: float | None = None,
                ncols: int = 4, cell_inches: float = 2.0, title: str | None = None) -> Figure:
    """The perturbations themselves, amplified (gain per panel in its title, or one common
    ``gain``). ``keys`` are run keys of ``exp.runs`` (default: the non-targeted UAPs)."""
    keys = list(keys) if keys is not None else exp.keys(targeted=False)
    n = max(len(keys), 1)
    ncols = min(ncols, n)
    nrows = int(np.ceil(n / ncols))
    fig, axes = new_figure(nrows, ncols, figsize=(cell_inches * ncols + 0.4, (cell_inches + 0.55) * nrows + 0.4))
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, key in zip(axes.flat, keys):
        g = show_perturbation(ax, exp.runs[key].delta, gain)
        classes = exp.trained[key.model].classes
        ax.set_title(f"{key.task}\n{_run_title(key, classes)}\ngain x{g:.0f}", fontsize="x-small")
    fig.suptitle(title or "UAPs shown as 0.5 + gain x delta (gain per panel)",
                 fontsize="small" if ncols < 3 else "medium", wrap=True)
    return fig


@styled
def before_after(exp: UAPExperiment, key: RunKey, *, n: int = 4, seed: int | None = None,
                 gain: float | None = None, cell_inches: float = 1.9) -> Figure:
    """Held-out images before (top row) and after (bottom row) adding one UAP, with the
    model's predictions; the first column shows the amplified UAP. ``seed`` (default the
    experiment's) draws the images, fooled ones first."""
    run = exp.runs[key]
    ds = exp.sets[key.task]
    classes = exp.trained[key.model].classes
    clean, adv = np.asarray(run.clean), np.asarray(run.adv)
    seed = exp.seed if seed is None else seed
    rng = np.random.default_rng(seed)
    fooled = np.flatnonzero(clean != adv)
    # show fooled images first (what the UAP does), then others, always the same draw per seed
    pool = np.concatenate([rng.permutation(fooled), rng.permutation(np.flatnonzero(clean == adv))])
    pick = pool[:n]
    x = ds.float()[torch.as_tensor(pick, dtype=torch.long)]
    xa = (x + run.delta).clamp(0, 1)
    fig, axes = new_figure(2, n + 1, figsize=(cell_inches * (n + 1), cell_inches * 2 + 0.8))
    for ax in axes.flat:
        ax.set_axis_off()
    for j, i in enumerate(pick):
        for r, (img, pred) in enumerate(((x[j], clean[i]), (xa[j], adv[i]))):
            ax = axes[r, j + 1]
            show_image(ax, img)
            colour = "black" if r == 0 or adv[i] == clean[i] else "crimson"
            ax.set_title(f"{'clean' if r == 0 else 'with UAP'}: {classes[pred]}", fontsize="x-small", color=colour)
    g = show_perturbation(axes[0, 0], run.delta, gain)
    axes[0, 0].set_title(f"UAP x{g:.0f}", fontsize="x-small")
    axes[1, 0].text(0.5, 0.5, "true classes:\n" + "\n".join(classes[int(ds.labels[i])] for i in pick),
                    ha="center", va="center", fontsize="x-small", transform=axes[1, 0].transAxes)
    fig.suptitle(f"{key.task} / {_run_title(key, classes).replace(chr(10), ', ')}")
    return fig


def confusion_under_uap(exp: UAPExperiment, key: RunKey) -> Figure:
    """Confusion matrix (true class vs prediction) of held-out images with the UAP added."""
    run = exp.runs[key]
    classes = exp.trained[key.model].classes
    return confusion_matrix(run.y, run.adv, classes,
                            title=f"{key.task} / {_run_title(key, classes).replace(chr(10), ', ')}")


@styled
def transfer_heatmap(matrix: pd.DataFrame, *, title: str | None = None) -> Figure:
    """Heatmap of a :func:`~.run.transfer_matrix` (fooling rate, 0-1)."""
    k = len(matrix)
    fig, axes = new_figure(figsize=(2.2 + 1.5 * k, 1.4 + 1.1 * k))
    ax = axes[0, 0]
    sns.heatmap(matrix.astype(float), annot=True, fmt=".2f", cmap="Reds", vmin=0, vmax=1, square=True, ax=ax,
                cbar_kws={"label": "fooling rate"}, linewidths=0.5, linecolor="white")
    ax.set(xlabel=matrix.columns.name or "applied to", ylabel=matrix.index.name or "built on")
    ax.tick_params(axis="x", rotation=20)
    ax.tick_params(axis="y", rotation=0)
    if title:
        ax.set_title(title)
    return fig


@styled
def rate_bars(table: pd.DataFrame, *, attack: str = "non-targeted", columns: Sequence[tuple[str, str]] = (
        ("rate", "UAP"), ("random", "random control")), threshold: float | None = None,
        title: str | None = None) -> Figure:
    """Bar chart: rate of each UAP beside its controls, one panel per task, bars per model x
    (norm, zeta). ``table`` is numeric (``uap_table(..., numeric=True)`` or a frame with the
    ``columns`` given); error bars from ``<col>_lo`` / ``<col>_hi`` when present."""
    t = table[table["attack"] == attack] if "attack" in table else table
    tasks = list(dict.fromkeys(t["task"]))
    fig, axes = new_figure(len(tasks), 1, figsize=(9.0, 2.9 * max(len(tasks), 1)))
    colors = sns.color_palette(PALETTE, len(columns))
    for ax, task in zip(axes[:, 0], tasks):
        g = t[t["task"] == task]
        labels = [f"{r.arch} ({r.init})\n{r.norm} {r.zeta:g}" for r in g.itertuples()]
        x = np.arange(len(g))
        w = 0.8 / len(columns)
        for i, ((col, name), c) in enumerate(zip(columns, colors)):
            vals = g[col].to_numpy(float)
            err = None
            if f"{col}_lo" in g and f"{col}_hi" in g:
                err = np.vstack([vals - g[f"{col}_lo"].to_numpy(float), g[f"{col}_hi"].to_numpy(float) - vals])
                err = np.clip(np.nan_to_num(err), 0, None)
            ax.bar(x + (i - (len(columns) - 1) / 2) * w, vals, w, yerr=err, color=c, label=name, capsize=2)
        if threshold is not None:
            ax.axhline(threshold, color="0.3", ls="--", lw=1, label=f"study's claim ({threshold:.0%})")
        ax.set_xticks(x, labels, fontsize="x-small")
        ax.set(ylim=(0, 1.02), ylabel="rate", title=task)
        ax.legend(fontsize="x-small", loc="upper left", ncols=len(columns) + 1)
    if title:
        fig.suptitle(title)
    return fig


def natural_rate_bars(table: pd.DataFrame, *, title: str = "Fooling rate on held-out medical images") -> Figure:
    """Chapter 4's bars: per model and bound, the UAP from photos, the UAP from medical images and
    the random control (``table`` is :func:`~.tables.natural_vs_medical`)."""
    bars = table.assign(attack="non-targeted", rate=table["_natural"], medical=table["_medical"],
                        random=table["_random"])
    return rate_bars(bars, columns=(("rate", "UAP from photos"), ("medical", "UAP from medical images"),
                                    ("random", "random control")), title=title)
