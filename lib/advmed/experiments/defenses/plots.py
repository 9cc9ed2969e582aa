"""Figures of chapter 7: clean against robust AUC per defense (oblivious and adaptive markers),
robust accuracy against eps per defense, and the certified-accuracy curve of randomized smoothing.

Every function returns a ``matplotlib.figure.Figure`` built without pyplot
(:func:`advmed.plots.new_figure`), in the book's style.
"""
from __future__ import annotations

import seaborn as sns
from matplotlib.figure import Figure

from ...plots import PALETTE, new_figure, styled
from .run import CertifiedRun, DefenseResults

MARKERS = {"oblivious": "o", "adaptive": "X"}


@styled
def clean_vs_robust(results: DefenseResults, eps_255: float, *, metric: str = "auc",
                    cell: tuple[float, float] = (4.2, 3.6)) -> Figure:
    """Per task, each defense's clean ``metric`` (x) against its ``metric`` under attack at ``eps_255``
    (y): a hollow circle for the oblivious attacker, a cross for the adaptive one, joined by a line
    (the drop an attacker who knows the defense adds). The diagonal is "no loss under attack"."""
    tasks = results.tasks
    fig, axes = new_figure(1, max(1, len(tasks)), figsize=(cell[0] * max(1, len(tasks)) + 1.8, cell[1]))
    labels = list(dict.fromkeys(r.label for r in results.runs))
    colours = dict(zip(labels, sns.color_palette(PALETTE, len(labels))))
    for ax, task in zip(axes[0], tasks):
        seen = []
        for r in (r for r in results.runs if r.task == task):
            x = float(r.clean[metric].iloc[0])
            ys = {a: r.robust(a, eps_255, metric) for a in MARKERS}
            seen += [x, *ys.values()]
            ax.plot([x, x], [ys["oblivious"], ys["adaptive"]], color=colours[r.label], lw=1, alpha=0.6)
            ax.scatter([x], [ys["oblivious"]], marker="o", facecolors="none", edgecolors=[colours[r.label]], s=46)
            ax.scatter([x], [ys["adaptive"]], marker="X", color=colours[r.label], s=46,
                       label=r.label + (" (flagged)" if r.flagged else ""))
        # zoom on the points (defenses differ by hundredths), the diagonal kept in view
        lo = max(0.0, min(v for v in seen if v == v) - 0.05) if seen else 0.0
        ax.plot([lo, 1], [lo, 1], ls=":", color="0.5", lw=1)
        ax.set_xlim(lo - 0.01, 1.01)
        ax.set_ylim(lo - 0.01, 1.01)
        ax.set_xlabel(f"clean {metric.upper() if metric == 'auc' else metric}")
        ax.set_ylabel(f"{metric.upper() if metric == 'auc' else metric} at eps {eps_255:g}/255")
        ax.set_title(task, fontsize="medium")
    handles, names = axes[0, -1].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside right center", fontsize="x-small",
               title="o oblivious, x adaptive", title_fontsize="x-small")
    return fig


@styled
def robust_curves(results: DefenseResults, *, cell: tuple[float, float] = (3.6, 3.0)) -> Figure:
    """Robust accuracy against eps, one panel per (task, attacker), one line per defense."""
    curves = results.curves()
    tasks = results.tasks
    fig, axes = new_figure(max(1, len(tasks)), 2, figsize=(2 * cell[0] + 1.8, cell[1] * max(1, len(tasks))))
    labels = list(dict.fromkeys(curves.label))
    colours = dict(zip(labels, sns.color_palette(PALETTE, len(labels))))
    for i, task in enumerate(tasks):
        for j, attacker in enumerate(("oblivious", "adaptive")):
            ax = axes[i, j]
            sub = curves[(curves.task == task) & (curves.attacker == attacker)]
            for label, g in sub.groupby("label", sort=False):
                g = g.sort_values("eps_255")
                ax.plot(g.eps_255, g.accuracy, marker=MARKERS[attacker], color=colours[label], label=label, ms=4)
            ax.set_ylim(-0.02, 1.02)
            ax.set_xlabel("eps (L-inf, /255)")
            ax.set_ylabel("accuracy")
            ax.set_title(f"{task}: {attacker}", fontsize="medium")
    handles, names = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside right center", fontsize="x-small")
    return fig


@styled
def certified_curve(cert: CertifiedRun, *, figsize: tuple[float, float] = (4.6, 3.4)) -> Figure:
    """Certified accuracy of the smoothed classifier against the L2 radius ([0, 1] pixels)."""
    fig, axes = new_figure(1, 1, figsize=figsize)
    ax = axes[0, 0]
    c = cert.curve
    ax.step(c.radius, c.certified_accuracy, where="post", color=sns.color_palette(PALETTE)[0])
    ax.plot(c.radius, c.certified_accuracy, "o", ms=4, color=sns.color_palette(PALETTE)[0])
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("L2 radius ([0, 1] pixels)")
    ax.set_ylabel("certified accuracy")
    ax.set_title(f"{cert.task}, sigma {cert.sigma:g}, n {cert.n:,}", fontsize="medium")
    return fig


__all__ = ["certified_curve", "clean_vs_robust", "robust_curves"]
