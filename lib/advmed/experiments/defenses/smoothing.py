"""Randomized smoothing (Cohen, Rosenfeld & Kolter 2019), chapter 7's certified baseline: the
zoo model's recipe trained with Gaussian noise, certified against the L2 radius on one task
(:func:`smoothing_results`, memoised)."""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any, Mapping

import pandas as pd

from ...cache import memo
from ...defenses.smoothing import SmoothedClassifier
from ...device import module_device
from ...models import predict_proba
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
    noise-trained base classifier without noise."""

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
        curve = cert.certified_accuracy(y, list(s.smoothing_radii)).to_frame()
        clean = float((predict_proba(base.model, x).argmax(1) == y.cpu().numpy()).mean())
        abstain = float((cert.label.cpu() < 0).float().mean())
        return {"curve": curve, "abstain": abstain, "clean": clean, "seconds": seconds}

    out = memo("defenses_smoothing", mkey, compute, refresh=refresh)
    return CertifiedRun(task=task, model=f"{key.arch}:{key.init}", sigma=float(s.smoothing_sigma), n=int(s.smoothing_n),
                        n0=int(s.smoothing_n0), alpha=float(s.smoothing_alpha), n_images=len(images.labels),
                        curve=out["curve"], abstain=float(out["abstain"]), base_clean_accuracy=float(out["clean"]),
                        train_seconds=float(base.train_seconds), certify_seconds=float(out["seconds"]))


__all__ = ["CertifiedRun", "smoothing_config", "smoothing_results"]
