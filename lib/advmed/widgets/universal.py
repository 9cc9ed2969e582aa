"""The UAP explorer of chapters 3 and 4: task, model, norm, zeta, target and UAP source.

A thin specialisation of :mod:`advmed.widgets.core`. Each frame shows one universal
perturbation (amplified: ``0.5 + gain x delta``, the gain in the panel's title, mid-grey =
no change; a gray task's UAP is one gray channel and drawn gray), a grid of held-out images
before and after adding it with the model's predictions (red: changed), and the fooling rate
(or targeted success rate) at that setting with its bootstrap 95 % interval, beside the
rate of the other perturbation (the UAP's random control, or the UAP a random control
stands for).

The explorer knows nothing of experiments: the experiments layer
(``advmed.experiments.universal.plots.explorer``) passes a ``view(setting) -> UAPView`` of
plain data (tensors, labels, class names, :class:`advmed.metrics.Estimate`) and raises
:class:`~advmed.widgets.core.Unavailable` for settings it has no UAP for.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch

from ..metrics import Estimate
from ..plots import amplify
from . import core
from .core import ADV_COLOR, Control, as_numpy, image_panel, short

__all__ = ["NORM_LABELS", "NO_TARGET", "RENDER_VERSION", "SOURCE_LABELS", "UAPSetting", "UAPView", "render_uap_frame",
           "uap_controls", "uap_explorer"]

#: bumped when a frame's drawing changes (part of the stored frames' key)
RENDER_VERSION = 1
SOURCE_LABELS = {"medical": "medical images", "natural": "natural photos", "random": "random control"}
NORM_LABELS = {"l2": "L2", "linf": "L-inf"}
ROWS = (("task", "model", "target"), ("norm", "source"), ("zeta",))
NOTE = ("UAP panel: 0.5 + gain × perturbation (gain in its title; mid-grey = no change; gray tasks have gray "
        "UAPs). Top row: held-out images and the model's prediction; bottom row: the same images with the "
        "perturbation added (red: the prediction changed). The rate is over all held-out images of the task, "
        "with its bootstrap 95 % interval. zeta is the bound as a fraction of the mean image norm.")



#: the target control's value for non-targeted UAPs (a selection widget reads None as "nothing")
NO_TARGET = "none"


class UAPSetting(NamedTuple):
    """One setting of the explorer, in control order."""

    task: str
    model: str  # "arch:init"
    norm: str  # "l2" | "linf"
    zeta: float
    target: int | None  # None: non-targeted
    source: str  # "medical" | "natural" | "random"

    @classmethod
    def of(cls, key: Sequence[Any]) -> "UAPSetting":
        """From a frame key (the controls' values; the target control says ``"none"``)."""
        s = cls(*key)
        return s._replace(target=None) if s.target == NO_TARGET else s

    def key(self) -> tuple:
        """The frame key of this setting (what the controls hold)."""
        return tuple(self._replace(target=NO_TARGET if self.target is None else self.target))


@dataclass(frozen=True)
class UAPView:
    """Everything one frame draws, as plain data.

    Attributes:
        title, setting: the frame's heading (task and model; then norm, zeta, eps, target
            and source, on at most two lines).
        delta: the perturbation (1, C, H, W) or (C, H, W), [0, 1] pixel units (C = 1: gray).
        x: the held-out images shown (n, C, H, W) in [0, 1].
        y, clean, adv: their true classes and the predictions without / with ``delta``.
        classes: class names.
        rate, rate_name: the rate at this setting (``Estimate``) and what it is
            ("fooling rate", "targeted success -> pneumonia"); n: images it is taken over.
        other, other_name: the rate to compare with (the random control's, or the UAP's).
        delta_name: the perturbation panel's name ("UAP", "random").
        task: the task's name, for which way a flip goes (:func:`~.core.harm_label`).
    """

    title: str
    setting: str
    delta: torch.Tensor
    x: torch.Tensor
    y: Sequence[int]
    clean: Sequence[int]
    adv: Sequence[int]
    classes: tuple[str, ...]
    rate: Estimate
    rate_name: str
    n: int
    other: Estimate | None = None
    other_name: str = ""
    delta_name: str = "UAP"
    task: str = ""


# --------------------------------------------------------------------------- controls
def _fmt_zeta(z: float) -> str:
    return f"{100 * float(z):g} %"


def uap_controls(*, tasks: Sequence[tuple[str, str]], models: Sequence[tuple[str, str]], norms: Sequence[str],
                 zetas: Sequence[float], targets: Sequence[tuple[str, int | None]], sources: Sequence[str],
                 live: Mapping[str, Sequence[Any]] | None = None) -> list[Control]:
    """The six controls, in :class:`UAPSetting` order.

    Args:
        tasks, models, targets: ``(label, value)`` pairs of the precomputed grid (a target
            value is None for non-targeted or a class index).
        norms (``"l2"``, ``"linf"``), zetas (fractions), sources (``"medical"``,
            ``"natural"``, ``"random"``): values of the grid.
        live: per control name, the values a live explorer offers beyond the grid, in the
            same form (pairs for tasks, models, targets).
    """
    live = dict(live or {})
    unknown = sorted(set(live) - set(UAPSetting._fields))
    if unknown:
        raise KeyError(f"unknown controls {unknown}; valid: {', '.join(UAPSetting._fields)}")
    bad = [s for s in list(sources) + list(live.get("source", ())) if s not in SOURCE_LABELS]
    if bad:
        raise ValueError(f"unknown UAP sources {bad}; valid: {', '.join(SOURCE_LABELS)}")

    def pairs(name: str, grid: Sequence[tuple[str, Any]]) -> dict[str, Any]:
        extra = live.get(name)
        return {"live_options": None if extra is None else tuple(dict.fromkeys(tuple(p) for p in [*grid, *extra]))}

    def values(name: str, grid: Sequence[Any], key: Any = None) -> dict[str, Any]:
        extra = live.get(name)
        return {"live_values": None if extra is None else sorted(set(grid) | set(extra), key=key)}

    def targets_of(pairs: Sequence[tuple[str, int | None]]) -> list[tuple[str, int | str]]:
        return [(k, NO_TARGET if v is None else v) for k, v in pairs]

    targets = targets_of(targets)
    if "target" in live:
        live["target"] = targets_of(live["target"])
    zetas = sorted(float(z) for z in zetas)
    return [
        Control("task", "task", tuple(tasks), **pairs("task", tasks)),
        Control("model", "model", tuple(models), **pairs("model", models)),
        Control.of("norm", "norm", list(norms), lambda n: NORM_LABELS.get(n, n), kind="toggle",
                   **values("norm", list(norms), key=list(NORM_LABELS).index)),
        Control.of("zeta", "zeta", zetas, _fmt_zeta, kind="slider", default=zetas[-1],
                   **values("zeta", zetas, key=float)),
        Control("target", "target", tuple(targets), **pairs("target", targets)),
        Control.of("source", "UAP from", list(sources), SOURCE_LABELS.get, kind="toggle",
                   **values("source", list(sources), key=list(SOURCE_LABELS).index)),
    ]


# --------------------------------------------------------------------------- render
def _fmt_estimate(e: Estimate) -> str:
    return f"{e.value:.2f} [{e.lo:.2f}, {e.hi:.2f}]"


def _rate_text(ax: Any, v: UAPView, cell: float) -> None:
    """The rate block under the perturbation: name, value [interval], n, then the other rate."""
    ax.set_axis_off()
    lines = [(v.rate_name, 6.5, "bold"), (_fmt_estimate(v.rate), 8, "bold"), (f"n = {v.n} held-out", 6, "normal")]
    if v.other is not None:
        lines += [("", 3, "normal"), (v.other_name, 6, "normal"), (_fmt_estimate(v.other), 6.5, "normal")]
    y = 1.02
    for text, size, weight in lines:
        ax.text(-0.02, y, text, fontsize=size, fontweight=weight, ha="left", va="top", transform=ax.transAxes)
        y -= 1.3 * size / 72 / cell  # one line, in axes units


def render_uap_frame(view: UAPView, *, dpi: int = 100, cell: float = 1.1, quantize: bool = True) -> bytes:
    """Draw one frame as PNG bytes: the amplified perturbation and the rate (left column),
    then per held-out image the clean image (top) and the image with the perturbation
    (bottom), each titled with the model's prediction; the bottom title is red where the
    prediction changed and the true class is written underneath."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    v = view
    x = as_numpy(v.x)
    d = as_numpy(v.delta).reshape((-1,) + x.shape[-2:])
    xa = np.clip(x + d[None], 0, 1)
    n = len(x)
    head, foot = 0.78, 0.32  # inches above (three heading lines) and below (true class, harm)
    width, height = cell * (n + 1.3) + 0.25, cell * 2 + head + foot
    fig = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(fig)
    gs = fig.add_gridspec(2, n + 1, width_ratios=[1.3] + [1] * n, left=0.02, right=0.98, top=1 - head / height,
                          bottom=foot / height, wspace=0.08, hspace=0.32)
    img, gain = amplify(d)
    ax = fig.add_subplot(gs[0, 0])
    image_panel(ax, img)
    ax.set_title(f"{v.delta_name} ×{gain:.0f}", fontsize=7)
    _rate_text(fig.add_subplot(gs[1, 0]), v, cell)
    for j in range(n):
        c, a, t = int(v.clean[j]), int(v.adv[j]), int(v.y[j])
        top, bottom = fig.add_subplot(gs[0, j + 1]), fig.add_subplot(gs[1, j + 1])
        image_panel(top, x[j])
        top.set_title(f"clean: {short(v.classes[c])}", fontsize=7)
        image_panel(bottom, xa[j])
        bottom.set_title(f"+{v.delta_name}: {short(v.classes[a])}", fontsize=7,
                         color=ADV_COLOR if a != c else "black")
        harm = core.harm_label(v.task, v.classes, t, c, a)
        bottom.set_xlabel(f"true: {short(v.classes[t], 16)}" + (f"\n{harm}" if harm else ""), fontsize=6.5,
                          labelpad=2, color=ADV_COLOR if harm else "black")
    fig.suptitle(f"{v.title}\n{v.setting}", fontsize=7.5, y=0.99, va="top")
    return core.figure_png(fig, dpi=dpi, quantize=quantize)


# --------------------------------------------------------------------------- the explorer
def uap_explorer(view: Callable[[UAPSetting], UAPView], controls: Sequence[Control], *, mode: str | None = None,
                 cache_key: Any = None, budget_mb: float = core.DEFAULT_BUDGET_MB,
                 render_kwargs: Mapping[str, Any] | None = None, progress: bool = True, data: Any = None,
                 busy: str = "building the UAP…"):
    """The UAP explorer (:func:`advmed.widgets.core.explorer` with this module's renderer).

    Args:
        view: ``UAPSetting -> UAPView`` (raise ``Unavailable`` for a setting without a UAP;
            live, it may build one on demand).
        controls: :func:`uap_controls`.
        cache_key: static: identifies the UAPs and images (e.g. their digests); the frames
            are then memoised and a warm build reloads them.
        mode, budget_mb, progress, data, busy: as :func:`advmed.widgets.core.explorer`.
    """
    return core.typed_explorer("uap", UAPSetting._fields, UAPSetting.of, view, render_uap_frame, controls,
                               version=RENDER_VERSION, render_kwargs=render_kwargs, cache_key=cache_key, mode=mode,
                               note=NOTE, rows=ROWS, budget_mb=budget_mb, data=data, progress=progress, busy=busy)
