"""The defense explorer of chapter 7: task, defense, JPEG quality, attacker and eps.

A thin specialisation of :mod:`advmed.widgets.core`. Each frame shows one test image through
one defense: the clean image, the perturbation the attacker found at that budget (amplified;
a gray task's perturbation is gray), the adversarial image, and the defended model's class
probabilities on both; beside them the robust accuracy that attacker leaves the defense at
that budget (over every test image of the chapter, with its bootstrap 95 % interval) and the
defense's clean accuracy. Moving the attacker from *oblivious* (PGD on the undefended model)
to *adaptive* (the attack on the defense itself) is the chapter's point: a defense that holds
against the first can fall to the second. The JPEG quality slider is shown, and matters, for
the JPEG defense only (``Control.when``).

The explorer knows nothing of experiments: the experiments layer
(``advmed.experiments.defenses.plots.explorer``) passes a ``view(setting) -> DefenseView`` of
plain data (tensors, labels, class names, :class:`advmed.metrics.Estimate`) and raises
:class:`~advmed.widgets.core.Unavailable` for settings it has no result for.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from ..metrics import Estimate
from ..plots import amplify
from . import core
from .core import ADV_COLOR, Control, as_numpy, image_panel, short

__all__ = ["ATTACKER_LABELS", "RENDER_VERSION", "DefenseSetting", "DefenseView", "defense_controls",
           "defense_explorer", "render_defense_frame"]

#: bumped when a frame's drawing changes (part of the stored frames' key)
RENDER_VERSION = 3
ATTACKER_LABELS = {"oblivious": "oblivious", "adaptive": "adaptive"}
#: the controls, in :class:`DefenseSetting` order (the budget's control is ``eps``)
CONTROL_NAMES = ("task", "defense", "quality", "attacker", "eps")
ROWS = (("task", "defense"), ("attacker",), ("quality",), ("eps",))
NOTE = ("One test image through the chosen defense. The oblivious attacker crafts PGD on the undefended model and "
        "submits the image to the defended one; the adaptive attacker attacks the defense itself (through JPEG by "
        "BPDA and a differentiable JPEG, end to end and by EOT through the VAE, on the trained weights) and keeps, "
        "per image, the worst of its attacks. Perturbation panel: 0.5 + gain × perturbation (mid-grey = no "
        "change; gray tasks have gray perturbations). Bars: the defended model's class probabilities, clean and "
        "attacked (red title: the attack changed a correct prediction). The robust accuracy is over every test "
        "image of the chapter at that setting, with its bootstrap 95 % interval. The JPEG quality slider is shown "
        "for the JPEG defense only.")

_CLEAN_COLOR = "#7f7f7f"


class DefenseSetting(NamedTuple):
    """One setting of the explorer, in control order."""

    task: str
    defense: str  # a defense name of the experiment ("none", "jpeg", "at_adversarialmed", ...)
    quality: int  # the JPEG quality (matters for "jpeg" only)
    attacker: str  # "oblivious" | "adaptive"
    eps_255: float  # the L-inf budget, /255 pixel levels


@dataclass(frozen=True)
class DefenseView:
    """Everything one frame draws, as plain data.

    Attributes:
        title, setting: the frame's heading (task and model; then defense, attacker and
            budget, on at most two lines).
        x, adv: the clean and the adversarial image (C, H, W) in [0, 1].
        y: its true class; classes: class names.
        clean_proba, adv_proba: the defended model's class probabilities (K,) on each.
        source: what found the adversarial image (e.g. "PGD on the undefended model").
        robust: the robust accuracy of the setting (``Estimate``) over ``n`` test images;
            robust_name: what it is.
        clean: the defended model's clean accuracy (``Estimate``).
        n: the test images both are taken over.
        warning: a line in red under the numbers (masking diagnostics flagged the defense), or "".
        task: the task's name, for which way a flip goes (:func:`~.core.harm_label`).
    """

    title: str
    setting: str
    x: Any
    adv: Any
    y: int
    classes: tuple[str, ...]
    clean_proba: Any
    adv_proba: Any
    source: str
    robust: Estimate
    robust_name: str
    clean: Estimate
    n: int
    warning: str = ""
    task: str = ""


# --------------------------------------------------------------------------- controls
def _fmt_eps(e: float) -> str:
    return f"{float(e):g}/255"


def defense_controls(*, tasks: Sequence[tuple[str, str]], defenses: Sequence[tuple[str, str]],
                     qualities: Sequence[int], eps_255: Sequence[float], attackers: Sequence[str] = ("oblivious",
                                                                                                     "adaptive"),
                     live: Mapping[str, Sequence[Any]] | None = None, default_defense: str | None = None,
                     default_quality: int | None = None, default_eps: float | None = None) -> list[Control]:
    """The five controls, in :class:`DefenseSetting` order.

    Args:
        tasks, defenses: ``(label, value)`` pairs of the precomputed grid.
        qualities: JPEG qualities of the grid (the slider exists only while the defense is
            ``"jpeg"``); eps_255: budgets (/255) of the grid; attackers: keys of
            :data:`ATTACKER_LABELS`.
        live: per control name, the values a live explorer offers beyond the grid (pairs for
            tasks and defenses).
        default_defense, default_quality, default_eps: shown first (None: the first defense,
            the middle quality, the largest budget).
    """
    live = dict(live or {})
    unknown = sorted(set(live) - set(CONTROL_NAMES))
    if unknown:
        raise KeyError(f"unknown controls {unknown}; valid: {', '.join(CONTROL_NAMES)}")
    bad = [a for a in list(attackers) + list(live.get("attacker", ())) if a not in ATTACKER_LABELS]
    if bad:
        raise ValueError(f"unknown attackers {bad}; valid: {', '.join(ATTACKER_LABELS)}")
    if not (tasks and defenses and qualities and eps_255 and attackers):
        raise ValueError("every control needs at least one value (tasks, defenses, qualities, eps_255, attackers)")
    qualities = sorted({int(q) for q in qualities})
    eps = sorted({float(e) for e in eps_255})

    def merged(name: str, grid: Sequence[Any], cast: Callable[[Any], Any]) -> list | None:
        extra = live.get(name)
        return None if extra is None else sorted({cast(v) for v in (*grid, *extra)})

    def pairs(name: str, grid: Sequence[tuple[str, str]]) -> tuple | None:
        extra = live.get(name)
        return None if extra is None else tuple(dict.fromkeys(tuple(p) for p in [*grid, *extra]))

    return [
        Control("task", "task", tuple(tasks), live_options=pairs("task", tasks)),
        Control("defense", "defense", tuple(defenses), live_options=pairs("defense", defenses),
                default=core.FIRST if default_defense is None else default_defense),
        Control.of("quality", "JPEG quality", qualities, str, kind="slider", when=("defense", ("jpeg",)),
                   live_values=merged("quality", qualities, int),
                   default=qualities[len(qualities) // 2] if default_quality is None else int(default_quality)),
        Control.of("attacker", "attacker", list(attackers), ATTACKER_LABELS.get, kind="toggle",
                   live_values=None if "attacker" not in live else
                   [a for a in ATTACKER_LABELS if a in {*attackers, *live["attacker"]}]),
        Control.of("eps", "eps", eps, _fmt_eps, kind="slider", live_values=merged("eps", eps, float),
                   default=eps[-1] if default_eps is None else float(default_eps)),
    ]


# --------------------------------------------------------------------------- render
def _bars(ax: Any, v: DefenseView) -> None:
    """The defended model's class probabilities, clean (grey) and attacked (red), one pair of
    bars per class, the value at each bar's end; the key sits under the axis, off the data."""
    pc, pa = np.asarray(v.clean_proba, dtype=float), np.asarray(v.adv_proba, dtype=float)
    k = len(pc)
    pos = np.arange(k)
    ax.barh(pos - 0.2, pc, height=0.38, color=_CLEAN_COLOR, label="clean")
    ax.barh(pos + 0.2, pa, height=0.38, color=ADV_COLOR, label="attacked")
    for i in range(k):
        for off, p in ((-0.2, pc[i]), (0.2, pa[i])):
            inside = p > 0.75  # a long bar carries its number inside, so none runs off the axis
            ax.text(p - 0.02 if inside else p + 0.02, i + off, f"{p:.2f}", va="center",
                    ha="right" if inside else "left", fontsize=6, color="white" if inside else "black")
    ax.set_yticks(pos, [short(c, 12) + (" ✓" if i == int(v.y) else "") for i, c in enumerate(v.classes)],
                  fontsize=6.5)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xticks([0, 0.5, 1], ["0", "0.5", "1"], fontsize=6)
    ax.tick_params(axis="y", length=0)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.set_title("defended model's probabilities", fontsize=6.5)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, fontsize=6, frameon=False,
              handlelength=1, columnspacing=1)


def _numbers(ax: Any, v: DefenseView, height: float) -> None:
    """The numbers column: the robust accuracy (name, value [interval]), the clean accuracy, n,
    what found the adversarial image, and the warning (red)."""
    ax.set_axis_off()
    r, c = v.robust, v.clean
    black = "black"
    lines = [(v.robust_name, 6.5, "bold", black), (f"{r.value:.2f} [{r.lo:.2f}, {r.hi:.2f}]", 8.5, "bold", black),
             ("", 2, "normal", black), (f"clean accuracy {c.value:.2f}", 6.5, "normal", black),
             (f"[{c.lo:.2f}, {c.hi:.2f}] over {v.n} test images", 6, "normal", black), ("", 2, "normal", black),
             ("attacked image from:", 6, "normal", black), (v.source, 6, "normal", black)]
    if v.warning:
        lines += [("", 2, "normal", black), *((w, 6, "bold", ADV_COLOR) for w in v.warning.splitlines())]
    y = 1.0
    for text, size, weight, color in lines:
        ax.text(0.0, y, text, fontsize=size, fontweight=weight, color=color, ha="left", va="top",
                transform=ax.transAxes)
        y -= 1.3 * size / 72 / height


def render_defense_frame(view: DefenseView, *, dpi: int = 100, cell: float = 0.95, quantize: bool = True) -> bytes:
    """Draw one frame as PNG bytes, within the page's text column (6.8 in): the clean image, the
    amplified perturbation and the adversarial image (each titled: the defended model's
    prediction and probability; red where the attack turned a correct prediction wrong), the
    defended model's class probabilities on both, and the numbers of the setting (robust and
    clean accuracy, what found the image, the masking checks' flag)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    v = view
    x, xa = as_numpy(v.x), as_numpy(v.adv)
    pc, pa = np.asarray(v.clean_proba, dtype=float), np.asarray(v.adv_proba, dtype=float)
    head, foot = 0.78, 0.4  # inches above (two heading lines, two-line panel titles) and below (labels, bar key)
    # inches of the class names left of the bars (off the attacked image), the bars and the numbers
    names, bars, text = 0.6, 1.2, 1.5
    width = 3 * cell + names + bars + text + 0.45
    height = max(cell, 1.2) + head + foot  # the numbers column needs 1.2 in
    fig = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(fig)
    gs = fig.add_gridspec(1, 6, width_ratios=[cell, cell, cell, names, bars, text], left=0.01, right=0.995,
                          top=1 - head / height, bottom=foot / height, wspace=0.08)
    c, a, t = int(pc.argmax()), int(pa.argmax()), int(v.y)
    ax = fig.add_subplot(gs[0, 0])
    image_panel(ax, x)
    # two-line titles: a class name and its probability fit the panel's width
    ax.set_title(f"clean\n{short(v.classes[c], 12)} {pc[c]:.2f}", fontsize=6.5)
    ax.set_xlabel(f"true: {short(v.classes[t], 16)}", fontsize=6, labelpad=2)
    img, gain = amplify(xa - x)
    ax = fig.add_subplot(gs[0, 1])
    image_panel(ax, img)
    ax.set_title(f"perturbation\n×{gain:.0f}", fontsize=6.5)
    ax.set_xlabel(f"max |δ| = {float(np.abs(xa - x).max()) * 255:.2g}/255", fontsize=6, labelpad=2)
    ax = fig.add_subplot(gs[0, 2])
    image_panel(ax, xa)
    broke = c == t and a != t
    ax.set_title(f"attacked\n{short(v.classes[a], 12)} {pa[a]:.2f}", fontsize=6.5,
                 color=ADV_COLOR if broke else "black")
    harm = core.harm_label(v.task, v.classes, t, c, a)
    if harm:
        ax.set_xlabel(harm, fontsize=6, labelpad=2, color=ADV_COLOR)
    _bars(fig.add_subplot(gs[0, 4]), v)
    _numbers(fig.add_subplot(gs[0, 5]), v, height - head - foot)
    fig.suptitle(f"{v.title}\n{v.setting}", fontsize=7, y=0.99, va="top")
    return core.figure_png(fig, dpi=dpi, quantize=quantize)


# --------------------------------------------------------------------------- the explorer
def defense_explorer(view: Callable[[DefenseSetting], DefenseView], controls: Sequence[Control], *,
                     mode: str | None = None, cache_key: Any = None, budget_mb: float = core.DEFAULT_BUDGET_MB,
                     render_kwargs: Mapping[str, Any] | None = None, progress: bool = True, data: Any = None,
                     busy: str = "attacking the defense…"):
    """The defense explorer (:func:`advmed.widgets.core.explorer` with this module's renderer).

    Args:
        view: ``DefenseSetting -> DefenseView`` (raise ``Unavailable`` for a setting without a
            result; live, it may attack a JPEG quality on demand). The frames must not depend on
            ``quality`` unless the defense is ``"jpeg"`` (the slider is hidden elsewhere).
        controls: :func:`defense_controls`.
        cache_key: static: identifies the results, images and models (e.g. their digests);
            the frames are then memoised and a warm build reloads them.
        mode, budget_mb, progress, data, busy: as :func:`advmed.widgets.core.explorer`.

    Example:
        >>> import torch
        >>> from advmed.metrics import Estimate
        >>> from advmed.widgets.defense import DefenseView, defense_controls, defense_explorer
        >>> ctl = defense_controls(tasks=[("demo", "demo")], defenses=[("none", "none"), ("JPEG", "jpeg")],
        ...                        qualities=[20], eps_255=[1.0, 4.0])
        >>> def view(s):
        ...     x = torch.full((3, 8, 8), 0.5)
        ...     adv = x + s.eps_255 / 255 * (s.attacker == "adaptive")
        ...     return DefenseView("demo", f"{s.defense}, {s.attacker}, {s.eps_255}", x, adv, 0, ("a", "b"),
        ...                        [0.9, 0.1], [0.4, 0.6], "PGD", Estimate(0.5, 0.4, 0.6), "robust", Estimate(0.9, 0.8, 1),
        ...                        10)
        >>> w = defense_explorer(view, ctl, mode="static", progress=False)
        >>> w.levels, w.n_frames
        (['defense', 'attacker', 'eps'], 8)
    """
    return core.typed_explorer("defense", CONTROL_NAMES, lambda k: DefenseSetting(*k), view, render_defense_frame,
                               controls, version=RENDER_VERSION, render_kwargs=render_kwargs, cache_key=cache_key,
                               mode=mode, note=NOTE, rows=ROWS, budget_mb=budget_mb, data=data, progress=progress,
                               busy=busy)
