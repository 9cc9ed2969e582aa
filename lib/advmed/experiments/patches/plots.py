"""Figures of chapter 6: the patches, patched test images, and success against scale.

Every function returns a ``matplotlib.figure.Figure`` built without pyplot
(:func:`advmed.plots.new_figure`), in the book's style. Patched images are drawn with
:func:`advmed.attacks.patch.apply_patch` (the evaluation's own pasting).
"""
from __future__ import annotations

import numpy as np
import seaborn as sns
import torch
from matplotlib.figure import Figure

from ...attacks.patch import apply_patch, shape_mask
from ...models import predict_proba
from ...plots import PALETTE, new_figure, show_image, styled
from .run import KINDS, PatchExperiment, PatchKey


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
def success_vs_scale(exp: PatchExperiment, *, metric: str = "success_rate",
                     cell: tuple[float, float] = (3.3, 2.7)) -> Figure:
    """``metric`` (targeted success by default; or accuracy, auc) against the patch scale,
    one panel per task, one line per kind, with its 95 % interval; the top axis gives the
    share of the image the patch covers."""
    tasks = exp.tasks()
    colors = dict(zip(KINDS, sns.color_palette(PALETTE, len(KINDS))))
    fig, axes = new_figure(1, max(len(tasks), 1), figsize=(cell[0] * max(len(tasks), 1) + 0.4, cell[1] + 0.8))
    for ax, task in zip(axes[0], tasks):
        for k, run in exp.runs.items():
            if k.task != task:
                continue
            e = run.evals.sort_values("scale")
            ax.plot(e["scale"], e[metric], "o-", ms=3, color=colors[k.kind], label=k.kind)
            if f"{metric}_lo" in e:
                ax.fill_between(e["scale"], e[f"{metric}_lo"], e[f"{metric}_hi"], color=colors[k.kind], alpha=0.15, lw=0)
            areas = e
        ax.axvline(exp.settings.eval_scale, color="0.5", ls=":", lw=1)
        ax.set_ylim(-0.03, 1.03)
        ax.set_xlabel("scale (1 = Finlayson's 0.4)")
        ax.set_title(f"{task}\narea at scale: " + ", ".join(f"{s:g}: {a:.0%}" for s, a in
                                                             zip(areas["scale"], areas["area"])), fontsize="x-small")
        ax.legend(fontsize="x-small")
    axes[0, 0].set_ylabel(metric.replace("_", " "))
    fig.suptitle("Adversarial patches: effect against size", fontsize="medium")
    return fig


__all__ = ["patch_gallery", "success_vs_scale"]
