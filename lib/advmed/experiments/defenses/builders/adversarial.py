"""Adversarial training (``advmed.train.adversarial``): AdversarialMed's 0.7 / 0.3 I-FGSM
recipe, Madry et al.'s PGD and fast FGSM (at ``defense.pgd_eps_255``), trained with the zoo
model's recipe, fine-tuning the zoo model itself (``defense.at_warm_start``), through the
checkpoint cache (``TrainConfig(adversarial=..., warm_start=...)``). One registry
entry per method (``at_<method>``), measured where ``defense.adversarial`` lists it."""
from __future__ import annotations

import dataclasses
from typing import Any

from ....device import module_device
from ....train import AdversarialConfig, TrainConfig, get_trained_model
from ...estimate import train_cost
from ...profiles import DefenseSettings, Profile
from ..common import Defended


def adversarial_config(method: str, s: DefenseSettings) -> AdversarialConfig:
    """The AdversarialConfig of ``method``: AdversarialMed's published settings (its 10-step
    I-FGSM recipe and its text's one-step FGSM variant); PGD and fast FGSM at
    ``defense.pgd_eps_255``."""
    if method in ("adversarialmed", "adversarialmed_fgsm"):
        return AdversarialConfig(method)
    return AdversarialConfig(method, eps=float(s.pgd_eps_255) / 255)


def adversarial_train_config(base: TrainConfig, method: str, profile: Profile) -> TrainConfig:
    """The zoo model's recipe with ``adversarial=method`` and ``defense.at_train``, fine-tuning
    the zoo model ``base`` itself where ``defense.at_warm_start`` says so."""
    s = profile.defense
    warm = base if s.at_warm_start else None
    return dataclasses.replace(base, adversarial=adversarial_config(method, s), warm_start=warm, **dict(s.at_train))


def adversarial_model(base: TrainConfig, method: str, profile: Profile, *, device: Any = None,
                      progress: bool = False):
    """:func:`adversarial_train_config`'s model, from the checkpoint cache (trained there first when absent)."""
    return get_trained_model(adversarial_train_config(base, method, profile), device=device, progress=progress)


def applies(profile: Profile, *, method: str) -> bool:
    """The profile measures ``method`` (``defense.adversarial``)."""
    return method in profile.defense.adversarial


def build(task: str, tm: Any, profile: Profile, *, method: str) -> Defended:
    """The adversarially trained model; the adaptive attacker is the robust ensemble on it."""
    at = adversarial_model(tm.config, method, profile, device=module_device(tm.model.eval()))
    model = at.model.eval()
    return Defended(model, model, {}, "the robust ensemble on the adversarially trained model", at.config.key(),
                    train_seconds=float(at.train_seconds), history=at.history)


def identity(task: str, tm: Any, profile: Profile, *, method: str) -> tuple[str, Any]:
    """The adversarially trained model's checkpoint key (its config's, nothing trained or loaded)."""
    return adversarial_train_config(tm.config, method, profile).key(), None


def train(profile: Profile, task: str, cfg: TrainConfig, *, method: str) -> str:
    """Stage 0: train (or load) the model of ``method`` from the zoo model's recipe ``cfg``."""
    at = adversarial_model(cfg, method, profile)
    return f"{task}: adversarial training {method}, val AUC {at.val_auc:.3f}"


def train_gmac(profile: Profile, cfg: TrainConfig, *, method: str) -> float:
    """The training's GMAC (:func:`~advmed.experiments.estimate.train_cost` counts the crafting
    attack's steps and the robust model selection)."""
    return train_cost(adversarial_train_config(cfg, method, profile))


__all__ = ["adversarial_config", "adversarial_model", "adversarial_train_config", "applies", "build", "identity",
           "train", "train_gmac"]
