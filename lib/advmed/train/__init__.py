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
- Batch-norm statistics are recomputed after every epoch on a fixed subset of 512
  (unaugmented) training images, as ``torch.optim.swa_utils.update_bn`` does: with few
  steps (the smoke and cpu profiles) the running averages lag the weights so much that
  an eval-mode model predicted one class for every image (PneumoniaMNIST, smoke profile:
  validation accuracy 0.742 = the majority share before, 0.867 after; AUC 0.938 -> 0.972).
  Not for adversarial training, whose running statistics stay those of the batches it
  trains on (:mod:`advmed.train.loop`).
- Early stopping on validation ROC AUC (binary: class 1; multiclass: macro one-vs-rest);
  the best epoch's weights are kept. Adversarial training selects on robust balanced
  accuracy under PGD-10 over a fixed validation subset instead (history columns
  ``val_robust_accuracy``, ``val_robust_bal_acc``), and fast FGSM stops on catastrophic
  overfitting (:mod:`advmed.train.loop`).
- Robust training: ``TrainConfig(adversarial=AdversarialConfig(...))`` swaps the batch
  objective for adversarial training (AdversarialMed's 0.7 / 0.3 I-FGSM recipe, Madry et
  al.'s PGD, Wong et al.'s fast FGSM) or Gaussian noise augmentation; see
  :mod:`advmed.train.adversarial`.
- Seeded: the same config gives the same weights on CPU. CUDA adds mixed precision
  (``advmed.device.autocast``; a ``GradScaler`` when the dtype is float16) and is not
  bit-reproducible.

Checkpoints live in ``$ADVMED_CACHE/checkpoints/<key>.pt`` with a JSON side-car
``<key>.json`` (config, history, init actually used, validation AUC, training time). Both
are written atomically (temporary file + ``os.replace``); the side-car is written last,
so a checkpoint without one is treated as absent.
"""
from __future__ import annotations

from .adversarial import (
                          ADVERSARIAL_METHODS,
                          AdversarialObjective,
                          BatchObjective,
                          TrainingCost,
                          clean_objective,
                          make_objective,
)
from .checkpoints import (
                          TrainedModel,
                          build_from_config,
                          checkpoint_paths,
                          get_trained_model,
                          load_checkpoint,
                          load_split,
                          restore_from_state,
                          save_checkpoint,
                          train_model,
                          training_split,
)
from .config import BALANCE_MODES, CODE_VERSION, FLIP_SAFE_DATASETS, AdversarialConfig, TrainConfig
from .loop import FitResult, augment_batch, class_weights, fit, fit_robust, recalibrate_bn

__all__ = ["FitResult", "build_from_config", "load_split", "restore_from_state", "training_split", "ADVERSARIAL_METHODS", "AdversarialConfig", "AdversarialObjective", "TrainingCost", "fit_robust",
           "make_objective",
           "BALANCE_MODES", "BatchObjective", "CODE_VERSION", "clean_objective", "FLIP_SAFE_DATASETS", "TrainConfig", "TrainedModel", "augment_batch",
           "checkpoint_paths", "class_weights", "fit", "get_trained_model", "load_checkpoint", "recalibrate_bn",
           "save_checkpoint", "train_model"]
