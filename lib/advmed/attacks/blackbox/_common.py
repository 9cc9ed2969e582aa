"""What the per-image query attacks share: argument checks, objectives, chunks, results."""
from __future__ import annotations

import math
import time
from typing import Callable, Optional

import torch
from torch import nn

from ..checks import check_eps, check_images, check_labels, check_norm
from ..losses import LossFn, Target, check_target, get_loss, resolve_labels
from .oracle import QueryResult, ScoreOracle


def check_int(value, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_optional_int(value, name: str, minimum: int = 1) -> Optional[int]:
    return None if value is None else check_int(value, name, minimum)


def check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int (query attacks are random: a seed makes them "
                        f"reproducible), got {seed!r}")
    return int(seed)


def check_model_device(model: nn.Module, x: torch.Tensor) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module returning logits, got {type(model).__name__}")
    p = next(iter(model.parameters()), None)
    if p is not None and p.device != x.device:
        raise ValueError(f"model is on {p.device} but x is on {x.device}; move one of them "
                         "(query attacks run on the device of x)")


def check_inputs(model, x, y, targeted: bool, target: Target, batch_size, progress) -> None:
    """The checks every per-image query attack runs before its first query."""
    check_images(x)
    check_labels(y, x)
    check_target(targeted, target, x)
    check_optional_int(batch_size, "batch_size")
    if not isinstance(progress, bool):
        raise TypeError(f"progress must be True or False, got {progress!r}")
    check_model_device(model, x)


def check_bound(norm, eps, x: torch.Tensor, why: str) -> tuple[str, float]:
    """``(norm, eps)`` of a bounded query attack, checked; ``eps`` must be > 0 (``why`` says
    what the bound is for)."""
    norm = check_norm(norm)
    eps = check_eps(eps, norm=norm, x=x)
    if eps == 0:
        raise ValueError(f"eps must be > 0 in [0, 1] pixel units (e.g. 8/255): {why}")
    return norm, eps


def check_query_loss(loss) -> LossFn:
    """``"margin"`` / ``"ce"`` (or a callable), applied to the oracle's log-probabilities."""
    return get_loss(loss)


class Objective:
    """The per-image quantity a query attack ascends, from log-probabilities only.

    ``loss_fn(log_probs, labels)`` with the losses of :mod:`advmed.attacks.losses`:
    the CW margin of log-probabilities equals the logit margin, and the cross-entropy
    of log-probabilities is ``-log p_y``. Targeted attacks descend it towards the target.
    """

    def __init__(self, loss_fn: LossFn, targeted: bool):
        self.loss_fn, self.targeted = loss_fn, targeted

    def __call__(self, logp: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        value = self.loss_fn(logp, labels)
        return -value if self.targeted else value


def success_of(logp: torch.Tensor, labels: torch.Tensor, targeted: bool) -> torch.Tensor:
    """Untargeted: the prediction is not ``labels``; targeted: it is."""
    pred = logp.argmax(dim=1)
    return pred == labels if targeted else pred != labels


def chunks(n: int, batch_size: Optional[int]) -> list[slice]:
    bs = n if batch_size is None else int(batch_size)
    return [slice(s, min(s + bs, n)) for s in range(0, n, max(bs, 1))]


def labels_for(logp: torch.Tensor, y: torch.Tensor, targeted: bool, target: Target,
               sl: slice) -> torch.Tensor:
    """The labels of one chunk (true or target classes), checked against the model's classes."""
    t = target[sl] if torch.is_tensor(target) else target
    return resolve_labels(logp, y[sl], targeted, t)


def prepare(x: torch.Tensor, y: torch.Tensor, target: Target):
    x = x.detach()
    y = y.detach().to(device=x.device, dtype=torch.int64)
    if torch.is_tensor(target):
        target = target.detach().to(device=x.device, dtype=torch.int64)
    return x, y, target


def generator_for(x: torch.Tensor, seed: int) -> torch.Generator:
    return torch.Generator(device=x.device).manual_seed(int(seed))


class Timer:
    """Wall time of an attack (synchronising CUDA so the figure is the attack's)."""

    def __init__(self, device: torch.device):
        self.device = device

    def __enter__(self) -> "Timer":
        self._sync()
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self._sync()
        self.seconds = time.perf_counter() - self.t0

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


def run_chunks(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, name: str, max_queries: int,
               batch_size: Optional[int], progress: bool,
               attack_chunk: Callable[..., tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
               norm: str, eps: float, targeted: bool) -> QueryResult:
    """Run ``attack_chunk(oracle, x_chunk, y_chunk, idx, sl, bar)`` on each chunk of images,
    with one oracle (counting over all images), and assemble the :class:`QueryResult`."""
    from tqdm.auto import tqdm

    n = x.shape[0]
    x_adv = x.clone()
    success = torch.zeros(n, dtype=torch.bool, device=x.device)
    clean = torch.zeros(n, dtype=torch.bool, device=x.device)
    with ScoreOracle(model, n, max_queries=max_queries, device=x.device) as oracle, Timer(x.device) as timer:
        for sl in chunks(n, batch_size):
            idx = torch.arange(sl.start, sl.stop, device=x.device)
            with tqdm(desc=name, unit="it", disable=not progress, leave=False) as bar:
                x_adv[sl], success[sl], clean[sl] = attack_chunk(oracle, x[sl], idx, sl, bar)
    delta = (x_adv - x).flatten(1)
    return QueryResult(x_adv=x_adv, queries=oracle.counts.clone(), success=success, clean_success=clean,
                       max_queries=int(max_queries), l2=delta.norm(dim=1),
                       linf=delta.abs().amax(dim=1) if delta.shape[1] else delta.new_zeros(n),
                       attack=name, norm=norm, eps=float(eps), targeted=bool(targeted),
                       seconds=timer.seconds)


def finite_positive(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value}")
    return value
