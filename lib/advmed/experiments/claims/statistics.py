"""The statistics behind a verdict: intervals, the registry's decision rules, and how many
images a rule needs.

Every verdict compares our estimate's 95 % interval with the study's figure and the claim's
margin from :mod:`.registry`:

- an **equivalence** claim ("accuracy 0.9547") agrees by the two one-sided tests (TOST,
  Schuirmann 1987) read from the interval: the whole interval lies within ``figure +- margin``.
  A 95 % interval is a TOST at 2.5 % per side, stricter than the usual 5 %: the records keep
  95 % intervals and one level serves every rule.
- a **bound** claim ("> 80 %", "about 0") agrees when the whole interval is on the study's
  side of the bound.
- either *disagrees* when the whole interval lies beyond the margin on the other side, and is
  **inconclusive** when the interval straddles the margin: n cannot decide. A small n widens
  the interval and so makes "agrees" harder, never easier.
- *same direction*: the claim does not hold at the study's size, but the effect the claim
  describes (a drop from clean accuracy, a rate above its random control) is at least the
  registry's ``effect`` with its whole interval.

Intervals are the chapters' bootstrap over images where a record keeps one; otherwise the
Wilson interval of a proportion over the ``n`` images it was measured on (Wilson 1927), or a
percentile bootstrap over the cases a claim aggregates (UAPs, models).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import stats

#: The interval level of every verdict.
LEVEL = 0.95
_Z = float(stats.norm.ppf(0.5 + LEVEL / 2))


@dataclass(frozen=True)
class Interval:
    """An estimate with its interval and how the interval was made.

    Attributes:
        value: the estimate (a proportion, an AUC or a difference, in [0, 1] or [-1, 1]).
        lo, hi: the 95 % interval (NaN when there is none: a single run without n).
        n: the images (or cases) it was measured on; 0 when unknown.
        method: how ``lo``/``hi`` were obtained, for the Methods chapter and the appendix.
    """

    value: float
    lo: float = math.nan
    hi: float = math.nan
    n: int = 0
    method: str = "none"

    @property
    def has_interval(self) -> bool:
        return math.isfinite(self.lo) and math.isfinite(self.hi)

    def fmt(self, digits: int = 3) -> str:
        if not math.isfinite(self.value):
            return "n/a"
        if self.has_interval:
            return f"{self.value:.{digits}f} [{self.lo:.{digits}f}, {self.hi:.{digits}f}]"
        return f"{self.value:.{digits}f}"


def wilson(p: float, n: int) -> Interval:
    """The Wilson score interval of a proportion ``p`` observed on ``n`` images (scipy's
    ``binomtest(...).proportion_ci(method="wilson")``); no interval when ``n`` is 0."""
    if not math.isfinite(p) or n <= 0:
        return Interval(p, n=max(int(n), 0))
    k = int(round(p * n))
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=LEVEL, method="wilson")
    return Interval(float(p), float(ci.low), float(ci.high), int(n), "Wilson (binomial over images)")


def hanley_mcneil(auc: float, n_pos: int, n_neg: int) -> Interval:
    """A normal interval of an AUC from its standard error (Hanley & McNeil 1982, eq. 2), for
    records that keep the AUC and the image counts but not the per-image scores."""
    if not math.isfinite(auc) or n_pos <= 0 or n_neg <= 0:
        return Interval(auc, n=max(n_pos, 0) + max(n_neg, 0))
    a = min(max(auc, 1e-9), 1 - 1e-9)
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    se = math.sqrt((a * (1 - a) + (n_pos - 1) * (q1 - a * a) + (n_neg - 1) * (q2 - a * a)) / (n_pos * n_neg))
    return Interval(auc, max(0.0, auc - _Z * se), min(1.0, auc + _Z * se), n_pos + n_neg,
                    "Hanley-McNeil (AUC standard error)")


def bootstrap_statistic(values: Sequence[float], statistic=np.median, *, n_boot: int = 2000,
                        seed: int = 0) -> Interval:
    """Percentile bootstrap of ``statistic`` over ``values`` (the cases a claim aggregates:
    UAPs, models, tasks), seeded."""
    x = np.asarray([v for v in values if math.isfinite(v)], dtype=float)
    if x.size == 0:
        return Interval(math.nan)
    if x.size == 1:
        return Interval(float(statistic(x)), n=1, method="one case: no interval")
    rng = np.random.default_rng(seed)
    boots = statistic(x[rng.integers(0, x.size, size=(n_boot, x.size))], axis=1)
    lo, hi = np.quantile(boots, [(1 - LEVEL) / 2, (1 + LEVEL) / 2])
    return Interval(float(statistic(x)), float(lo), float(hi), int(x.size), f"bootstrap over {x.size} cases")


def newcombe_difference(a: Interval, b: Interval) -> Interval:
    """The interval of ``a - b`` from the two proportions' intervals (Newcombe 1998, method 10).
    For two rates on the same images it ignores the pairing, which widens the interval when
    the two are positively correlated: conservative for "a exceeds b"."""
    d = a.value - b.value
    if not (a.has_interval and b.has_interval):
        return Interval(d)
    lo = d - math.sqrt((a.value - a.lo) ** 2 + (b.hi - b.value) ** 2)
    hi = d + math.sqrt((a.hi - a.value) ** 2 + (b.value - b.lo) ** 2)
    return Interval(d, lo, hi, min(a.n, b.n), "Newcombe (difference of two intervals, unpaired)")


# --------------------------------------------------------------------------- decisions
@dataclass(frozen=True)
class Decision:
    """A verdict with the sentence that says which part of the rule decided it."""

    verdict: str
    why: str


def decide(kind: str, est: Interval, figure: float, margin: float, *, effect: float = math.nan,
           reference: Interval | None = None, lower_is_effect: bool = True) -> Decision:
    """The registry's rule applied to ``est``.

    ``kind``: ``"equivalent"`` (TOST within ``figure +- margin``), ``"above"`` (the claim:
    ours > ``figure``) or ``"below"`` (ours < ``figure``, e.g. "about 0" with figure 0.05).
    ``effect``, ``reference``: "same direction" when ``est`` differs from ``reference`` (a
    clean accuracy, a random control) by at least ``effect`` in the claim's direction
    (``lower_is_effect``: an attack lowers it), with both whole intervals.
    """
    if not math.isfinite(est.value):
        return Decision("not comparable", "no estimate")
    if not est.has_interval:
        return Decision("inconclusive", f"ours {est.value:.3f} has no interval (n unknown): it cannot decide")
    if kind == "equivalent":
        band = (figure - margin, figure + margin)
        if band[0] <= est.lo and est.hi <= band[1]:
            return Decision("agrees", f"TOST: {est.fmt()} within {figure:g} +- {margin:g}")
        outside = est.hi < band[0] or est.lo > band[1]
        side = f"outside {figure:g} +- {margin:g}"
    elif kind == "above":
        if est.lo > figure:
            return Decision("agrees", f"{est.fmt()} wholly above {figure:g}")
        outside = est.hi < figure - margin
        side = f"wholly below {figure:g} - {margin:g}"
    elif kind == "below":
        if est.hi < figure:
            return Decision("agrees", f"{est.fmt()} wholly below {figure:g}")
        outside = est.lo > figure + margin
        side = f"wholly above {figure:g} + {margin:g}"
    else:
        raise ValueError(f"unknown rule kind {kind!r}; valid: equivalent, above, below")
    if not outside:
        return Decision("inconclusive", f"{est.fmt()} straddles the margin ({kind} {figure:g}, margin {margin:g}): "
                                        f"n = {est.n} cannot decide")
    if reference is not None and math.isfinite(effect) and reference.has_interval:
        gap = (reference.lo - est.hi) if lower_is_effect else (est.lo - reference.hi)
        if gap >= effect:
            return Decision("same direction", f"{est.fmt()} {side}, but {'below' if lower_is_effect else 'above'} "
                                              f"{reference.fmt()} by at least {effect:g}")
    return Decision("disagrees", f"{est.fmt()} {side}")


def images_needed(kind: str, value: float, figure: float, margin: float) -> int:
    """How many images a 95 % Wilson-like interval needs to decide the rule at ``value``:
    its half-width ``z sqrt(p (1 - p) / n)`` below the distance from ``value`` to the
    nearest edge of the rule (for an equivalence at the figure itself: the margin), with at
    least ``3 / distance`` images (the rule of three) when ``p`` is 0 or 1."""
    if not math.isfinite(value):
        return 0
    if kind == "equivalent":
        dist = margin - abs(value - figure)
    elif kind == "above":
        dist = value - figure if value > figure else figure - margin - value
    else:
        dist = figure - value if value < figure else value - figure - margin
    if dist <= 0:
        # the estimate sits on the rule's edge: no n decides it; report the equivalence need
        dist = margin if margin > 0 else 0.01
    p = min(max(value, 0.0), 1.0)
    return int(math.ceil(max(_Z ** 2 * p * (1 - p) / dist ** 2, 3 / dist)))


__all__ = ["Decision", "Interval", "LEVEL", "bootstrap_statistic", "hanley_mcneil", "decide", "images_needed",
           "newcombe_difference", "wilson"]
