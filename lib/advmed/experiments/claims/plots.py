"""The claims chapter's summary figure: each claim's verdict, with ours beside the study's figure."""
from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from ...plots import PAGE_WIDTH, BookFigure, legend_outside, styled
from .verdicts import VERDICTS, Claim

COLOURS = {"agrees": "#009E73", "same direction": "#E69F00", "disagrees": "#D55E00", "not comparable": "#999999"}


@styled
def verdict_figure(claims: list[Claim]) -> Figure:
    """One row per claim: our estimate (dot, with its interval or range) coloured by verdict,
    the claim's number and statement on the left, the verdicts' legend under the panel."""
    fig = BookFigure(figsize=(PAGE_WIDTH, 0.32 * len(claims) + 1.3), layout="constrained")
    ax = fig.subplots()
    ys = np.arange(len(claims))[::-1]
    for y, c in zip(ys, claims):
        col = COLOURS[c.verdict]
        if np.isfinite(c.ours.value):
            lo = c.ours.lo if np.isfinite(c.ours.lo) else c.ours.value
            hi = c.ours.hi if np.isfinite(c.ours.hi) else c.ours.value
            ax.plot([lo, hi], [y, y], color=col, lw=3, alpha=0.6)
            ax.plot([c.ours.value], [y], "o", color=col)
        else:
            ax.text(0.5, y, "not tested", color=col, ha="center", va="center", fontsize="small")
    ax.set_yticks(ys, [f"{c.number}. {c.statement[:40]}{'…' if len(c.statement) > 40 else ''}" for c in claims],
                  fontsize="x-small")
    ax.set_xlim(-0.02, 1.02)
    ax.set_xlabel("our estimate (accuracy, AUC or rate, as the claim says)", fontsize="small")
    ax.tick_params(axis="x", labelsize="x-small")
    handles = [ax.plot([], [], "o", color=COLOURS[v], label=v)[0] for v in VERDICTS]
    legend_outside(fig, handles, list(VERDICTS))
    return fig
