"""The claims chapter's summary figure: the study's figure (or bound) and ours with its interval,
per claim part, one panel per kind of quantity."""
from __future__ import annotations

import math

import numpy as np
from matplotlib.figure import Figure

from ...plots import PAGE_WIDTH, BookFigure, legend_outside, styled
from .verdicts import SETTINGS, VERDICTS, Claim

COLOURS = {"agrees": "#009E73", "same direction": "#E69F00", "inconclusive": "#56B4E9", "disagrees": "#D55E00",
           "not comparable": "#999999"}
#: The two settings a figure can show (:data:`.verdicts.SETTINGS`).
STUDY, STRONGEST = SETTINGS
#: The panels, by the kind of quantity a claim part measures (the part's name decides).
PANELS = ("accuracy", "AUC", "rate or share", "difference")


def panel_of(part: str) -> str:
    """The panel a claim part belongs to (:data:`PANELS`)."""
    if " - " in part or part in ("gain", "natural drop", "architecture spread", "AUC gain"):
        return "difference"
    if "AUC" in part:
        return "AUC"
    if part in ("accuracy", "white-box", "black-box"):
        return "accuracy"
    return "rate or share"


@styled
def verdict_figure(claims: list[Claim], setting: str = STUDY) -> Figure:
    """One row per tested claim part at ``setting``: our estimate (dot, bar: 95 % interval)
    coloured by the part's verdict, the study's figure (black tick, grey band: the registry's
    margin) or bound (grey: the study's side of it)."""
    rows: dict[str, list] = {p: [] for p in PANELS}
    for c in claims:
        rules = dict(c.spec.rules_at(setting))
        for name, estimate, verdict in c.at(setting).parts:
            rows[panel_of(name)].append((c, name, rules[name], estimate, verdict))
    panels = [p for p in PANELS if rows[p]]
    height = sum(0.28 * len(rows[p]) + 0.9 for p in panels) + 0.8
    fig = BookFigure(figsize=(PAGE_WIDTH, max(height, 2.5)), layout="constrained")
    axes = fig.subplots(len(panels), 1, squeeze=False,
                        gridspec_kw={"height_ratios": [len(rows[p]) + 2 for p in panels]})[:, 0] if panels else []
    for ax, p in zip(axes, panels):
        ys = np.arange(len(rows[p]))[::-1]
        for y, (c, name, rule, est, verdict) in zip(ys, rows[p]):
            lo, value, hi = est.lo, est.value, est.hi
            if rule.kind == "equivalent":
                ax.fill_betweenx([y - 0.35, y + 0.35], rule.figure - rule.margin, rule.figure + rule.margin,
                                 color="0.85", lw=0)
                ax.plot([rule.figure] * 2, [y - 0.35, y + 0.35], color="black", lw=1.2)
            else:
                edge = (-1.0, rule.figure) if rule.kind == "below" else (rule.figure, 1.0)
                ax.fill_betweenx([y - 0.35, y + 0.35], *edge, color="0.9", lw=0)
                ax.plot([rule.figure] * 2, [y - 0.35, y + 0.35], color="black", lw=1.2, ls=":")
            col = COLOURS[verdict]
            if math.isfinite(lo) and math.isfinite(hi):
                ax.plot([lo, hi], [y, y], color=col, lw=3, alpha=0.7)
            ax.plot([value], [y], "o", color=col, ms=5)
        ax.set_yticks(ys, [f"{c.number}. {name}" for c, name, *_ in rows[p]], fontsize="x-small")
        ax.set_xlim(-0.6 if p == "difference" else -0.02, 1.02)
        ax.set_title(p, fontsize="small", loc="left")
        ax.tick_params(axis="x", labelsize="x-small")
    handles = [fig.axes[0].plot([], [], "o", color=COLOURS[v])[0] for v in VERDICTS[:-1]] if panels else []
    handles += [fig.axes[0].plot([], [], color="black", lw=1.2)[0], fig.axes[0].plot([], [], color="black", ls=":")[0]] \
        if panels else []
    if panels:
        legend_outside(fig, handles, list(VERDICTS[:-1]) + ["study's figure (band: margin)",
                                                              "study's bound (shade: its side)"], ncols=3)
    return fig
