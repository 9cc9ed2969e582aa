"""Randomized smoothing: a classifier with a certified L2 radius (Cohen, Rosenfeld & Kolter,
ICML 2019, "Certified adversarial robustness via randomized smoothing").

From a base classifier ``f`` and a noise level ``sigma`` the *smoothed* classifier is

    g(x) = argmax_c  P( f(x + sigma * e) = c ),   e ~ N(0, I),

and if the top class has probability ``p_A >= 1/2`` then ``g`` is constant on the L2 ball of
radius ``sigma * Phi^-1(p_A)`` around ``x`` (their Theorem 1, with ``p_B = 1 - p_A``). Both
are estimated by Monte Carlo, as in their Algorithm (Sec. 3.2):

- :meth:`SmoothedClassifier.predict` (PREDICT): ``n`` noisy votes; return the top class
  if a two-sided binomial test of the top two counts rejects a tie at level ``alpha``,
  else abstain (:data:`ABSTAIN` = -1). Wrong with probability at most ``alpha``.
- :meth:`SmoothedClassifier.certify` (CERTIFY): ``n0`` votes choose the class, ``n`` fresh
  votes give a one-sided Clopper-Pearson ``(1 - alpha)`` lower bound ``p_lower`` on its
  probability; abstain if ``p_lower < 1/2``, else radius ``sigma * Phi^-1(p_lower)``.
- :func:`certified_accuracy`: the share of images certified correct at radius >= r.

Units: pixels in [0, 1]; ``sigma`` and every radius are L2 norms in [0, 1] pixel units
over all pixels and channels. The noisy images are *not* clipped to [0, 1] (the theorem is
about the Gaussian on R^d; advmed models normalise any real input). The base model should
be trained with the same noise (``TrainConfig(adversarial=AdversarialConfig("gaussian",
sigma=...))``, :mod:`advmed.train.adversarial`), or the smoothed classifier abstains a lot.

The module's forward is the *soft* smoothed classifier ``log E[softmax(f(x + sigma e))]``
with ``samples`` draws (Salman et al., NeurIPS 2019, "Provably robust deep learning via
adversarially trained smoothed classifiers"): what an adaptive attacker attacks (EOT), and
what every attack of :mod:`advmed.attacks` runs on unchanged.

Votes are drawn in batches of ``batch_size`` noisy images from a ``torch.Generator`` on
the images' device seeded with ``seed``: the same seed, device and batch size give the
same counts.

Example:
    >>> import torch
    >>> from advmed.defenses.smoothing import SmoothedClassifier
    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 2))
    >>> smoothed = SmoothedClassifier(net, sigma=0.25)
    >>> cert = smoothed.certify(torch.rand(4, 3, 8, 8), n0=32, n=256, seed=0)
    >>> cert.label.shape, cert.radius.shape
    (torch.Size([4]), torch.Size([4]))
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from scipy import stats
from torch import nn
from tqdm.auto import tqdm

from ..attacks.checks import check_images, frozen_eval

__all__ = [
    "ABSTAIN",
    "Certification",
    "CertifiedAccuracy",
    "SmoothedClassifier",
    "SmoothedPrediction",
    "certified_accuracy",
    "clopper_pearson_lower",
]

#: The label of an abstention.
ABSTAIN = -1


def _check_sigma(sigma) -> float:
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float)):
        raise TypeError(f"sigma must be a number (noise std in [0, 1] pixel units, e.g. 0.25), got {sigma!r}")
    s = float(sigma)
    if not math.isfinite(s) or s <= 0:
        raise ValueError(f"sigma must be a finite number > 0 in [0, 1] pixel units (Cohen et al.: 0.12, 0.25, "
                         f"0.5, 1.0), got {sigma}")
    if s > 4:
        raise ValueError(f"sigma={s:g} is in [0, 1] pixel units, so it is far above the pixel range; did you "
                         f"mean {s:g}/255 = {s / 255:.4f}?")
    return s


def _check_count(v, name: str) -> int:
    if isinstance(v, bool) or int(v) != v or v < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
    return int(v)


def _check_alpha(alpha) -> float:
    a = float(alpha)
    if not 0 < a < 1:
        raise ValueError(f"alpha must be in (0, 1) (failure probability; Cohen et al.: 0.001), got {alpha}")
    return a


def clopper_pearson_lower(k, n: int, alpha: float) -> np.ndarray:
    """One-sided ``(1 - alpha)`` Clopper-Pearson lower bound on a binomial proportion.

    ``Beta(alpha; k, n - k + 1)`` quantile, 0 where ``k = 0`` (Clopper & Pearson 1934): the
    lower end of the two-sided ``1 - 2 alpha`` "exact" interval, what Cohen et al. use
    (statsmodels ``proportion_confint(k, n, alpha=2 * alpha, method="beta")[0]``).
    """
    k = np.asarray(k, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        lo = stats.beta.ppf(alpha, k, n - k + 1)
    return np.where(k > 0, lo, 0.0)


@dataclass
class SmoothedPrediction:
    """Result of :meth:`SmoothedClassifier.predict`.

    ``label``: (N,) int64 on the images' device, :data:`ABSTAIN` where the test did not
    reject a tie; ``counts``: (N, K) votes per class; ``p_value``: the two-sided binomial
    test of the top two counts; ``n``, ``alpha``, ``sigma``: the settings.
    """

    label: torch.Tensor
    counts: torch.Tensor
    p_value: np.ndarray
    n: int
    alpha: float
    sigma: float

    @property
    def abstained(self) -> torch.Tensor:
        return self.label == ABSTAIN


@dataclass
class CertifiedAccuracy:
    """Certified accuracy at each radius: the share of images whose certified label is the
    true one with a radius at least ``radius`` (abstentions count as wrong)."""

    radius: np.ndarray
    accuracy: np.ndarray
    n_images: int

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame({"radius": self.radius, "certified_accuracy": self.accuracy})


@dataclass
class Certification:
    """Result of :meth:`SmoothedClassifier.certify`.

    ``label``: (N,) int64, :data:`ABSTAIN` where ``p_lower < 1/2``; ``radius``: (N,) float64
    certified L2 radius in [0, 1] pixel units (0 where abstained); ``p_lower``: the
    Clopper-Pearson lower bound on the chosen class's probability; ``counts``: (N, K) votes of
    the ``n`` estimation draws; ``selection_counts``: of the ``n0`` selection draws.
    """

    label: torch.Tensor
    radius: torch.Tensor
    p_lower: np.ndarray
    counts: torch.Tensor
    selection_counts: torch.Tensor
    n0: int
    n: int
    alpha: float
    sigma: float

    def certified_accuracy(self, y: torch.Tensor, radii: Sequence[float]) -> CertifiedAccuracy:
        """See :func:`certified_accuracy`."""
        return certified_accuracy(self, y, radii)


def certified_accuracy(cert: Certification, y: torch.Tensor, radii: Sequence[float]) -> CertifiedAccuracy:
    """The certified accuracy curve (Cohen et al. 2019, Fig. 1 and Table 1).

    Args:
        cert: a :class:`Certification`.
        y: true labels (N,).
        radii: L2 radii in [0, 1] pixel units (e.g. ``np.linspace(0, 1, 21)``).
    """
    y = torch.as_tensor(y).long().cpu()
    if y.shape != cert.label.shape:
        raise ValueError(f"y must have shape {tuple(cert.label.shape)} to match the certification, got {tuple(y.shape)}")
    r = np.asarray(list(radii), dtype=np.float64)
    if r.ndim != 1 or not np.all(np.isfinite(r)) or np.any(r < 0):
        raise ValueError("radii must be a 1-D sequence of finite radii >= 0 (L2, [0, 1] pixel units)")
    correct = (cert.label.cpu() == y).numpy()
    rad = cert.radius.cpu().numpy()
    acc = np.array([float(np.mean(correct & (rad >= ri))) if len(y) else float("nan") for ri in r])
    return CertifiedAccuracy(radius=r, accuracy=acc, n_images=len(y))


class SmoothedClassifier(nn.Module):
    """Cohen et al.'s smoothed classifier around ``base`` with Gaussian noise ``sigma``.

    Args:
        base: the base classifier (pixels in, logits out); run in eval mode with
            parameter gradients off during ``predict`` / ``certify`` and restored after.
        sigma: noise standard deviation in [0, 1] pixel units.
        samples: noise draws per ``forward`` (the soft smoothed classifier an attacker uses).
        batch_size: noisy images per forward pass in ``predict`` / ``certify``.

    Example:
        >>> smoothed = SmoothedClassifier(net, sigma=0.25)                         # doctest: +SKIP
        >>> pred = smoothed.predict(x, n=1000, alpha=0.001, seed=0)                 # doctest: +SKIP
        >>> curve = smoothed.certify(x, n=10000).certified_accuracy(y, [0, 0.25, 0.5])  # doctest: +SKIP
    """

    def __init__(self, base: nn.Module, sigma: float, *, samples: int = 16, batch_size: int = 1000):
        super().__init__()
        self.base = base
        self.sigma = _check_sigma(sigma)
        self.samples = _check_count(samples, "samples")
        self.batch_size = _check_count(batch_size, "batch_size")
        self.meta = {**dict(getattr(base, "meta", {}) or {}), "smoothing_sigma": self.sigma}
        self.training = base.training  # a new module is in train mode; take the base model's

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``log mean_i softmax(base(x + sigma e_i))`` over ``samples`` draws (torch's global RNG)."""
        check_images(x)
        k, n = self.samples, x.shape[0]
        xk = x.unsqueeze(0).expand(k, *x.shape).reshape(k * n, *x.shape[1:])
        noisy = xk + self.sigma * torch.randn_like(xk)
        logp = torch.log_softmax(self.base(noisy).float(), dim=1).view(k, n, -1)
        return torch.logsumexp(logp, dim=0) - math.log(k)

    @torch.no_grad()
    def _counts(self, x: torch.Tensor, n: int, generator: torch.Generator, num_classes: int,
                progress: bool, desc: str) -> torch.Tensor:
        """(N, K) votes of ``n`` noisy copies of each image, in batches of ``batch_size`` copies
        that may span several images (so small images fill a batch)."""
        total = x.shape[0] * n
        counts = torch.zeros(x.shape[0] * num_classes, dtype=torch.int64, device=x.device)
        for s in tqdm(range(0, total, self.batch_size), desc=desc, leave=False, disable=not progress):
            idx = torch.arange(s, min(s + self.batch_size, total), device=x.device) // n
            noise = torch.randn((len(idx),) + tuple(x.shape[1:]), generator=generator, device=x.device,
                                dtype=x.dtype)
            pred = self.base(x[idx] + self.sigma * noise).argmax(1)
            counts.index_add_(0, idx * num_classes + pred, torch.ones_like(pred))
        return counts.view(x.shape[0], num_classes)

    def _prepare(self, x: torch.Tensor, seed: int) -> tuple[torch.Generator, int]:
        check_images(x)
        if x.shape[0] == 0:
            raise ValueError("x is empty")
        with torch.no_grad():
            out = self.base(x[:1])
        if out.dim() != 2 or out.shape[1] < 2:
            raise ValueError(f"base must return logits (N, classes >= 2), got shape {tuple(out.shape)}")
        return torch.Generator(device=x.device).manual_seed(int(seed)), int(out.shape[1])

    def predict(self, x: torch.Tensor, *, n: int = 1000, alpha: float = 0.001, seed: int = 0,
                progress: bool = False) -> SmoothedPrediction:
        """Cohen et al.'s PREDICT: the smoothed class, or :data:`ABSTAIN`.

        Args:
            x: float pixels (N, C, H, W) in [0, 1].
            n: noisy votes per image.
            alpha: the probability of returning a class other than g(x) is at most alpha.
            seed: seeds the noise.
            progress: a tqdm bar over batches of noisy images.
        """
        n, alpha = _check_count(n, "n"), _check_alpha(alpha)
        with frozen_eval(self.base):
            gen, k = self._prepare(x, seed)
            counts = self._counts(x, n, gen, k, progress, "smoothing: predict")
        top2 = counts.topk(2, dim=1)
        na, nb = top2.values[:, 0].cpu().numpy(), top2.values[:, 1].cpu().numpy()
        p = np.array([stats.binomtest(int(a), int(a + b), 0.5).pvalue for a, b in zip(na, nb)])
        label = torch.where(torch.from_numpy(p <= alpha).to(x.device), top2.indices[:, 0],
                            torch.full_like(top2.indices[:, 0], ABSTAIN))
        return SmoothedPrediction(label=label, counts=counts, p_value=p, n=n, alpha=alpha, sigma=self.sigma)

    def certify(self, x: torch.Tensor, *, n0: int = 100, n: int = 1000, alpha: float = 0.001, seed: int = 0,
                progress: bool = False) -> Certification:
        """Cohen et al.'s CERTIFY: the class and its certified L2 radius, or :data:`ABSTAIN`.

        Args:
            x: float pixels (N, C, H, W) in [0, 1].
            n0: selection votes per image (Cohen et al.: 100).
            n: estimation votes per image (Cohen et al.: 100 000; the radius grows with n).
            alpha: the certificate is wrong with probability at most alpha.
            seed: seeds the noise (selection and estimation draws are independent).
            progress: a tqdm bar over batches of noisy images.
        """
        n0, n, alpha = _check_count(n0, "n0"), _check_count(n, "n"), _check_alpha(alpha)
        with frozen_eval(self.base):
            gen, k = self._prepare(x, seed)
            sel = self._counts(x, n0, gen, k, progress, "smoothing: select")
            est = self._counts(x, n, gen, k, progress, "smoothing: estimate")
        c_a = sel.argmax(1)
        n_a = est.gather(1, c_a[:, None])[:, 0].cpu().numpy()
        p_lower = clopper_pearson_lower(n_a, n, alpha)
        ok = p_lower >= 0.5
        radius = np.where(ok, self.sigma * stats.norm.ppf(np.clip(p_lower, 0.5, 1.0)), 0.0)
        label = torch.where(torch.from_numpy(ok).to(x.device), c_a, torch.full_like(c_a, ABSTAIN))
        return Certification(label=label, radius=torch.from_numpy(radius), p_lower=p_lower, counts=est,
                             selection_counts=sel, n0=n0, n=n, alpha=alpha, sigma=self.sigma)

    def extra_repr(self) -> str:
        return f"sigma={self.sigma:g}, samples={self.samples}"
