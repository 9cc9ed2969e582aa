"""Randomized smoothing (Cohen, Rosenfeld & Kolter 2019), chapter 7's certified baseline: the
zoo model's recipe trained with Gaussian noise, certified against the L2 radius on one task
(:func:`smoothing_results`, memoised).

Units. The base classifier takes three channels and its noise is drawn in all three, so the
certificate is an L2 radius over three channels. A grey image's perturbation (what every attack of
the book crafts on grey tasks: one channel, replicated) has a three-channel norm sqrt(3) times its
one-channel norm, so a three-channel radius R certifies every one-channel perturbation of norm
below R / sqrt(3): radii are reported in one-channel units on grey tasks, like the rest of the
book. The largest radius ``n`` votes can certify is ``sigma * Phi^-1(alpha^(1/n))`` (every vote
for the class; the Clopper-Pearson bound can go no higher): the curve's radii are the profile's
up to that radius, and that radius itself (:func:`certifiable_radii`).
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from ...cache import memo
from ...defenses.smoothing import SmoothedClassifier
from ...device import module_device
from ...models import is_gray, predict_proba
from ...train import AdversarialConfig, TrainConfig, get_trained_model
from ..kernel import images_key
from ..kernel.surrogates import primary_key
from ..profiles import Profile
from .common import DEFENSE_VERSION, defense_images, pixels


@dataclass
class CertifiedRun:
    """Randomized smoothing on one task: certified accuracy against the L2 radius.

    ``curve``: ``radius`` ([0, 1] pixel units, L2), ``certified_accuracy`` (correct and certified
    at that radius; abstentions count as wrong); ``abstain``: the share of abstentions;
    ``sigma``, ``n``, ``n0``, ``alpha``: the certification's settings; ``base_clean_accuracy``: the
    noise-trained base classifier without noise; ``units``: the radii's norm (one channel on grey
    tasks); ``max_radius``: the largest radius ``n`` votes can certify, in those units."""

    task: str
    model: str
    sigma: float
    n: int
    n0: int
    alpha: float
    n_images: int
    curve: pd.DataFrame
    abstain: float
    base_clean_accuracy: float
    train_seconds: float
    certify_seconds: float
    units: str = "L2 over the image's channels"
    max_radius: float = float("nan")


def max_certifiable_radius(sigma: float, n: int, alpha: float) -> float:
    """``sigma * Phi^-1(alpha^(1/n))``: the radius of an image whose ``n`` votes all go to one class
    (Cohen et al.'s Clopper-Pearson lower bound is then ``alpha^(1/n)``); no image certifies more.
    0 when that bound is below 1/2: so few votes certify nothing at all."""
    return max(0.0, float(sigma) * float(stats.norm.ppf(float(alpha) ** (1.0 / int(n)))))


def certifiable_radii(radii: Sequence[float], max_radius: float) -> list[float]:
    """The radii of ``radii`` that ``max_radius`` allows, and ``max_radius`` itself, ascending: a
    radius beyond it is uncertifiable by construction, whatever the classifier."""
    kept = sorted({float(r) for r in radii if float(r) < max_radius - 1e-9})
    return kept + [float(max_radius)] if max_radius > 0 else [0.0]


def smoothing_config(base: TrainConfig, profile: Profile) -> TrainConfig:
    """The noise-trained base classifier's recipe: the zoo model's with Gaussian noise of ``smoothing_sigma``."""
    return dataclasses.replace(base, adversarial=AdversarialConfig("gaussian",
                                                                   sigma=float(profile.defense.smoothing_sigma)))


def smoothing_results(profile: Profile, zoo: Mapping[tuple, Any], *, refresh: bool = False,
                      device: Any = None) -> CertifiedRun | None:
    """Randomized smoothing (Cohen, Rosenfeld & Kolter 2019) on ``defense.smoothing_task``: the
    zoo model's recipe trained with Gaussian noise of ``smoothing_sigma``, certified on
    ``smoothing_images`` test images (None where the profile has no such task)."""
    s = profile.defense
    task = s.smoothing_task
    if task is None or task not in profile.tasks:
        return None
    key = primary_key(profile, zoo, task, s.model)
    cfg = smoothing_config(zoo[key].config, profile)
    base = get_trained_model(cfg, device=device, progress=False)
    images = defense_images(task, profile, int(s.smoothing_images))
    mkey = {"version": DEFENSE_VERSION, "model": cfg.key(), "images": images_key(images.images, images.labels),
            "n": int(s.smoothing_n), "n0": int(s.smoothing_n0), "alpha": float(s.smoothing_alpha),
            "radii": [float(r) for r in s.smoothing_radii], "seed": profile.seed}

    def compute():
        dev = module_device(base.model)
        x, y = pixels(images, dev)
        t0 = time.perf_counter()
        cert = SmoothedClassifier(base.model.eval(), float(s.smoothing_sigma)).certify(
            x, n0=int(s.smoothing_n0), n=int(s.smoothing_n), alpha=float(s.smoothing_alpha), seed=profile.seed)
        seconds = time.perf_counter() - t0
        gray = is_gray(x)
        scale = 1.0 / np.sqrt(x.shape[1]) if gray else 1.0  # three-channel radii -> one-channel units
        cert = dataclasses.replace(cert, radius=cert.radius * scale)
        top = max_certifiable_radius(s.smoothing_sigma, s.smoothing_n, s.smoothing_alpha) * scale
        curve = cert.certified_accuracy(y, certifiable_radii(s.smoothing_radii, top)).to_frame()
        clean = float((predict_proba(base.model, x).argmax(1) == y.cpu().numpy()).mean())
        abstain = float((cert.label.cpu() < 0).float().mean())
        return {"curve": curve, "abstain": abstain, "clean": clean, "seconds": seconds, "max_radius": top,
                "units": "L2 of the one-channel image" if gray else f"L2 over {x.shape[1]} channels"}

    out = memo("defenses_smoothing", mkey, compute, refresh=refresh)
    return CertifiedRun(task=task, model=f"{key.arch}:{key.init}", sigma=float(s.smoothing_sigma), n=int(s.smoothing_n),
                        n0=int(s.smoothing_n0), alpha=float(s.smoothing_alpha), n_images=len(images.labels),
                        curve=out["curve"], abstain=float(out["abstain"]), base_clean_accuracy=float(out["clean"]),
                        train_seconds=float(base.train_seconds), certify_seconds=float(out["seconds"]),
                        units=str(out["units"]), max_radius=float(out["max_radius"]))


__all__ = ["CertifiedRun", "certifiable_radii", "max_certifiable_radius", "smoothing_config", "smoothing_results"]
