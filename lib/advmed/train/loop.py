"""The training loop: one :class:`~advmed.train.config.TrainConfig` and two image sets in,
the best epoch's weights out (see :mod:`advmed.train` for the choices it makes and why).

Adversarial training (``cfg.adversarial`` with an attack method: "adversarialmed", "pgd",
"fast_fgsm"; not "gaussian") differs from clean training in two places:

- Batch norm: the clean recalibration after each epoch is **skipped**. The running statistics
  are the ones the train-mode forwards of the objective accumulate (momentum 0.1): those of
  the adversarial batches, and of the clean ones too where the loss has a clean term
  (AdversarialMed), as in Madry et al.'s and Wong et al.'s training code. Recalibrated on clean
  images, a model trained on adversarial batches would be evaluated with statistics of inputs
  it was not trained on. Noise training ("gaussian") keeps the recalibration, on noisy images
  (the model is wrapped in ``NoisyInput``).
- Model selection: every epoch also measures robust accuracy on a fixed stratified subset of
  ``robust_val_images`` validation images under PGD-10 at the training eps (step
  ``2.5 eps / 10``, a random start seeded by ``cfg.seed``, every step run): history columns
  ``val_robust_accuracy`` and ``val_robust_bal_acc``. The kept epoch and early stopping
  (``patience``) go by robust balanced accuracy (the mean per-class recall, so that a model
  predicting the majority class for every image, robust by default, does not win on an
  imbalanced split), ties broken by the clean score. Fast FGSM also stops when robust
  balanced accuracy falls more than :data:`~advmed.train.config.CATASTROPHIC_OVERFITTING_DROP`
  below its best (catastrophic overfitting, Wong, Rice & Kolter 2020), keeping the best epoch.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ..attacks import pgd
from ..data.splits import stratified_subset
from ..device import autocast, default_device, resident
from ..metrics import roc_auc
from ..models.inference import predict_proba
from .adversarial import BatchObjective, NoisyInput, TrainingCost, clean_objective, make_objective
from .config import (
    BN_RECALIBRATION_IMAGES,
    CATASTROPHIC_OVERFITTING_DROP,
    ROBUST_VAL_STEPS,
    WARMUP_FRACTION,
    TrainConfig,
)


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


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """The config's optimizer over the model's trainable parameters (weight decay on weight
    matrices and kernels only). Adam's ``weight_decay`` is the classic L2 penalty (as Keras
    and PyTorch's Adam apply it), AdamW's the decoupled one."""
    groups = _param_groups(model, cfg.weight_decay)
    if cfg.optimizer in ("adam", "adamw"):
        cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
        return cls(groups, lr=cfg.lr, **_fused(groups))
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum)


def _fused(groups: list[dict[str, Any]]) -> dict[str, bool]:
    """``fused=True`` where every parameter is a floating tensor on the CPU or a GPU: one
    kernel a step instead of a chain of whole-tensor temporaries (the default on the CPU),
    the same update. VGG-16's 138 M parameters took 2-3 s a step on the CPU, 0.2 s fused."""
    params = [p for g in groups for p in g["params"]]
    ok = bool(params) and all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)
    return {"fused": True} if ok and len({p.device for p in params}) == 1 else {}


def _constant_lr(step: int) -> float:
    return 1.0


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
    y = torch.as_tensor(val.labels).long().numpy()
    p = predict_proba(model, val.images, batch_size=max(batch_size, 256), device=device)
    eps = 1e-12
    loss = float(-np.log(p[np.arange(len(y)), y] + eps).mean())
    pred = p.argmax(1)
    return {"val_loss": loss, "val_acc": float(np.mean(pred == y)),
            "val_bal_acc": _balanced_accuracy(pred, y), "val_auc": roc_auc(y, p)}


def _balanced_accuracy(pred: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean([np.mean(pred[y == c] == c) for c in np.unique(y)]))


@dataclass
class _RobustVal:
    """The fixed validation subset robust accuracy is measured on, and the attack's budget."""

    images: torch.Tensor  # float in [0, 1], on the device
    labels: torch.Tensor
    eps: float
    seed: int
    batch_size: int


def _robust_val_setup(val: Any, cfg: TrainConfig, dev: torch.device) -> _RobustVal | None:
    """None unless ``cfg`` trains adversarially (an attack method, not noise) and selects its
    epoch on robust accuracy (``robust_val_images`` > 0)."""
    adv = cfg.adversarial
    if adv is None or not adv.crafts_examples or adv.robust_val_images == 0:
        return None
    y = torch.as_tensor(val.labels).long()
    idx = torch.as_tensor(stratified_subset(y.numpy(), int(adv.robust_val_images), seed=cfg.seed))
    x = torch.as_tensor(val.images)[idx].to(dev).float().div_(255)
    return _RobustVal(x, y[idx].to(dev), float(adv.eps), cfg.seed, cfg.batch_size)


def _robust_val_scores(model: nn.Module, rv: _RobustVal) -> dict[str, float]:
    """Accuracy and balanced accuracy of the eval-mode ``model`` under PGD-10 (step
    ``2.5 eps / 10``, seeded random start, every step run: ``early_stop=False``) on ``rv``."""
    x_adv = pgd(model, rv.images, rv.labels, eps=rv.eps, steps=ROBUST_VAL_STEPS,
                step_size=2.5 * rv.eps / ROBUST_VAL_STEPS, random_start=True, seed=rv.seed,
                batch_size=rv.batch_size, progress=False, early_stop=False)
    with torch.no_grad():
        pred = torch.cat([model(x_adv[s:s + rv.batch_size]).argmax(1)
                          for s in range(0, len(x_adv), rv.batch_size)]).cpu().numpy()
    y = rv.labels.cpu().numpy()
    return {"val_robust_accuracy": float(np.mean(pred == y)), "val_robust_bal_acc": _balanced_accuracy(pred, y)}


@dataclass
class _Setup:
    """What one training run holds fixed across epochs."""

    device: torch.device
    images: torch.Tensor  # uint8 (N, C, H, W): on the GPU once (advmed.device.resident), or the CPU
    labels: torch.Tensor  # on the images' device
    generator: torch.Generator  # batch order and augmentation
    bn_images: torch.Tensor
    loss_fn: nn.Module
    sample_p: torch.Tensor | None
    batch_size: int
    steps: int
    opt: torch.optim.Optimizer
    sched: Any
    scaler: Any


def _setup(model: nn.Module, train: Any, cfg: TrainConfig, dev: torch.device) -> _Setup:
    x_all = torch.as_tensor(train.images)
    y_all = torch.as_tensor(train.labels).long()
    n = len(y_all)
    if n < 2:
        raise ValueError(f"need at least 2 training images, got {n}")
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    # random order: splits are often stored class by class, and batches of one class
    # would understate the variance that batch norm should divide by
    bn_rows = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.seed + 2))[:BN_RECALIBRATION_IMAGES]
    model.to(dev)
    weights = class_weights(y_all, len(train.classes))
    loss_fn = nn.CrossEntropyLoss(weight=weights.to(dev) if cfg.balance == "weighted_loss" else None)
    # the images go to the GPU once (uint8), not batch by batch; batches are indexed and
    # converted to float there
    x_dev = resident(x_all, dev)
    bn_images = x_dev[bn_rows.to(x_dev.device)]
    bs = min(cfg.batch_size, n)
    # batch norm cannot train on a batch of one, so a last batch of one is dropped
    steps = n // bs + (1 if n % bs > 1 else 0)
    opt = make_optimizer(model, cfg)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, _lr_lambda(steps * cfg.epochs) if cfg.schedule == "cosine" else _constant_lr)
    use_fp16_scaler = dev.type == "cuda" and not torch.cuda.is_bf16_supported()
    return _Setup(dev, x_dev, y_all.to(x_dev.device), gen, bn_images, loss_fn,
                  weights[y_all].double() if cfg.balance == "sampler" else None, bs, steps, opt, sched,
                  torch.amp.GradScaler("cuda", enabled=use_fp16_scaler))


def _train_epoch(model: nn.Module, run: _Setup, cfg: TrainConfig, epoch: int, objective: BatchObjective,
                 progress: bool) -> dict[str, Any]:
    """One pass over the training images; returns the epoch's loss, accuracy and lr."""
    model.train()
    n, dev, bs = len(run.labels), run.device, run.batch_size
    if run.sample_p is not None:
        order = torch.multinomial(run.sample_p, n, replacement=True, generator=run.generator)
    else:
        order = torch.randperm(n, generator=run.generator)
    order = order.to(run.images.device)  # one copy per epoch, of indices only
    total_loss, correct, seen = 0.0, 0, 0
    for s in tqdm(range(run.steps), desc=f"epoch {epoch}", leave=False, disable=not progress):
        idx = order[s * bs:(s + 1) * bs]
        xb = run.images[idx].to(dev, non_blocking=True).float().div_(255)
        yb = run.labels[idx].to(dev, non_blocking=True)
        if cfg.augment:
            xb = augment_batch(xb, run.generator, translate=cfg.translate, hflip=bool(cfg.hflip))
        with autocast(dev):
            loss, logits = objective(model, xb, yb, run.loss_fn)
        run.opt.zero_grad(set_to_none=True)
        run.scaler.scale(loss).backward()
        run.scaler.step(run.opt)
        run.scaler.update()
        run.sched.step()
        total_loss += loss.item() * len(idx)
        correct += int((logits.argmax(1) == yb).sum())
        seen += len(idx)
    return {"epoch": epoch, "train_loss": total_loss / seen, "train_acc": correct / seen,
            "lr": run.opt.param_groups[0]["lr"]}


def fit(model: nn.Module, train: Any, val: Any, cfg: TrainConfig, *,
        device: torch.device | str | None = None, objective: BatchObjective = clean_objective,
        progress: bool = True) -> tuple[nn.Module, pd.DataFrame, int, float]:
    """Train ``model`` in place on ``train``, stop early on ``val``; keep the best epoch.

    ``train`` and ``val`` need ``images`` (uint8 ``(N, C, H, W)``), ``labels`` (int64) and
    ``classes`` (an ``advmed.data.ImageSet`` or any object with those). ``objective``
    computes each batch's loss (:func:`clean_objective` by default). Returns
    ``(model, history, best_epoch, best_val_auc)`` with the model in eval mode.

    ``history`` has one row per epoch: ``train_loss`` (the objective, class-weighted by
    default, on augmented images) and ``train_acc`` (running, during the epoch),
    ``lr`` (at the epoch's end), ``val_loss`` (plain cross-entropy), ``val_acc``,
    ``val_bal_acc``, ``val_auc``, ``seconds`` (wall time of the epoch) and ``best``; for
    adversarial training also ``val_robust_accuracy`` and ``val_robust_bal_acc`` (see the
    module docstring: they choose the kept epoch, and batch norm is not recalibrated).
    """
    dev = torch.device(device) if device is not None else default_device()
    run = _setup(model, train, cfg, dev)
    robust = _robust_val_setup(val, cfg, dev)
    guard = robust is not None and cfg.adversarial.method == "fast_fgsm"
    rows: list[dict[str, Any]] = []
    best_score: tuple[float, ...] = (-math.inf,) * (1 if robust is None else 2)
    best_epoch, best_auc, best_state, stale = 0, float("nan"), None, 0
    bar = tqdm(range(1, cfg.epochs + 1), desc=cfg.label(), unit="epoch", disable=not progress)
    for epoch in bar:
        t0 = time.perf_counter()
        row = _train_epoch(model, run, cfg, epoch, objective, progress)
        if cfg.adversarial is None or not cfg.adversarial.crafts_examples:
            recalibrate_bn(model, run.bn_images, dev, batch_size=max(run.batch_size, 256))
        else:  # the running statistics of the batches it trained on (module docstring)
            model.eval()
        row.update(_val_scores(model, val, dev, cfg.batch_size))
        if robust is not None:
            row.update(_robust_val_scores(model, robust))
        row["seconds"] = time.perf_counter() - t0
        rows.append(row)
        # AUC decides; where it is undefined (a class missing from val) balanced accuracy does
        clean_score = row["val_auc"] if np.isfinite(row["val_auc"]) else row["val_bal_acc"]
        score = (clean_score,) if robust is None else (row["val_robust_bal_acc"], clean_score)
        if score > best_score:
            best_score, best_epoch, best_auc, stale = score, epoch, row["val_auc"], 0
            # after the last epoch the model itself holds the best weights: no copy (VGG-16's
            # 0.5 GB took seconds on a CPU, and a one-epoch run copied it for nothing)
            best_state = (None if epoch == cfg.epochs else
                          {name: t.detach().to("cpu", copy=True) for name, t in model.state_dict().items()})
        else:
            stale += 1
        shown = {} if robust is None else {"robust_bal_acc": f"{row['val_robust_bal_acc']:.3f}"}
        bar.set_postfix(loss=f"{row['train_loss']:.3f}", val_auc=f"{row['val_auc']:.3f}", **shown, best=best_epoch)
        if stale >= cfg.patience:
            break
        if guard and best_score[0] - row["val_robust_bal_acc"] > CATASTROPHIC_OVERFITTING_DROP:
            break  # catastrophic overfitting: robust accuracy collapsed; the best epoch is kept
    if best_state is not None and best_epoch != rows[-1]["epoch"]:
        model.load_state_dict(best_state)
    model.eval()
    history = pd.DataFrame(rows)
    history["best"] = history["epoch"] == best_epoch
    return model, history, best_epoch, float(best_auc)


class FitResult(NamedTuple):
    """What :func:`fit_robust` returns: the best epoch's model (eval mode), the per-epoch
    history, the best epoch, its validation AUC and the robust objective's cost (None: clean)."""

    model: nn.Module
    history: pd.DataFrame
    best_epoch: int
    val_auc: float
    cost: TrainingCost | None


def fit_robust(model: nn.Module, train: Any, val: Any, cfg: Any, *, device: torch.device | str | None = None,
               progress: bool = True) -> FitResult:
    """:func:`advmed.train.fit` with the objective ``cfg.adversarial`` asks for (clean if None).

    For "gaussian" the model is trained inside a :class:`~advmed.train.adversarial.NoisyInput` (validation AUC and
    batch-norm statistics then refer to noisy images) and returned without it.

    Returns:
        a :class:`FitResult`; its ``cost`` is the :class:`~advmed.train.adversarial.TrainingCost`
        (None for clean training).
    """
    adv = cfg.adversarial
    objective = make_objective(adv, seed=cfg.seed)
    net = NoisyInput(model, adv.sigma) if adv is not None and adv.method == "gaussian" else model
    net, history, best_epoch, auc = fit(net, train, val, cfg, device=device, objective=objective, progress=progress)
    base = net.model if isinstance(net, NoisyInput) else net
    return FitResult(base.eval(), history, best_epoch, auc, getattr(objective, "cost", None))
