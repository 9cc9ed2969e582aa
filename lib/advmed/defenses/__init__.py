"""Defenses: each wraps a model into a model (pixels in [0, 1] in, logits out), so that
every attack of :mod:`advmed.attacks` runs on the defended model unchanged and an
adaptive attacker can be given the defense itself (Athalye, Carlini & Wagner 2018;
Tramer et al. 2020). Training-time defenses (adversarial training) live in
:mod:`advmed.train` (:mod:`advmed.train.adversarial`).

- :mod:`.bitdepth`: bit-depth reduction (Xu et al. 2018's feature squeezing), ``"real"`` and
  ``"bpda"``.
- :mod:`.jpeg`: JPEG compression (AdversarialMed, quality 20): ``"real"`` codec to evaluate,
  ``"bpda"`` and ``"differentiable"`` (kornia) for the adaptive attacker.
- :mod:`.vae`: VAE denoising (AdversarialMed; whole-image or 32-px patches), ``sample=True``
  for a random latent.
- :mod:`.expectation`: :func:`eot`, expectation over transformation: the adaptive
  attacker's view of a random defense.
- :mod:`.smoothing`: randomized smoothing with certified L2 radii (Cohen et al. 2019).
- :mod:`.uap_retraining`: adversarial retraining against UAPs (Hirano et al. 2021).

Example:
    >>> import torch
    >>> from advmed.attacks import pgd
    >>> from advmed.defenses import JPEGCompression, jpeg_defense
    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 16 * 16, 2))
    >>> x, y = torch.rand(4, 3, 16, 16), torch.tensor([0, 1, 0, 1])
    >>> defended = jpeg_defense(net, quality=20)                         # evaluate on this
    >>> adaptive = defended.with_defense(JPEGCompression(20, "bpda"))     # attack this
    >>> robust = (defended(pgd(adaptive, x, y, eps=2 / 255)).argmax(1) == y).float().mean()
"""
from .bitdepth import BitDepthReduction
from .expectation import EOTModel, eot
from .jpeg import (
    JPEG_MODES,
    JPEGCompression,
    jpeg_defense,
    jpeg_differentiable,
    jpeg_real,
)
from .smoothing import (
    ABSTAIN,
    Certification,
    CertifiedAccuracy,
    SmoothedClassifier,
    SmoothedPrediction,
    certified_accuracy,
    clopper_pearson_lower,
)
from .uap_retraining import (
    RetrainingRound,
    UAPAugmentObjective,
    UAPRetrainingResult,
    uap_retraining,
)
from .vae import ConvVAE, TrainedVAE, VAEConfig, VAEDenoiser, train_vae, vae_defense, vae_key
from .wrap import DefendedModel

__all__ = [
    "ABSTAIN",
    "BitDepthReduction",
    "JPEG_MODES",
    "Certification",
    "CertifiedAccuracy",
    "ConvVAE",
    "DefendedModel",
    "EOTModel",
    "JPEGCompression",
    "RetrainingRound",
    "SmoothedClassifier",
    "SmoothedPrediction",
    "TrainedVAE",
    "UAPAugmentObjective",
    "UAPRetrainingResult",
    "VAEConfig",
    "VAEDenoiser",
    "certified_accuracy",
    "clopper_pearson_lower",
    "eot",
    "jpeg_defense",
    "jpeg_differentiable",
    "jpeg_real",
    "train_vae",
    "vae_key",
    "uap_retraining",
    "vae_defense",
]
