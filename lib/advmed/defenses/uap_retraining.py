"""Adversarial retraining against universal perturbations (Hirano, Minagi & Takemoto, BMC
Medical Imaging 21:9, 2021), after Moosavi-Dezfooli, Fawzi, Fawzi & Frossard (CVPR 2017, Sec. 5).

Each round: build ``uaps_per_round`` non-targeted UAPs of the *current* model
(:func:`advmed.attacks.universal.uap`, each from its own random subset of training
images), fine-tune the model on the training images of which each, with probability
``fraction``, carries one of those UAPs chosen at random (true labels kept), and repeat with
UAPs of the fine-tuned model. Hirano et al. ran 5 rounds with 10 UAPs per round and a
fraction of one half, as Moosavi-Dezfooli et al. did, and found that it lowered the UAP
fooling rate "in only very few cases": a new UAP of the retrained model fools it again.

The history says exactly that, on held-out images (never used to build a UAP or to train):

- ``fooling_before``: mean fooling rate of the round's UAPs on the model they were built
  for (the model entering the round);
- ``fooling_same_after``: the same UAPs on the retrained model (does it resist what it saw?);
- ``fooling_after``: fresh UAPs of the retrained model (the honest measure; it is the next
  round's ``fooling_before``).

Fine-tuning is :func:`advmed.train.fit` with a :class:`~advmed.train.TrainConfig` (its
``epochs``, ``lr``, balance and augmentation; early stopping on the validation AUC), the
UAPs added on the fly by :class:`UAPAugmentObjective`, after the loop's augmentation.

Units: pixels in [0, 1]; ``zeta`` is a fraction of the mean image norm as in
:func:`~advmed.attacks.universal.uap` (the study: 2 % or 4 %).

Example:
    >>> res = uap_retraining(model, train, val, heldout_x, config=finetune_cfg, rounds=5)  # doctest: +SKIP
    >>> res.history[["round", "fooling_before", "fooling_same_after", "fooling_after"]]     # doctest: +SKIP
"""
from __future__ import annotations

import copy
import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from ..attacks.checks import check_images, check_labels
from ..attacks.universal import fooling_rate, uap
from ..device import default_device
from ..models import GrayInput, as_rgb, is_gray
from ..train.loop import clean_objective, fit

__all__ = ["RetrainingRound", "UAPAugmentObjective", "UAPRetrainingResult", "uap_retraining"]


class UAPAugmentObjective:
    """Batch objective: each image gets, with probability ``fraction``, one of ``deltas``
    (chosen uniformly) added and clipped to [0, 1]; then the clean loss.

    Args:
        deltas: (U, C, H, W) or (U, 1, C, H, W) universal perturbations, [0, 1] pixel units.
        fraction: probability that an image is perturbed (Moosavi-Dezfooli et al.: 0.5).
        seed: seeds the per-batch draws (batch ``t`` uses ``seed * 1_000_003 + t``).
    """

    def __init__(self, deltas: torch.Tensor, fraction: float = 0.5, *, seed: int = 0):
        d = deltas.detach()
        if d.dim() == 5:
            d = d[:, 0]
        if d.dim() != 4 or d.shape[0] < 1:
            raise ValueError(f"deltas must have shape (U, C, H, W) with U >= 1, got {tuple(deltas.shape)}")
        if not 0 < float(fraction) <= 1:
            raise ValueError(f"fraction must be in (0, 1], got {fraction}")
        self.deltas, self.fraction, self.seed, self._batch = d, float(fraction), int(seed), 0

    def perturb(self, xb: torch.Tensor) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self._batch)
        self._batch += 1
        n = xb.shape[0]
        which = torch.randint(0, self.deltas.shape[0], (n,), generator=g)
        on = (torch.rand(n, generator=g) < self.fraction).to(xb.dtype)
        d = self.deltas.to(xb.device, xb.dtype)[which.to(xb.device)] * on.to(xb.device)[:, None, None, None]
        return (xb + d).clamp_(0, 1)

    def __call__(self, model: nn.Module, xb: torch.Tensor, yb: torch.Tensor,
                 loss_fn: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
        return clean_objective(model, self.perturb(xb), yb, loss_fn)


@dataclass
class RetrainingRound:
    """One round: fooling rates on held-out images (see the module docstring), each the mean
    over the round's UAPs, with the per-UAP values; clean held-out accuracy before and after
    (NaN without labels); wall times."""

    round: int
    fooling_before: float
    fooling_same_after: float
    fooling_after: float
    accuracy_before: float
    accuracy_after: float
    per_uap_before: list[float]
    per_uap_same_after: list[float]
    per_uap_after: list[float]
    uap_seconds: float
    finetune_seconds: float
    best_epoch: int


@dataclass
class UAPRetrainingResult:
    """The retrained model (a copy; the input model is untouched), one
    :class:`RetrainingRound` per round, the last UAPs built (of the final model), and settings."""

    model: nn.Module
    rounds: list[RetrainingRound]
    final_uaps: torch.Tensor
    seconds: float
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def history(self) -> pd.DataFrame:
        cols = ["round", "fooling_before", "fooling_same_after", "fooling_after", "accuracy_before",
                "accuracy_after", "uap_seconds", "finetune_seconds", "best_epoch"]
        return pd.DataFrame([{c: getattr(r, c) for c in cols} for r in self.rounds], columns=cols)


def _build_uaps(model, train_x, *, count, uap_images, zeta, norm, uap_kwargs, seed, progress):
    """``count`` UAPs of ``model``, each from its own seeded random subset of training images.
    On grey images (three equal channels) each UAP is built on one channel and replicated, as
    chapter 3 builds the UAPs it reports: a colour perturbation of a grey X-ray is not one the
    study's grey pipeline can carry."""
    gray = is_gray(train_x)
    net = GrayInput(model, train_x.shape[1]) if gray else model
    xs = train_x[:, :1].contiguous() if gray else train_x
    deltas = []
    for j in range(count):
        g = torch.Generator().manual_seed(seed * 7919 + j)
        idx = torch.randperm(train_x.shape[0], generator=g)[:uap_images]
        r = uap(net, xs[idx], zeta=zeta, norm=norm, seed=seed * 7919 + j, progress=False, **uap_kwargs)
        deltas.append(as_rgb(r.delta, train_x.shape[1])[0])
    return torch.stack(deltas)


def _rates(model, x, deltas) -> list[float]:
    return [fooling_rate(model, x, d[None]) for d in deltas]


@torch.no_grad()
def _accuracy(model, x, y) -> float:
    if y is None:
        return float("nan")
    from ..attacks.universal import predict

    return float((predict(model, x).cpu() == y.cpu()).float().mean())


def _check(train, heldout_x, heldout_y, rounds, uaps_per_round, uap_images, fraction):
    for name in ("images", "labels", "classes"):
        if not hasattr(train, name):
            raise TypeError(f"train must be an ImageSet (or have .images uint8, .labels, .classes); missing {name}")
    check_images(heldout_x, "heldout_x")
    if heldout_y is not None:
        check_labels(heldout_y, heldout_x, "heldout_y")
    for v, name in ((rounds, "rounds"), (uaps_per_round, "uaps_per_round"), (uap_images, "uap_images")):
        if isinstance(v, bool) or int(v) != v or v < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
    if not 0 < float(fraction) <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")


def uap_retraining(model: nn.Module, train: Any, val: Any, heldout_x: torch.Tensor, *, config: Any,
                   heldout_y: torch.Tensor | None = None, rounds: int = 5, uaps_per_round: int = 10,
                   uap_images: int = 512, zeta: float = 0.04, norm: str = "linf", fraction: float = 0.5,
                   epochs: int | None = 5, uap_kwargs: dict | None = None, seed: int = 0,
                   device: torch.device | str | None = None, progress: bool = True) -> UAPRetrainingResult:
    """Hirano et al.'s (2021) adversarial retraining against UAPs; returns a retrained copy.

    Args:
        model: a trained classifier (pixels in [0, 1], logits); copied, never changed.
        train, val: ``advmed.data.ImageSet`` (uint8 images) for fine-tuning and its early stop;
            UAPs are built from ``train``'s images.
        heldout_x: float images (N, C, H, W) in [0, 1] the fooling rates are measured on
            (test images; never used to build or train).
        config: the :class:`~advmed.train.TrainConfig` of the fine-tuning (lr, batch size,
            balance, augmentation); ``epochs`` (if not None) replaces its epochs per round.
        heldout_y: labels of ``heldout_x`` for the clean accuracy columns (optional).
        rounds: retraining rounds (the study: 5).
        uaps_per_round: UAPs built per round (Moosavi-Dezfooli et al. / the study: 10).
        uap_images: training images each UAP is built from (a random subset per UAP).
        zeta, norm: the UAPs' bound (the study: 2 % or 4 %, L2 or L-inf).
        fraction: share of fine-tuning images that carry a UAP (0.5).
        uap_kwargs: more arguments of :func:`~advmed.attacks.universal.uap` (method,
            step_size, max_passes, batch_size, ...); default: its defaults (the study's).
        seed: seeds the UAP subsets, the UAPs and the augmentation draws.
        device: where to fine-tune (default: :func:`advmed.device.default_device`).
        progress: a tqdm bar over rounds.
    """
    _check(train, heldout_x, heldout_y, rounds, uaps_per_round, uap_images, fraction)
    kw = dict(uap_kwargs or {})
    cfg = config if epochs is None else dataclasses.replace(config, epochs=int(epochs))
    dev = torch.device(device) if device is not None else default_device()
    net = copy.deepcopy(model).to(dev).eval()
    train_x = torch.as_tensor(train.images).to(dev).float().div_(255)
    hx = heldout_x.to(dev)
    t_start = time.perf_counter()
    build = dict(count=int(uaps_per_round), uap_images=int(uap_images), zeta=zeta, norm=norm, uap_kwargs=kw,
                 progress=False)
    t0 = time.perf_counter()
    deltas = _build_uaps(net, train_x, seed=seed * 1009, **build)
    uap_seconds = time.perf_counter() - t0
    before = _rates(net, hx, deltas)
    acc_before = _accuracy(net, hx, heldout_y)
    history: list[RetrainingRound] = []
    for r in tqdm(range(1, int(rounds) + 1), desc="UAP retraining", unit="round", disable=not progress):
        t0 = time.perf_counter()
        objective = UAPAugmentObjective(deltas, fraction, seed=seed * 1009 + r)
        net, _, best_epoch, _ = fit(net, train, val, cfg, device=dev, objective=objective, progress=False)
        finetune_seconds = time.perf_counter() - t0
        same_after = _rates(net, hx, deltas)
        t0 = time.perf_counter()
        deltas = _build_uaps(net, train_x, seed=seed * 1009 + r, **build)
        next_uap_seconds = time.perf_counter() - t0
        after = _rates(net, hx, deltas)
        acc_after = _accuracy(net, hx, heldout_y)
        history.append(RetrainingRound(r, float(np.mean(before)), float(np.mean(same_after)), float(np.mean(after)),
                                       acc_before, acc_after, before, same_after, after, uap_seconds,
                                       finetune_seconds, int(best_epoch)))
        before, acc_before, uap_seconds = after, acc_after, next_uap_seconds
    settings = {"rounds": int(rounds), "uaps_per_round": int(uaps_per_round), "uap_images": int(uap_images),
                "zeta": float(zeta), "norm": norm, "fraction": float(fraction), "epochs": cfg.epochs,
                "uap_kwargs": kw, "seed": int(seed)}
    return UAPRetrainingResult(net.eval(), history, deltas.detach(), time.perf_counter() - t_start, settings)
