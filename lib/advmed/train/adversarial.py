"""Robust training objectives for :func:`advmed.train.fit`: adversarial training and noise.

Each objective is a :data:`BatchObjective`,
``objective(model, xb, yb, loss_fn) -> (loss, logits)``, chosen from an
:class:`AdversarialConfig` (``TrainConfig(adversarial=...)``, so an adversarially trained
model is cached like any other). Methods:

- ``"adversarialmed"``: AdversarialMed (CSC2516, 2019): ``0.7 * L(x) + 0.3 * L(x_adv)`` with
  I-FGSM (Kurakin et al. 2017) examples, eps 0.02 and step 0.005 in their
  ImageNet-normalised units, 10 iterations. In [0, 1] pixel units with the mean ImageNet
  std 0.226: eps = 0.02 x 0.226 = 0.00452 (1.15/255), step = 0.005 x 0.226 = 0.00113.
- ``"adversarialmed_fgsm"``: the one-step variant AdversarialMed's text names ("even with a
  one-step adversarial method (FGSM)"): the same ``0.7 / 0.3`` loss and eps, one FGSM step of
  size eps from ``x``.
- ``"pgd"``: PGD adversarial training (Madry, Makelov, Schmidt, Tsipras & Vladu, ICLR 2018):
  ``L(x_adv)`` only, PGD from a random start, step ``2.5 eps / steps``.
- ``"fast_fgsm"``: "fast is better than free" (Wong, Rice & Kolter, ICLR 2020): one FGSM step
  of ``1.25 eps`` from a uniform random start in the eps-ball, ``L(x_adv)`` only.
- ``"gaussian"``: Gaussian noise augmentation ``L(x + sigma e)`` (Cohen, Rosenfeld & Kolter
  2019), the base classifier of :mod:`advmed.defenses.smoothing`. The noise is a layer in
  front of the model during training (:class:`NoisyInput`, put there by
:func:`advmed.train.loop.fit_robust`),
  so the loop's batch-norm recalibration and its validation (which chooses the kept epoch)
  also see noisy images: recalibrated on clean images, a noise-trained small CNN predicted
  one class for 99 % of noisy copies (smoothed accuracy 0.38 against 0.83 clean).

What every adversarial objective does, and the original AdversarialMed code did not: the
examples are crafted with the **true** labels, with the model in **eval** mode (batch-norm
statistics untouched, dropout off, parameter gradients off: the attacks run under
:func:`advmed.attacks.frozen_eval`), and train mode is restored before the weight update;
the attacks are :func:`advmed.attacks.ifgsm` / :func:`advmed.attacks.pgd` themselves.
Crafting uses the attack's plain cross-entropy and runs **every** step for every image
(``early_stop=False``): the training example maximises the loss within the ball, as Madry et
al.'s and AdversarialMed's recipes do, instead of stopping just past the decision boundary
(which would be "friendly" adversarial training, and would give fast FGSM no step at all on
an image its random start already fooled). The weight update uses the loop's
(class-weighted by default) ``loss_fn``. The loop (:mod:`advmed.train.loop`) does not
recalibrate an adversarially trained model's batch norm on clean images, and keeps the epoch
with the best robust validation accuracy (PGD-10 at the training eps) rather than the best
clean AUC.

Where to start from matters with that rule: from ImageNet weights, a MobileNet adversarially
trained on PneumoniaMNIST (28 px, AdversarialMed's recipe) predicted nearly one class after its
first epoch, which a robust criterion rewards (an image of the majority class cannot be
flipped), then lost robust accuracy while it learned the task and regained it only after about
ten epochs (robust balanced accuracy 0.40, 0.24, ..., 0.52 at epoch 12; clean AUC 0.48 ->
0.98); with a patience of two epochs the kept model was the first one, with a clean AUC of 0.45.
Fine-tuned from the clean model (``TrainConfig.warm_start``, as AdversarialMed fine-tuned a
trained chest X-ray network), every epoch is a classifier: robust balanced accuracy 0.34 ->
0.62 in eight epochs at clean AUC 0.98. The book's defenses fine-tune the zoo model
(``defense.at_warm_start``).

Costs are counted in :class:`TrainingCost` (``objective.cost``; ``train_model`` stores it in
the checkpoint's side-car as ``meta["training_cost"]``): wall time of crafting and of the
whole objective, and gradient evaluations (forward-backward passes over a batch).

Example:
    >>> from advmed.train import TrainConfig
    >>> from advmed.train import AdversarialConfig
    >>> cfg = TrainConfig("pneumoniamnist", "small_cnn", size=28, adversarial=AdversarialConfig("adversarialmed"))
    >>> round(cfg.adversarial.eps, 5), round(cfg.adversarial.step_size, 5), cfg.adversarial.steps
    (0.00452, 0.00113, 10)
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from ..attacks import ifgsm, pgd
from .config import (
    ADVERSARIAL_METHODS,
    ADVERSARIALMED_EPS,
    ADVERSARIALMED_STEP,
    DEFAULT_EPS,
    DEFAULT_SIGMA,
    IMAGENET_MEAN_STD,
    AdversarialConfig,
)

__all__ = [
    "ADVERSARIALMED_EPS",
    "ADVERSARIALMED_STEP",
    "ADVERSARIAL_METHODS",
    "AdversarialConfig",
    "AdversarialObjective",
    "DEFAULT_EPS",
    "DEFAULT_SIGMA",
    "IMAGENET_MEAN_STD",
    "GaussianNoise",
    "NoisyInput",
    "TrainingCost",
    "BatchObjective",
    "clean_objective",
    "make_objective",
]

BatchObjective = Callable[[nn.Module, torch.Tensor, torch.Tensor, nn.Module], tuple[torch.Tensor, torch.Tensor]]


def clean_objective(model: nn.Module, xb: torch.Tensor, yb: torch.Tensor,
                    loss_fn: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """The standard objective: ``(loss_fn(model(xb), yb), logits)`` on the (augmented) batch.

    Other objectives (adversarial training) take the same arguments, run with the model in
    train mode, and return the loss to minimise and the logits the running accuracy is
    counted on.
    """
    logits = model(xb)
    return loss_fn(logits.float(), yb), logits


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
                                "advmed.train.fit_robust or advmed.train.train_model")
            return xb
        _sync(xb.device)
        t0 = time.perf_counter()
        try:
            if cfg.random_start:
                x_adv = pgd(model, xb, yb, eps=cfg.eps, steps=cfg.steps, step_size=cfg.step_size,
                            random_start=True, seed=self._batch_seed(), progress=False, early_stop=False)
            else:
                x_adv = ifgsm(model, xb, yb, eps=cfg.eps, steps=cfg.steps, step_size=cfg.step_size, progress=False,
                              early_stop=False)
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


def make_objective(config: AdversarialConfig | None, *, seed: int = 0):
    """The batch objective for ``config``: :func:`clean_objective` for None,
    else an :class:`AdversarialObjective` (which counts its :class:`TrainingCost`)."""
    if config is None:
        return clean_objective
    return AdversarialObjective(config, seed=seed)
