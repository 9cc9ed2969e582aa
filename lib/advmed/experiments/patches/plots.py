"""Figures of chapter 6: the patches, patched test images, and success against scale.

Every function returns a ``matplotlib.figure.Figure`` built without pyplot
(:func:`advmed.plots.new_figure`), in the book's style. Patched images are drawn with
:func:`advmed.attacks.patch.apply_patch` (the evaluation's own pasting).
"""
from __future__ import annotations

import numpy as np
import torch
from matplotlib.figure import Figure

from ...attacks.patch import apply_patch, shape_mask
from ...models import predict_proba
from ...plots import PAGE_WIDTH, BookFigure, attack_color, legend_outside, new_figure, panel_grid, show_image, styled, task_label
from .run import KINDS, PatchExperiment, PatchKey

#: One colour per kind of patch, the same in every figure: the book's patch colour for the
#: white-box patch, a second of Tol's muted hues for the black-box one, the control's grey.
KIND_COLORS = {"white-box": attack_color("patch"), "black-box": "#AA4499", "natural": attack_color("random")}
#: How figures name the metrics of a patch evaluation.
METRIC_LABELS = {"success_rate": "targeted success", "accuracy": "accuracy", "auc": "AUC"}


def _shown(patch: torch.Tensor, shape: str) -> torch.Tensor:
    """A patch row as it is printed: its shape's mask on a white background."""
    mask = shape_mask(patch.shape[-1], shape)[0]
    p = patch.expand(3, -1, -1) if patch.shape[0] == 1 else patch
    return p * mask + (1 - mask)


@styled
def patch_gallery(exp: PatchExperiment, task: str, *, n: int | None = None, cell: float = 1.8) -> Figure:
    """Per kind (rows): the two patches (one per target class), then ``n`` test images with
    the patch for their other class pasted at the comparison scale (random placement), with
    the target model's prediction (red: it is the patch's target class)."""
    keys = [k for k in (PatchKey(*exp.targets[task], kind) for kind in KINDS) if k in exp.runs]
    n = exp.settings.gallery_images if n is None else n
    images = exp.eval_sets[task]
    classes = list(images.classes)
    fig, axes = new_figure(len(keys), 2 + n, figsize=(cell * (2 + n) + 0.4, (cell + 0.5) * len(keys) + 0.5))
    for ax in axes.flat:
        ax.set_axis_off()
    rng = np.random.default_rng(exp.seed)
    pick = [int(rng.choice(np.flatnonzero(images.labels.numpy() == c))) for c in range(2)] * n
    pick = pick[:n]
    for i, k in enumerate(keys):
        run = exp.runs[k]
        tm = exp.trained[k.model]
        for t in range(2):
            show_image(axes[i, t], _shown(run.patch[t], exp.settings.shape))
            axes[i, t].set_title(f"{k.kind}\n-> {classes[t]}", fontsize="x-small")
        for j, idx in enumerate(pick):
            x = images.float()[idx:idx + 1]
            other = 1 - int(images.labels[idx])
            xp = apply_patch(x, run.patch[other:other + 1], scale=exp.settings.eval_scale, shape=exp.settings.shape,
                             location="random", rotation=0.0, seed=exp.seed + j)
            pred = int(predict_proba(tm.model, xp).argmax(1)[0])
            ax = axes[i, 2 + j]
            show_image(ax, xp[0])
            ax.set_title(f"true {classes[int(images.labels[idx])]}\npred {classes[pred]}", fontsize="x-small",
                         color="red" if pred == other else "black")
    fig.suptitle(f"{task}: patches and patched test images (scale {exp.settings.eval_scale:g})", fontsize="medium")
    return fig


@styled
def scale_grid(exp: PatchExperiment, *, metrics: tuple[str, ...] = ("success_rate", "auc"),
               cell: tuple[float, float] = (3.2, 2.3)) -> Figure:
    """Each metric (columns: targeted success, AUC, ...) against the patch scale, one row per
    task, one line per kind of patch with its 95 % interval, one legend under the panels. The x
    ticks give the scale and, below it, the share of the image the patch covers; dotted: the
    comparison scale."""
    tasks = exp.tasks() or [""]
    fig, axes = panel_grid(len(tasks) * len(metrics), len(metrics), cell=cell, extra_height=1.0)
    for i, task in enumerate(tasks):
        for j, metric in enumerate(metrics):
            ax = axes[i * len(metrics) + j]
            e = None
            for k, run in exp.runs.items():
                if k.task != task:
                    continue
                e = run.evals.sort_values("scale")
                ax.plot(e["scale"], e[metric], "o-", ms=3, color=KIND_COLORS[k.kind], label=f"{k.kind} patch")
                if f"{metric}_lo" in e:
                    ax.fill_between(e["scale"], e[f"{metric}_lo"], e[f"{metric}_hi"], color=KIND_COLORS[k.kind],
                                    alpha=0.15, lw=0)
            if e is not None:
                ax.set_xticks(list(e["scale"]), [f"{s:g}\n{a:.0%}" for s, a in zip(e["scale"], e["area"])],
                              fontsize="x-small")
            ax.axvline(exp.settings.eval_scale, color="0.5", ls=":", lw=1)
            ax.margins(x=0.06)
            ax.set_ylim(-0.03, 1.03)
            ax.set_title(f"{task_label(task)}: {METRIC_LABELS.get(metric, metric)}", fontsize="small")
            if i == len(tasks) - 1:
                ax.set_xlabel("scale (above), share of the image (below)", fontsize="small")
    legend_outside(fig)
    return fig


def success_vs_scale(exp: PatchExperiment, *, metric: str = "success_rate") -> Figure:
    """``metric`` (targeted success by default; or accuracy, auc) against the patch scale: one
    panel per task (:func:`scale_grid` with one metric)."""
    return scale_grid(exp, metrics=(metric,))


@styled
def gallery_grid(exp: PatchExperiment, *, n: int | None = None) -> Figure:
    """Every task's patches in one figure, one row per task and kind of patch: the two patches
    (one per target class, as printed: the disc on white), then ``n`` held-out images with the
    patch for their other class pasted at the comparison scale, titled with the target model's
    prediction (orange: the patch's class)."""
    rows = [(task, k) for task in exp.tasks() for k in (PatchKey(*exp.targets[task], kind) for kind in KINDS)
            if k in exp.runs]
    n = exp.settings.gallery_images if n is None else n
    side = (PAGE_WIDTH - 0.2) / (2 + n)
    fig = BookFigure(figsize=(PAGE_WIDTH, max(len(rows), 1) * (side + 0.45) + 0.2), layout="constrained")
    axes = fig.subplots(max(len(rows), 1), 2 + n, squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for i, (task, k) in enumerate(rows):
        images = exp.eval_sets[task]
        classes = list(images.classes)
        rng = np.random.default_rng(exp.seed)
        pick = ([int(rng.choice(np.flatnonzero(images.labels.numpy() == c))) for c in range(2)] * n)[:n]
        run, tm = exp.runs[k], exp.trained[k.model]
        for t in range(2):
            show_image(axes[i, t], _shown(run.patch[t], exp.settings.shape))
            axes[i, t].set_title(f"{task_label(task) if t == 0 else ''}\n{k.kind} → {classes[t]}", fontsize="x-small")
        for j, idx in enumerate(pick):
            x = images.float()[idx:idx + 1]
            other = 1 - int(images.labels[idx])
            xp = apply_patch(x, run.patch[other:other + 1], scale=exp.settings.eval_scale, shape=exp.settings.shape,
                             location="random", rotation=0.0, seed=exp.seed + j)
            pred = int(predict_proba(tm.model, xp).argmax(1)[0])
            show_image(axes[i, 2 + j], xp[0])
            axes[i, 2 + j].set_title(f"true {classes[int(images.labels[idx])]}\npred {classes[pred]}",
                                     fontsize="x-small", color="#D55E00" if pred == other else "black")
    return fig


__all__ = ["KIND_COLORS", "METRIC_LABELS", "gallery_grid", "patch_gallery", "scale_grid", "success_vs_scale"]
