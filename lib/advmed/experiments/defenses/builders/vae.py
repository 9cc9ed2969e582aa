"""VAE denoising in front of the classifier (AdversarialMed): the posterior-mean reconstruction
as deployed, attacked end to end; the adaptive attacker also runs EOT-PGD through the *sampled*
VAE. The VAE is trained on the zoo model's training images (``defense.vae_images`` of them),
through the VAE cache."""
from __future__ import annotations

from typing import Any

import torch

from ....data.splits import stratified_subset
from ....defenses import eot, train_vae, vae_defense, vae_key
from ....device import default_device, module_device
from ....train import TrainConfig
from ...estimate import forward_gmac, n_images
from ...profiles import DefenseSettings, Profile
from ..common import Defended, transfer_cost, zoo_split

#: The extra adaptive source: EOT-PGD through the sampled VAE.
EOT_SOURCE = "EOT through the sampled VAE"
#: How the explorer names the extra source (one short line under a panel).
SOURCES = {EOT_SOURCE: "EOT-PGD via the sampled VAE"}


def _inputs(cfg: TrainConfig, s: DefenseSettings, seed: int) -> tuple[torch.Tensor, dict[str, Any]]:
    """The VAE's training images (``defense.vae_images`` of the zoo model's) and its settings."""
    train = zoo_split(cfg, "train")
    imgs = train.images
    if s.vae_images is not None and s.vae_images < len(imgs):
        imgs = imgs[stratified_subset(train.labels.numpy(), int(s.vae_images), seed)]
    return imgs, dict(epochs=int(s.vae_epochs), patch_size=s.vae_patch, width=int(s.vae_width),
                      latent_channels=int(s.vae_latent), levels=int(s.vae_levels), batch_size=int(s.vae_batch),
                      seed=seed)


def defense_vae(cfg: TrainConfig, profile: Profile, dev: Any = None):
    """The VAE of the ``vae`` defense for the zoo model trained with ``cfg``: trained on its
    training images (``defense.vae_images`` of them), from the VAE cache or trained now."""
    imgs, kwargs = _inputs(cfg, profile.defense, profile.seed)
    return train_vae(imgs, **kwargs, device=default_device() if dev is None else dev, progress=False)


def build(task: str, tm: Any, profile: Profile) -> Defended:
    """The zoo model behind the VAE's mean reconstruction; EOT through the sampled VAE as an extra source."""
    s = profile.defense
    base = tm.model.eval()
    tv = defense_vae(tm.config, profile, module_device(base))
    mean = vae_defense(base, tv, sample=False)
    sampled = vae_defense(base, tv, sample=True)
    return Defended(mean, mean, {EOT_SOURCE: eot(sampled, samples=int(s.eot_samples))},
                    f"the robust ensemble end to end through the VAE; EOT-PGD ({s.eot_samples} draws) through "
                    "the sampled VAE", tm.config.key(), train_seconds=float(tv.train_seconds), extra={"vae": tv.key})


def identity(task: str, tm: Any, profile: Profile) -> tuple[str, Any]:
    """The zoo model's checkpoint key and the VAE's (from its training images and settings, nothing trained)."""
    imgs, kwargs = _inputs(tm.config, profile.defense, profile.seed)
    return tm.config.key(), {"vae": vae_key(imgs, **kwargs)}


def cost(profile: Profile, task: str, cfg: Any) -> float:
    """EOT-PGD through the sampled VAE at every budget, ``defense.eot_samples`` draws per step."""
    return transfer_cost(profile, task, int(profile.defense.eot_samples))


def train(profile: Profile, task: str, cfg: TrainConfig) -> str:
    """Stage 0: train (or load) the VAE of the zoo model trained with ``cfg``."""
    return f"{task}: VAE {defense_vae(cfg, profile).key[:12]}"


def train_gmac(profile: Profile, cfg: TrainConfig) -> float:
    """The VAE's training: a few conv layers, a tenth of a ResNet-18 at the task's side (a guess)."""
    s = profile.defense
    images = n_images(cfg.task, "train", s.vae_images if s.vae_images is not None else cfg.max_train)
    return 3 * s.vae_epochs * images * 0.1 * forward_gmac("resnet18", cfg.size)


__all__ = ["EOT_SOURCE", "SOURCES", "build", "cost", "defense_vae", "identity", "train", "train_gmac"]
