"""The adversarial-patch explorer of chapter 6: task, patch, scale, rotation and location.

A thin specialisation of :mod:`advmed.widgets.core`. Each frame shows the two patches of
one kind (one per target class, as printed: the shape on white), a row of held-out images
and the same images carrying the patch that targets their other class at the chosen scale,
rotation and location, each titled with the model's prediction and its probability (red:
the patch's class won), and the targeted success rate at that scale (over every held-out
image, random placements) with its bootstrap 95 % interval.

The explorer knows nothing of experiments: the experiments layer
(``advmed.experiments.patches.plots.explorer``) passes a ``view(setting) -> PatchView`` of
plain data (tensors, labels, class names, :class:`advmed.metrics.Estimate`) and raises
:class:`~advmed.widgets.core.Unavailable` for settings it has no patch for.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch

from ..metrics import Estimate
from . import core
from .core import ADV_COLOR, Control, as_numpy, image_panel, short

__all__ = ["KIND_LABELS", "LOCATION_LABELS", "RENDER_VERSION", "PatchSetting", "PatchView", "patch_controls",
           "patch_explorer", "render_patch_frame"]

#: bumped when a frame's drawing changes (part of the stored frames' key)
RENDER_VERSION = 2
KIND_LABELS = {"white-box": "white box", "black-box": "black box", "natural": "natural"}
LOCATION_LABELS = {"random": "random (seeded)", "center": "centre", "top-left": "top left",
                   "bottom-right": "bottom right"}
ROWS = (("task", "patch", "location"), ("scale",), ("rotation",))
NOTE = ("Left: the two patches (one per target class, as printed). Top row: held-out images and the model's "
        "prediction with its probability; bottom row: the same images carrying the patch for their other class "
        "(red: the patch's class won). Scale 1 = a patch side of 0.4 of the image side (Finlayson et al.'s "
        "size); rotation in degrees, clockwise. The rate is the targeted success over every held-out image at "
        "that scale (random placements and rotations, as evaluated), with its bootstrap 95 % interval.")



class PatchSetting(NamedTuple):
    """One setting of the explorer, in control order."""

    task: str
    patch: str  # "white-box" | "black-box" | "natural"
    scale: float  # the patch side relative to 0.4 of the image side
    rotation: float  # degrees, clockwise as displayed
    location: str  # a key of LOCATION_LABELS


@dataclass(frozen=True)
class PatchView:
    """Everything one frame draws, as plain data.

    Attributes:
        title, setting: the frame's heading (task and model; then patch, scale, rotation,
            location, on at most two lines).
        patches: the patches as printed (T, 3, s, s) in [0, 1], row t targets class t.
        x, patched: the held-out images shown and the same images with their patch
            (n, C, H, W) in [0, 1].
        y, targets: their true classes and the class each one's patch targets.
        clean_proba, patched_proba: the model's class probabilities (n, K) without / with it.
        classes: class names.
        rate, rate_name, n: the targeted success rate at this scale (``Estimate``), what it
            is, and the held-out images it is taken over.
        task: the task's name, for which way a flip goes (:func:`~.core.harm_label`).
    """

    title: str
    setting: str
    patches: torch.Tensor
    x: torch.Tensor
    patched: torch.Tensor
    y: Sequence[int]
    targets: Sequence[int]
    clean_proba: Any
    patched_proba: Any
    classes: tuple[str, ...]
    rate: Estimate
    rate_name: str
    n: int
    task: str = ""


# --------------------------------------------------------------------------- controls
def _fmt_scale(s: float) -> str:
    return f"{float(s):g}"


def _fmt_rotation(r: float) -> str:
    return f"{float(r):g}°"


def patch_controls(*, tasks: Sequence[tuple[str, str]], patches: Sequence[str], scales: Sequence[float],
                   rotations: Sequence[float], locations: Sequence[str],
                   live: Mapping[str, Sequence[Any]] | None = None, default_scale: float | None = None) -> list[Control]:
    """The five controls, in :class:`PatchSetting` order.

    Args:
        tasks: ``(label, value)`` pairs of the precomputed grid.
        patches: kinds of :data:`KIND_LABELS`; scales (relative to the base 0.4), rotations
            (degrees) and locations (keys of :data:`LOCATION_LABELS`): values of the grid.
        live: per control name, the values a live explorer offers beyond the grid (pairs for
            tasks).
        default_scale: the scale shown first (None: the grid's middle one).
    """
    live = dict(live or {})
    unknown = sorted(set(live) - set(PatchSetting._fields))
    if unknown:
        raise KeyError(f"unknown controls {unknown}; valid: {', '.join(PatchSetting._fields)}")
    bad = [p for p in list(patches) + list(live.get("patch", ())) if p not in KIND_LABELS]
    if bad:
        raise ValueError(f"unknown patches {bad}; valid: {', '.join(KIND_LABELS)}")
    bad = [p for p in list(locations) + list(live.get("location", ())) if p not in LOCATION_LABELS]
    if bad:
        raise ValueError(f"unknown locations {bad}; valid: {', '.join(LOCATION_LABELS)}")
    if not (tasks and patches and scales and rotations and locations):
        raise ValueError("every control needs at least one value (tasks, patches, scales, rotations, locations)")

    def values(name: str, grid: Sequence[Any], key: Any = None) -> dict[str, Any]:
        extra = live.get(name)
        return {"live_values": None if extra is None else sorted(set(grid) | set(extra), key=key)}

    scales = sorted({float(s) for s in scales})
    rotations = sorted({float(r) for r in rotations})
    if "scale" in live:
        live["scale"] = [float(s) for s in live["scale"]]
    if "rotation" in live:
        live["rotation"] = [float(r) for r in live["rotation"]]
    extra_tasks = live.get("task")
    first = scales[len(scales) // 2] if default_scale is None else float(default_scale)
    return [
        Control("task", "task", tuple(tasks),
                live_options=None if extra_tasks is None else tuple(dict.fromkeys(tuple(p) for p in
                                                                                  [*tasks, *extra_tasks]))),
        Control.of("patch", "patch", list(patches), KIND_LABELS.get, kind="toggle",
                   **values("patch", list(patches), key=list(KIND_LABELS).index)),
        Control.of("scale", "scale", scales, _fmt_scale, kind="slider", default=first, **values("scale", scales)),
        Control.of("rotation", "rotation", rotations, _fmt_rotation, kind="slider", **values("rotation", rotations)),
        Control.of("location", "location", list(locations), LOCATION_LABELS.get,
                   **values("location", list(locations), key=list(LOCATION_LABELS).index)),
    ]


# --------------------------------------------------------------------------- render
def _patch_strip(patches: np.ndarray) -> np.ndarray:
    """The patches side by side (C, s, T s + gaps) on white, for one panel."""
    c, s = patches.shape[1], patches.shape[-1]
    gap = np.ones((c, s, max(1, s // 6)), dtype=np.float32)
    parts: list[np.ndarray] = []
    for p in patches:
        parts += [p, gap]
    return np.concatenate(parts[:-1], axis=2)


def _rate_text(ax: Any, v: PatchView, cell: float) -> None:
    ax.set_axis_off()
    lines = [(v.rate_name, 6.5, "bold"), (f"{v.rate.value:.2f} [{v.rate.lo:.2f}, {v.rate.hi:.2f}]", 8, "bold"),
             (f"n = {v.n} held-out", 6, "normal")]
    y = 1.02
    for text, size, weight in lines:
        ax.text(-0.02, y, text, fontsize=size, fontweight=weight, ha="left", va="top", transform=ax.transAxes)
        y -= 1.3 * size / 72 / cell


def render_patch_frame(view: PatchView, *, dpi: int = 100, cell: float = 1.1, quantize: bool = True) -> bytes:
    """Draw one frame as PNG bytes: the patches and the rate (left column), then per held-out
    image the clean image (top) and the patched one (bottom), each titled with the model's
    prediction and probability; the bottom title is red where the patch's class won, and the
    true class and the patch's target are written underneath."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    v = view
    x, xp = as_numpy(v.x), as_numpy(v.patched)
    pc, pp = np.asarray(v.clean_proba, dtype=float), np.asarray(v.patched_proba, dtype=float)
    n = len(x)
    head, foot = 0.78, 0.44  # inches above (three heading lines) and below (true class, target, harm)
    width = max(cell * (n + 1.3) + 0.25, 4.4)  # the heading's lines fit even with two images
    height = cell * 2 + head + foot
    fig = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(fig)
    gs = fig.add_gridspec(2, n + 1, width_ratios=[1.3] + [1] * n, left=0.02, right=0.98, top=1 - head / height,
                          bottom=foot / height, wspace=0.08, hspace=0.32)
    ax = fig.add_subplot(gs[0, 0])
    image_panel(ax, _patch_strip(as_numpy(v.patches)))
    ax.set_title(" | ".join(f"→ {short(c, 8)}" for c in v.classes[: len(v.patches)]), fontsize=6.5)
    _rate_text(fig.add_subplot(gs[1, 0]), v, cell)
    for j in range(n):
        c, a, t, tg = int(pc[j].argmax()), int(pp[j].argmax()), int(v.y[j]), int(v.targets[j])
        top, bottom = fig.add_subplot(gs[0, j + 1]), fig.add_subplot(gs[1, j + 1])
        image_panel(top, x[j])
        top.set_title(f"{short(v.classes[c], 12)} {pc[j, c]:.2f}", fontsize=7)
        image_panel(bottom, xp[j])
        bottom.set_title(f"{short(v.classes[a], 12)} {pp[j, a]:.2f}", fontsize=7,
                         color=ADV_COLOR if a == tg else "black")
        harm = core.harm_label(v.task, v.classes, t, c, a)
        bottom.set_xlabel(f"true: {short(v.classes[t], 12)}\npatch → {short(v.classes[tg], 12)}"
                          + (f"\n{harm}" if harm else ""), fontsize=6, labelpad=2)
    fig.suptitle(f"{v.title}\n{v.setting}", fontsize=7.5, y=0.99, va="top")
    return core.figure_png(fig, dpi=dpi, quantize=quantize)


# --------------------------------------------------------------------------- the explorer
def patch_explorer(view: Callable[[PatchSetting], PatchView], controls: Sequence[Control], *,
                   mode: str | None = None, cache_key: Any = None, budget_mb: float = core.DEFAULT_BUDGET_MB,
                   render_kwargs: Mapping[str, Any] | None = None, progress: bool = True, data: Any = None,
                   busy: str = "pasting the patch…"):
    """The patch explorer (:func:`advmed.widgets.core.explorer` with this module's renderer).

    Args:
        view: ``PatchSetting -> PatchView`` (raise ``Unavailable`` for a setting without a
            patch; live, it may evaluate a scale on demand).
        controls: :func:`patch_controls`.
        cache_key: static: identifies the patches, images and models (e.g. their digests);
            the frames are then memoised and a warm build reloads them.
        mode, budget_mb, progress, data, busy: as :func:`advmed.widgets.core.explorer`.

    Example:
        >>> import torch
        >>> from advmed.metrics import Estimate
        >>> from advmed.widgets.patch import PatchView, patch_controls, patch_explorer
        >>> ctl = patch_controls(tasks=[("demo", "demo")], patches=["white-box"], scales=[0.5, 1.0],
        ...                      rotations=[0.0], locations=["center"])
        >>> def view(s):
        ...     x = torch.full((1, 3, 8, 8), 0.5)
        ...     return PatchView("demo", f"scale {s.scale}", torch.ones(2, 3, 4, 4), x, x * s.scale, [0], [1],
        ...                      [[0.9, 0.1]], [[0.2, 0.8]], ("a", "b"), Estimate(0.5, 0.4, 0.6), "success", 10)
        >>> w = patch_explorer(view, ctl, mode="static", progress=False)
        >>> w.levels, w.n_frames
        (['scale'], 2)
    """
    return core.typed_explorer("patch", PatchSetting._fields, lambda k: PatchSetting(*k), view, render_patch_frame,
                               controls, version=RENDER_VERSION, render_kwargs=render_kwargs, cache_key=cache_key,
                               mode=mode, note=NOTE, rows=ROWS, budget_mb=budget_mb, data=data, progress=progress,
                               busy=busy)
