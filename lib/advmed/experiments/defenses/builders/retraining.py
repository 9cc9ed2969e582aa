"""Hirano et al.'s (2021) adversarial retraining against UAPs: rounds of UAPs built on the
model, fine-tuning on images half of which carry them (``advmed.defenses.uap_retraining``),
memoised under the checkpoint key, the held-out images and the retraining settings."""
from __future__ import annotations

from typing import Any

import torch

from ....cache import memo
from ....defenses import uap_retraining
from ....device import module_device
from ...estimate import n_images
from ...kernel import images_key
from ...profiles import Profile
from ..common import DEFENSE_VERSION, Defended, defense_images, pixels, restore_model, zoo_split


def retraining_uap_kwargs(profile: Profile) -> dict[str, Any]:
    """How retraining builds its UAPs: chapter 3's method, passes, batch and stopping rule
    (``profile.uap``); the step is :func:`~advmed.attacks.universal.uap`'s default for the method."""
    u = profile.uap
    kw: dict[str, Any] = {"method": u.method, "max_passes": int(u.max_passes), "batch_size": int(u.batch_size)}
    if u.min_gain is not None:
        kw["min_gain"] = float(u.min_gain)
    return kw


def retraining_settings(profile: Profile) -> dict[str, Any]:
    """The retraining's settings as its memo keys hold them (``defense.retrain_*`` and the UAPs')."""
    s = profile.defense
    return {"rounds": s.retrain_rounds, "uaps": s.retrain_uaps, "uap_images": s.retrain_uap_images,
            "zeta": s.retrain_zeta, "norm": s.retrain_norm, "epochs": s.retrain_epochs,
            "uap": retraining_uap_kwargs(profile)}


def retrained(tm: Any, images: Any, profile: Profile, dev: torch.device) -> dict[str, Any]:
    """Hirano et al.'s retraining of ``tm``: state, history, seconds (memoised under the
    checkpoint key, the held-out images and the retraining settings, so the explorer rebuilds
    the model the chapter measured without retraining it)."""
    s, cfg = profile.defense, tm.config

    def compute() -> dict[str, Any]:
        x, y = pixels(images, dev)
        res = uap_retraining(tm.model, zoo_split(cfg, "train"), zoo_split(cfg, "val"), x, config=cfg, heldout_y=y,
                             rounds=int(s.retrain_rounds), uaps_per_round=int(s.retrain_uaps),
                             uap_images=int(s.retrain_uap_images), zeta=float(s.retrain_zeta), norm=s.retrain_norm,
                             epochs=int(s.retrain_epochs), uap_kwargs=retraining_uap_kwargs(profile),
                             seed=profile.seed, device=dev, progress=False)
        return {"state": {k: v.detach().cpu() for k, v in res.model.state_dict().items()}, "history": res.history,
                "seconds": float(res.seconds)}

    key = {"version": DEFENSE_VERSION, "model": cfg.key(), "images": images_key(images.images, images.labels),
           "seed": profile.seed, "retraining": retraining_settings(profile)}
    return memo("defenses_retrained", key, compute)


def build(task: str, tm: Any, profile: Profile) -> Defended:
    """The retrained model (from the retraining memo, retrained there first when absent)."""
    dev = module_device(tm.model.eval())
    r = retrained(tm, defense_images(task, profile), profile, dev)
    model = restore_model(tm.config, len(tm.classes), r["state"], dev)
    return Defended(model, model, {}, "the robust ensemble on the retrained model", tm.config.key(),
                    train_seconds=r["seconds"], history=r["history"], extra=retraining_settings(profile))


def identity(task: str, tm: Any, profile: Profile) -> tuple[str, Any]:
    """The zoo model's checkpoint key and the retraining settings."""
    return tm.config.key(), retraining_settings(profile)


def cost(profile: Profile, task: str, cfg: Any) -> float:
    """The rounds' UAPs and fine-tuning epochs on the zoo model's training images."""
    s = profile.defense
    return s.retrain_rounds * (s.retrain_uaps * profile.uap.max_passes * 3 * s.retrain_uap_images
                               + 3 * s.retrain_epochs * n_images(task, "train", cfg.max_train))


__all__ = ["build", "cost", "identity", "retrained", "retraining_settings", "retraining_uap_kwargs"]
