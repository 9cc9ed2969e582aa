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


@styled
def image_grid(images: Any, labels: Any = None, classes: Sequence[str] | None = None, *,
               per_class: int = 6, seed: int = 0, title: str | None = None,
               cell_inches: float = 1.25) -> Figure:
    """A dataset card's sample: one row per class, ``per_class`` random images each.

    ``images`` is ``(N, C, H, W)`` uint8 or [0, 1] float, or an ``ImageSet`` (then its
    labels and classes are used). Images are drawn with ``seed``; row titles give the
    class and how many images it has.
    """
    if hasattr(images, "images") and hasattr(images, "labels"):
        labels = images.labels if labels is None else labels
        classes = images.classes if classes is None else classes
        images = images.images
    x = _numpy(images)
    y = _numpy(labels).astype(int).reshape(-1)
    if classes is None:
        classes = [str(c) for c in range(int(y.max()) + 1)]
    rng = np.random.default_rng(seed)
    k = len(classes)
    fig, axes = new_figure(k, per_class, figsize=(cell_inches * per_class + 0.8, cell_inches * k + 0.4))
    for c in range(k):
        members = np.flatnonzero(y == c)
        pick = rng.choice(members, size=min(per_class, len(members)), replace=False) if len(members) else []
        for j in range(per_class):
            ax = axes[c, j]
            ax.set_axis_off()
            if j < len(pick):
                img, cmap = display_image(x[pick[j]])
                ax.imshow(img, cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
        axes[c, 0].text(-0.08, 0.5, f"{classes[c]}\n(n={len(members)})", transform=axes[c, 0].transAxes,
                        ha="right", va="center", fontsize="small")
    if title:
        fig.suptitle(title)
    return fig


@styled
def training_curves(history: Any, *, title: str | None = None,
                    figsize: tuple[float, float] = (9.0, 3.4)) -> Figure:
    """Loss and validation AUC per epoch; the kept (best) epoch is marked.

    ``history`` is a ``TrainedModel.history`` DataFrame, a ``TrainedModel``, or
    ``{label: history}`` to compare several runs (validation curves only). The training
    loss is the objective (class-weighted by default, on augmented images); the
    validation loss is the plain cross-entropy, so the two are not on the same footing.
    """
    if hasattr(history, "history") and not isinstance(history, pd.DataFrame):
        history = history.history
    runs = dict(history) if isinstance(history, Mapping) else {None: history}
    runs = {k: (v.history if hasattr(v, "history") and not isinstance(v, pd.DataFrame) else v)
            for k, v in runs.items()}
    fig, axes = new_figure(1, 2, figsize=figsize)
    ax_loss, ax_auc = axes[0]
    colors = sns.color_palette(PALETTE, max(len(runs), 2))
    for i, (label, h) in enumerate(runs.items()):
        h = pd.DataFrame(h)
        single = label is None
        c_train, c_val = (colors[0], colors[1]) if single else (colors[i], colors[i])
        name = "" if single else f"{label} "
        if single:
            ax_loss.plot(h["epoch"], h["train_loss"], "o-", color=c_train, ms=3, label="train")
            if "train_acc" in h:
                ax_auc.plot(h["epoch"], h["train_acc"], "s:", color=c_train, ms=3, label="train accuracy")
        ax_loss.plot(h["epoch"], h["val_loss"], "o-", color=c_val, ms=3,
                     label=f"{name}validation")
        ax_auc.plot(h["epoch"], h["val_auc"], "o-", color=c_val, ms=3, label=f"{name}validation AUC")
        if single and "val_acc" in h:
            ax_auc.plot(h["epoch"], h["val_acc"], "s:", color=c_val, ms=3, label="validation accuracy")
        if "best" in h and h["best"].any():
            best = h.loc[h["best"].astype(bool), "epoch"].iloc[0]
            for ax in (ax_loss, ax_auc):
                ax.axvline(best, color=c_val, ls="--", lw=0.8, alpha=0.7)
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    ax_auc.set(xlabel="epoch", ylabel="score", title="validation (dashed: kept epoch)")
    for ax in (ax_loss, ax_auc):
        ax.legend(fontsize="small")
        ax.xaxis.get_major_locator().set_params(integer=True)
    if title:
        fig.suptitle(title)
    return fig
