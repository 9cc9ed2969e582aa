"""HopSkipJump: Chen, Jordan & Wainwright (IEEE S&P 2020), "HopSkipJumpAttack: a
query-efficient decision-based attack".

The **label-only** (decision-based) threat model: the attacker sees the predicted class and
nothing else. The model is reached through :class:`~.oracle.ScoreOracle`, of whose answer
only the argmax is read, so every forward pass is counted as in the score-based attacks.

HopSkipJump walks along the decision boundary towards the clean image ``x``:

1. Start from an adversarial point: uniform noise images until one is misclassified
   (``init_size`` tries per image), then a binary search on the segment to ``x``.
2. Each iteration ``t``: estimate the gradient direction of the decision at the boundary
   point by Monte-Carlo sampling (``init_evals * sqrt(t)`` random directions, at most
   ``max_evals``, of radius ``delta``; each answer adversarial or not is +-1, the mean is
   subtracted as a baseline); step along it (L2: the unit direction; L-inf: its sign) with a
   geometric search from ``||x_adv - x|| / sqrt(t)`` halving until the point is adversarial;
   binary search back to the boundary (L2: on the segment to ``x``; L-inf: on the L-inf
   ball's radius, by projection), so that every iterate, the last one included, lies on the
   boundary (the paper's Algorithm 1; ART's loop searches at the start of each iteration and
   returns its last step unsearched). Constants as the paper and ART's ``HopSkipJump``:
   ``theta = d^{-3/2}`` (L2) or ``d^{-2}`` (L-inf), ``delta = 0.1`` at the first iteration,
   then ``sqrt(d) theta dist`` (L2) or ``d theta dist`` (L-inf), ``d`` the number of pixels
   times channels.

It finds a *minimal* perturbation; the book asks whether it lies within a budget ``eps``
(the same L-inf ball as the Square Attack): an image succeeds, and stops being queried, as
soon as its boundary point is within ``eps`` of ``x``. ``x_adv`` is then that point, else
``x`` (nothing within the budget was found); ``queries`` counts every forward pass, the
clean one included (images misclassified there are not attacked).

Untargeted only: the book's label-only row asks whether the target can be made to err.
Checked against ART's ``HopSkipJump`` (``tests/test_hopskipjump.py``).

Example:
    >>> import torch
    >>> from advmed.attacks.blackbox import hopskipjump
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 2))
    >>> x, y = torch.rand(4, 3, 8, 8), torch.tensor([0, 1, 0, 1])
    >>> r = hopskipjump(model, x, y, eps=16 / 255, queries=500, progress=False)
    >>> bool((r.linf <= 16 / 255 + 1e-6).all()), bool((r.queries <= 500).all())
    (True, True)
"""
from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn

from ..losses import resolve_labels
from ._common import check_bound, check_inputs, check_int, check_seed, generator_for, prepare, run_chunks
from .oracle import QueryResult

#: Defaults of the paper and of ART's ``HopSkipJump``.
INIT_EVALS, MAX_EVALS, INIT_SIZE = 100, 10000, 100


class _Decision:
    """Label-only access for one chunk: ``adv(points, which)`` says, per point, whether the
    oracle's prediction differs from the true label; queries are counted per image and the
    images out of budget are never queried (their answer is False)."""

    def __init__(self, oracle, idx: torch.Tensor, y: torch.Tensor, budget: int):
        self.oracle, self.idx, self.y, self.budget = oracle, idx, y, budget

    def left(self, which: torch.Tensor) -> torch.Tensor:
        return self.budget - self.oracle.counts[self.idx[which]]

    def __call__(self, points: torch.Tensor, which: torch.Tensor) -> torch.Tensor:
        """``points`` ``(B, C, H, W)`` belonging to the chunk's images ``which`` ``(B,)``."""
        out = torch.zeros(which.numel(), dtype=torch.bool, device=points.device)
        ok = _rank_within(which) < self.left(which)  # an image's points beyond its budget stay unsent
        if bool(ok.any()):
            logp = self.oracle(points[ok].clamp(0, 1), self.idx[which[ok]])
            out[ok] = logp.argmax(dim=1) != self.y[which[ok]]
        return out


def _rank_within(which: torch.Tensor) -> torch.Tensor:
    """For each entry, how many earlier entries name the same image (0, 1, ...)."""
    order = torch.argsort(which, stable=True)
    w = which[order]
    pos = torch.arange(w.numel(), device=w.device)
    first = torch.ones_like(w, dtype=torch.bool)
    first[1:] = w[1:] != w[:-1]
    start = torch.cummax(torch.where(first, pos, torch.zeros_like(pos)), dim=0).values
    rank = torch.empty_like(pos)
    rank[order] = pos - start
    return rank


def _dist(a: torch.Tensor, b: torch.Tensor, norm: str) -> torch.Tensor:
    d = (a - b).flatten(1)
    return d.norm(dim=1) if norm == "l2" else d.abs().amax(dim=1)


def _blend(x: torch.Tensor, x_adv: torch.Tensor, alpha: torch.Tensor, norm: str) -> torch.Tensor:
    """The point ``alpha`` of the way from ``x`` (L2: on the segment; L-inf: ``x_adv`` clipped
    to the L-inf ball of radius ``alpha`` around ``x``)."""
    a = alpha[:, None, None, None]
    if norm == "l2":
        return (1 - a) * x + a * x_adv
    return torch.minimum(torch.maximum(x_adv, x - a), x + a)


def _binary_search(decide, x, x_adv, which, norm: str, theta: float) -> torch.Tensor:
    """The boundary point between ``x`` (not adversarial) and ``x_adv`` (adversarial)."""
    if norm == "l2":
        hi = torch.ones(x.shape[0], dtype=x.dtype, device=x.device)
        tol = torch.full_like(hi, theta)
    else:
        hi = _dist(x_adv, x, norm)
        tol = torch.clamp(hi * theta, max=theta)
    lo = torch.zeros_like(hi)
    while True:
        open_ = (hi - lo) > tol
        open_ &= decide.left(which) > 0
        if not bool(open_.any()):
            break
        mid = (hi + lo) / 2
        sel = open_.nonzero().squeeze(1)
        adv = decide(_blend(x[sel], x_adv[sel], mid[sel], norm), which[sel])
        hi[sel] = torch.where(adv, mid[sel], hi[sel])
        lo[sel] = torch.where(adv, lo[sel], mid[sel])
    return _blend(x, x_adv, hi, norm)


def _initial(decide, x, which, gen, init_size: int, norm: str, theta: float):
    """A misclassified uniform-noise image per image (``init_size`` tries), searched back to
    the boundary; ``found`` says where one was found."""
    start = x.clone()
    found = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
    for _ in range(init_size):
        todo = (~found).nonzero().squeeze(1)
        if todo.numel() == 0:
            break
        noise = torch.rand(x[todo].shape, generator=gen, device=x.device, dtype=x.dtype)
        adv = decide(noise, which[todo])
        start[todo[adv]] = noise[adv]
        found[todo[adv]] = True
    sel = found.nonzero().squeeze(1)
    if sel.numel():
        start[sel] = _binary_search(decide, x[sel], start[sel], which[sel], norm, theta)
    return start, found


def _gradient(decide, point, which, n_evals: int, delta: torch.Tensor, norm: str, gen) -> torch.Tensor:
    """The Monte-Carlo estimate of the boundary's normal at ``point`` (unit L2 or a sign)."""
    b, shape = point.shape[0], point.shape[1:]
    if norm == "l2":
        u = torch.randn((b, n_evals, *shape), generator=gen, device=point.device, dtype=point.dtype)
    else:
        u = torch.rand((b, n_evals, *shape), generator=gen, device=point.device, dtype=point.dtype) * 2 - 1
    u = u / u.flatten(2).norm(dim=2).clamp_min(1e-12)[:, :, None, None, None]
    probes = (point[:, None] + delta[:, None, None, None, None] * u).clamp(0, 1)
    u = (probes - point[:, None]) / delta[:, None, None, None, None]  # the clipped directions (as ART)
    adv = decide(probes.flatten(0, 1), which.repeat_interleave(n_evals)).view(b, n_evals)
    f = adv.to(point.dtype) * 2 - 1
    mean = f.mean(dim=1, keepdim=True)
    both = (mean.abs() < 1).squeeze(1)
    f = torch.where(both[:, None], f - mean, f)  # baseline only when both answers occur
    grad = (f[:, :, None, None, None] * u).mean(dim=1)
    if norm == "l2":
        return grad / grad.flatten(1).norm(dim=1).clamp_min(1e-12)[:, None, None, None]
    return grad.sign()


def _attack_chunk(oracle, x, y, idx, *, norm, eps, queries, max_iter, init_evals, max_evals, init_size,
                  gen, bar):
    n = x.shape[0]
    d = x[0].numel()
    theta = d ** -1.5 if norm == "l2" else d ** -2.0
    decide = _Decision(oracle, idx, y, queries)
    logp = oracle(x, idx)  # the clean query; its scores only check the labels against the classes
    wrong = logp.argmax(dim=1) != resolve_labels(logp, y, False, None)
    clean = wrong.clone()
    x_adv = x.clone()
    success = clean.clone()
    act = (~clean).nonzero().squeeze(1)
    if act.numel() == 0:
        return x_adv, success, clean
    cur, found = _initial(decide, x[act], act, gen, init_size, norm, theta)
    act, cur = act[found], cur[found]
    dist = _dist(cur, x[act], norm)
    for t in range(1, max_iter + 1):
        within = dist <= eps + 1e-12
        x_adv[act[within]], success[act[within]] = cur[within], True
        keep = ~within & (decide.left(act) > 0)
        act, cur, dist = act[keep], cur[keep], dist[keep]
        if act.numel() == 0:
            break
        delta = (torch.full_like(dist, 0.1) if t == 1 else
                 (math.sqrt(d) * theta * dist if norm == "l2" else d * theta * dist))
        n_evals = min(int(init_evals * math.sqrt(t)), max_evals)
        grad = _gradient(decide, cur, act, n_evals, delta, norm, gen)
        step = dist / math.sqrt(t)  # geometric step search from ||x_adv - x|| / sqrt(t), halving
        moved = torch.zeros_like(dist, dtype=torch.bool)
        for _ in range(50):
            todo = (~moved & (decide.left(act) > 0)).nonzero().squeeze(1)
            if todo.numel() == 0:
                break
            cand = (cur[todo] + step[todo, None, None, None] * grad[todo]).clamp(0, 1)
            adv = decide(cand, act[todo])
            cur[todo[adv]] = cand[adv]
            moved[todo[adv]] = True
            step[todo[~adv]] /= 2
        cur = _binary_search(decide, x[act], cur, act, norm, theta)
        dist = _dist(cur, x[act], norm)
        bar.update(1)
        bar.set_postfix(success=f"{float(success.float().mean()):.3f}")
    within = dist <= eps + 1e-12
    x_adv[act[within]], success[act[within]] = cur[within], True
    return x_adv, success, clean


def hopskipjump(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float, norm: str = "linf",
                queries: int = 5000, max_iter: int = 1000, init_evals: int = INIT_EVALS,
                max_evals: int = MAX_EVALS, init_size: int = INIT_SIZE, seed: int = 0,
                batch_size: Optional[int] = None, progress: bool = True) -> QueryResult:
    """HopSkipJump (Chen et al. 2020), untargeted, from predicted labels only.

    Args:
        model: returns logits; queried only through :class:`~.oracle.ScoreOracle`, of whose
            answer the attack reads the argmax alone.
        x: float images ``(N, C, H, W)`` in [0, 1] on the model's device.
        y: true labels ``(N,)``.
        eps: the budget in [0, 1] pixel units, in ``norm``: an image succeeds once its
            boundary point is within it (and is not queried again).
        norm: ``"linf"`` (the book's budget, as the Square Attack) or ``"l2"``.
        queries: the per-image budget of forward passes, clean query included (>= 2).
        max_iter: iterations at most (the budget usually ends the attack first).
        init_evals, max_evals: gradient-estimation queries at the first iteration and at most
            (``init_evals * sqrt(t)`` at iteration ``t``).
        init_size: uniform-noise tries for the starting point.
        seed: seeds a ``torch.Generator`` on ``x``'s device (noise, directions).
        batch_size: images attacked together (None: all).
        progress: a tqdm bar over iterations.

    Returns:
        :class:`~.oracle.QueryResult` (``eps`` and ``norm`` the budget's).
    """
    check_inputs(model, x, y, False, None, batch_size, progress)
    norm, eps = check_bound(norm, eps, x, "the budget an image's boundary point must reach")
    queries = check_int(queries, "queries", 2)
    max_iter = check_int(max_iter, "max_iter", 1)
    init_evals = check_int(init_evals, "init_evals", 1)
    max_evals = check_int(max_evals, "max_evals", init_evals)
    init_size = check_int(init_size, "init_size", 1)
    seed = check_seed(seed)
    x, y, _ = prepare(x, y, None)
    gen = generator_for(x, seed)

    def chunk(oracle, xs, idx, sl, bar):
        return _attack_chunk(oracle, xs, y[sl], idx, norm=norm, eps=eps, queries=queries, max_iter=max_iter,
                             init_evals=init_evals, max_evals=max_evals, init_size=init_size, gen=gen, bar=bar)

    return run_chunks(model, x, y, name="hopskipjump", max_queries=queries, batch_size=batch_size,
                      progress=progress, attack_chunk=chunk, norm=norm, eps=eps, targeted=False)


__all__ = ["INIT_EVALS", "INIT_SIZE", "MAX_EVALS", "hopskipjump"]
