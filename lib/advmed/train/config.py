"""What decides a trained model's weights: :class:`TrainConfig`, hashed into the checkpoint key."""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from .adversarial import AdversarialConfig

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
        adversarial: None (clean training) or an
            :class:`~advmed.train.adversarial.AdversarialConfig` (a method name such as
            ``"adversarialmed"`` or its ``to_dict()`` is converted): adversarial or noise
            training. Left out of :meth:`key` when None, so clean configs keep their keys.
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
    adversarial: AdversarialConfig | None = None

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
        object.__setattr__(self, "adversarial", _as_adversarial(self.adversarial))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def key(self) -> str:
        """16 hex digits of the SHA-256 of the full config and :data:`CODE_VERSION`.

        ``adversarial`` enters the hash only when set: a clean config hashes exactly as it
        did before the field existed, so existing checkpoints keep their keys.
        """
        fields = self.to_dict()
        if fields["adversarial"] is None:
            del fields["adversarial"]
        blob = json.dumps({"code_version": CODE_VERSION, **fields}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def label(self) -> str:
        """Short human-readable name, e.g. ``pneumonia_cxr/resnet18 (scratch, 64 px)``."""
        adv = "" if self.adversarial is None else f", {self.adversarial.label()}"
        return f"{self.task}/{self.arch} ({self.init}, {self.size} px{adv})"


def _as_adversarial(value: Any) -> AdversarialConfig | None:
    """None, an AdversarialConfig, a method name, or an AdversarialConfig's ``to_dict()``."""
    if value is None or isinstance(value, AdversarialConfig):
        return value
    if isinstance(value, str):
        return AdversarialConfig(value)
    if isinstance(value, dict):
        return AdversarialConfig(**value)
    raise TypeError(f"adversarial must be None, an AdversarialConfig, a method name or a dict, got "
                    f"{type(value).__name__}")


def _flip_safe(task: str) -> bool:
    from ..data.tasks import TASKS

    t = TASKS.get(task)
    return t is not None and t.dataset in FLIP_SAFE_DATASETS
