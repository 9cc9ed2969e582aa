"""SimBA: Guo, Gardner, You, Wilson & Weinberger (ICML 2019), "Simple black-box adversarial
attacks".

Pick an orthonormal direction ``q`` (a pixel, or a low-frequency 2-D DCT basis image for
SimBA-DCT; see :mod:`._basis`), try ``x - eps q``: if the probability of the true class
falls (targeted: of the target class rises), keep it; otherwise try ``x + eps q`` and keep
it if it helps. Directions are taken without replacement in the chosen order, so ``T``
accepted steps have L2 norm exactly ``eps * sqrt(T)`` before clipping to [0, 1]; each
image has its own random order.

Queries, exactly as spent: one clean query per image (the starting probability; images
already misclassified, or already of the target class, stop there), then per iteration
one query, and a second only where the first direction did not help (at most 2, as in
the paper). An image stops at success and is never queried again. The budget
``max_queries`` counts all of them; the reference code's ``num_iters`` counts iterations
and its success check is an extra, uncounted forward pass that is not needed here (the
oracle's answer for the accepted candidate already gives the prediction).

Units: ``eps`` is the step per coordinate in [0, 1] pixel units (the paper: 0.2, for both
bases; each basis image has unit L2 norm, so a DCT step changes the L2 norm by ``eps``
spread over the image). SimBA has no norm bound: the result states each image's ``l2``
and ``linf``. Probabilities are compared as float64 log-probabilities (same decisions as
the paper's probabilities, exact where a confident model's float32 softmax rounds to 1).

The paper's ImageNet settings (224 px): pixel ``max_iters=10000``; DCT
``freq_dims=28, order="strided", stride=7``; targeted 30,000 iterations. Defaults here:
``freq_dims = side // 8`` and ``stride = side // 32`` (the same fractions), at least 1.
When the order is exhausted it is drawn again (as ART does; the reference stops).

Example:
    >>> import torch
    >>> from advmed.attacks.blackbox import simba
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 2))
    >>> x, y = torch.rand(4, 3, 8, 8), torch.tensor([0, 1, 0, 1])
    >>> r = simba(model, x, y, eps=0.2, max_queries=200, progress=False)
    >>> bool((r.queries <= 200).all()), r.l2.shape
    (True, torch.Size([4]))
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from ..losses import Target
from ._basis import BASES, ORDERS, Basis, coordinate_orders, default_freq_dims, default_stride
from ._common import (Objective, check_inputs, check_int, check_optional_int, check_query_loss, check_seed,
                      finite_positive, generator_for, labels_for, prepare, run_chunks, success_of)
from .oracle import QueryResult


def check_basis(basis: str, order: Optional[str], freq_dims, stride, shape) -> tuple[str, int, int]:
    """The order, low-frequency block and ring width of a basis, checked against the image."""
    if basis not in BASES:
        raise ValueError(f"unknown basis {basis!r}; valid: {', '.join(BASES)}")
    _, h, w = shape
    if basis == "pixel":
        if order not in (None, "random"):
            raise ValueError(f"the pixel basis takes order='random' only, got {order!r} "
                             "('strided' is SimBA-DCT's low-frequency order)")
        if freq_dims is not None or stride is not None:
            raise ValueError("freq_dims and stride belong to the DCT basis; leave them None with "
                             "basis='pixel'")
        return "random", min(h, w), 1
    order = "strided" if order is None else order
    if order not in ORDERS:
        raise ValueError(f"unknown order {order!r}; valid: {', '.join(ORDERS)}")
    freq = default_freq_dims(h, w) if freq_dims is None else check_int(freq_dims, "freq_dims")
    if freq > min(h, w):
        raise ValueError(f"freq_dims={freq} exceeds the image side {min(h, w)}")
    stride = default_stride(h, w) if stride is None else check_int(stride, "stride")
    return order, freq, stride


def _try(oracle, x, delta, x_cur, cur, success, labels, idx, rows, q, sign, score, targeted):
    """Query ``x + delta + sign * q`` for the images ``rows``; keep it where the score improves.
    Returns the mask of ``rows`` that improved."""
    new_delta = delta[rows] + sign * q
    cand = (x[rows] + new_delta).clamp_(0, 1)
    logp = oracle(cand, idx[rows])
    value = score(logp, labels[rows])
    better = value > cur[rows]
    sel = rows[better]
    delta[sel], x_cur[sel], cur[sel] = new_delta[better], cand[better], value[better]
    success[sel] = success_of(logp[better], labels[sel], targeted)
    return better


def _attack_chunk(oracle, x, idx, labels_of, *, eps, max_queries, basis_fn, orders_fn, score, targeted, bar):
    logp = oracle(x, idx)
    labels = labels_of(logp)
    success = success_of(logp, labels, targeted)
    clean = success.clone()
    cur = score(logp, labels)
    delta = torch.zeros_like(x)           # the sum of accepted steps (before clipping)
    x_cur = x.clone()                     # the accepted candidate itself, as the oracle saw it
    orders = orders_fn(x.shape[0], max_queries - 1)
    for t in range(max_queries - 1):
        rows = ((~success) & (oracle.counts[idx] < max_queries)).nonzero().squeeze(1)
        if rows.numel() == 0:
            break
        q = basis_fn(orders[rows, t]).mul_(eps)
        better = _try(oracle, x, delta, x_cur, cur, success, labels, idx, rows, q, -1.0, score, targeted)
        rest = ~better & (oracle.counts[idx[rows]] < max_queries)
        if bool(rest.any()):
            _try(oracle, x, delta, x_cur, cur, success, labels, idx, rows[rest], q[rest], 1.0, score, targeted)
        bar.update(1)
        if t % 50 == 0:
            bar.set_postfix(success=f"{float(success.float().mean()):.3f}")
    return x_cur, success, clean


def simba(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float = 0.2,
          max_queries: int = 10000, basis: str = "dct", freq_dims: Optional[int] = None,
          stride: Optional[int] = None, order: Optional[str] = None, targeted: bool = False,
          target: Target = None, loss="ce", seed: int = 0, batch_size: Optional[int] = None,
          progress: bool = True) -> QueryResult:
    """SimBA / SimBA-DCT (Guo et al. 2019) from output probabilities only.

    Args:
        model: returns logits; queried only through :class:`~.oracle.ScoreOracle`.
        x: float images ``(N, C, H, W)`` in [0, 1] on the model's device.
        y: true labels ``(N,)``.
        eps: step size per coordinate in [0, 1] pixel units (the paper: 0.2).
        max_queries: per-image budget of forward passes, clean query included (>= 2).
        basis: ``"dct"`` (SimBA-DCT, default) or ``"pixel"`` (SimBA).
        freq_dims: DCT only: side of the low-frequency block tried first (default side // 8).
        stride: DCT ``"strided"`` order only: width of the rings after it (default side // 32).
        order: DCT: ``"strided"`` (default; low frequencies first, then rings) or
            ``"random"`` (uniform over the low-frequency block); pixels: ``"random"``.
        targeted, target: ``targeted=True`` with ``target`` an int, a tensor ``(N,)`` or
            ``"other"`` (the other class of a binary task).
        loss: what a step must improve. ``"ce"`` (default) is ``-log p_y`` (targeted:
            ``log p_target``), the paper's criterion exactly (the probability, compared in
            log space); ``"margin"`` (ours) the CW margin of the log-probabilities, which
            also counts the runner-up class; or a callable ``(log_probs, labels) -> (N,)``.
        seed: seeds a ``torch.Generator`` on ``x``'s device (the coordinate orders).
        batch_size: images attacked together (None: all); each image stops on success.
        progress: a tqdm bar over iterations.

    Returns:
        :class:`~.oracle.QueryResult` with ``norm="l2"``, ``eps`` = the step, and each
        image's perturbation size in ``l2`` and ``linf``.
    """
    check_inputs(model, x, y, targeted, target, batch_size, progress)
    score = Objective(check_query_loss(loss), targeted)
    eps = finite_positive(eps, "eps (the step size)")
    if eps > 1:
        raise ValueError(f"eps={eps:g} is above 1: SimBA's step is in [0, 1] pixel units (the paper "
                         f"uses 0.2); did you mean {eps:g}/255 = {eps / 255:.5f}?")
    max_queries = check_int(max_queries, "max_queries", 2)
    check_optional_int(freq_dims, "freq_dims")
    check_optional_int(stride, "stride")
    shape = tuple(x.shape[1:])
    order, freq, stride = check_basis(basis, order, freq_dims, stride, shape)
    seed = check_seed(seed)

    x, y, target = prepare(x, y, target)
    gen = generator_for(x, seed)
    basis_fn = Basis(shape, basis, device=x.device, dtype=x.dtype)

    def orders_fn(n, length):
        return coordinate_orders(n, shape, basis=basis, order=order, freq_dims=freq, stride=stride,
                                 length=length, generator=gen, device=x.device)

    def chunk(oracle, xs, idx, sl, bar):
        return _attack_chunk(oracle, xs, idx, lambda lp: labels_for(lp, y, targeted, target, sl),
                             eps=eps, max_queries=max_queries, basis_fn=basis_fn, orders_fn=orders_fn,
                             score=score, targeted=targeted, bar=bar)

    return run_chunks(model, x, y, name=f"simba-{basis}",
                      max_queries=max_queries, batch_size=batch_size, progress=progress,
                      attack_chunk=chunk, norm="l2", eps=eps, targeted=targeted)
