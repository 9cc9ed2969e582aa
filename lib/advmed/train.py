"""Training and the checkpoint cache: one :class:`TrainConfig` in, one trained model out.

What a training run does (the choices follow common practice for medical image
classifiers, e.g. the MedMNIST v2 baselines, Yang et al. 2023, Sci Data 10:41):

- AdamW (Loshchilov & Hutter 2019) with weight decay on weights only (not on biases or
  batch-norm parameters), a linear warm-up over the first 5 % of steps and a cosine decay
  to zero (Loshchilov & Hutter 2017, SGDR).
- Class imbalance: class-weighted cross-entropy, weight ``n / (K * n_c)`` for class ``c``
  (scikit-learn's ``class_weight="balanced"``); or ``balance="sampler"``: batches drawn
  with replacement with probability inverse to the class frequency; or ``"none"``.
- Augmentation safe for medical images: a random translation of up to ``translate`` of
  the side (edge pixels replicated), and horizontal flips only where anatomy allows them:
  never on chest X-rays (the heart is on the left; a flipped film is a different, rare
  anatomy, situs inversus), on by default for dermoscopy and fundus photographs.
- Batch-norm statistics are recomputed after every epoch on a fixed subset of the
  (unaugmented) training images, as ``torch.optim.swa_utils.update_bn`` does: with few
  steps (the smoke and cpu profiles) the running averages lag the weights so much that
  an eval-mode model predicted one class for every image (PneumoniaMNIST, smoke profile:
  validation accuracy 0.742 = the majority share before, 0.867 after; AUC 0.938 -> 0.972).
- Early stopping on validation ROC AUC (binary: class 1; multiclass: macro one-vs-rest);
  the best epoch's weights are kept.
- Seeded: the same config gives the same weights on CPU. CUDA adds mixed precision
  (``advmed.device.autocast``; a ``GradScaler`` when the dtype is float16) and is not
  bit-reproducible.

Checkpoints live in ``$ADVMED_CACHE/checkpoints/<key>.pt`` with a JSON side-car
``<key>.json`` (config, history, init actually used, validation AUC, training time). Both
are written atomically (temporary file + ``os.replace``); the side-car is written last,
so a checkpoint without one is treated as absent.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .cache import atomic_write, cache_root
from .device import autocast, default_device, seed_everything
from .models.inference import predict_proba

# Bump when a change to this file changes the weights a config produces: every key
# changes with it, so stale checkpoints are never reused.
CODE_VERSION = 2

BALANCE_MODES = ("weighted_loss", "sampler", "none")

# Datasets whose images may be mirrored left-right without changing the diagnosis.
# Chest X-rays are not (cardiac laterality); breast ultrasound is left out as untested.
FLIP_SAFE_DATASETS = frozenset({"ham10000", "retinamnist"})

WARMUP_FRACTION = 0.05
# Training images used to recompute batch-norm statistics after each epoch.
BN_RECALIBRATION_IMAGES = 2048


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a trained model's weights. Hashed by :meth:`key`.

    Attributes:
        task: task name (``advmed.data.TASKS``).
        arch, init: architecture and requested initialisation (``advmed.models``).
        size: image side in pixels; channels: 3 for every profile model (see
            :func:`configs_for_profile`).
        epochs, batch_size, lr, weight_decay, patience: optimisation (patience in epochs
            without a better validation AUC).
        max_train, max_val: seeded stratified subsets of the splits (None: all).
        seed: seeds model initialisation, batch order, augmentation and subsets.
        balance: ``"weighted_loss"`` (default), ``"sampler"`` or ``"none"``.
        augment: random translation (and flips where allowed) during training.
        translate: largest shift as a fraction of the side (0.0625: 2 px at 32 px).
        hflip: random horizontal flips; None resolves from the task (never for chest X-rays).
    """

    task: str
    arch: str
    init: str = "scratch"
    size: int = 64
    channels: int = 3
    epochs: int = 8
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    max_train: int | None = None
    max_val: int | None = None
    patience: int = 3
    seed: int = 0
    balance: str = "weighted_loss"
    augment: bool = True
    translate: float = 0.0625
    hflip: bool | None = None

    def __post_init__(self) -> None:
        if self.balance not in BALANCE_MODES:
            raise ValueError(f"unknown balance {self.balance!r}; valid: {', '.join(BALANCE_MODES)}")
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {self.channels}")
        for name in ("size", "epochs", "batch_size", "patience"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.translate < 0.5:
            raise ValueError(f"translate is a fraction of the side in [0, 0.5), got {self.translate}")
        if self.hflip is None:  # resolve now, so that the key records what is done
            object.__setattr__(self, "hflip", _flip_safe(self.task))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def key(self) -> str:
        """16 hex digits of the SHA-256 of the full config and :data:`CODE_VERSION`."""
        blob = json.dumps({"code_version": CODE_VERSION, **self.to_dict()}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def label(self) -> str:
        """Short human-readable name, e.g. ``pneumonia_cxr/resnet18 (scratch, 64 px)``."""
        return f"{self.task}/{self.arch} ({self.init}, {self.size} px)"


def _flip_safe(task: str) -> bool:
    from .data.tasks import TASKS

    t = TASKS.get(task)
    return t is not None and t.dataset in FLIP_SAFE_DATASETS


def configs_for_profile(profile: dict[str, Any]) -> list[TrainConfig]:
    """One :class:`TrainConfig` per (task, model) of a profile (``advmed.profiles``).

    Every model takes 3 channels, grayscale images included (replicated), so that one
    perturbation tensor fits every architecture and attacks transfer across them
    without a channel conversion; ImageNet-pretrained stems expect 3 channels anyway.
    The seed is the profile's first; further seeds are for repeated runs.
    """
    train = dict(profile.get("train", {}))
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = set(train) - names
    if unknown:
        raise KeyError(f"unknown train entries {sorted(unknown)}; valid: {', '.join(sorted(names))}")
    seed = int(profile.get("seeds", [0])[0])
    configs = []
    for task, spec in profile["tasks"].items():
        for m in profile["models"]:
            configs.append(TrainConfig(task=task, arch=m["arch"], init=m.get("init", "scratch"),
                                       size=int(spec["size"]), channels=3, seed=seed, **train))
    _check_sizes(configs)
    return configs


def _check_sizes(configs: list[TrainConfig]) -> None:
    """Fail before any training when a task's size is below an architecture's minimum.

    Upsampling for one model only would break the rule that one perturbation fits every
    model of a task, so the profile must choose a size every model accepts.
    """
    try:
        from .models import get_arch
    except ImportError:  # models layer absent: build_model will complain later
        return
    bad = []
    for c in configs:
        try:
            min_size = get_arch(c.arch).min_size
        except KeyError:
            continue  # unknown architecture: build_model names the valid ones
        if c.size < min_size:
            bad.append(f"{c.task} at {c.size} px for {c.arch} (needs >= {min_size} px)")
    if bad:
        raise ValueError("profile sizes below an architecture's minimum: " + "; ".join(bad)
                         + ". Raise the task's size in the profile or drop the model for that task.")


# --------------------------------------------------------------------------- results
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


# --------------------------------------------------------------------------- training
def class_weights(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``n / (K * n_c)`` per class (scikit-learn's "balanced", ``K`` = classes present);
    0 for an absent class."""
    counts = torch.bincount(labels, minlength=num_classes).double()
    present = int((counts > 0).sum())
    w = torch.where(counts > 0, len(labels) / (present * counts.clamp(min=1)), torch.zeros_like(counts))
    return w.float()


def augment_batch(x: torch.Tensor, generator: torch.Generator, *, translate: float,
                  hflip: bool) -> torch.Tensor:
    """Random integer translation (edges replicated) and optional horizontal flip.

    Random draws come from ``generator`` (on the CPU) so that they do not depend on the
    device; the indexing runs wherever ``x`` is.
    """
    n, _, h, w = x.shape
    my, mx = round(translate * h), round(translate * w)
    if my or mx:
        dy = torch.randint(-my, my + 1, (n,), generator=generator).to(x.device)
        dx = torch.randint(-mx, mx + 1, (n,), generator=generator).to(x.device)
        padded = F.pad(x, (mx, mx, my, my), mode="replicate")
        rows = torch.arange(h, device=x.device)[None, :] + my - dy[:, None]  # (n, h)
        cols = torch.arange(w, device=x.device)[None, :] + mx - dx[:, None]  # (n, w)
        batch = torch.arange(n, device=x.device)[:, None, None, None]
        chan = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
        x = padded[batch, chan, rows[:, None, :, None], cols[:, None, None, :]]
    if hflip:
        flip = (torch.rand(n, generator=generator) < 0.5).to(x.device)
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    return x


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on weight matrices and kernels only; biases and norm scales are exempt."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.dim() > 1 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _lr_lambda(total_steps: int):
    warmup = max(1, round(WARMUP_FRACTION * total_steps))

    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        t = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(t, 1.0)))

    return f


@torch.no_grad()
def recalibrate_bn(model: nn.Module, images: torch.Tensor, device: torch.device, *,
                   batch_size: int = 256) -> None:
    """Replace every batch-norm layer's running mean/var by its exact average over
    ``images`` (uint8 ``(N, C, H, W)``) under the current weights; leaves eval mode.

    Same method as ``torch.optim.swa_utils.update_bn`` (cumulative average, momentum
    None), without its DataLoader.
    """
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns or len(images) == 0:
        model.eval()
        return
    saved = [(m, m.momentum) for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average: each batch weighted equally
    model.train()
    try:
        for s in range(0, len(images), batch_size):
            xb = images[s:s + batch_size].to(device, non_blocking=True).float().div_(255)
            if len(xb) < 2:
                break
            with autocast(device):
                model(xb)
    finally:
        for m, momentum in saved:
            m.momentum = momentum
        model.eval()


def _val_scores(model: nn.Module, val: Any, device: torch.device, batch_size: int) -> dict[str, float]:
    from .metrics import _point_auc

    y = torch.as_tensor(val.labels).long().numpy()
    p = predict_proba(model, val.images, batch_size=max(batch_size, 256), device=device)
    eps = 1e-12
    loss = float(-np.log(p[np.arange(len(y)), y] + eps).mean())
    pred = p.argmax(1)
    recalls = [np.mean(pred[y == c] == c) for c in np.unique(y)]
    return {"val_loss": loss, "val_acc": float(np.mean(pred == y)),
            "val_bal_acc": float(np.mean(recalls)), "val_auc": _point_auc(y, p)}


def fit(model: nn.Module, train: Any, val: Any, cfg: TrainConfig, *,
        device: torch.device | str | None = None, progress: bool = True
        ) -> tuple[nn.Module, pd.DataFrame, int, float]:
    """Train ``model`` in place on ``train``, stop early on ``val``; keep the best epoch.

    ``train`` and ``val`` need ``images`` (uint8 ``(N, C, H, W)``), ``labels`` (int64) and
    ``classes`` (an ``advmed.data.ImageSet`` or any object with those). Returns
    ``(model, history, best_epoch, best_val_auc)`` with the model in eval mode.

    ``history`` has one row per epoch: ``train_loss`` (the objective, class-weighted by
    default, on augmented images) and ``train_acc`` (running, during the epoch),
    ``lr`` (at the epoch's end), ``val_loss`` (plain cross-entropy), ``val_acc``,
    ``val_bal_acc``, ``val_auc``, ``seconds`` (wall time of the epoch) and ``best``.
    """
    dev = torch.device(device) if device is not None else default_device()
    x_all = torch.as_tensor(train.images)
    y_all = torch.as_tensor(train.labels).long()
    k = len(train.classes)
    n = len(y_all)
    if n < 2:
        raise ValueError(f"need at least 2 training images, got {n}")
    gen = torch.Generator().manual_seed(cfg.seed + 1)  # batch order and augmentation
    # random order: splits are often stored class by class, and batches of one class
    # would understate the variance that batch norm should divide by
    bn_rows = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.seed + 2))[:BN_RECALIBRATION_IMAGES]
    bn_images = x_all[bn_rows]
    model.to(dev)
    weights = class_weights(y_all, k)
    loss_fn = nn.CrossEntropyLoss(weight=weights.to(dev) if cfg.balance == "weighted_loss" else None)
    sample_p = weights[y_all].double() if cfg.balance == "sampler" else None

    bs = min(cfg.batch_size, n)
    # batch norm cannot train on a batch of one, so a last batch of one is dropped
    steps = n // bs + (1 if n % bs > 1 else 0)
    opt = torch.optim.AdamW(_param_groups(model, cfg.weight_decay), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(steps * cfg.epochs))
    use_fp16_scaler = dev.type == "cuda" and not torch.cuda.is_bf16_supported()
    scaler = torch.amp.GradScaler("cuda", enabled=use_fp16_scaler)

    rows: list[dict[str, Any]] = []
    best_score, best_epoch, best_auc, best_state, stale = -math.inf, 0, float("nan"), None, 0
    bar = tqdm(range(1, cfg.epochs + 1), desc=cfg.label(), unit="epoch", disable=not progress)
    for epoch in bar:
        t0 = time.perf_counter()
        model.train()
        if sample_p is not None:
            order = torch.multinomial(sample_p, n, replacement=True, generator=gen)
        else:
            order = torch.randperm(n, generator=gen)
        total_loss, correct, seen = 0.0, 0, 0
        for s in tqdm(range(steps), desc=f"epoch {epoch}", leave=False, disable=not progress):
            idx = order[s * bs:(s + 1) * bs]
            xb = x_all[idx].to(dev, non_blocking=True).float().div_(255)
            yb = y_all[idx].to(dev, non_blocking=True)
            if cfg.augment:
                xb = augment_batch(xb, gen, translate=cfg.translate, hflip=bool(cfg.hflip))
            with autocast(dev):
                logits = model(xb)
                loss = loss_fn(logits.float(), yb)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            sched.step()
            total_loss += loss.item() * len(idx)
            correct += int((logits.argmax(1) == yb).sum())
            seen += len(idx)
        row = {"epoch": epoch, "train_loss": total_loss / seen, "train_acc": correct / seen,
               "lr": opt.param_groups[0]["lr"]}
        recalibrate_bn(model, bn_images, dev, batch_size=max(bs, 256))
        row.update(_val_scores(model, val, dev, cfg.batch_size))
        row["seconds"] = time.perf_counter() - t0
        rows.append(row)
        # AUC decides; where it is undefined (a class missing from val) balanced accuracy does
        score = row["val_auc"] if np.isfinite(row["val_auc"]) else row["val_bal_acc"]
        if score > best_score:
            best_score, best_epoch, best_auc, stale = score, epoch, row["val_auc"], 0
            best_state = {name: t.detach().to("cpu", copy=True) for name, t in model.state_dict().items()}
        else:
            stale += 1
        bar.set_postfix(loss=f"{row['train_loss']:.3f}", val_auc=f"{row['val_auc']:.3f}", best=best_epoch)
        if stale >= cfg.patience:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    history = pd.DataFrame(rows)
    history["best"] = history["epoch"] == best_epoch
    return model, history, best_epoch, float(best_auc)


def _load_split(cfg: TrainConfig, split: str, limit: int | None, progress: bool = True):
    from .data import load_task

    return load_task(cfg.task, split, size=cfg.size, channels=cfg.channels, limit=limit, seed=cfg.seed,
                     progress=progress)


def _build_model(cfg: TrainConfig, num_classes: int, init: str | None = None) -> nn.Module:
    from .models import build_model

    return build_model(cfg.arch, num_classes, in_channels=cfg.channels,
                       init=cfg.init if init is None else init, input_size=cfg.size, seed=cfg.seed)


def train_model(cfg: TrainConfig, *, device: torch.device | str | None = None,
                progress: bool = True) -> TrainedModel:
    """Train a model from scratch or fine-tune it, as ``cfg`` says; no cache (see
    :func:`get_trained_model`)."""
    dev = torch.device(device) if device is not None else default_device()
    train = _load_split(cfg, "train", cfg.max_train, progress=progress)
    val = _load_split(cfg, "val", cfg.max_val, progress=progress)
    if list(train.classes) != list(val.classes):
        raise ValueError(f"train and val classes differ: {train.classes} vs {val.classes}")
    seed_everything(cfg.seed)  # model initialisation
    model = _build_model(cfg, len(train.classes))
    meta = dict(getattr(model, "meta", {}) or {})
    init_used = str(meta.get("init", cfg.init))
    t0 = time.perf_counter()
    model, history, best_epoch, val_auc = fit(model, train, val, cfg, device=dev, progress=progress)
    seconds = time.perf_counter() - t0
    return TrainedModel(model=model, config=cfg, history=history, init_used=init_used, val_auc=val_auc,
                        train_seconds=seconds, classes=tuple(train.classes), best_epoch=best_epoch,
                        meta={"device": str(dev), "n_train": len(train.labels), "n_val": len(val.labels),
                              "torch": torch.__version__, "model_meta": meta})


# --------------------------------------------------------------------------- cache
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
    atomic_write(pt, lambda p: torch.save({"state_dict": state, "code_version": CODE_VERSION}, p))
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
    model = _build_model(cfg, len(record["classes"]), init="scratch")
    blob = torch.load(pt, map_location="cpu", weights_only=True)
    model.load_state_dict(blob["state_dict"], strict=True)
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
