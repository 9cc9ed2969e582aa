"""Robust training objectives for :func:`advmed.train.fit`: adversarial training and noise.

Each objective is a :data:`~advmed.train.loop.BatchObjective`,
``objective(model, xb, yb, loss_fn) -> (loss, logits)``, chosen from an
:class:`AdversarialConfig` (``TrainConfig(adversarial=...)``, so an adversarially trained
model is cached like any other). Methods:

- ``"adversarialmed"``: AdversarialMed (CSC2516, 2019): ``0.7 * L(x) + 0.3 * L(x_adv)`` with
  I-FGSM (Kurakin et al. 2017) examples, eps 0.02 and step 0.005 in their
  ImageNet-normalised units, 10 iterations. In [0, 1] pixel units with the mean ImageNet
  std 0.226: eps = 0.02 x 0.226 = 0.00452 (1.15/255), step = 0.005 x 0.226 = 0.00113.
- ``"pgd"``: PGD adversarial training (Madry, Makelov, Schmidt, Tsipras & Vladu, ICLR 2018):
  ``L(x_adv)`` only, PGD from a random start, step ``2.5 eps / steps``.
- ``"fast_fgsm"``: "fast is better than free" (Wong, Rice & Kolter, ICLR 2020): one FGSM step
  of ``1.25 eps`` from a uniform random start in the eps-ball, ``L(x_adv)`` only.
- ``"gaussian"``: Gaussian noise augmentation ``L(x + sigma e)`` (Cohen, Rosenfeld & Kolter
  2019), the base classifier of :mod:`advmed.defenses.smoothing`. The noise is a layer in
  front of the model during training (:class:`NoisyInput`, put there by :func:`fit_robust`),
  so the loop's batch-norm recalibration and its validation (which chooses the kept epoch)
  also see noisy images: recalibrated on clean images, a noise-trained small CNN predicted
  one class for 99 % of noisy copies (smoothed accuracy 0.38 against 0.83 clean).

What every adversarial objective does, and the original AdversarialMed code did not: the
examples are crafted with the **true** labels, with the model in **eval** mode (batch-norm
statistics untouched, dropout off, parameter gradients off: the attacks run under
:func:`advmed.attacks.frozen_eval`), and train mode is restored before the weight update;
the attacks are :func:`advmed.attacks.ifgsm` / :func:`advmed.attacks.pgd` themselves.
Crafting uses the attack's plain cross-entropy; the weight update uses the loop's
(class-weighted by default) ``loss_fn``.

Costs are counted in :class:`TrainingCost` (``objective.cost``; ``train_model`` stores it in
the checkpoint's side-car as ``meta["training_cost"]``): wall time of crafting and of the
whole objective, and gradient evaluations (forward-backward passes over a batch).

Example:
    >>> from advmed.train import TrainConfig
    >>> from advmed.train.adversarial import AdversarialConfig
    >>> cfg = TrainConfig("pneumoniamnist", "small_cnn", size=28, adversarial=AdversarialConfig("adversarialmed"))
    >>> round(cfg.adversarial.eps, 5), round(cfg.adversarial.step_size, 5), cfg.adversarial.steps
    (0.00452, 0.00113, 10)
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..attacks import ifgsm, pgd
from ..attacks.checks import check_eps

__all__ = [
    "ADVERSARIALMED_EPS",
    "ADVERSARIALMED_STEP",
    "ADVERSARIAL_METHODS",
    "AdversarialConfig",
    "AdversarialObjective",
    "GaussianNoise",
    "NoisyInput",
    "TrainingCost",
    "fit_robust",
    "make_objective",
]

ADVERSARIAL_METHODS = ("adversarialmed", "pgd", "fast_fgsm", "gaussian")
#: AdversarialMed's eps 0.02 and step 0.005 (ImageNet-normalised) times the mean ImageNet std 0.226.
IMAGENET_MEAN_STD = 0.226
ADVERSARIALMED_EPS = 0.02 * IMAGENET_MEAN_STD
ADVERSARIALMED_STEP = 0.005 * IMAGENET_MEAN_STD
#: Default budget of "pgd" and "fast_fgsm" in [0, 1] pixel units (pass eps to choose another).
DEFAULT_EPS = 2 / 255
DEFAULT_SIGMA = 0.25


def _method_defaults(method: str, eps: float | None) -> dict[str, Any]:
    """The published settings of each method; ``eps`` (if given) decides the derived step."""
    if method == "adversarialmed":
        return dict(eps=ADVERSARIALMED_EPS, steps=10, step_size=ADVERSARIALMED_STEP, clean_weight=0.7,
                    random_start=False, sigma=None)
    e = DEFAULT_EPS if eps is None else float(eps)
    if method == "pgd":
        return dict(eps=e, steps=10, step_size=2.5 * e / 10, clean_weight=0.0, random_start=True, sigma=None)
    if method == "fast_fgsm":
        return dict(eps=e, steps=1, step_size=1.25 * e, clean_weight=0.0, random_start=True, sigma=None)
    return dict(eps=None, steps=None, step_size=None, clean_weight=0.0, random_start=None, sigma=DEFAULT_SIGMA)


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
    """

    method: str
    eps: float | None = None
    steps: int | None = None
    step_size: float | None = None
    clean_weight: float | None = None
    random_start: bool | None = None
    sigma: float | None = None

    def __post_init__(self) -> None:
        if self.method not in ADVERSARIAL_METHODS:
            raise ValueError(f"unknown adversarial training method {self.method!r}; valid: "
                             f"{', '.join(ADVERSARIAL_METHODS)}")
        d = _method_defaults(self.method, self.eps)
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
        if not (isinstance(self.clean_weight, (int, float)) and 0 <= self.clean_weight < 1):
            raise ValueError(f"clean_weight must be in [0, 1) (1 would be clean training), got {self.clean_weight!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def label(self) -> str:
        """E.g. ``adversarialmed (eps 1.15/255)`` or ``gaussian (sigma 0.25)``."""
        if self.method == "gaussian":
            return f"gaussian (sigma {self.sigma:g})"
        return f"{self.method} (eps {self.eps * 255:.3g}/255, {self.steps} steps)"


@dataclass
class TrainingCost:
    """What robust training spent, summed over every batch of every epoch.

    ``crafting_passes``: batch forward-backward passes to craft examples (one per attack
    step); ``crafting_gradients``: the same counted per image (steps x batch size);
    ``training_passes``: batch forward passes back-propagated to the weights (2 when the
    clean and the adversarial batch both enter the loss); ``crafting_seconds`` and
    ``objective_seconds``: wall time of crafting and of the whole objective (the optimiser
    step is outside it). A clean epoch has ``training_passes = batches``, ``crafting_passes = 0``.
    """

    batches: int = 0
    images: int = 0
    crafting_passes: int = 0
    crafting_gradients: int = 0
    training_passes: int = 0
    crafting_seconds: float = 0.0
    objective_seconds: float = 0.0

    @property
    def gradient_evaluations(self) -> int:
        """Batch forward-backward passes in all: crafting plus the weight updates."""
        return self.crafting_passes + self.training_passes

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "gradient_evaluations": self.gradient_evaluations}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class AdversarialObjective:
    """The batch objective of an :class:`AdversarialConfig` (see the module docstring).

    Args:
        config: the method and its settings.
        seed: seeds the random starts / noise: the ``t``-th crafted batch (t = 0, 1, ...) uses
            ``seed * 1_000_003 + t``, so a run is reproducible and no two batches share a
            random start.
    """

    def __init__(self, config: AdversarialConfig, *, seed: int = 0):
        if not isinstance(config, AdversarialConfig):
            raise TypeError(f"config must be an AdversarialConfig, got {type(config).__name__}")
        self.config, self.seed = config, int(seed)
        self.cost = TrainingCost()
        self._batch = 0

    def _batch_seed(self) -> int:
        """A new seed per crafted batch: the t-th call of :meth:`craft` uses ``seed * 1_000_003 + t``."""
        seed = self.seed * 1_000_003 + self._batch
        self._batch += 1
        return seed

    def craft(self, model: nn.Module, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        """Adversarial versions of ``xb`` for true labels ``yb``; leaves the model's mode,
        parameter flags and batch-norm statistics as they were. For "gaussian", ``xb`` itself
        (the :class:`NoisyInput` layer of the model adds the noise)."""
        cfg, was_training = self.config, model.training
        if cfg.method == "gaussian":
            if not isinstance(model, NoisyInput):
                raise TypeError("method 'gaussian' adds its noise in a NoisyInput layer in front of the model, so "
                                "that batch-norm recalibration and validation see noisy images too: train with "
                                "advmed.train.adversarial.fit_robust or advmed.train.train_model")
            return xb
        _sync(xb.device)
        t0 = time.perf_counter()
        try:
            if cfg.random_start:
                x_adv = pgd(model, xb, yb, eps=cfg.eps, steps=cfg.steps, step_size=cfg.step_size,
                            random_start=True, seed=self._batch_seed(), progress=False)
            else:
                x_adv = ifgsm(model, xb, yb, eps=cfg.eps, steps=cfg.steps, step_size=cfg.step_size, progress=False)
            self.cost.crafting_passes += cfg.steps
            self.cost.crafting_gradients += cfg.steps * xb.shape[0]
            return x_adv.detach()
        finally:
            model.train(was_training)  # frozen_eval restores it too; the objective must not depend on that
            _sync(xb.device)
            self.cost.crafting_seconds += time.perf_counter() - t0

    def __call__(self, model: nn.Module, xb: torch.Tensor, yb: torch.Tensor,
                 loss_fn: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
        t0 = time.perf_counter()
        x_adv = self.craft(model, xb, yb)
        logits_adv = model(x_adv)
        loss = loss_fn(logits_adv.float(), yb)
        logits, passes = logits_adv, 1
        w = float(self.config.clean_weight)
        if w > 0:
            logits = model(xb)
            loss = w * loss_fn(logits.float(), yb) + (1 - w) * loss
            passes = 2
        self.cost.batches += 1
        self.cost.images += xb.shape[0]
        self.cost.training_passes += passes
        self.cost.objective_seconds += time.perf_counter() - t0
        return loss, logits


class GaussianNoise(nn.Module):
    """``x + sigma * e``, ``e ~ N(0, I)``, in train *and* eval mode (torch's global RNG).

    Pixels may leave [0, 1]: Cohen et al.'s noise is not clipped (the smoothed classifier sees
    the same unclipped noise).
    """

    def __init__(self, sigma: float):
        super().__init__()
        self.sigma = float(sigma)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.sigma * torch.randn_like(x)

    def extra_repr(self) -> str:
        return f"sigma={self.sigma:g}"


class NoisyInput(nn.Module):
    """``model(x + sigma e)``: the training-time wrapper of noise augmentation; ``.model`` is
    the base classifier (what is kept and saved). ``meta`` is the model's."""

    def __init__(self, model: nn.Module, sigma: float):
        super().__init__()
        self.noise, self.model = GaussianNoise(sigma), model
        self.meta = dict(getattr(model, "meta", {}) or {})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(self.noise(x))


def fit_robust(model: nn.Module, train: Any, val: Any, cfg: Any, *, device: torch.device | str | None = None,
               progress: bool = True) -> tuple[nn.Module, Any, int, float, TrainingCost | None]:
    """:func:`advmed.train.fit` with the objective ``cfg.adversarial`` asks for (clean if None).

    For "gaussian" the model is trained inside a :class:`NoisyInput` (validation AUC and
    batch-norm statistics then refer to noisy images) and returned without it.

    Returns:
        ``(model, history, best_epoch, best_val_auc, cost)``: ``cost`` is the
        :class:`TrainingCost` (None for clean training).
    """
    from .loop import fit

    adv = cfg.adversarial
    objective = make_objective(adv, seed=cfg.seed)
    net = NoisyInput(model, adv.sigma) if adv is not None and adv.method == "gaussian" else model
    net, history, best_epoch, auc = fit(net, train, val, cfg, device=device, objective=objective, progress=progress)
    base = net.model if isinstance(net, NoisyInput) else net
    return base.eval(), history, best_epoch, auc, getattr(objective, "cost", None)


def make_objective(config: AdversarialConfig | None, *, seed: int = 0):
    """The batch objective for ``config``: :func:`~advmed.train.loop.clean_objective` for None,
    else an :class:`AdversarialObjective` (which counts its :class:`TrainingCost`)."""
    if config is None:
        from .loop import clean_objective

        return clean_objective
    return AdversarialObjective(config, seed=seed)
