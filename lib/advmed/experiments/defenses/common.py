"""What every module of chapter 7's family reads: the version of its memoised results, the
attackers, the tasks and images it defends (:func:`defense_images`), the zoo model's own splits
and weights (:func:`zoo_split`, :func:`restore_model`, for the defenses built from them), the
cost of an extra adaptive source (:func:`transfer_cost`), and :class:`Defended` (a defense as
the attackers meet it, what every builder of :mod:`.builders` returns)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import torch
from torch import nn

from ...train import TrainConfig, load_split, restore_from_state, training_split
from ..estimate import n_images
from ..kernel import subset, test_images
from ..profiles import Profile

#: Bump when a change here changes what a memoised result holds.
DEFENSE_VERSION = 5  # 2: the studies' attacks at AdversarialMed's setting; 3: monotone_eps on iterative attacks; 4: 8-bit rounding, escalation; 5: smoothing radii in one-channel units
#: The two attackers of every defense, in the order of the tables.
ATTACKERS = ("oblivious", "adaptive")


def defense_tasks(profile: Profile) -> list[str]:
    """The tasks defended: ``defense.tasks`` that the profile has (None: all of them)."""
    s = profile.defense
    return list(profile.tasks) if s.tasks is None else [t for t in s.tasks if t in profile.tasks]


def defense_images(task: str, profile: Profile, n: int | None = None):
    """A stratified subset (profile seed) of ``n`` (default ``defense.n_images``) of chapter 2's test images."""
    base = test_images(task, profile)
    n = profile.defense.n_images if n is None else n
    return subset(base, n, profile.seed).images


def pixels(images: Any, dev: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """An ``ImageSet``'s float pixels ([0, 1]) and integer labels on ``dev``."""
    return images.float().to(dev), torch.as_tensor(images.labels).long().to(dev)


def zoo_split(cfg: TrainConfig, split: str):
    """The training (``max_train`` subset) or validation split of a zoo config, as it was
    trained on (:func:`advmed.train.training_split`, :func:`advmed.train.load_split`)."""
    if cfg.exclude_train is not None:
        raise ValueError("defenses start from the zoo's models, which never exclude training data")
    if split == "train":
        return training_split(cfg, progress=False)
    return load_split(cfg, split, cfg.max_val, progress=False)


def restore_model(cfg: TrainConfig, num_classes: int, state: Any, dev: torch.device) -> nn.Module:
    """The architecture of ``cfg`` holding the weights ``state`` (a retrained zoo model), in
    eval mode on ``dev`` (:func:`advmed.train.restore_from_state`)."""
    return restore_from_state(cfg, num_classes, state, device=dev)


def transfer_cost(profile: Profile, task: str, passes: int) -> int:
    """Forward-equivalents an extra adaptive source adds to a defense's evaluation: PGD
    (``defense.steps`` iterations, a forward and a backward each: 3) at every budget of
    ``defense.eps_255`` on the test images, through ``passes`` forwards per step (EOT draws)."""
    s = profile.defense
    return n_images(task, "test", s.n_images) * len(s.eps_255) * 3 * int(s.steps) * int(passes)


@dataclass
class Defended:
    """One defense as the attackers meet it (what a :class:`~.registry.DefenseSpec` builds).

    Attributes:
        evaluated: the defended model as deployed (real JPEG codec; mean VAE; the trained weights).
        attackable: the view the adaptive ensemble attacks, whose forward is ``evaluated``'s
            (BPDA for JPEG; ``evaluated`` itself otherwise).
        extra_sources: more adaptive sources, name -> model PGD is crafted on and transferred
            (kornia's differentiable JPEG; EOT through the sampled VAE).
        adaptive: how the adaptive attacker reaches the defense, in words.
        model_key: the key of the classifier behind the defense (a checkpoint key).
        train_seconds: what the defense cost to build.
        history: UAP retraining: Hirano et al.'s rounds; adversarial training: its epochs (the
            training loop's history, ``val_robust_bal_acc`` and ``val_auc`` among them); else empty.
        extra: what identifies the defense beyond ``model_key`` (JPEG quality, the VAE's key,
            the retraining settings), part of its memo keys.
    """

    evaluated: nn.Module
    attackable: nn.Module
    extra_sources: dict[str, nn.Module]
    adaptive: str
    model_key: str
    train_seconds: float = 0.0
    history: pd.DataFrame = field(default_factory=pd.DataFrame)
    extra: Any = None


__all__ = ["ATTACKERS", "DEFENSE_VERSION", "Defended", "defense_images", "defense_tasks", "pixels", "restore_model",
           "transfer_cost", "zoo_split"]
