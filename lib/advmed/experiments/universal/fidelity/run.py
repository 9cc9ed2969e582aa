"""How far our miniature is from the studies, measured: weight drift and a resolution ablation.

- **Weight drift** (Minagi et al. 2022 test whether transfer-learned models inherit the
  vulnerability of their ImageNet weights to photo-built UAPs; that premise needs the
  fine-tuned weights to stay near ImageNet's): per block of each ImageNet-initialised
  model, the relative L2 change ``||w - w_0|| / ||w_0||`` of its weights from the ImageNet
  weights it started from (convolution kernels and batch-norm scale and shift; the new
  classification head is left out).
- **Resolution ablation**: one task and model (the fine-tuned MobileNet on pneumonia_cxr)
  retrained at several image sizes with the same recipe and training images, and, per size,
  clean AUC, robust accuracy at one budget (the ensemble of :func:`advmed.attacks.robust_accuracy`)
  and the fooling rate of a UAP built from natural photos, so the book can say how much of a
  disagreement with the studies (who worked at 224-299 px) resolution explains.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ....attacks import default_ensemble, robust_accuracy
from ....cache import memo
from ....data import load_task
from ....metrics import classification_metrics
from ....models import build_model, gray_view, predict_proba
from ....train import TrainConfig, get_trained_model
from ...profiles import ModelSpec, Profile
from .. import run as universal
from ...zoo import ModelKey

FIDELITY_VERSION = 1


# --------------------------------------------------------------------------- weight drift
def _block(name: str) -> str | None:
    """The block a parameter belongs to (``conv1``, ``dw_3``, ``pw_3``...), None for the head."""
    parts = name.split(".")
    layer = next((p for p in parts if p.startswith(("conv", "layer", "fc", "bn"))), None)
    if layer is None or "preds" in layer or layer == "fc" or "classifier" in name:
        return None
    if layer.startswith("conv_dw_") or layer.startswith("conv_pw_"):
        kind, idx = layer.split("_")[1], layer.split("_")[2]
        return f"{kind}_{int(idx):02d}"
    return layer.removesuffix("_bn")


def weight_drift(tm: Any) -> pd.DataFrame:
    """Relative L2 change of each block of an ImageNet-initialised model from its ImageNet
    weights: one row per block (in network order), ``relative_change`` and the block's
    ``parameters`` count. Raises for a model that did not start from ImageNet weights."""
    if getattr(tm, "init_used", None) != "imagenet":
        raise ValueError(f"{tm.config.label()} was not initialised from ImageNet weights "
                         f"(init used: {getattr(tm, 'init_used', '?')}); drift is measured from them")
    cfg = tm.config
    start = build_model(cfg.arch, len(tm.classes), in_channels=cfg.channels, init="imagenet",
                        input_size=cfg.size, seed=cfg.seed, progress=False)
    before, after = start.state_dict(), tm.model.state_dict()
    sums: dict[str, list[float]] = {}
    for name, w0 in before.items():
        if not name.startswith("net.") or not w0.is_floating_point() or "running" in name:
            continue
        block = _block(name)
        if block is None:
            continue
        w1 = after[name].detach().cpu().float()
        acc = sums.setdefault(block, [0.0, 0.0, 0])
        acc[0] += float((w1 - w0.float()).pow(2).sum())
        acc[1] += float(w0.float().pow(2).sum())
        acc[2] += w0.numel()
    rows = [{"block": b, "relative_change": float(np.sqrt(d / n)) if n > 0 else float("nan"), "parameters": c}
            for b, (d, n, c) in sums.items()]
    return pd.DataFrame(rows)


def drift_results(zoo: Mapping[tuple, Any]) -> pd.DataFrame:
    """:func:`weight_drift` of every ImageNet-initialised model of ``zoo`` (memoised), with the
    model columns; empty when none started from ImageNet."""
    frames = []
    for key, tm in zoo.items():
        if getattr(tm, "init_used", None) != "imagenet":
            continue
        key = ModelKey(*key)
        d = memo("fidelity_drift", {"v": FIDELITY_VERSION, "model": tm.config.key()}, lambda tm=tm: weight_drift(tm))
        frames.append(d.assign(task=key.task, arch=key.arch, init=key.init, size=tm.config.size))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


# --------------------------------------------------------------------------- resolution ablation
def ablation_config(profile: Profile, size: int) -> TrainConfig:
    """The TrainConfig of the ablation's model at one size: the profile's recipe for that
    initialisation, the ablation's training images."""
    a = profile.ablation
    m = ModelSpec.parse(a.model)
    fields = {**profile.train_fields(m.init), "max_train": a.max_train}
    return TrainConfig(task=a.task, arch=m.arch, init=m.init, size=int(size), channels=3, seed=profile.seed, **fields)


def _ablation_point(profile: Profile, size: int, progress: bool) -> dict[str, Any]:
    """Train (or load) the ablation's model at ``size``; clean metrics, robust accuracy at the
    ablation's budget, and the fooling rate of an L-inf photo-built UAP."""
    a = profile.ablation
    tm = get_trained_model(ablation_config(profile, size), progress=progress)
    test = load_task(a.task, "test", size=size, channels=3, limit=a.n_images, seed=profile.seed, progress=progress)
    proba = predict_proba(tm.model, test.images)
    clean = classification_metrics(test.labels.numpy(), proba, n_boot=profile.eval.n_boot, seed=profile.seed)
    x = test.float()
    m_att, x_att, _ = gray_view(tm.model, x)
    s = profile.whitebox
    res = robust_accuracy(m_att, x_att, test.labels, eps_grid=[a.eps_255 / 255], n_boot=profile.eval.n_boot,
                          seed=profile.seed, progress=False,
                          ensemble=default_ensemble(len(tm.classes), steps=s.robust_steps,
                                                    restarts=s.robust_restarts, pgd_restarts=s.pgd_restarts))
    sized = dataclasses.replace(profile, tasks={a.task: int(size)},
                                uap=dataclasses.replace(profile.uap, natural_images=a.natural_images,
                                                        zetas=(a.zeta,), norms=("linf",), targeted=False))
    nat = universal.natural_uap_experiment(sized, trained={ModelKey(a.task, tm.config.arch, tm.config.init): tm},
                                           models=[a.model], progress=False)
    run = next(iter(nat.runs.values()))
    rates = nat.rates(next(iter(nat.runs)))
    return {"size": int(size), "n_train": int(tm.meta.get("n_train", 0)), "val_auc": float(tm.val_auc),
            "epochs": int(len(tm.history)), "train_seconds": float(tm.train_seconds),
            "auc": clean["auc"].value, "auc_lo": clean["auc"].lo, "auc_hi": clean["auc"].hi,
            "accuracy": clean["accuracy"].value,
            "robust_accuracy": res.accuracy[0].value, "robust_lo": res.accuracy[0].lo, "robust_hi": res.accuracy[0].hi,
            "photo_uap": rates.rate.value, "photo_uap_lo": rates.rate.lo, "photo_uap_hi": rates.rate.hi,
            "random": rates.random.value, "eps_uap": float(run.summary["eps"]), "n_test": len(test.labels),
            "checkpoint": tm.config.key()}


def resolution_ablation(profile: Profile, *, progress: bool = True) -> pd.DataFrame:
    """One row per size of ``profile.ablation``: training, clean AUC, robust accuracy at
    ``eps_255`` and the photo-UAP fooling rate with their 95 % intervals (memoised per size)."""
    a = profile.ablation
    rows = []
    for size in tqdm(a.sizes, desc="resolution ablation", unit="size", disable=not progress):
        key = {"v": FIDELITY_VERSION, "config": ablation_config(profile, size).key(), "ablation": dataclasses.asdict(a),
               "n_boot": profile.eval.n_boot, "ensemble": [profile.whitebox.robust_steps,
                                                           profile.whitebox.robust_restarts,
                                                           profile.whitebox.pgd_restarts],
               "uap": profile.uap.build_key(profile.seed)}
        rows.append(memo("fidelity_ablation", key, lambda size=size: _ablation_point(profile, size, progress)))
    return pd.DataFrame(rows)


__all__ = ["ablation_config", "drift_results", "resolution_ablation", "weight_drift"]
