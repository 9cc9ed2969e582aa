"""What decides a trained model's weights: :class:`TrainConfig`, hashed into the checkpoint key."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any

from ..attacks.checks import check_eps

# Bump when a change to this file changes the weights a config produces: every key
# changes with it, so stale checkpoints are never reused.
#: Bump when a change to adversarial training changes its models (keys of adversarial configs
#: only; clean models keep theirs). 2: crafted examples run every step (no early stop).
#: 3: no batch-norm recalibration on clean images; the kept epoch is chosen on robust
#: validation accuracy (fast FGSM also stops on catastrophic overfitting).
ADVERSARIAL_CODE_VERSION = 3
CODE_VERSION = 4  # 3: channels-last layout where it is faster (advmed.models.build); 4: BN on 512 images

BALANCE_MODES = ("weighted_loss", "sampler", "none")
OPTIMIZERS = ("adamw", "adam", "sgd")

# Fields added after checkpoints were first cached, with the value every older config had:
# a field at that value is left out of the key, so adding a field never invalidates the
# checkpoints of configs that do not use it.
KEY_DEFAULTS: dict[str, Any] = {"optimizer": "adamw", "momentum": 0.9, "schedule": "cosine",
                                "exclude_train": None, "net_size": None, "adversarial": None,
                                "warm_start": None}

# Datasets whose images may be mirrored left-right without changing the diagnosis.
# Chest X-rays are not (cardiac laterality); breast ultrasound is left out as untested.
FLIP_SAFE_DATASETS = frozenset({"ham10000", "retinamnist"})

WARMUP_FRACTION = 0.05
# Training images used to recompute batch-norm statistics after each epoch. 512 (two
# batches of 256; each channel's mean and variance pooled over 512 x H x W values): at
# 2,048 the pass covered every one of the cpu profile's 1,200 training images and took
# 5.0 s of a 13 s epoch (MobileNet at 128 px, 2 idle cores), as long as the validation
# pass and half the training steps.
BN_RECALIBRATION_IMAGES = 512


ADVERSARIAL_METHODS = ("adversarialmed", "adversarialmed_fgsm", "pgd", "fast_fgsm", "gaussian")
#: AdversarialMed's eps 0.02 and step 0.005 (ImageNet-normalised) times the mean ImageNet std 0.226.
IMAGENET_MEAN_STD = 0.226
ADVERSARIALMED_EPS = 0.02 * IMAGENET_MEAN_STD
ADVERSARIALMED_STEP = 0.005 * IMAGENET_MEAN_STD
#: Default budget of "pgd" and "fast_fgsm" in [0, 1] pixel units (pass eps to choose another).
DEFAULT_EPS = 2 / 255
DEFAULT_SIGMA = 0.25
#: Model selection of adversarial training: PGD with this many steps (step ``2.5 eps / steps``,
#: a random start, every step run) at the training eps on a fixed stratified subset of
#: ``robust_val_images`` validation images (default below).
ROBUST_VAL_STEPS = 10
ROBUST_VAL_IMAGES = 128
#: Fast FGSM's catastrophic-overfitting guard (Wong, Rice & Kolter 2020): training stops once
#: robust validation accuracy falls more than this below its best (the best epoch is kept).
CATASTROPHIC_OVERFITTING_DROP = 0.2


#: AdversarialConfig fields added after adversarial checkpoints were first cached: left out of
#: the key when None (their value for "gaussian"), so noise-trained configs keep their keys.
ADVERSARIAL_KEY_DEFAULTS = frozenset({"robust_val_images"})


def _method_defaults(method: str, eps: float | None) -> dict[str, Any]:
    """The published settings of each method; ``eps`` (if given) decides the derived step."""
    if method == "adversarialmed":
        return dict(eps=ADVERSARIALMED_EPS, steps=10, step_size=ADVERSARIALMED_STEP, clean_weight=0.7,
                    random_start=False, sigma=None)
    if method == "adversarialmed_fgsm":  # their text's one-step variant: FGSM (one step of eps), same loss
        return dict(eps=ADVERSARIALMED_EPS, steps=1, step_size=ADVERSARIALMED_EPS, clean_weight=0.7,
                    random_start=False, sigma=None)
    e = DEFAULT_EPS if eps is None else float(eps)
    if method == "pgd":
        return dict(eps=e, steps=10, step_size=2.5 * e / 10, clean_weight=0.0, random_start=True, sigma=None)
    if method == "fast_fgsm":
        return dict(eps=e, steps=1, step_size=1.25 * e, clean_weight=0.0, random_start=True, sigma=None)
    return dict(eps=None, steps=None, step_size=None, clean_weight=0.0, random_start=None, sigma=DEFAULT_SIGMA)


def _selection_defaults(method: str) -> dict[str, Any]:
    """Model-selection settings: adversarial methods pick their epoch on robust accuracy over
    :data:`ROBUST_VAL_IMAGES` validation images; noise training on clean validation AUC."""
    return {"robust_val_images": None if method == "gaussian" else ROBUST_VAL_IMAGES}


@dataclass(frozen=True)
class AdversarialConfig:
    """How a model is trained to resist perturbations; fields left None take the method's
    published settings (resolved at construction, so the checkpoint key records them).

    Attributes:
        method: one of :data:`ADVERSARIAL_METHODS`.
        eps: L-inf budget of the training attack in [0, 1] pixel units (AdversarialMed:
            0.00452; "pgd" / "fast_fgsm" default 2/255).
        steps: attack iterations (AdversarialMed 10, PGD 10, fast FGSM 1).
        step_size: in [0, 1] pixel units (AdversarialMed 0.00113; PGD ``2.5 eps / steps``;
            fast FGSM ``1.25 eps``). If ``steps`` is given for "pgd", the step follows it.
        clean_weight: weight of the clean loss, ``w L(x) + (1 - w) L(x_adv)`` (AdversarialMed 0.7,
            others 0).
        random_start: start the attack at a uniform random point of the eps-ball (PGD) or
            at ``x`` (I-FGSM, AdversarialMed).
        sigma: "gaussian" only: noise std in [0, 1] pixel units (default 0.25).
        robust_val_images: adversarial methods only (None for "gaussian"): the kept epoch is
            the one with the best robust balanced accuracy under PGD-:data:`ROBUST_VAL_STEPS`
            at ``eps`` on a fixed stratified subset of this many validation images (default
            :data:`ROBUST_VAL_IMAGES`; all of them if the split is smaller). 0: the epoch with
            the best clean validation AUC, as clean training (for an experiment that compares
            clean generalisation with and without the adversarial loss, whose two arms must be
            selected alike); batch norm is still not recalibrated on clean images. Left out of the
            key when None, so noise-trained configs keep their keys.
    """

    method: str
    eps: float | None = None
    steps: int | None = None
    step_size: float | None = None
    clean_weight: float | None = None
    random_start: bool | None = None
    sigma: float | None = None
    robust_val_images: int | None = None

    def __post_init__(self) -> None:
        if self.method not in ADVERSARIAL_METHODS:
            raise ValueError(f"unknown adversarial training method {self.method!r}; valid: "
                             f"{', '.join(ADVERSARIAL_METHODS)}")
        if self.method == "gaussian" and self.robust_val_images is not None:
            raise ValueError("robust_val_images selects the epoch of adversarial training; method 'gaussian' "
                             "is selected on clean validation AUC")
        d = {**_method_defaults(self.method, self.eps), **_selection_defaults(self.method)}
        if self.method == "pgd" and self.steps is not None and self.step_size is None:
            steps = self.steps
            if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
                raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
            d["step_size"] = 2.5 * d["eps"] / steps
        for name, default in d.items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, default)
        self._check()

    def _check(self) -> None:
        if self.method == "gaussian":
            s = self.sigma
            if isinstance(s, bool) or not isinstance(s, (int, float)) or not math.isfinite(s) or s <= 0:
                raise ValueError(f"sigma must be a finite number > 0 in [0, 1] pixel units, got {s!r}")
            if any(getattr(self, f) is not None for f in ("eps", "steps", "step_size", "random_start")):
                raise ValueError("method 'gaussian' takes sigma only (no eps, steps, step_size, random_start)")
        else:
            if check_eps(self.eps) == 0:
                raise ValueError("eps must be > 0 for adversarial training (eps = 0 is clean training)")
            if isinstance(self.steps, bool) or int(self.steps) != self.steps or self.steps < 1:
                raise ValueError(f"steps must be an integer >= 1, got {self.steps!r}")
            if not (math.isfinite(self.step_size) and self.step_size > 0):
                raise ValueError(f"step_size must be a finite number > 0 in [0, 1] pixel units, got {self.step_size}")
            if self.sigma is not None:
                raise ValueError(f"sigma belongs to method 'gaussian', not {self.method!r}")
            if not isinstance(self.random_start, bool):
                raise TypeError(f"random_start must be True or False, got {self.random_start!r}")
            r = self.robust_val_images
            if isinstance(r, bool) or not isinstance(r, int) or r < 0:
                raise ValueError(f"robust_val_images must be an integer >= 1 (or 0: keep the epoch with the best "
                                 f"clean validation AUC), got {r!r}")
        if not (isinstance(self.clean_weight, (int, float)) and 0 <= self.clean_weight < 1):
            raise ValueError(f"clean_weight must be in [0, 1) (1 would be clean training), got {self.clean_weight!r}")

    @property
    def crafts_examples(self) -> bool:
        """True for the adversarial methods (examples crafted by an attack; batch norm not
        recalibrated on clean images; epoch chosen on robust accuracy), False for noise."""
        return self.method != "gaussian"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def key_dict(self) -> dict[str, Any]:
        """:meth:`to_dict` without the fields added later that are at their old value (None):
        what :meth:`TrainConfig.key` hashes, so a noise config hashes as it did before."""
        return {k: v for k, v in self.to_dict().items() if not (k in ADVERSARIAL_KEY_DEFAULTS and v is None)}

    def label(self) -> str:
        """E.g. ``adversarialmed (eps 1.15/255)`` or ``gaussian (sigma 0.25)``."""
        if self.method == "gaussian":
            return f"gaussian (sigma {self.sigma:g})"
        return f"{self.method} (eps {self.eps * 255:.3g}/255, {self.steps} steps)"


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
        optimizer: ``"adamw"`` (Loshchilov & Hutter 2019; decoupled weight decay, the
            default), ``"adam"`` (Kingma & Ba 2015; AdversarialMed fine-tuned with Adam at
            1e-4) or ``"sgd"`` (with ``momentum``; Hirano et al. fine-tuned with SGD).
        momentum: SGD momentum (ignored by Adam and AdamW).
        schedule: ``"cosine"`` (linear warm-up over 5 % of the steps, then cosine decay to
            zero) or ``"constant"`` (the studies' fixed learning rate).
        max_train, max_val: seeded stratified subsets of the splits (None: all).
        seed: seeds model initialisation, batch order, augmentation and subsets.
        balance: ``"weighted_loss"`` (default), ``"sampler"`` or ``"none"``.
        augment: random translation (and flips where allowed) during training.
        translate: largest shift as a fraction of the side (0.0625: 2 px at 32 px).
        hflip: random horizontal flips; None resolves from the task (never for chest X-rays).
        exclude_train: ``(limit, seed)`` of another model's training subset (its ``max_train``
            and ``seed``) that this model must never see: those training images, and every
            image of their patients / lesions where the data has groups, are left out before
            ``max_train`` is drawn (:func:`advmed.data.splits.disjoint_subset`). None: no
            exclusion. A black-box attacker's surrogate trained on data disjoint from the
            target's. The validation split (early stopping) is not affected.
        net_size: the side the network runs at, when it differs from ``size``: the model
            resizes its input inside (``advmed.models.build_model(net_size=...)``; Inception
            v3 at 299 px on 224 px images). None: the network runs at ``size``.
        adversarial: None (clean training) or an
            :class:`AdversarialConfig` (a method name such as
            ``"adversarialmed"`` or its ``to_dict()`` is converted): adversarial or noise
            training. Left out of :meth:`key` when None, so clean configs keep their keys.
        warm_start: None (start from ``init``) or the :class:`TrainConfig` of a model of the
            same network and task whose trained weights this one starts from (fine-tuning;
            trained first through the checkpoint cache when absent). Adversarial training
            starts from the clean model of the same recipe, as AdversarialMed started theirs
            from a trained chest X-ray network (CheXNet) rather than from ImageNet: from
            ImageNet, robust model selection keeps a first epoch that predicts one class
            (see ``advmed.train.adversarial``). Hashed by the source's key; a dict (a
            side-car's ``to_dict()``) is converted.
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
    optimizer: str = "adamw"
    momentum: float = 0.9
    schedule: str = "cosine"
    exclude_train: tuple[int, int] | None = None
    net_size: int | None = None
    adversarial: AdversarialConfig | None = None
    warm_start: TrainConfig | None = None

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; valid: {', '.join(OPTIMIZERS)}")
        if self.schedule not in ("cosine", "constant"):
            raise ValueError(f"unknown schedule {self.schedule!r}; valid: cosine, constant")
        if self.balance not in BALANCE_MODES:
            raise ValueError(f"unknown balance {self.balance!r}; valid: {', '.join(BALANCE_MODES)}")
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {self.channels}")
        for name in ("size", "epochs", "batch_size", "patience"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.net_size is not None and (int(self.net_size) != self.net_size or int(self.net_size) < 1):
            raise ValueError(f"net_size must be a positive number of pixels or None, got {self.net_size!r}")
        if not 0 <= self.translate < 0.5:
            raise ValueError(f"translate is a fraction of the side in [0, 0.5), got {self.translate}")
        if self.exclude_train is not None:
            ex = tuple(self.exclude_train)  # a JSON round trip gives a list
            if len(ex) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in ex) or ex[0] < 1:
                raise ValueError(f"exclude_train is (limit, seed) of the excluded model's training subset, two "
                                 f"ints with limit >= 1, got {self.exclude_train!r}")
            object.__setattr__(self, "exclude_train", ex)
        if self.hflip is None:  # resolve now, so that the key records what is done
            object.__setattr__(self, "hflip", _flip_safe(self.task))
        object.__setattr__(self, "adversarial", _as_adversarial(self.adversarial))
        object.__setattr__(self, "warm_start", _as_warm_start(self.warm_start, self))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def key(self) -> str:
        """16 hex digits of the SHA-256 of the full config and :data:`CODE_VERSION`.

        Fields at their :data:`KEY_DEFAULTS` (``adversarial`` None among them) are left out:
        a config hashes exactly as it did before those fields existed, so existing
        checkpoints keep their keys; so are the adversarial config's later fields at None
        (:meth:`AdversarialConfig.key_dict`). Adversarially trained configs (not noise) also
        hash :data:`ADVERSARIAL_CODE_VERSION`.
        """
        fields = {k: v for k, v in self.to_dict().items() if not (k in KEY_DEFAULTS and v == KEY_DEFAULTS[k])}
        if self.warm_start is not None:
            fields["warm_start"] = self.warm_start.key()
        if self.adversarial is not None:
            fields["adversarial"] = self.adversarial.key_dict()
            if self.adversarial.crafts_examples:
                fields["adversarial_code_version"] = ADVERSARIAL_CODE_VERSION
        blob = json.dumps({"code_version": CODE_VERSION, **fields}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def label(self) -> str:
        """Short human-readable name, e.g. ``pneumonia_cxr/resnet18 (scratch, 64 px)``."""
        net = f" -> {self.net_size} px" if self.net_size not in (None, self.size) else ""
        adv = "" if self.adversarial is None else f", {self.adversarial.label()}"
        warm = "" if self.warm_start is None else ", fine-tuned"
        return f"{self.task}/{self.arch} ({self.init}, {self.size} px{net}{adv}{warm})"


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


#: What a warm start must share with the model it fine-tunes: the same network on the same images.
WARM_START_SAME = ("task", "arch", "size", "channels", "net_size")


def _as_warm_start(value: Any, cfg: TrainConfig) -> TrainConfig | None:
    """None, a TrainConfig or its ``to_dict()``, checked to be the same network and task as ``cfg``."""
    if value is None:
        return None
    if isinstance(value, dict):
        value = TrainConfig(**value)
    if not isinstance(value, TrainConfig):
        raise TypeError(f"warm_start must be None or the TrainConfig of the model to start from, got "
                        f"{type(value).__name__}")
    differ = [f for f in WARM_START_SAME if getattr(value, f) != getattr(cfg, f)]
    if differ:
        raise ValueError(f"warm_start must be the same network on the same task; it differs in "
                         f"{', '.join(differ)} ({', '.join(f'{f}={getattr(value, f)!r}' for f in differ)})")
    return value


def _flip_safe(task: str) -> bool:
    from ..data.tasks import TASKS

    t = TASKS.get(task)
    return t is not None and t.dataset in FLIP_SAFE_DATASETS
