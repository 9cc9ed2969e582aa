"""The score-based black-box threat model: the attacker sees output probabilities only.

:class:`ScoreOracle` is the only way the attacks of :mod:`advmed.attacks.blackbox` reach
the model. It runs the model in eval mode with parameter gradients off
(:func:`~advmed.attacks.checks.frozen_eval`) and under ``torch.no_grad``, refuses images
outside [0, 1], returns the class (log-)probabilities, and counts every query per image:
**one query is one image's forward pass**, whatever the batch it was sent in.

The probabilities are returned as ``log_softmax(logits)`` in float64. That is the same
information as the softmax probabilities a deployed model would return (the log is
invertible), but it keeps the attacks' comparisons exact where a confident model gives
``p_y = 1 - 1e-9``, which float32 softmax rounds to 1 (SimBA's acceptance test would then
never see an improvement). The logit margin ``z_y - max_{k != y} z_k`` of the Square
Attack equals ``log p_y - max_{k != y} log p_k`` exactly, so it, too, needs no logits.

:class:`QueryResult` is what every per-image query attack returns.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from ..checks import frozen_eval

__all__ = ["QueryResult", "ScoreOracle", "QueryBudgetExceeded"]


class QueryBudgetExceeded(RuntimeError):
    """An image was queried more often than the oracle's ``max_queries`` allows."""


class ScoreOracle:
    """Query access to a classifier: probabilities out, nothing else, every query counted.

    Use it as a context manager; inside, ``oracle(x_batch, idx)`` returns the float64
    log-probabilities ``(B, K)`` of ``x_batch`` and adds one query to each image index in
    ``idx`` (``B`` indices into the attacked image set, on any device).

    Args:
        model: returns logits ``(B, K)``; its mode and ``requires_grad`` flags are
            restored on exit (batch-norm statistics are never updated: eval mode).
        n_images: size of the attacked image set (length of :attr:`counts`).
        max_queries: if given, a query that would take an image past it raises
            :class:`QueryBudgetExceeded` (a guard against a budget bug in an attack).
        device: where :attr:`counts` lives (default: the model's parameters' device).

    Example:
        >>> import torch
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 2))
        >>> x = torch.rand(3, 3, 2, 2)
        >>> with ScoreOracle(model, n_images=3) as oracle:
        ...     logp = oracle(x, torch.arange(3))
        ...     _ = oracle(x[:1], torch.tensor([0]))
        >>> logp.exp().sum(1).allclose(torch.ones(3, dtype=torch.float64)), oracle.counts.tolist()
        (True, [2, 1, 1])
    """

    def __init__(self, model: nn.Module, n_images: int, *, max_queries: Optional[int] = None,
                 device=None):
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module returning logits, got {type(model).__name__}")
        if isinstance(n_images, bool) or int(n_images) != n_images or n_images < 0:
            raise ValueError(f"n_images must be an integer >= 0, got {n_images!r}")
        if max_queries is not None and (isinstance(max_queries, bool) or int(max_queries) != max_queries
                                        or max_queries < 1):
            raise ValueError(f"max_queries must be an integer >= 1 or None, got {max_queries!r}")
        if device is None:
            p = next(iter(model.parameters()), None)
            device = p.device if p is not None else torch.device("cpu")
        self.model = model
        self.max_queries = None if max_queries is None else int(max_queries)
        self.counts = torch.zeros(int(n_images), dtype=torch.int64, device=device)
        self._guard = None

    def __enter__(self) -> "ScoreOracle":
        self._guard = frozen_eval(self.model)
        self._guard.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        guard, self._guard = self._guard, None
        guard.__exit__(*exc)

    @property
    def total(self) -> int:
        """All queries so far (sum over images)."""
        return int(self.counts.sum())

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        if self._guard is None:
            raise RuntimeError("query the oracle inside `with ScoreOracle(model, n) as oracle:` "
                               "(it puts the model in eval mode and restores it afterwards)")
        idx = torch.as_tensor(idx, device=self.counts.device).reshape(-1).long()
        if x.dim() != 4 or x.shape[0] != idx.numel():
            raise ValueError(f"a query needs images (B, C, H, W) and B indices, got {tuple(x.shape)} "
                             f"and {idx.numel()} indices")
        if idx.numel() == 0:
            raise ValueError("an empty query: no image to send")
        lo, hi = torch.aminmax(x.detach())
        if not (float(lo) >= 0.0 and float(hi) <= 1.0):  # also catches NaN
            raise ValueError(f"queried images must be pixels in [0, 1], got values in [{float(lo):.4g}, "
                             f"{float(hi):.4g}]: an attack sent an image outside the box")
        self.counts.index_add_(0, idx, torch.ones_like(idx))
        if self.max_queries is not None and bool((self.counts[idx] > self.max_queries).any()):
            raise QueryBudgetExceeded(f"an image was queried more than max_queries={self.max_queries} times")
        logits = self.model(x.detach())
        if logits.dim() != 2 or logits.shape[0] != x.shape[0]:
            raise ValueError(f"the model must return logits of shape (B, K) = ({x.shape[0]}, K), "
                             f"got {tuple(logits.shape)}")
        if logits.shape[1] < 2:
            raise ValueError("the model returns a single logit; advmed models return one logit per "
                             "class (two for a binary task)")
        return torch.log_softmax(logits.detach().double(), dim=1)


@dataclass
class QueryResult:
    """What a per-image query attack returns.

    Attributes:
        x_adv: ``(N, C, H, W)`` adversarial images in [0, 1] (``x`` where not attacked).
        queries: ``(N,)`` int64, the forward passes spent on each image, the clean query
            included (so an image misclassified from the start costs 1).
        success: ``(N,)`` bool: ``x_adv`` is misclassified (untargeted: prediction != ``y``)
            or classified as the target (targeted), by the oracle's last answer for it.
        clean_success: ``(N,)`` bool: already so at the clean query (never perturbed).
        max_queries: the per-image query budget the attack ran with.
        l2, linf: ``(N,)`` float, ``||x_adv - x||`` per image in [0, 1] pixel units.
        attack, norm, eps: the attack's name; ``norm`` / ``eps`` its bound (Square) or, for
            SimBA, ``"l2"`` and the step size per coordinate (SimBA has no bound: see ``l2``).
        targeted: a targeted run; ``seconds``: wall time.
    """

    x_adv: torch.Tensor
    queries: torch.Tensor
    success: torch.Tensor
    clean_success: torch.Tensor
    max_queries: int
    l2: torch.Tensor
    linf: torch.Tensor
    attack: str
    norm: str
    eps: float
    targeted: bool
    seconds: float

    @property
    def attacked(self) -> torch.Tensor:
        """Images the attack had to work on (not already successful at the clean query)."""
        return ~self.clean_success

    def success_rate(self, among: str = "attacked") -> float:
        """Share of successes among the ``"attacked"`` images (the Square / SimBA papers'
        convention: images classified correctly, or not yet as the target) or ``"all"``."""
        mask = self._mask(among)
        return float(self.success[mask].float().mean()) if bool(mask.any()) else float("nan")

    def mean_queries(self, among: str = "succeeded") -> float:
        """Mean queries per image over the attacked images that ``"succeeded"`` (the papers'
        "average queries") or over all ``"attacked"`` images (failures at the budget)."""
        mask = self._mask(among)
        return float(self.queries[mask].double().mean()) if bool(mask.any()) else float("nan")

    def median_queries(self, among: str = "succeeded") -> float:
        mask = self._mask(among)
        return float(self.queries[mask].double().median()) if bool(mask.any()) else float("nan")

    def _mask(self, among: str) -> torch.Tensor:
        if among == "all":
            return torch.ones_like(self.success)
        if among == "attacked":
            return self.attacked
        if among == "succeeded":
            return self.attacked & self.success
        raise ValueError(f"unknown among={among!r}; valid: 'attacked', 'all', 'succeeded'")

    def summary(self) -> dict:
        """Everything but the tensors, for tables."""
        return {"attack": self.attack, "norm": self.norm, "eps": self.eps, "targeted": self.targeted,
                "n": int(self.success.numel()), "attacked": int(self.attacked.sum()),
                "success_rate": self.success_rate(), "mean_queries": self.mean_queries(),
                "median_queries": self.median_queries(), "max_queries": self.max_queries,
                "total_queries": int(self.queries.sum()),
                "max_l2": float(self.l2.max()) if self.l2.numel() else 0.0,
                "max_linf": float(self.linf.max()) if self.linf.numel() else 0.0,
                "seconds": self.seconds}
