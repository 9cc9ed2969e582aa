"""Figures of chapter 6: the patches, patched test images, success against scale, and the
patch explorer.

Every function returns a ``matplotlib.figure.Figure`` built without pyplot
(:func:`advmed.plots.new_figure`), in the book's style. Patched images are drawn with
:func:`advmed.attacks.patch.apply_patch` (the evaluation's own pasting).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

import numpy as np
import torch
from matplotlib.figure import Figure

from ... import widgets
from ...attacks.patch import BASE, apply_patch, shape_mask
from ...attacks.patch.geometry import extent_factor
from ...cache import tensor_digest
from ...data import get_task
from ...metrics import Estimate
from ...models import predict_proba
from ...plots import PAGE_WIDTH, BookFigure, attack_color, legend_outside, panel_grid, show_image, styled, task_label
from ..profiles import PatchExplorerSettings, Profile
from ..kernel.selection import explorer_images
from .run import KINDS, PatchExperiment, PatchKey, evaluate

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


def _gallery_row(axes: Any, exp: PatchExperiment, k: PatchKey, images: Any, n: int, *,
                 patch_title: Callable[[int], str], hit_color: str) -> None:
    """One gallery row: the two patches of run ``k`` (titled ``patch_title(target)``), then
    ``n`` held-out images (one per class in turn, seeded) with the patch for their other class
    pasted at the comparison scale, titled with the target model's prediction (``hit_color``:
    the patch's class)."""
    classes = list(images.classes)
    rng = np.random.default_rng(exp.seed)
    pick = ([int(rng.choice(np.flatnonzero(images.labels.numpy() == c))) for c in range(2)] * n)[:n]
    run, tm = exp.runs[k], exp.trained[k.model]
    for t in range(2):
        show_image(axes[t], _shown(run.patch[t], exp.settings.shape))
        axes[t].set_title(patch_title(t), fontsize="x-small")
    for j, idx in enumerate(pick):
        x = images.float()[idx:idx + 1]
        other = 1 - int(images.labels[idx])
        xp = apply_patch(x, run.patch[other:other + 1], scale=exp.settings.eval_scale, shape=exp.settings.shape,
                         location="random", rotation=0.0, seed=exp.seed + j)
        pred = int(predict_proba(tm.model, xp).argmax(1)[0])
        show_image(axes[2 + j], xp[0])
        axes[2 + j].set_title(f"true {classes[int(images.labels[idx])]}\npred {classes[pred]}", fontsize="x-small",
                              color=hit_color if pred == other else "black")


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
        _gallery_row(axes[i], exp, k, images, n, hit_color="#D55E00",
                     patch_title=lambda t, task=task, k=k, classes=classes:
                     f"{task_label(task) if t == 0 else ''}\n{k.kind} → {classes[t]}")
    return fig


# --------------------------------------------------------------------------- the explorer
def _explorer_grid(exp: PatchExperiment, s: PatchExplorerSettings) -> dict[str, list]:
    """The static page's values per control (the profile's ``patch_explorer`` subset of the
    experiment) and the live explorer's (everything the experiment has, plus ``live_*``)."""
    tasks_all = exp.tasks()
    tasks = tasks_all if s.tasks is None else tasks_all[: max(1, int(s.tasks))]
    kinds_all = [k for k in KINDS if any(r.kind == k for r in exp.runs)]
    kinds = [k for k in kinds_all if s.patches is None or k in s.patches] or kinds_all
    evaluated = sorted({float(v) for r in exp.runs.values() for v in r.evals["scale"]})
    scales = [v for v in evaluated if s.scales is None or any(abs(v - float(w)) < 1e-9 for w in s.scales)]
    return {"tasks": tasks, "tasks_all": tasks_all, "patches": kinds, "patches_all": kinds_all,
            "scales": scales or evaluated, "scales_all": sorted(set(evaluated) | {float(v) for v in s.live_scales}),
            "rotations": [float(r) for r in s.rotations],
            "rotations_all": sorted({float(r) for r in (*s.rotations, *s.live_rotations)}),
            "locations": list(s.locations), "locations_all": list(widgets.patch.LOCATION_LABELS)}


def _explorer_controls(exp: PatchExperiment, g: Mapping[str, list]) -> list:
    def pairs(ts: list[str]) -> list[tuple[str, str]]:
        return [(get_task(t).title, t) for t in ts]

    return widgets.patch_controls(
        tasks=pairs(g["tasks"]), patches=g["patches"], scales=g["scales"], rotations=g["rotations"],
        locations=g["locations"], default_scale=float(exp.settings.eval_scale) if float(exp.settings.eval_scale)
        in g["scales"] else None,
        live={"task": pairs(g["tasks_all"]), "patch": g["patches_all"], "scale": g["scales_all"],
              "rotation": g["rotations_all"], "location": g["locations_all"]})


def _location(name: str, scale: float, rotation: float, shape: str, hw: tuple[int, int]) -> Any:
    """``apply_patch``'s ``location`` for a control value: None (centre), ``"random"``, or the
    (row, col) centre that puts the patch in a corner (touching both borders)."""
    if name == "center":
        return None
    if name == "random":
        return "random"
    half = 0.5 * scale * BASE * min(hw) * float(extent_factor(shape, rotation))
    lo = (half - 0.5, half - 0.5)
    return lo if name == "top-left" else (hw[0] - 0.5 - half, hw[1] - 0.5 - half)


def _rate(exp: PatchExperiment, key: PatchKey, scale: float, profile: Profile, on_demand: bool) -> Any:
    """The evaluation row of ``key``'s patch at ``scale``: the experiment's, or (live) one
    evaluated now through the family's memoised :func:`~.run.evaluate`."""
    run = exp.runs[key]
    try:
        return run.at(scale)
    except KeyError:
        if not on_demand:
            raise widgets.Unavailable(f"The patches were not evaluated at scale {scale:g} in this build; a live "
                                      "notebook evaluates it on demand.") from None
    one = dataclasses.replace(exp.settings, eval_scales=(float(scale),), eval_scale=float(scale))
    rows = evaluate(exp.trained[key.model], run.patch, exp.eval_sets[key.task], one, n_boot=profile.eval.n_boot,
                    seed=exp.seed)
    return rows.iloc[0]


def _view(exp: PatchExperiment, key: PatchKey, st: widgets.PatchSetting, row: Any,
          idx: list[int]) -> widgets.PatchView:
    """The plain data of one frame: ``key``'s patch pasted on the shown images at the setting."""
    images, tm = exp.eval_sets[st.task], exp.trained[key.model]
    sel = torch.as_tensor(idx, dtype=torch.long)
    x = images.float()[sel]
    y = images.labels[sel].long()
    targets = 1 - y  # each image carries the patch for its other class ("other", binary tasks)
    patch = exp.runs[key].patch
    where = _location(st.location, float(st.scale), float(st.rotation), exp.settings.shape, tuple(x.shape[-2:]))
    xp = apply_patch(x, patch[targets], scale=float(st.scale), rotation=float(st.rotation), location=where,
                     shape=exp.settings.shape, seed=exp.seed)
    classes = tuple(str(c) for c in images.classes)
    side = float(row["side_fraction"]) if "side_fraction" in row else float(st.scale) * BASE
    setting = (f"{widgets.patch.KIND_LABELS[st.patch]} patch, scale {float(st.scale):g} (side {side:.2f}, "
               f"{float(row['area']):.0%} of the image)\nrotation {float(st.rotation):g}°, location "
               f"{widgets.patch.LOCATION_LABELS[st.location]}")
    return widgets.PatchView(
        title=f"{task_label(st.task)} · {key.arch} ({tm.init_used})", setting=setting,
        patches=torch.stack([_shown(p, exp.settings.shape) for p in patch]), x=x, patched=xp.detach(),
        y=y.tolist(), targets=targets.tolist(), clean_proba=predict_proba(tm.model, x),
        patched_proba=predict_proba(tm.model, xp), classes=classes,
        rate=Estimate(float(row["success_rate"]), float(row["success_rate_lo"]), float(row["success_rate_hi"])),
        rate_name=f"targeted success at scale {float(st.scale):g}", n=int(row["n_images"]), task=st.task)


def _viewer(exp: PatchExperiment, profile: Profile, *, on_demand: bool,
            idx: Mapping[str, list[int]]) -> Callable[[widgets.PatchSetting], widgets.PatchView]:
    def view(st: widgets.PatchSetting) -> widgets.PatchView:
        if st.task not in exp.targets:
            raise widgets.Unavailable(f"No patches for {get_task(st.task).title} in this experiment.")
        key = PatchKey(*exp.targets[st.task], st.patch)
        if key not in exp.runs:
            why = " (no surrogate of the target was available)" if st.patch == "black-box" else ""
            raise widgets.Unavailable(f"No {st.patch} patch for {get_task(st.task).title}{why}.")
        return _view(exp, key, st, _rate(exp, key, float(st.scale), profile, on_demand), idx[st.task])

    return view


def _frames_key(exp: PatchExperiment, idx: Mapping[str, list[int]]) -> dict[str, Any]:
    """What the static frames depend on: every patch (its digest) and its evaluation, the
    models it is pasted for (checkpoint keys), the shown images and the patch settings."""
    runs = {"|".join(map(str, k)): {"patch": tensor_digest(r.patch), "evals": r.evals.to_json()}
            for k, r in exp.runs.items()}
    return {"runs": runs, "seed": exp.seed, "settings": repr(exp.settings),
            "models": {str(k): exp.trained[k].config.key() for k in exp.targets.values()},
            "images": {t: tensor_digest(ds.images[torch.as_tensor(idx[t], dtype=torch.long)])
                       for t, ds in exp.eval_sets.items() if t in idx}}


def explorer(exp: PatchExperiment, *, profile: Profile, mode: str | None = None, progress: bool = False):
    """The patch explorer of chapter 6, for :func:`advmed.widgets.patch_explorer`.

    Controls: task, patch (white box / black box / natural), scale, rotation and location.
    Static (the HTML book): the frames of the profile's ``patch_explorer`` grid, memoised
    under the digests of the patches, images and models, with their payload stated against
    ``budget_mb``. Live (a notebook with a kernel): every task and patch of the experiment,
    the ``live_scales`` and ``live_rotations`` too; a scale the experiment did not evaluate is
    evaluated on demand with :func:`~.run.evaluate` (memoised). ``mode``: see
    :func:`advmed.widgets.resolve_mode`.
    """
    s = profile.patch_explorer
    mode = widgets.resolve_mode(mode)
    g = _explorer_grid(exp, s)
    idx = {t: explorer_images(ds.labels, s.n_images, profile.seed) for t, ds in exp.eval_sets.items()}
    view = _viewer(exp, profile, on_demand=mode == "live", idx=idx)
    return widgets.patch_explorer(view, _explorer_controls(exp, g), mode=mode,
                                  cache_key=_frames_key(exp, idx) if mode == "static" else None,
                                  budget_mb=s.budget_mb, progress=progress)


__all__ = ["KIND_COLORS", "METRIC_LABELS", "explorer", "gallery_grid", "scale_grid"]
