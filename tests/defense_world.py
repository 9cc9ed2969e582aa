"""The synthetic world of chapter 7's tests (tests/test_defenses_experiment.py and
tests/test_widgets_defense.py): no real data and no checkpoints.

Tiny CNNs fitted in a second on synthetic two-class gray images stand in for the zoo and the
adversarially / noise-trained models; :func:`world` monkeypatches the data layer and the
checkpoint cache of the modules of :mod:`advmed.experiments.defenses` and sends every result to
a private cache, for as long as its context lasts.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import pytest
import pandas as pd
import torch
from torch import nn

from advmed.data import ImageSet
from advmed.experiments.defenses import run as D
from advmed.experiments.profiles import PROFILES, DefenseSettings, ModelSpec, Profile
from advmed.train import TrainConfig

from fake_zoo import FakeTrained, fit_tiny

SIZE = 12
TASK = "pneumoniamnist"
EPS_255 = (4.0, 16.0)


def images(n: int, seed: int, split: str = "test") -> ImageSet:
    """Class 1: left half brighter; class 0: right half brighter (by 0.12: JPEG and a small VAE
    keep it, 16/255 flips many images). uint8 gray images as three equal channels."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = torch.rand(n, 1, SIZE, SIZE, generator=g) * 0.4 + 0.25
    x[y == 1, :, :, : SIZE // 2] += 0.12
    x[y == 0, :, :, SIZE // 2:] += 0.12
    return ImageSet(images=(x.expand(-1, 3, -1, -1).clamp(0, 1) * 255).round().to(torch.uint8).contiguous(),
                    labels=y, classes=["normal", "pneumonia"], name=TASK, split=split)


def net(width: int = 8) -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                         nn.Linear(4 * width, 2))


@functools.lru_cache(maxsize=None)
def fit(seed: int, noise: float = 0.0) -> nn.Module:
    torch.manual_seed(seed)
    return fit_tiny(net(), images(256, 100 + seed, "train"), steps=120, noise=noise)


@dataclass
class Trained(FakeTrained):
    meta: dict = field(default_factory=dict)


def config(**kw: Any) -> TrainConfig:
    return TrainConfig(task=TASK, arch="tiny", size=SIZE, max_train=64, max_val=32, epochs=1, batch_size=32, **kw)


def profile(**sections: Any) -> Profile:
    """Smoke's profile on the synthetic task, chapter 2's ensemble and diagnostics shortened;
    ``sections``: more sections to replace (``defense_explorer=...``)."""
    base = PROFILES["smoke"]
    return dataclasses.replace(
        base, name="test", tasks={TASK: SIZE}, models=(ModelSpec("tiny"),), seeds=(0,),
        eval=dataclasses.replace(base.eval, n_boot=20),
        whitebox=dataclasses.replace(base.whitebox, robust_steps=5, pgd_restarts=1, diag_steps=(2, 5),
                                     diag_restarts=(1, 2), diag_eps_255=4, diag_eps_grid_255=(4, 16, 64)),
        defense=DefenseSettings(model="tiny:scratch", tasks=(TASK,), n_images=32, eps_255=EPS_255, steps=5,
                                at_train={}, vae_epochs=150, vae_width=16, vae_latent=8, vae_levels=1, vae_images=None,
                                eot_samples=2, retrain_rounds=1, retrain_uaps=1, retrain_uap_images=32,
                                smoothing_task=TASK, smoothing_images=16, smoothing_n0=10, smoothing_n=50,
                                smoothing_alpha=0.05, smoothing_radii=(0.0, 0.1, 0.5), diag_images=8,
                                escalation_factor=2, escalation_restarts=1, escalation_square_queries=40,
                                regularisation_fractions=(0.5, 1.0), regularisation_seeds=2),
        **sections)


class World(NamedTuple):
    """The chapter's results on the synthetic task, the profile, the configs trained through
    the (patched) checkpoint cache in order, and the zoo."""

    results: D.DefenseResults
    profile: Profile
    trained: list
    zoo: dict


def patch(mp: pytest.MonkeyPatch, name: str, value: Any) -> None:
    """Replace ``name`` in every module of the defenses family that uses it (each module holds
    its own reference to what it imported)."""
    mods = [m for n, m in list(sys.modules.items()) if n.startswith("advmed.experiments.defenses") and m is not None]
    hits = [m for m in mods if name in vars(m)]
    assert hits, f"no module of the defenses family uses {name!r}"
    for m in hits:
        mp.setattr(m, name, value)


@contextlib.contextmanager
def world(cache: Any, prof: Profile | None = None) -> Iterator[World]:
    """:func:`advmed.experiments.defenses.run.defense_results` on the synthetic task in the
    cache folder ``cache``, the data layer and the checkpoint cache patched while it lasts."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ADVMED_CACHE", str(cache))
        test = images(32, 2)
        patch(mp, "defense_images", lambda task, prof, n=None: test if n is None else test.subset(np.arange(n)))
        patch(mp, "zoo_split", lambda cfg, split: images(64 if split == "train" else 32, 3 if split == "train" else 4,
                                                         split))

        def restore(cfg, num_classes, state, dev):
            m = net()
            m.load_state_dict(dict(state))
            return m.to(dev).eval()

        patch(mp, "restore_model", restore)
        trained: list = []

        def fake_get(cfg, device=None, progress=False):
            trained.append(cfg)
            noisy = cfg.adversarial is not None and cfg.adversarial.method == "gaussian"
            # one model per recipe: a second call for the same config (the explorer) gets the same weights
            seed = 10 + next((i for i, c in enumerate(trained) if c.key() == cfg.key()), len(trained) - 1) + 1
            adversarial = cfg.adversarial is not None and not noisy
            history = (pd.DataFrame({"epoch": [1, 2, 3], "val_auc": [0.8, 0.85, 0.9],
                                     "val_robust_bal_acc": [0.3, 0.5, 0.45], "best": [False, True, False]})
                       if adversarial else pd.DataFrame({"epoch": [0]}))  # what the training loop records
            return Trained(fit(seed, cfg.adversarial.sigma if noisy else 0.0), cfg, train_seconds=2.0, history=history)

        patch(mp, "get_trained_model", fake_get)
        prof = prof or profile()
        zoo = {(TASK, "tiny", "scratch"): Trained(copy.deepcopy(fit(0)), config())}
        yield World(D.defense_results(prof, zoo, progress=False), prof, trained, zoo)
