"""Square Attack: Andriushchenko, Croce, Flammarion & Hein (ECCV 2020), "Square Attack: a
query-efficient black-box adversarial attack via random search".

A random search on the surface of the eps-ball that uses only the model's scores. Each
iteration proposes a change of one random square window of side ``s`` (``s^2`` is the
fraction ``p`` of the image's pixels; ``p`` follows the paper's piecewise-constant schedule,
halved at 10, 50, 200, 500, 1000, 2000, 4000, 6000 and 8000 of 10,000 iterations rescaled
to the budget) and keeps it only if the loss improves:

- L-inf: start from vertical stripes ``x +- eps`` (one random sign per column and channel);
  the window of each channel is set to ``x +- eps`` with a random sign, then clipped to [0, 1].
- L2: start from a grid of "pseudo-Gaussian" bumps at norm ``eps``; a step moves the mass
  of a second random window into the first one, adds a new bump there, and rescales the
  whole perturbation to norm ``eps`` before clipping to [0, 1].

Loss (``loss=``), computed from the oracle's log-probabilities: ``"margin"`` (default),
``log p_y - max_{k != y} log p_k`` = the logit margin that the paper minimises;
``"ce"``: cross-entropy. A candidate is kept if the loss improves or it already succeeds
(as in AutoAttack's version).

Budget and counting: ``queries`` is the largest number of forward passes per image,
**all counted**: the clean query (images misclassified there are not attacked, as in the
paper, which attacks only correctly classified points), the initial perturbation, then one
per iteration until the image succeeds (it is never queried again) or the budget is spent.
The reference code does the clean pass outside its count, so ``queries=Q`` here is its
``n_iters=Q-1``; torchattacks' ``n_queries`` counts iterations only (``Q-2`` here).

Differences from the reference code (github.com/max-andr/square-attack), all deliberate:
the window position is drawn per image for both norms (the reference draws one per batch
for L2) and over every position ``0..H-s`` (the reference's ``randint(0, h - s)`` never
reaches the last row and column); randomness comes from a seeded ``torch.Generator`` on
the images' device.

Defaults: ``p_init`` 0.05 (L-inf) and 0.1 (L2), the paper's standard values for undefended
models; AutoAttack and torchattacks use 0.8 for (adversarially trained) robust models.

Finlayson et al. (2019) scale: L-inf eps 0.02 in [-1, 1] units = 0.01 here.

Example:
    >>> import torch
    >>> from advmed.attacks.blackbox import square
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 2))
    >>> x, y = torch.rand(4, 3, 8, 8), torch.tensor([0, 1, 0, 1])
    >>> r = square(model, x, y, eps=8 / 255, queries=100, progress=False)
    >>> bool(r.linf.max() <= 8 / 255 + 1e-6), bool((r.queries <= 100).all())
    (True, True)
"""
from __future__ import annotations

import functools
import math
from typing import Optional

import torch
from torch import nn

from ..losses import Target
from ._common import (Objective, check_bound, check_inputs, check_int, check_query_loss, check_seed, generator_for,
                      labels_for, prepare, run_chunks, success_of)
from .oracle import QueryResult

P_INIT = {"linf": 0.05, "l2": 0.1}
_BREAKS = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)


def p_selection(p_init: float, it: int, n_iters: int) -> float:
    """The paper's schedule: ``p_init`` halved at each break of ``it`` rescaled to 10,000."""
    it = int(it / n_iters * 10000)
    halvings = sum(it > b for b in _BREAKS)
    return p_init / 2 ** halvings


def _rand_sign(shape, gen, device) -> torch.Tensor:
    return torch.randint(0, 2, shape, generator=gen, device=device).mul_(2).sub_(1)


def _positions(a: int, h: int, w: int, s: int, gen, device) -> tuple[torch.Tensor, torch.Tensor]:
    vh = torch.randint(0, h - s + 1, (a,), generator=gen, device=device)
    vw = torch.randint(0, w - s + 1, (a,), generator=gen, device=device)
    return vh, vw


def _window(vh, vw, s: int, h: int, w: int) -> torch.Tensor:
    """Boolean masks ``(A, 1, H, W)`` of the windows ``[vh, vh + s) x [vw, vw + s)``."""
    r = torch.arange(h, device=vh.device)[None, :] - vh[:, None]
    c = torch.arange(w, device=vw.device)[None, :] - vw[:, None]
    return ((r >= 0) & (r < s))[:, None, :, None] & ((c >= 0) & (c < s))[:, None, None, :]


def _place(patch: torch.Tensor, vh, vw, h: int, w: int) -> torch.Tensor:
    """Patches ``(A, C, s, s)`` placed at ``(vh, vw)`` in zero images ``(A, C, H, W)``."""
    a, c, s, _ = patch.shape
    r = (torch.arange(h, device=vh.device)[None, :] - vh[:, None])
    cc = (torch.arange(w, device=vw.device)[None, :] - vw[:, None])
    rows = patch.gather(2, r.clamp(0, s - 1)[:, None, :, None].expand(a, c, h, s))
    full = rows.gather(3, cc.clamp(0, s - 1)[:, None, None, :].expand(a, c, h, w))
    return full * _window(vh, vw, s, h, w).to(full.dtype)


# ---------------------------------------------------------------------------- L-inf

def _init_linf(x: torch.Tensor, eps: float, gen) -> torch.Tensor:
    n, c, _, w = x.shape
    stripes = _rand_sign((n, c, 1, w), gen, x.device).to(x.dtype)
    return (x + eps * stripes).clamp_(0, 1)


def _step_linf(x: torch.Tensor, x_best: torch.Tensor, p: float, eps: float, gen) -> torch.Tensor:
    a, c, h, w = x.shape
    s = min(max(int(round(math.sqrt(p * h * w))), 1), min(h, w) - 1)
    vh, vw = _positions(a, h, w, s, gen, x.device)
    mask = _window(vh, vw, s, h, w)
    signs = _rand_sign((a, c, 1, 1), gen, x.device).to(x.dtype)
    for _ in range(100):  # never propose a window that changes nothing (the reference's `while`)
        cand = (x + eps * signs).clamp(0, 1)
        same = (((cand - x_best).abs() < 1e-7) | ~mask).flatten(1).all(dim=1)
        if not bool(same.any()):
            break
        fresh = _rand_sign((a, c, 1, 1), gen, x.device).to(x.dtype)
        signs = torch.where(same[:, None, None, None], fresh, signs)
    return torch.where(mask, cand, x_best)


# ---------------------------------------------------------------------------- L2

def _bump_rectangle(hh: int, ww: int) -> torch.Tensor:
    """The reference's ``pseudo_gaussian_pert_rectangles``: nested rings weighted 1/(k+1)^2."""
    d = torch.zeros(hh, ww, dtype=torch.float64)
    ch, cw = hh // 2, ww // 2  # x_c - 1, y_c - 1 of the reference
    for k in range(max(hh // 2 + 1, ww // 2 + 1)):
        d[max(ch - k, 0):min(ch - k + 2 * k + 1, hh), max(cw - k, 0):min(cw - k + 2 * k + 1, ww)] += 1.0 / (k + 1) ** 2
    return d / d.norm()


@functools.lru_cache(maxsize=64)
def eta(s: int) -> torch.Tensor:
    """The reference's ``meta_pseudo_gaussian_pert`` (two bumps of opposite sign, unit norm),
    before its random transpose (float64, on the CPU; cached per side)."""
    d = torch.zeros(s, s, dtype=torch.float64)
    d[: s // 2] = _bump_rectangle(s // 2, s)
    d[s // 2:] = -_bump_rectangle(s - s // 2, s)
    return d / d.norm()


def _eta_batch(a: int, s: int, gen, x: torch.Tensor) -> torch.Tensor:
    e = eta(s).to(device=x.device, dtype=x.dtype)
    flip = torch.rand(a, generator=gen, device=x.device) > 0.5
    return torch.where(flip[:, None, None], e.t(), e)[:, None]  # (A, 1, s, s)


def _unit(delta: torch.Tensor) -> torch.Tensor:
    return delta / delta.flatten(1).norm(dim=1).clamp_min(1e-12)[:, None, None, None]


def _init_l2(x: torch.Tensor, eps: float, gen) -> torch.Tensor:
    n, c, h, w = x.shape
    s = h // 5
    delta = torch.zeros_like(x)
    start = (h - s * 5) // 2
    for i in range(h // s):
        for j in range(w // s):
            vh, vw = start + i * s, start + j * s
            e = _eta_batch(1, s, gen, x)[0]  # one orientation per tile, as in the reference
            tile = e * _rand_sign((n, c, 1, 1), gen, x.device).to(x.dtype)
            hh, ww = delta[:, :, vh:vh + s, vw:vw + s].shape[2:]
            delta[:, :, vh:vh + s, vw:vw + s] += tile[:, :, :hh, :ww]
    return (x + _unit(delta) * eps).clamp_(0, 1)


def _channel_norm(v: torch.Tensor) -> torch.Tensor:
    return v.pow(2).sum(dim=(2, 3), keepdim=True).sqrt()


def _step_l2(x: torch.Tensor, x_best: torch.Tensor, p: float, eps: float, gen) -> torch.Tensor:
    a, c, h, w = x.shape
    s = max(int(round(math.sqrt(p * h * w))), 3)
    s = min(s + 1 if s % 2 == 0 else s, min(h, w) - 1)
    delta = x_best - x
    vh, vw = _positions(a, h, w, s, gen, x.device)
    vh2, vw2 = _positions(a, h, w, s, gen, x.device)
    m1 = _window(vh, vw, s, h, w).to(x.dtype)
    union = torch.maximum(m1, _window(vh2, vw2, s, h, w).to(x.dtype))
    norm_image = delta.flatten(1).norm(dim=1)[:, None, None, None]
    norm_union = _channel_norm(delta * union)              # per channel, both windows
    bump = _eta_batch(a, s, gen, x).expand(a, c, s, s) * _rand_sign((a, c, 1, 1), gen, x.device).to(x.dtype)
    new = _place(bump, vh, vw, h, w) + delta * m1 / (1e-10 + _channel_norm(delta * m1))
    # window 1 receives the mass of both windows and what is left of the budget
    room = ((eps ** 2 - norm_image ** 2).clamp_min(0) / c + norm_union ** 2).sqrt()
    new = new / _channel_norm(new).clamp_min(1e-12) * room
    delta = delta * (1 - union) + new
    return (x + _unit(delta) * eps).clamp_(0, 1)


# ---------------------------------------------------------------------------- the attack

def _attack_chunk(oracle, x, idx, labels_of, *, norm, eps, n_iters, p_init, objective, targeted, gen, bar):
    logp = oracle(x, idx)
    labels = labels_of(logp)
    success = success_of(logp, labels, targeted)
    clean = success.clone()
    x_best = x.clone()
    act = (~success).nonzero().squeeze(1)
    if act.numel() == 0 or n_iters < 1:
        return x_best, success, clean
    init, step = (_init_linf, _step_linf) if norm == "linf" else (_init_l2, _step_l2)
    x_best[act] = init(x[act], eps, gen)
    logp = oracle(x_best[act], idx[act])
    best = torch.full((x.shape[0],), -math.inf, dtype=torch.float64, device=x.device)
    best[act] = objective(logp, labels[act])
    success[act] = success_of(logp, labels[act], targeted)
    for i in range(n_iters - 1):
        act = (~success).nonzero().squeeze(1)
        if act.numel() == 0:
            break
        x_new = step(x[act], x_best[act], p_selection(p_init, i, n_iters), eps, gen)
        logp = oracle(x_new, idx[act])
        value, ok = objective(logp, labels[act]), success_of(logp, labels[act], targeted)
        better = (value > best[act]) | ok
        sel = act[better]
        x_best[sel], best[sel], success[sel] = x_new[better], value[better], ok[better]
        bar.update(1)
        if i % 50 == 0:
            bar.set_postfix(success=f"{float(success.float().mean()):.3f}")
    return x_best, success, clean


def square(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float, norm: str = "linf",
           queries: int = 5000, p_init: Optional[float] = None, loss="margin", targeted: bool = False,
           target: Target = None, seed: int = 0, batch_size: Optional[int] = None,
           progress: bool = True) -> QueryResult:
    """Square Attack (Andriushchenko et al. 2020), L-inf or L2, from output scores only.

    Args:
        model: returns logits; queried only through :class:`~.oracle.ScoreOracle` (eval
            mode, no gradients, restored afterwards).
        x: float images ``(N, C, H, W)`` in [0, 1] on the model's device.
        y: true labels ``(N,)``.
        eps: the bound in [0, 1] pixel units, in ``norm``; the perturbation stays in the
            eps-ball and the images in [0, 1] (up to float rounding, ~1e-7).
        norm: ``"linf"`` or ``"l2"`` (L2 needs images of at least 5 x 5 pixels).
        queries: the per-image budget of forward passes, clean query included (>= 2).
        p_init: initial fraction of pixels in the window; default 0.05 (L-inf), 0.1 (L2).
        loss: ``"margin"`` (default) or ``"ce"``, or a callable ``(log_probs, labels) -> (N,)``.
        targeted, target: ``targeted=True`` with ``target`` an int, a tensor ``(N,)`` or
            ``"other"`` (the other class of a binary task).
        seed: seeds a ``torch.Generator`` on ``x``'s device.
        batch_size: images attacked together (None: all); each image stops on success.
        progress: a tqdm bar over iterations.

    Returns:
        :class:`~.oracle.QueryResult`: ``x_adv``, per-image ``queries``, ``success``,
        ``clean_success``, ``l2`` / ``linf`` sizes, ``max_queries``, ``seconds``.
    """
    check_inputs(model, x, y, targeted, target, batch_size, progress)
    norm, eps = check_bound(norm, eps, x, "the Square Attack searches the surface of the eps-ball")
    queries = check_int(queries, "queries", 2)
    if p_init is None:
        p_init = P_INIT[norm]
    if isinstance(p_init, bool) or not isinstance(p_init, (int, float)) or not 0 < float(p_init) <= 1:
        raise ValueError(f"p_init must be a fraction in (0, 1], got {p_init!r}")
    objective = Objective(check_query_loss(loss), targeted)
    seed = check_seed(seed)
    h, w = x.shape[2:]
    if min(h, w) < (5 if norm == "l2" else 2):
        raise ValueError(f"images of {h} x {w} pixels are too small for the {norm} Square Attack "
                         f"(needs at least {5 if norm == 'l2' else 2} px per side)")

    x, y, target = prepare(x, y, target)
    gen = generator_for(x, seed)

    def chunk(oracle, xs, idx, sl, bar):
        return _attack_chunk(oracle, xs, idx, lambda lp: labels_for(lp, y, targeted, target, sl),
                             norm=norm, eps=eps, n_iters=queries - 1, p_init=float(p_init),
                             objective=objective, targeted=targeted, gen=gen, bar=bar)

    return run_chunks(model, x, y, name="square", max_queries=queries, batch_size=batch_size,
                      progress=progress, attack_chunk=chunk, norm=norm, eps=eps, targeted=targeted)
