"""Trained models and the checkpoint cache: ``$ADVMED_CACHE/checkpoints/<key>.pt`` plus a
JSON side-car ``<key>.json``, both written atomically, the side-car last (a checkpoint
without one is treated as absent), loaded with ``weights_only=True``."""
from __future__ import annotations

import copy
import itertools
import json
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..cache import atomic_write, cache_root, save_torch
from ..data import load_task
from ..data.splits import disjoint_subset
from ..device import default_device, seed_everything
from ..models import build_model
from ..models.inference import predict_proba
from .config import CODE_VERSION, TrainConfig
from .loop import fit_robust


@dataclass
class TrainedModel:
    """A trained model (eval mode, on its device) and how it came about."""

    model: nn.Module
    config: TrainConfig
    history: pd.DataFrame  # one row per epoch
    init_used: str  # "imagenet" may fall back to "scratch" where weights are missing
    val_auc: float  # validation ROC AUC of the kept (best) epoch
    train_seconds: float
    classes: tuple[str, ...]
    best_epoch: int = 0
    meta: dict[str, Any] = field(default_factory=dict)  # side-car extras (device, versions)

    @property
    def key(self) -> str:
        return self.config.key()

    def predict_proba(self, x: Any, **kwargs: Any) -> np.ndarray:
        return predict_proba(self.model, x, **kwargs)



def load_split(cfg: TrainConfig, split: str, limit: int | None = None, progress: bool = True):
    """A split of ``cfg``'s task as it trains on it: its size, channels and seed, ``limit``
    images at most (a stratified subset; None: all)."""
    return load_task(cfg.task, split, size=cfg.size, channels=cfg.channels, limit=limit, seed=cfg.seed,
                     progress=progress)


def training_split(cfg: TrainConfig, progress: bool = True):
    """The training images of ``cfg``: a ``max_train`` subset of the train split, drawn after
    leaving out another model's subset when ``cfg.exclude_train`` says so."""
    if cfg.exclude_train is None:
        return load_split(cfg, "train", cfg.max_train, progress=progress)
    full = load_split(cfg, "train", None, progress=progress)
    limit, seed = cfg.exclude_train
    idx = disjoint_subset(full.labels.numpy(), full.groups, exclude_limit=limit, exclude_seed=seed,
                          limit=cfg.max_train, seed=cfg.seed)
    return full.subset(idx)


def build_from_config(cfg: TrainConfig, num_classes: int, init: str | None = None) -> nn.Module:
    """The architecture of ``cfg`` for ``num_classes`` classes, initialised as ``init`` (default
    ``cfg.init``), seeded by ``cfg.seed``."""
    return build_model(cfg.arch, num_classes, in_channels=cfg.channels,
                       init=cfg.init if init is None else init, input_size=cfg.size, seed=cfg.seed,
                       net_size=cfg.net_size)


def train_model(cfg: TrainConfig, *, device: torch.device | str | None = None,
                progress: bool = True) -> TrainedModel:
    """Train a model from scratch or fine-tune it, as ``cfg`` says; no cache (see
    :func:`get_trained_model`). ``cfg.adversarial`` chooses the batch objective
    (:func:`advmed.train.loop.fit_robust`); its cost is stored as ``meta["training_cost"]``."""
    dev = torch.device(device) if device is not None else default_device()
    train = training_split(cfg, progress=progress)
    val = load_split(cfg, "val", cfg.max_val, progress=progress)
    if list(train.classes) != list(val.classes):
        raise ValueError(f"train and val classes differ: {train.classes} vs {val.classes}")
    if cfg.warm_start is not None:
        source = get_trained_model(cfg.warm_start, device=dev, progress=progress)
        if list(source.classes) != list(train.classes):
            raise ValueError(f"warm_start {cfg.warm_start.label()} has classes {list(source.classes)}, "
                             f"this model {list(train.classes)}")
        model = copy.deepcopy(source.model)
        meta = dict(getattr(model, "meta", {}) or {})
        meta["warm_start"] = cfg.warm_start.key()
        init_used = source.init_used
        seed_everything(cfg.seed)  # as after a fresh build: batch order, augmentation, random starts
    else:
        seed_everything(cfg.seed)  # model initialisation
        model = build_from_config(cfg, len(train.classes))
        meta = dict(getattr(model, "meta", {}) or {})
        init_used = str(meta.get("init", cfg.init))
    t0 = time.perf_counter()
    fitted = fit_robust(model, train, val, cfg, device=dev, progress=progress)
    model, history, best_epoch, val_auc, cost = fitted.model, fitted.history, fitted.best_epoch, fitted.val_auc, fitted.cost
    seconds = time.perf_counter() - t0
    extra = {"device": str(dev), "n_train": len(train.labels), "n_val": len(val.labels),
             "torch": torch.__version__, "model_meta": meta}
    if cost is not None:
        extra["training_cost"] = cost.to_dict()
    return TrainedModel(model=model, config=cfg, history=history, init_used=init_used, val_auc=val_auc,
                        train_seconds=seconds, classes=tuple(train.classes), best_epoch=best_epoch, meta=extra)


def checkpoint_paths(cfg: TrainConfig) -> tuple[Path, Path]:
    """``(<key>.pt, <key>.json)`` under ``$ADVMED_CACHE/checkpoints``."""
    d = cache_root() / "checkpoints"
    return d / f"{cfg.key()}.pt", d / f"{cfg.key()}.json"


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, (np.generic,)):
        return v.item()
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    return str(v)


def save_checkpoint(tm: TrainedModel) -> Path:
    """Write ``tm`` to the cache (weights, then the JSON side-car); return the ``.pt`` path."""
    pt, side = checkpoint_paths(tm.config)
    state = {name: t.detach().to("cpu") for name, t in tm.model.state_dict().items()}
    save_torch(pt, {"state_dict": state, "code_version": CODE_VERSION})
    record = {
        "key": tm.config.key(), "code_version": CODE_VERSION, "config": tm.config.to_dict(),
        "classes": list(tm.classes), "init_used": tm.init_used, "val_auc": tm.val_auc,
        "best_epoch": tm.best_epoch, "train_seconds": tm.train_seconds,
        "history": tm.history.to_dict(orient="records"), "meta": tm.meta,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    text = json.dumps(_jsonable(record), indent=1)
    atomic_write(side, lambda p: p.write_text(text))
    return pt


def restore_from_state(cfg: TrainConfig, num_classes: int, state: Mapping[str, torch.Tensor], *,
                       device: torch.device | str | None = None) -> nn.Module:
    """The model of ``cfg`` holding ``state`` (on ``device`` and in eval mode when a device is
    given): built as a skeleton on the meta device (no random initialisation of weights about
    to be replaced: VGG-16's 138 M parameters take seconds to draw) and given the loaded
    tensors; built for real if anything stayed on meta."""
    state = dict(state)
    with torch.device("meta"):
        model = build_from_config(cfg, num_classes, init="scratch")
    model.load_state_dict(state, strict=True, assign=True)
    if any(t.is_meta for t in itertools.chain(model.parameters(), model.buffers())):
        model = build_from_config(cfg, num_classes, init="scratch")
        model.load_state_dict(state, strict=True)
    elif getattr(model, "channels_last", False):  # the loaded tensors keep the layout they were saved in
        model.use_channels_last()
    return model if device is None else model.to(torch.device(device)).eval()


def load_checkpoint(cfg: TrainConfig, *, device: torch.device | str | None = None) -> TrainedModel:
    """Rebuild the model of a cached config and load its weights (``weights_only=True``)."""
    pt, side = checkpoint_paths(cfg)
    record = json.loads(side.read_text())
    dev = torch.device(device) if device is not None else default_device()
    # Built at random, then overwritten: every parameter and buffer (the normalisation
    # constants included) is in the state dict, and a strict load fails on any mismatch,
    # so pretrained weights need not be read (or be present) to restore a fine-tuned model.
    if record["init_used"] != cfg.init:
        warnings.warn(f"{cfg.label()}: the cached model {pt.name} was initialised with "
                      f"{record['init_used']!r}, not {cfg.init!r} (weights were unavailable when it was "
                      "trained); pass retrain=True to train it again", stacklevel=3)
    # mmap: the tensors are views of the file (copy on write), read when first used, so a
    # chapter that loads the whole zoo (gigabytes of checkpoints in paper-dry) but attacks a
    # few models does not read and copy all of it first
    blob = torch.load(pt, map_location="cpu", weights_only=True, mmap=True)
    model = restore_from_state(cfg, len(record["classes"]), blob["state_dict"])
    meta = getattr(model, "meta", None)
    if isinstance(meta, dict):
        meta.update(init=record["init_used"], requested_init=cfg.init)
    model.to(dev).eval()
    return TrainedModel(model=model, config=cfg, history=pd.DataFrame(record["history"]),
                        init_used=record["init_used"], val_auc=float(record["val_auc"]),
                        train_seconds=float(record["train_seconds"]), classes=tuple(record["classes"]),
                        best_epoch=int(record.get("best_epoch", 0)),
                        meta={**record.get("meta", {}), "checkpoint": str(pt), "cached": True})


def get_trained_model(cfg: TrainConfig, *, retrain: bool = False, device: torch.device | str | None = None,
                      progress: bool = True) -> TrainedModel:
    """The model for ``cfg`` from the checkpoint cache, trained (and cached) if missing."""
    pt, side = checkpoint_paths(cfg)
    if not retrain and pt.is_file() and side.is_file():
        return load_checkpoint(cfg, device=device)
    tm = train_model(cfg, device=device, progress=progress)
    save_checkpoint(tm)
    tm.meta["checkpoint"] = str(pt)
    tm.meta["cached"] = False
    return tm
