"""The book's figures: ROC curves, confusion matrices, image grids, training curves.

Every function returns a ``matplotlib.figure.Figure`` built without ``pyplot``: no
global figure list (nothing leaks across a papermill run), no backend needed (the
figure renders with Agg on ``savefig``), and Jupyter shows a returned figure once
instead of twice (pyplot's inline backend would also show it at the end of the cell).
All figures share one look: seaborn's ``whitegrid`` style, ``notebook`` context and
the colour-blind-safe ``colorblind`` palette.
"""
from __future__ import annotations

import contextlib
import functools
import io
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from sklearn import metrics as skm

PALETTE = "colorblind"


@contextlib.contextmanager
def style():
    """The book's style, applied to everything drawn inside the block."""
    with sns.axes_style("whitegrid"), sns.plotting_context("notebook", font_scale=0.85):
        yield


def styled(fn):
    """Decorator: draw the whole figure of ``fn`` in the book's :func:`style`."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with style():
            return fn(*args, **kwargs)

    return wrapper


class BookFigure(Figure):
    """A Figure that Jupyter (and so papermill and the book) shows as a PNG.

    Figures here are built without pyplot, so no backend registers a display formatter
    for them; ``_repr_png_`` is the hook IPython asks for instead.
    """

    def _repr_png_(self) -> bytes:
        buf = io.BytesIO()
        self.savefig(buf, format="png", dpi=100)
        return buf.getvalue()


def new_figure(nrows: int = 1, ncols: int = 1, figsize: tuple[float, float] = (5.0, 4.0)):
    """A :class:`BookFigure` and its 2-D axes grid: every figure of the book starts here."""
    fig = BookFigure(figsize=figsize, layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def _numpy(a: Any) -> np.ndarray:
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    return np.asarray(a)


def _y_proba(result: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(y, proba)`` from a pair, a dict with ``y``/``proba`` or an object with those."""
    if isinstance(result, Mapping):
        y, p = result["y"], result["proba"]
    elif hasattr(result, "y") and hasattr(result, "proba"):
        y, p = result.y, result.proba
    else:
        y, p = result
    y, p = _numpy(y).astype(int).reshape(-1), _numpy(p).astype(float)
    if p.ndim == 1:
        p = np.stack([1 - p, p], 1)
    return y, p


def _macro_roc(y: np.ndarray, p: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Mean one-vs-rest TPR over classes at the false-positive rates ``grid``."""
    tprs = []
    for c in range(p.shape[1]):
        if 0 < (y == c).sum() < len(y):
            fpr, tpr, _ = skm.roc_curve(y == c, p[:, c])
            tprs.append(np.interp(grid, fpr, tpr))
    return np.mean(tprs, axis=0) if tprs else np.full_like(grid, np.nan)


@styled
def roc_curves(results: Mapping[str, Any], *, title: str | None = None,
               figsize: tuple[float, float] = (4.8, 4.4)) -> Figure:
    """ROC curves of several models on one axis, AUC in the legend.

    Args:
        results: ``{label: (y_true, proba)}`` (or dicts with ``y`` and ``proba``, e.g.
            ``advmed.experiments.zoo.clean_predictions``; tuple labels are joined by " / "), proba
            ``(n, K)`` softmax outputs. Binary: the ROC of class 1. Multiclass: the macro
            average of the one-vs-rest curves (TPR averaged at common FPRs), with the
            macro one-vs-rest AUC.
    """
    from .metrics import roc_auc

    fig, axes = new_figure(figsize=figsize)
    ax = axes[0, 0]
    colors = sns.color_palette(PALETTE, max(len(results), 1))
    grid = np.linspace(0, 1, 501)
    multiclass = False
    for color, (label, result) in zip(colors, results.items()):
        y, p = _y_proba(result)
        auc = roc_auc(y, p)
        if p.shape[1] == 2:
            if 0 < y.sum() < len(y):
                fpr, tpr, _ = skm.roc_curve(y, p[:, 1])
            else:
                fpr, tpr = grid, np.full_like(grid, np.nan)
        else:
            multiclass = True
            fpr, tpr = grid, _macro_roc(y, p, grid)
        name = " / ".join(map(str, label)) if isinstance(label, tuple) else label
        ax.plot(fpr, tpr, color=color, lw=1.8, label=f"{name} (AUC {auc:.3f})")
    ax.plot([0, 1], [0, 1], ls="--", color="0.6", lw=1, label="chance")
    ax.set(xlim=(-0.01, 1.01), ylim=(-0.01, 1.01), aspect="equal",
           xlabel="false-positive rate (1 - specificity)", ylabel="true-positive rate (sensitivity)")
    if title or multiclass:
        ax.set_title((title or "") + (" (macro one-vs-rest)" if multiclass else ""))
    ax.legend(loc="lower right", fontsize="small", frameon=True)
    return fig


@styled
def confusion_matrix(y_true: Any, pred: Any, classes: Sequence[str], *, title: str | None = None,
                     figsize: tuple[float, float] | None = None) -> Figure:
    """Confusion matrix: rows are the true class, colour is the row fraction (recall),
    each cell shows its count and row percentage."""
    y, pr = _numpy(y_true).astype(int).reshape(-1), _numpy(pred).astype(int).reshape(-1)
    k = len(classes)
    cm = skm.confusion_matrix(y, pr, labels=np.arange(k))
    rows = cm.sum(1, keepdims=True)
    frac = np.divide(cm, rows, out=np.zeros(cm.shape, float), where=rows > 0)
    annot = np.array([[f"{cm[i, j]}\n{100 * frac[i, j]:.0f}%" for j in range(k)] for i in range(k)])
    side = 1.6 + 0.9 * k
    fig, axes = new_figure(figsize=figsize or (side + 1.2, side))
    ax = axes[0, 0]
    sns.heatmap(frac, annot=annot, fmt="", cmap="Blues", vmin=0, vmax=1, square=True, ax=ax,
                xticklabels=list(classes), yticklabels=list(classes), cbar_kws={"label": "fraction of true class"},
                linewidths=0.5, linecolor="white")
    ax.set(xlabel="predicted", ylabel="true")
    ax.tick_params(axis="y", rotation=0)
    if title:
        ax.set_title(title)
    return fig


def amplify(delta: Any, gain: float | None = None) -> tuple[np.ndarray, float]:
    """``0.5 + gain * delta`` clipped to [0, 1], as (C, H, W) numpy, and the gain used.

    A perturbation of a few grey levels is invisible at gain 1; the default gain maps the
    largest |delta| to 0.5 (mid-grey +- 0.5), so the pattern fills the display range;
    mid-grey means no change.
    """
    d = _numpy(delta).astype(np.float32)
    d = d.reshape(d.shape[-3:])
    if gain is None:
        m = float(np.abs(d).max()) if d.size else 0.0
        gain = 0.5 / m if m > 0 else 1.0
    return np.clip(0.5 + gain * d, 0, 1), float(gain)


def show_image(ax: Any, img: Any) -> None:
    """Draw a (C, H, W) image (uint8 or [0, 1] float; gray when its channels are equal) on
    ``ax`` without ticks or grid."""
    arr, cmap = display_image(_numpy(img))
    ax.imshow(arr, cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)


def show_perturbation(ax: Any, delta: Any, gain: float | None = None) -> float:
    """Draw an amplified perturbation (:func:`amplify`) on ``ax``; return the gain used."""
    img, g = amplify(delta, gain)
    show_image(ax, img)
    return g


def display_image(img: np.ndarray) -> tuple[np.ndarray, str | None]:
    """``(C, H, W)`` uint8 or [0, 1] float -> an array for ``imshow`` and a colormap."""
    img = img.astype(np.float32) / 255.0 if img.dtype == np.uint8 else img.astype(np.float32)
    img = np.clip(img, 0, 1)
    if img.shape[0] == 1 or (img.shape[0] == 3 and np.allclose(img[0], img[1]) and np.allclose(img[0], img[2])):
        return img[0], "gray"  # grayscale content (X-rays stored as RGB included)
    return np.transpose(img, (1, 2, 0)), None


def _class_rows(axes: Any, x: np.ndarray, y: np.ndarray, classes: Sequence[str], per_class: int,
                rng: np.random.Generator, *, label_x: float, fontsize: str) -> None:
    """One row of axes per class: up to ``per_class`` random images of that class, the class
    name and its count left of the row."""
    for c, name in enumerate(classes):
        members = np.flatnonzero(y == c)
        pick = rng.choice(members, size=min(per_class, len(members)), replace=False) if len(members) else []
        for j in range(per_class):
            ax = axes[c, j]
            ax.set_axis_off()
            if j < len(pick):
                img, cmap = display_image(x[pick[j]])
                ax.imshow(img, cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
        axes[c, 0].text(label_x, 0.5, f"{name}\n(n={len(members)})", transform=axes[c, 0].transAxes,
                        ha="right", va="center", fontsize=fontsize)


# --------------------------------------------------------------------------- page design
# Figures are drawn for the page: PAGE_WIDTH inches at the PNG's 100 dpi is the text column
# of the book at a 1280-px window (about 680 px), so a figure that width shows at 1:1 and
# its text keeps the size it was drawn with; wider figures are shrunk with their text.
PAGE_WIDTH = 6.8

#: Okabe & Ito's colour-blind-safe palette (Color Universal Design, 2008), black first.
OKABE_ITO = ("#000000", "#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7")
#: Paul Tol's colour-blind-safe "muted" scheme (SRON technical note, 2021).
TOL_MUTED = ("#332288", "#88CCEE", "#44AA99", "#117733", "#999933", "#DDCC77", "#CC6677", "#882255",
             "#AA4499")

#: One colour per attack (registry names) and per role of a universal perturbation, the same in
#: every figure of the book. White-box and query attacks take Okabe-Ito's hues; universal
#: perturbations and patches a few of Tol's; controls are grey, clean black.
ATTACK_COLORS = {
    "clean": "#000000", "fgsm": "#E69F00", "ifgsm": "#56B4E9", "pgd": "#0072B2", "mifgsm": "#CC79A7",
    "apgd": "#009E73", "square": "#D55E00", "simba": "#999933", "usimba": "#117733",
    "uap": "#882255", "natural_uap": "#44AA99", "patch": "#332288", "random": "#9A9A9A",
    "hopskipjump": "#AA4499",  # not Okabe-Ito's yellow, which the white page washes out
}
#: One colour per model (``arch:init``), the same in every figure: Tol's muted scheme, in the
#: order the profiles list their models, then Okabe-Ito's; a model not listed takes the next
#: free colour.
MODEL_COLORS = {
    "resnet18:scratch": "#332288", "mobilenet_v1_075:imagenet": "#117733",
    "mobilenet_v1_075:scratch": "#88CCEE", "small_cnn:scratch": "#CC6677",
    "resnet50:imagenet": "#DDCC77", "densenet121:imagenet": "#882255", "vgg16_bn:imagenet": "#44AA99",
    "inception_v3:imagenet": "#999933", "vgg19_bn:imagenet": "#AA4499",
    # Tol's nine are taken (eleven models over the profiles): two of Okabe-Ito's
    "densenet169:imagenet": "#E69F00", "inception_resnet_v2:imagenet": "#0072B2",
}

#: Short task names for panel titles and table columns (the data layer's titles are sentences).
TASK_LABELS = {
    "pneumonia_cxr": "Pneumonia (CXR)", "melanoma_derm": "Melanoma (derm.)", "skin7_derm": "Skin lesions (7)",
    "referable_dr": "Referable DR", "retina5": "DR grade (5)", "pneumoniamnist": "PneumoniaMNIST",
    "breastmnist": "BreastMNIST",
}


def task_label(task: str) -> str:
    """The short name of a task for a panel title or a column (``pneumonia_cxr`` -> ``Pneumonia (CXR)``)."""
    return TASK_LABELS.get(task, task.replace("_", " "))


def model_key(model: Any, init: str | None = None) -> str:
    """``"arch:init"`` from ``"arch (init)"``, ``"arch:init"``, ``(arch, init)``, a model key
    ``(task, arch, init)`` or ``arch, init``."""
    if init is not None:
        return f"{model}:{init}"
    if isinstance(model, tuple):
        arch, init = (model[1], model[2]) if len(model) == 3 else (model[0], model[1])
        return f"{arch}:{init}"
    text = str(model)
    if text.endswith(")") and " (" in text:
        arch, _, rest = text.partition(" (")
        return f"{arch}:{rest[:-1]}"
    return text if ":" in text else f"{text}:scratch"


def model_label(model: Any, init: str | None = None) -> str:
    """``"arch (init)"``, how figures and tables name a model (any form :func:`model_key` takes)."""
    arch, _, init = model_key(model, init).partition(":")
    return f"{arch} ({init})"


def _next_free(used: Mapping[str, str], palette: Sequence[str], name: str) -> str:
    free = [c for c in palette if c not in set(used.values())]
    if free:
        return free[0]
    return palette[sum(map(ord, name)) % len(palette)]


def model_color(model: Any, init: str | None = None) -> str:
    """The model's colour in every figure (:data:`MODEL_COLORS`; a new model gets a free one,
    remembered for the rest of the run so that it keeps it)."""
    key = model_key(model, init)
    if key not in MODEL_COLORS:
        MODEL_COLORS[key] = _next_free(MODEL_COLORS, TOL_MUTED + OKABE_ITO[1:], key)
    return MODEL_COLORS[key]


def attack_color(attack: str) -> str:
    """The attack's colour in every figure (:data:`ATTACK_COLORS`, registry names; aliases and
    display labels such as ``"I-FGSM"`` are accepted)."""
    key = str(attack).lower().replace("-", "").replace(" ", "_")
    key = {"bim": "ifgsm", "random_control": "random", "autopgd": "apgd"}.get(key, key)
    if key not in ATTACK_COLORS:
        ATTACK_COLORS[key] = _next_free(ATTACK_COLORS, OKABE_ITO[1:], key)
    return ATTACK_COLORS[key]


def legend_outside(fig: Figure, handles: Sequence[Any] | None = None, labels: Sequence[str] | None = None, *,
                   where: str = "bottom", ncols: int | None = None, title: str | None = None):
    """One legend for the whole figure, outside every panel (constrained layout makes room).

    ``handles``/``labels`` default to the unique labelled artists of all axes, in drawing order.
    ``where`` is ``"bottom"`` (a row under the panels) or ``"right"`` (a column beside them).
    """
    if handles is None:
        seen: dict[str, Any] = {}
        for ax in fig.axes:
            for h, lab in zip(*ax.get_legend_handles_labels()):
                if not lab.startswith("_") and lab not in seen:
                    seen[lab] = h
        labels, handles = list(seen), list(seen.values())
    if not handles:
        return None
    if where == "right":
        return fig.legend(handles, labels, loc="outside right upper", frameon=False, title=title,
                          fontsize="small", ncols=ncols or 1)
    return fig.legend(handles, labels, loc="outside lower center", frameon=False, title=title, fontsize="small",
                      ncols=ncols or legend_columns(labels, fig.get_figwidth()))


def legend_columns(labels: Sequence[str], width: float, *, char_inches: float = 0.068,
                   entry_inches: float = 0.55) -> int:
    """How many legend entries fit side by side in ``width`` inches (at the legend's small font):
    the most columns whose widest entries, one per column, still fit, so that a legend under the
    panels wraps into rows instead of running off the figure."""
    sizes = sorted((len(str(lab)) * char_inches + entry_inches for lab in labels), reverse=True)
    for n in range(min(len(sizes), 6), 0, -1):
        if sum(sizes[:n]) <= width - 0.2:
            return n
    return 1


def panel_grid(n: int, ncols: int, *, cell: tuple[float, float], extra_height: float = 0.8,
               sharex: bool = False, sharey: bool = False, width: float | None = None):
    """A figure with ``n`` panels in rows of ``ncols`` (unused cells hidden): small multiples.

    ``cell`` is one panel's (width, height) in inches; the figure is at most ``width`` (default
    :data:`PAGE_WIDTH`) wide, panels shrinking to fit. Returns the figure and the ``n`` axes.
    """
    ncols = max(1, min(ncols, n))
    nrows = int(np.ceil(n / ncols)) if n else 1
    w = width or PAGE_WIDTH  # the page's width, so that the legend under the panels fits
    h = min(cell[1], (w - 0.6) / ncols * cell[1] / cell[0]) * nrows + extra_height
    fig = BookFigure(figsize=(w, h), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, sharex=sharex, sharey=sharey)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


@styled
def task_image_grid(sets: Mapping[str, Any], *, per_class: int = 4, ncols: int = 2, seed: int = 0,
                    cell_inches: float = 0.7) -> Figure:
    """Sample images of several tasks in one figure: one block per task (``ncols`` blocks a
    row), in each block one row of ``per_class`` random images per class (seeded).

    ``sets`` maps a task (its name, shown as :func:`task_label`) to an ``ImageSet`` (or anything
    with ``images``, ``labels``, ``classes``).
    """
    items = list(sets.items())
    ncols = max(1, min(ncols, len(items)))
    rows = [items[i:i + ncols] for i in range(0, len(items), ncols)]
    heights = [max(len(ds.classes) for _, ds in row) for row in rows]
    width = min(PAGE_WIDTH, ncols * (per_class * cell_inches + 1.1))
    fig = BookFigure(figsize=(width, sum(h * cell_inches + 0.45 for h in heights)), layout="constrained")
    subfigs = np.atleast_2d(fig.subfigures(len(rows), ncols, height_ratios=[h + 0.6 for h in heights],
                                           squeeze=False))
    rng = np.random.default_rng(seed)
    for r, row in enumerate(rows):
        for c in range(ncols):
            sub = subfigs[r, c]
            if c >= len(row):
                continue
            title, ds = row[c]
            x, y = _numpy(ds.images), _numpy(ds.labels).astype(int).reshape(-1)
            axes = sub.subplots(len(ds.classes), per_class, squeeze=False)
            _class_rows(axes, x, y, ds.classes, per_class, rng, label_x=-0.1, fontsize="x-small")
            sub.suptitle(task_label(title), fontsize="small")
    return fig


def _history_frame(h: Any) -> pd.DataFrame:
    if hasattr(h, "history") and not isinstance(h, pd.DataFrame):
        h = h.history
    return pd.DataFrame(h)


@styled
def validation_curves(runs: Mapping[tuple[str, Any], Any], *, metrics: Sequence[str] = ("val_loss", "val_auc"),
                      ncols: int = 4) -> Figure:
    """Validation curves as small multiples: one column per task, one row per metric, one line per
    model in the model's colour (:func:`model_color`), the kept epoch marked by a ringed dot,
    and a single legend of the models under the panels.

    ``runs`` maps ``(task, model)`` (a model in any form :func:`model_key` takes) to a
    training history (a ``TrainedModel`` or its ``history`` DataFrame).
    """
    tasks = list(dict.fromkeys(t for t, _ in runs))
    ncols = max(1, min(ncols, len(tasks)))
    bands = int(np.ceil(len(tasks) / ncols))
    names = {"val_loss": "validation loss", "val_auc": "validation AUC", "val_acc": "validation accuracy",
             "train_loss": "training loss"}
    side = (PAGE_WIDTH - 0.6) / ncols
    fig = BookFigure(figsize=(PAGE_WIDTH, 0.8 * side * len(metrics) * bands + 0.9), layout="constrained")
    grid = fig.subplots(len(metrics) * bands, ncols, squeeze=False)
    for ax in grid.flat:
        ax.set_visible(False)
    for i, task in enumerate(tasks):
        band, col = divmod(i, ncols)
        for m, metric in enumerate(metrics):
            ax = grid[band * len(metrics) + m, col]
            ax.set_visible(True)
            for (t, model), h in runs.items():
                if t != task:
                    continue
                h = _history_frame(h)
                color = model_color(model)
                ax.plot(h["epoch"], h[metric], "-", color=color, lw=1.5, label=model_label(model))
                if "best" in h and h["best"].any():
                    best = h[h["best"].astype(bool)].iloc[0]
                    ax.plot(best["epoch"], best[metric], "o", ms=6, mfc=color, mec="white", mew=1.2)
            ax.xaxis.get_major_locator().set_params(integer=True)
            ax.tick_params(labelsize="x-small")
            if m == 0:
                ax.set_title(task_label(task), fontsize="small")
            if col == 0:
                ax.set_ylabel(names.get(metric, metric), fontsize="small")
            if m == len(metrics) - 1:
                ax.set_xlabel("epoch", fontsize="small")
    handles = [Line2D([], [], color=model_color(k), lw=1.5, label=model_label(k))
               for k in dict.fromkeys(model_key(m) for _, m in runs)]
    handles.append(Line2D([], [], ls="", marker="o", ms=6, mfc="0.4", mec="white", label="kept epoch"))
    legend_outside(fig, handles, [h.get_label() for h in handles])
    return fig


@styled
def roc_grid(results: Mapping[tuple[str, Any], Any], *, ncols: int = 4) -> Figure:
    """ROC curves as small multiples: one panel per task, one curve per model in its colour,
    one legend of the models under the panels (AUCs are in the chapter's table).

    ``results`` maps ``(task, model)`` to ``(y, proba)`` (or ``Predictions``); multiclass tasks
    show the macro average of the one-vs-rest curves.
    """
    tasks = list(dict.fromkeys(t for t, _ in results))
    fig, axes = panel_grid(len(tasks), ncols, cell=(1.75, 1.75), extra_height=0.9)
    grid = np.linspace(0, 1, 501)
    for ax, task in zip(axes, tasks):
        multiclass = False
        for (t, model), result in results.items():
            if t != task:
                continue
            y, p = _y_proba(result)
            if p.shape[1] == 2 and 0 < y.sum() < len(y):
                fpr, tpr, _ = skm.roc_curve(y, p[:, 1])
            else:
                multiclass = p.shape[1] > 2
                fpr, tpr = grid, _macro_roc(y, p, grid)
            ax.plot(fpr, tpr, color=model_color(model), lw=1.5, label=model_label(model))
        ax.plot([0, 1], [0, 1], ls="--", color="0.6", lw=0.8, label="chance")
        ax.set(xlim=(-0.01, 1.01), ylim=(-0.01, 1.01), aspect="equal")
        ax.set_title(task_label(task) + (" (macro)" if multiclass else ""), fontsize="small")
        ax.tick_params(labelsize="x-small")
        ax.set_xlabel("1 − specificity", fontsize="small")
    axes[0].set_ylabel("sensitivity", fontsize="small")
    legend_outside(fig)
    return fig


@styled
def confusion_grid(entries: Mapping[tuple[str, Any], tuple[Any, Any, Sequence[str]]], *,
                   col_title: Any = None, titles: Mapping[tuple[str, Any], str] | None = None) -> Figure:
    """Confusion matrices as small multiples: one row per task, one column per model (or per
    whatever the second key is), colour the row fraction (recall), each cell its count and
    row percentage; one shared colour bar.

    ``entries`` maps ``(task, column)`` to ``(y_true, pred, classes)``; ``col_title`` turns a
    column key into its title (default :func:`model_label`); ``titles`` gives a title per entry
    instead (every panel titled, e.g. the attack of each column).
    """
    tasks = list(dict.fromkeys(t for t, _ in entries))
    cols = list(dict.fromkeys(c for _, c in entries))
    k_max = max(len(v[2]) for v in entries.values())
    side = 0.9 + 0.3 * k_max
    width = min(PAGE_WIDTH, side * len(cols) + 2.0)
    scale = (width - 2.0) / (side * len(cols))
    fig = BookFigure(figsize=(width, side * scale * len(tasks) + 1.0), layout="constrained")
    axes = fig.subplots(len(tasks), len(cols), squeeze=False)
    title = col_title or (lambda m: model_label(m).replace(" (", "\n("))
    image = None
    for i, task in enumerate(tasks):
        for j, col in enumerate(cols):
            ax = axes[i, j]
            if (task, col) not in entries:
                ax.set_visible(False)
                continue
            y, pred, classes = entries[(task, col)]
            y, pred = _numpy(y).astype(int).reshape(-1), _numpy(pred).astype(int).reshape(-1)
            k = len(classes)
            cm = skm.confusion_matrix(y, pred, labels=np.arange(k))
            rows = cm.sum(1, keepdims=True)
            frac = np.divide(cm, rows, out=np.zeros(cm.shape, float), where=rows > 0)
            image = ax.imshow(frac, cmap="Blues", vmin=0, vmax=1)
            for a in range(k):
                for b in range(k):
                    ax.text(b, a, f"{cm[a, b]}\n{100 * frac[a, b]:.0f}%", ha="center", va="center",
                            fontsize=5.5 if k > 3 else 6.5, color="white" if frac[a, b] > 0.6 else "black")
            short = [str(c)[:10] for c in classes]
            # every row is a task with its own classes: label every panel's columns
            ax.set_xticks(range(k), short, rotation=45 if k > 2 else 0, ha="right" if k > 2 else "center",
                          fontsize="x-small")
            ax.set_yticks(range(k), short if j == 0 else [""] * k, fontsize="x-small")
            ax.grid(False)
            if titles is not None:
                ax.set_title(titles.get((task, col), ""), fontsize="x-small")
            elif i == 0:
                ax.set_title(title(col), fontsize="x-small")
            if j == 0:
                ax.set_ylabel(f"{task_label(task)}\ntrue", fontsize="x-small")
            if i == len(tasks) - 1:
                ax.set_xlabel("predicted", fontsize="x-small")
    if image is not None:
        bar = fig.colorbar(image, ax=axes, shrink=0.6, location="right")
        bar.set_label("fraction of the true class", fontsize="x-small")
        bar.ax.tick_params(labelsize="x-small")
    return fig
