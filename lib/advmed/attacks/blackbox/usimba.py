"""U-SimBA: black-box universal perturbations by SimBA-style hill climbing.

Koga & Takemoto (Algorithms 15(5):144, 2022), "Simple black-box universal adversarial
attacks on deep neural networks for medical image classification"; code: github.com/
kztakemoto/U-SimBA, on their ART fork (``art/attacks/evasion/universal_simba.py``).

One perturbation ``v`` for a set of images, grown one orthonormal direction at a time
(DCT basis images in the low-frequency-first order of SimBA-DCT, or pixels): each
iteration evaluates **both** candidates ``proj(v - eps q)`` and ``proj(v + eps q)`` on every
image (one batched pass of the image set each, so ``2 N`` queries per iteration) and keeps
the better one if it beats ``v``. "Better" (``criterion``):

- ``"prob"`` (Koga & Takemoto): the sum over the images of the probability of the
  reference class falls (non-targeted; the reference is the clean prediction unless ``y``
  is given) or of the target class rises (targeted);
- ``"rate"`` (ours): a higher fooling rate (targeted: share of images classified as the
  target), the summed probability breaking ties. It climbs only when an image flips, so it
  is slower at first; it is offered for the chapter's comparison.

The bound: ``eps = zeta x mean image norm`` (:func:`advmed.attacks.universal.eps_from_zeta`,
L2 or L-inf over all channels of the [0, 1] images). That is exactly Koga & Takemoto's
bound: they took ``zeta`` times the mean norm of the raw images (all channels, 0-255) over
128 in their ``(X - 128) / 128`` model space, i.e. ``zeta x mean ||x||`` in [0, 1] units.
Every candidate is projected onto the ball (ART's ``projection``) and the images
``clip(x + v, 0, 1)`` are queried. Their step ``epsilon=0.5`` in that space is
:data:`USIMBA_STEP` ``= 0.5 x 128 / 255`` here; they used ``freq_dim=28`` at 299 px,
stride 1, up to 5,000 iterations, and stopped once 99 % of the images were fooled (ART's
``delta=0.01``, our ``target_rate=0.99``). Their logged case (melanoma, Inception-V3, L2
zeta 4 %, 100 input images): 73 % on the input images after 5,000 iterations, 1.46 h.

Queries are counted by the oracle: each image is queried once clean, then twice per
iteration (``queries = 1 + 2 x iterations`` per image).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from ..checks import check_eps, check_images, check_labels, check_norm
from ..losses import check_target
from ..universal.uap import UAPResult, eps_from_zeta, perturbation_norms, project
from ._basis import Basis, coordinate_orders
from ._common import Timer, check_int, check_model_device, check_seed, finite_positive
from .oracle import ScoreOracle
from .simba import check_basis

#: Koga & Takemoto's step ``epsilon=0.5`` (images in (X - 128) / 128 units) in [0, 1] pixel units.
USIMBA_STEP = 0.5 * 128 / 255
CRITERIA = ("prob", "rate")


@dataclass
class USimBAResult(UAPResult):
    """A :class:`~advmed.attacks.universal.UAPResult` (``method="usimba"``; ``passes`` is the
    number of iterations run) with the query attack's own figures: ``queries`` per image
    (``1 + 2 x passes``), ``total_queries``, ``accepted`` steps, ``basis``, ``criterion``.
    Works with every function of :mod:`advmed.attacks.universal.evaluate`."""

    queries: int = 0
    total_queries: int = 0
    accepted: int = 0
    basis: str = "dct"
    criterion: str = "prob"

    def summary(self) -> dict:
        return {**super().summary(), "queries": self.queries, "total_queries": self.total_queries,
                "accepted": self.accepted, "basis": self.basis, "criterion": self.criterion}


class _Scores:
    """One candidate ``v`` = one pass over all images (``batch_size`` at a time) through the oracle."""

    def __init__(self, oracle: ScoreOracle, x: torch.Tensor, batch_size: int):
        self.oracle, self.x, self.batch_size = oracle, x, batch_size

    def logp(self, v: torch.Tensor) -> torch.Tensor:
        out = []
        for s in range(0, self.x.shape[0], self.batch_size):
            xb = (self.x[s:s + self.batch_size] + v).clamp_(0, 1)
            out.append(self.oracle(xb, torch.arange(s, s + xb.shape[0], device=self.x.device)))
        return torch.cat(out)

    def __call__(self, v: torch.Tensor, labels: torch.Tensor):
        """Predictions of ``clip(x + v)`` and the summed probability of ``labels``."""
        return _summarise(self.logp(v), labels)


def _summarise(logp: torch.Tensor, labels: torch.Tensor):
    return logp.argmax(1), logp.gather(1, labels[:, None]).exp().sum()


class _State:
    """The current ``v``, its predictions and its key (rate, signed probability sum)."""

    def __init__(self, v, pred, psum, rate):
        self.v, self.pred, self.psum, self.rate = v, pred, psum, rate


def _rate(pred, y_ref, target) -> float:
    hit = pred != y_ref if target is None else pred == target
    return float(hit.float().mean())


def _better(a: _State, b: _State, criterion: str, targeted: bool) -> bool:
    """Does ``a`` beat ``b``? Probability sums: lower for non-targeted, higher for targeted."""
    pa, pb = (a.psum, b.psum) if targeted else (-a.psum, -b.psum)
    if criterion == "rate" and a.rate != b.rate:
        return a.rate > b.rate
    return bool(pa > pb)


def _check(model, x, y, *, zeta, eps, norm, targeted, target, iterations, step_size, criterion,
           target_rate, batch_size, seed, progress):
    check_images(x)
    if x.shape[0] == 0:
        raise ValueError("x is empty: a universal perturbation needs at least one image")
    norm = check_norm(norm)
    check_target(targeted, target, x)
    if targeted and (isinstance(target, str) or torch.is_tensor(target)):
        raise ValueError("a universal targeted attack takes one target class (an int); 'other' "
                         "and per-image targets are per-image attacks (use simba or square)")
    if y is not None:
        check_labels(y, x)
    iterations = check_int(iterations, "iterations")
    step = USIMBA_STEP if step_size is None else finite_positive(step_size, "step_size")
    if criterion not in CRITERIA:
        raise ValueError(f"unknown criterion {criterion!r}; valid: {', '.join(CRITERIA)}")
    target_rate = float(target_rate)
    if not 0 < target_rate <= 1:
        raise ValueError(f"target_rate must be in (0, 1], got {target_rate}")
    check_int(batch_size, "batch_size")
    check_seed(seed)
    if not isinstance(progress, bool):
        raise TypeError(f"progress must be True or False, got {progress!r}")
    check_model_device(model, x)
    if eps is None:
        eps_abs, zeta = eps_from_zeta(x, zeta, norm), float(zeta)
    else:
        eps_abs, zeta = check_eps(eps, norm=norm, x=x), None
        if eps_abs == 0:
            raise ValueError("eps must be > 0 in [0, 1] pixel units: a UAP of size 0 is no perturbation")
    return norm, iterations, step, target_rate, eps_abs, zeta


def _check_universal_target(targeted: bool, target, n_classes: int) -> Optional[int]:
    if not targeted:
        return None
    if not 0 <= int(target) < n_classes:
        raise ValueError(f"target class {target!r} is out of range for a model with {n_classes} logits "
                         f"(valid: 0..{n_classes - 1})")
    return int(target)


def _climb(score, orders, basis_fn, state, labels, y_ref, target, *, eps, norm, step, criterion,
           target_rate, iterations, targeted, progress):
    """The hill climb; returns the final state, rate histories, iterations run, accepted steps."""
    from tqdm.auto import tqdm

    fr_hist, sr_hist = [], []
    passes = accepted = 0
    bar = tqdm(total=iterations, desc="U-SimBA", disable=not progress)
    while passes < iterations and state.rate < target_rate:
        q = basis_fn(orders[passes:passes + 1]).mul_(step)
        cands = []
        for sign in (-1.0, 1.0):
            v = project(state.v + sign * q, eps, norm)
            pred, psum = score(v, labels)
            cands.append(_State(v, pred, psum, _rate(pred, y_ref, target)))
        # the better of the two (a tie goes to +q, as in their code), kept if it beats v
        best = cands[0] if _better(cands[0], cands[1], criterion, targeted) else cands[1]
        if _better(best, state, criterion, targeted):
            state, accepted = best, accepted + 1
        passes += 1
        fr_hist.append(_rate(state.pred, y_ref, None))
        if target is not None:
            sr_hist.append(state.rate)
        bar.update(1)
        bar.set_postfix(rate=f"{state.rate:.3f}")
    bar.close()
    return state, fr_hist, sr_hist, passes, accepted


def usimba(model: nn.Module, x: torch.Tensor, y: Optional[torch.Tensor] = None, *,
           zeta: float = 0.04, eps: Optional[float] = None, norm: str = "l2", targeted: bool = False,
           target: Optional[int] = None, iterations: int = 5000, step_size: Optional[float] = None,
           basis: str = "dct", freq_dims: Optional[int] = None, stride: Optional[int] = 1,
           order: Optional[str] = None, criterion: str = "prob", target_rate: float = 0.99,
           batch_size: int = 256, seed: int = 0, progress: bool = True) -> USimBAResult:
    """Build a universal perturbation from the images ``x`` with output scores only (U-SimBA).

    Args:
        model: returns logits; queried only through :class:`~.oracle.ScoreOracle`.
        x: float images ``(N, C, H, W)`` in [0, 1] the perturbation is built from (evaluate
            it on other images).
        y: reference labels of the non-targeted attack; None (default, as Koga & Takemoto)
            uses the model's clean predictions, so "fooled" means "prediction changed".
        zeta: bound as a fraction of the mean image norm (0.02 or 0.04 in the study).
        eps: absolute bound in [0, 1] pixel units; overrides ``zeta``.
        norm: ``"l2"`` (default, their logged case) or ``"linf"``.
        targeted, target: ``targeted=True`` with one target class ``target`` (an int).
        iterations: most candidate directions tried (theirs: 5,000).
        step_size: step per direction in [0, 1] pixel units; default :data:`USIMBA_STEP`.
        basis, freq_dims, stride, order: the search directions, as in
            :func:`~advmed.attacks.blackbox.simba` (their defaults: DCT, strided, stride 1).
        criterion: ``"prob"`` (theirs) or ``"rate"`` (see the module docstring).
        target_rate: stop once this share of the images is fooled / at the target (0.99).
        batch_size: images per forward pass (a candidate is one pass over all of them).
        seed: seeds the order of the directions (a generator on ``x``'s device).
        progress: a tqdm bar over iterations.

    Returns:
        :class:`USimBAResult` with ``delta`` (1, C, H, W) on ``x``'s device.

    Example:
        >>> import torch
        >>> from advmed.attacks.blackbox import usimba
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 2))
        >>> r = usimba(model, torch.rand(16, 3, 8, 8), zeta=0.04, iterations=20, progress=False)
        >>> r.queries, bool(r.norms["l2"] <= r.eps * (1 + 1e-5))
        (41, True)
    """
    norm, iterations, step, target_rate, eps_abs, zeta = _check(
        model, x, y, zeta=zeta, eps=eps, norm=norm, targeted=targeted, target=target,
        iterations=iterations, step_size=step_size, criterion=criterion, target_rate=target_rate,
        batch_size=batch_size, seed=seed, progress=progress)
    shape = tuple(x.shape[1:])
    order, freq, stride = check_basis(basis, order, freq_dims, stride if basis == "dct" else None, shape)
    x = x.detach()
    n = x.shape[0]
    with ScoreOracle(model, n, device=x.device) as oracle, Timer(x.device) as timer:
        score = _Scores(oracle, x, int(batch_size))
        v0 = torch.zeros((1,) + shape, device=x.device, dtype=x.dtype)
        logp0 = score.logp(v0)
        tgt = _check_universal_target(targeted, target, logp0.shape[1])
        if y is not None and not targeted and y.numel() and not 0 <= int(y.min()) <= int(y.max()) < logp0.shape[1]:
            raise ValueError(f"y has labels outside 0..{logp0.shape[1] - 1} (the model's classes)")
        y_ref = logp0.argmax(1) if y is None or targeted else y.to(device=x.device, dtype=torch.int64)
        labels = torch.full_like(y_ref, tgt) if targeted else y_ref
        pred0, psum0 = _summarise(logp0, labels)
        state = _State(v0, pred0, psum0, _rate(pred0, y_ref, tgt))
        gen = torch.Generator(device=x.device).manual_seed(int(seed))
        orders = coordinate_orders(1, shape, basis=basis, order=order, freq_dims=freq, stride=stride,
                                   length=iterations, generator=gen, device=x.device)[0]
        state, fr_hist, sr_hist, passes, accepted = _climb(
            score, orders, Basis(shape, basis, device=x.device, dtype=x.dtype), state, labels, y_ref, tgt,
            eps=eps_abs, norm=norm, step=step, criterion=criterion, target_rate=target_rate,
            iterations=iterations, targeted=targeted, progress=progress)
    v = state.v.detach()
    counts = oracle.counts
    return USimBAResult(delta=v, eps=eps_abs, zeta=zeta, norm=norm, target=tgt, method="usimba",
                        step_size=step, fooling_rate_history=fr_hist, success_rate_history=sr_hist,
                        passes=passes, seconds=timer.seconds, norms=perturbation_norms(v),
                        converged=state.rate >= target_rate, n_images=n, seed=int(seed),
                        queries=int(counts.max()), total_queries=int(counts.sum()), accepted=accepted,
                        basis=basis, criterion=criterion)
