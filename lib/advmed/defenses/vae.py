"""VAE denoising: classify the VAE's reconstruction of the input instead of the input.

The defense of AdversarialMed (CSC2516, 2019), in the line of MagNet (Meng & Chen, CCS
2017) and Defense-GAN (Samangouei, Kabkab & Chellappa, ICLR 2018): a variational
autoencoder (Kingma & Welling, ICLR 2014) trained on clean training images maps an
image onto what it has learned clean images look like, in the hope that an adversarial
perturbation does not survive the bottleneck. AdversarialMed trained its VAE on 32-px
patches and tiled it over the image (``patch_size=32`` here).

It is differentiable end to end, so an adaptive attacker simply attacks
``classifier(VAE(x))`` (Carlini & Wagner 2017, "MagNet and 'efficient defenses against
adversarial attacks' are not robust"); with a *sampled* latent the defense is random and
the attacker takes the expectation over the sampling (EOT, Athalye, Engstrom, Ilyas &
Kwok, ICML 2018): :func:`advmed.defenses.eot`.

The network (:class:`ConvVAE`) is fully convolutional, so one design works from 28 to
224 px and for 1 or 3 channels: ``levels`` stride-2 convolutions down to a latent map of
``latent_channels`` at 1 / 2**levels of the side, and transposed convolutions back up to
a sigmoid output in [0, 1]. Sides that are not multiples of 2**levels are padded
(edge pixels replicated) and cropped back. No batch norm, so train and eval mode behave
the same and a defended model never changes statistics.

Training (:func:`train_vae`): Adam, loss per image = the negative log-likelihood of the
pixels under the decoder (a Gaussian with its variance calibrated to the reconstruction
error, Rybkin et al. 2021; or Bernoulli) + ``beta`` x KL(q(z|x) || N(0, I)) (beta = 1: the
negative ELBO; Higgins et al. 2017 for beta != 1). See :func:`vae_loss`.
Trained weights are cached under ``$ADVMED_CACHE/vae/<key>.pt``, keyed by a hash of the
config and of the training images, written with :func:`advmed.cache.atomic_write` and
read with ``torch.load(weights_only=True)``.

Units: pixels in [0, 1] in and out.

Example:
    >>> import torch
    >>> from advmed.defenses.vae import train_vae, vae_defense
    >>> images = torch.rand(64, 1, 28, 28)
    >>> tv = train_vae(images, epochs=1, batch_size=32, cache=False, progress=False)
    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(28 * 28, 2))
    >>> vae_defense(net, tv.vae)(images[:4]).shape
    torch.Size([4, 2])
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ..attacks.checks import check_images
from ..cache import cache_root, key_hash, save_torch, tensor_digest
from ..device import default_device, seed_everything
from .wrap import DefendedModel

__all__ = [
    "VAE_CODE_VERSION",
    "ConvVAE",
    "TrainedVAE",
    "VAEConfig",
    "VAEDenoiser",
    "train_vae",
    "vae_key",
    "vae_defense",
    "vae_loss",
]

#: Bump when a change here changes the weights a config gives: every cached VAE key changes.
VAE_CODE_VERSION = 1


@dataclass(frozen=True)
class VAEConfig:
    """Everything that decides a trained VAE's weights (with the training images).

    Attributes:
        latent_channels: channels of the latent map (its side is 1 / 2**levels of the image's).
        width: channels of the first convolution, doubled at each level.
        levels: stride-2 down-samplings (2: a 28-px image has a 7 x 7 latent map).
        patch_size: None for whole images; an integer (AdversarialMed: 32) to train on and
            apply to non-overlapping square patches tiled over the image.
        epochs, batch_size, lr, beta, seed: optimisation (Adam), KL weight, seed.
        likelihood: the decoder, ``"gaussian"`` (calibrated, default) or ``"bernoulli"``
            (see :func:`vae_loss`).
    """

    latent_channels: int = 8
    width: int = 32
    levels: int = 2
    patch_size: int | None = None
    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    beta: float = 1.0
    likelihood: str = "gaussian"
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("latent_channels", "width", "levels", "epochs", "batch_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or int(v) != v or v < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
        if self.patch_size is not None and (int(self.patch_size) != self.patch_size
                                            or self.patch_size < 2 ** self.levels):
            raise ValueError(f"patch_size must be None or an integer >= 2**levels = {2 ** self.levels}, "
                             f"got {self.patch_size!r} (AdversarialMed used 32)")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a finite number > 0, got {self.lr}")
        if not (math.isfinite(self.beta) and self.beta >= 0):
            raise ValueError(f"beta (KL weight) must be a finite number >= 0, got {self.beta}")
        if self.likelihood not in LIKELIHOODS:
            raise ValueError(f"unknown likelihood {self.likelihood!r}; valid: {', '.join(LIKELIHOODS)}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _pad_to(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, int, int]:
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="replicate")
    return x, h, w


class ConvVAE(nn.Module):
    """A small fully convolutional VAE on pixels in [0, 1] (see the module docstring).

    ``reconstruct(x, sample)`` is the denoiser: the decoded posterior mean (``sample=False``)
    or the decoding of one latent drawn from q(z|x) (``sample=True``; torch's global RNG,
    one draw per image per call). With ``patch_size`` set, images are cut into
    non-overlapping patches (the last row and column padded by replicating edges),
    reconstructed patch by patch and reassembled.
    """

    def __init__(self, in_channels: int, *, latent_channels: int = 8, width: int = 32, levels: int = 2,
                 patch_size: int | None = None):
        super().__init__()
        if in_channels not in (1, 3):
            raise ValueError(f"in_channels must be 1 or 3, got {in_channels}")
        self.in_channels, self.levels, self.patch_size = int(in_channels), int(levels), patch_size
        chans = [width * 2 ** i for i in range(levels + 1)]
        enc: list[nn.Module] = [nn.Conv2d(in_channels, chans[0], 3, padding=1), nn.SiLU()]
        for a, b in zip(chans[:-1], chans[1:]):
            enc += [nn.Conv2d(a, b, 4, stride=2, padding=1), nn.SiLU(), nn.Conv2d(b, b, 3, padding=1), nn.SiLU()]
        self.encoder = nn.Sequential(*enc)
        self.to_latent = nn.Conv2d(chans[-1], 2 * latent_channels, 1)  # mean and log-variance
        dec: list[nn.Module] = [nn.Conv2d(latent_channels, chans[-1], 3, padding=1), nn.SiLU()]
        for a, b in zip(chans[:0:-1], chans[-2::-1]):
            dec += [nn.ConvTranspose2d(a, b, 4, stride=2, padding=1), nn.SiLU(), nn.Conv2d(b, b, 3, padding=1),
                    nn.SiLU()]
        dec += [nn.Conv2d(chans[0], in_channels, 3, padding=1)]
        self.decoder = nn.Sequential(*dec)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mu, logvar)`` of q(z|x) for a batch whose side is a multiple of 2**levels."""
        mu, logvar = self.to_latent(self.encoder(x * 2 - 1)).chunk(2, dim=1)
        return mu, logvar.clamp(-30, 20)  # keeps exp() finite on odd inputs

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Training pass on a padded batch: ``(reconstruction logits, mu, logvar)`` with a sampled z."""
        mu, logvar = self.encode(x)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        return self.decode_logits(z), mu, logvar

    def _reconstruct_whole(self, x: torch.Tensor, sample: bool) -> torch.Tensor:
        xp, h, w = _pad_to(x, 2 ** self.levels)
        mu, logvar = self.encode(xp)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp() if sample else mu
        return torch.sigmoid(self.decode_logits(z))[..., :h, :w]

    def reconstruct(self, x: torch.Tensor, sample: bool = False) -> torch.Tensor:
        """The denoised images, pixels in [0, 1], same shape as ``x``."""
        if self.patch_size is None:
            return self._reconstruct_whole(x, sample)
        p = int(self.patch_size)
        xp, h, w = _pad_to(x, p)
        n, c, hp, wp = xp.shape
        tiles = xp.unfold(2, p, p).unfold(3, p, p)  # (n, c, hp/p, wp/p, p, p)
        gh, gw = tiles.shape[2], tiles.shape[3]
        tiles = tiles.permute(0, 2, 3, 1, 4, 5).reshape(n * gh * gw, c, p, p)
        rec = self._reconstruct_whole(tiles, sample)
        rec = rec.reshape(n, gh, gw, c, p, p).permute(0, 3, 1, 4, 2, 5).reshape(n, c, hp, wp)
        return rec[..., :h, :w]


LIKELIHOODS = ("gaussian", "bernoulli")


def vae_loss(vae: ConvVAE, x: torch.Tensor, beta: float,
             likelihood: str = "gaussian") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(loss, reconstruction, kl)`` in nats per image (means over the batch of per-image sums).

    Reconstruction, the negative log-likelihood of the pixels under the decoder:
    ``"gaussian"``: a Gaussian around the decoded image with one variance set to its
    optimum, the batch's mean squared error (the "optimal sigma" calibrated decoder of
    Rybkin, Daniilidis & Levine, ICML 2021, which keeps the KL term from swamping
    reconstruction: with a fixed variance or a Bernoulli decoder the latent is barely used
    and reconstructions lose the detail the classifier needs); ``"bernoulli"``: binary
    cross-entropy (Kingma & Welling's decoder for [0, 1] data). KL: the closed form for
    diagonal Gaussians against N(0, I) (Kingma & Welling 2014, appendix B).
    """
    xp, _, _ = _pad_to(x, 2 ** vae.levels)
    logits, mu, logvar = vae(xp)
    n = x.shape[0]
    if likelihood == "gaussian":
        d = xp[0].numel()
        mse = (torch.sigmoid(logits) - xp).pow(2).mean().clamp_min(1e-8)
        rec = 0.5 * d * (torch.log(mse) + 1.0 + math.log(2 * math.pi))
    elif likelihood == "bernoulli":
        rec = F.binary_cross_entropy_with_logits(logits, xp, reduction="sum") / n
    else:
        raise ValueError(f"unknown likelihood {likelihood!r}; valid: {', '.join(LIKELIHOODS)}")
    kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp()) / n
    return rec + beta * kl, rec, kl


@dataclass
class TrainedVAE:
    """A trained VAE (eval mode, on its device) and how it came about.

    ``history``: one row per epoch: ``epoch``, ``loss``, ``reconstruction`` (BCE summed
    per image, nats), ``kl`` (nats per image), ``seconds``. ``key``: the cache key (hash of
    config, images and :data:`VAE_CODE_VERSION`). ``cached``: loaded rather than trained.
    """

    vae: ConvVAE
    config: VAEConfig
    history: pd.DataFrame
    key: str
    train_seconds: float
    cached: bool = False
    meta: dict[str, Any] = field(default_factory=dict)


def _as_float_images(images: Any) -> torch.Tensor:
    from ..models.inference import as_pixels

    x = as_pixels(images)
    check_images(x, "images")
    if x.shape[0] < 2:
        raise ValueError(f"need at least 2 training images, got {x.shape[0]}")
    if x.shape[1] not in (1, 3):
        raise ValueError(f"images must have 1 or 3 channels, got {x.shape[1]}")
    return x


def _training_units(x: torch.Tensor, patch_size: int | None) -> torch.Tensor:
    """Whole images, or every non-overlapping patch of every image (edges replicated)."""
    if patch_size is None:
        return x
    xp, _, _ = _pad_to(x, patch_size)
    t = xp.unfold(2, patch_size, patch_size).unfold(3, patch_size, patch_size)
    return t.permute(0, 2, 3, 1, 4, 5).reshape(-1, x.shape[1], patch_size, patch_size).contiguous()


def _vae_key(cfg: VAEConfig, x: torch.Tensor) -> str:
    return key_hash({"code_version": VAE_CODE_VERSION, "config": cfg.to_dict(), "images": tensor_digest(x)})


def _vae_path(key: str):
    return cache_root() / "vae" / f"{key}.pt"


def _build(cfg: VAEConfig, in_channels: int) -> ConvVAE:
    return ConvVAE(in_channels, latent_channels=cfg.latent_channels, width=cfg.width, levels=cfg.levels,
                   patch_size=cfg.patch_size)


def _fit(cfg: VAEConfig, x: torch.Tensor, dev: torch.device, progress: bool) -> tuple[ConvVAE, pd.DataFrame]:
    seed_everything(cfg.seed)  # initialisation and the reparameterisation noise
    vae = _build(cfg, x.shape[1]).to(dev).train()
    units = _training_units(x, cfg.patch_size)
    opt = torch.optim.Adam(vae.parameters(), lr=cfg.lr)
    gen = torch.Generator().manual_seed(cfg.seed + 1)  # batch order
    rows = []
    for epoch in tqdm(range(1, cfg.epochs + 1), desc="VAE", unit="epoch", disable=not progress):
        t0, tot, rec_sum, kl_sum, seen = time.perf_counter(), 0.0, 0.0, 0.0, 0
        order = torch.randperm(len(units), generator=gen)
        for s in range(0, len(units), cfg.batch_size):
            xb = units[order[s:s + cfg.batch_size]].to(dev, non_blocking=True)
            loss, rec, kl = vae_loss(vae, xb, cfg.beta, cfg.likelihood)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            k = xb.shape[0]
            tot, rec_sum, kl_sum, seen = tot + loss.item() * k, rec_sum + rec.item() * k, kl_sum + kl.item() * k, seen + k
        rows.append({"epoch": epoch, "loss": tot / seen, "reconstruction": rec_sum / seen, "kl": kl_sum / seen,
                     "seconds": time.perf_counter() - t0})
    vae.eval()
    for p in vae.parameters():
        p.requires_grad_(False)  # a denoiser, not something the classifier's training should move
    return vae, pd.DataFrame(rows)


def _save(tv: TrainedVAE) -> None:
    blob = {"state_dict": {k: v.detach().cpu() for k, v in tv.vae.state_dict().items()},
            "config": tv.config.to_dict(), "in_channels": tv.vae.in_channels,
            "history": {c: tv.history[c].tolist() for c in tv.history.columns},
            "train_seconds": float(tv.train_seconds), "code_version": VAE_CODE_VERSION}
    save_torch(_vae_path(tv.key), blob)


def _load(key: str, dev: torch.device) -> TrainedVAE:
    blob = torch.load(_vae_path(key), map_location="cpu", weights_only=True)
    cfg = VAEConfig(**blob["config"])
    vae = _build(cfg, int(blob["in_channels"]))
    vae.load_state_dict(blob["state_dict"], strict=True)
    vae.to(dev).eval()
    for p in vae.parameters():
        p.requires_grad_(False)
    return TrainedVAE(vae, cfg, pd.DataFrame(blob["history"]), key, float(blob["train_seconds"]), cached=True,
                      meta={"path": str(_vae_path(key))})


def vae_key(images: Any, *, epochs: int = 10, batch_size: int = 128, lr: float = 1e-3, beta: float = 1.0,
            likelihood: str = "gaussian", latent_channels: int = 8, width: int = 32, levels: int = 2,
            patch_size: int | None = None, seed: int = 0) -> str:
    """The cache key :func:`train_vae` gives these images and settings, without training or
    loading anything: what a memoised result built on that VAE can be looked up by.

    Example:
        >>> x = torch.rand(4, 1, 16, 16)
        >>> vae_key(x, epochs=1) == vae_key(x, epochs=1) != vae_key(x, epochs=2)
        True
    """
    cfg = VAEConfig(latent_channels=latent_channels, width=width, levels=levels, patch_size=patch_size,
                    epochs=epochs, batch_size=batch_size, lr=lr, beta=beta, likelihood=likelihood, seed=seed)
    return _vae_key(cfg, _as_float_images(images))


def train_vae(images: Any, *, epochs: int = 10, batch_size: int = 128, lr: float = 1e-3, beta: float = 1.0,
              likelihood: str = "gaussian", latent_channels: int = 8, width: int = 32, levels: int = 2, patch_size: int | None = None,
              seed: int = 0, device: torch.device | str | None = None, progress: bool = True,
              cache: bool = True, retrain: bool = False) -> TrainedVAE:
    """Train a :class:`ConvVAE` on clean training images (or load it from the cache).

    Args:
        images: the training images: float pixels ``(N, C, H, W)`` in [0, 1], uint8
            (divided by 255) or an ``advmed.data.ImageSet``; C = 1 or 3. Never test images.
        epochs, batch_size, lr: Adam over shuffled mini-batches (of patches with ``patch_size``).
        beta: KL weight (1: the ELBO).
        likelihood: ``"gaussian"`` (calibrated decoder, default) or ``"bernoulli"``.
        latent_channels, width, levels, patch_size: the architecture (see :class:`VAEConfig`).
        seed: initialisation, batch order and reparameterisation noise.
        device: where to train (default :func:`advmed.device.default_device`).
        progress: a tqdm bar over epochs.
        cache: read and write ``$ADVMED_CACHE/vae/<key>.pt`` (key: config + images).
        retrain: train even if a cached VAE exists (and overwrite it).

    Returns:
        :class:`TrainedVAE`: the VAE in eval mode with parameters frozen, its history and key.

    Example:
        >>> tv = train_vae(torch.rand(32, 3, 32, 32), epochs=1, patch_size=16, cache=False, progress=False)
        >>> tv.vae.reconstruct(torch.rand(2, 3, 40, 40)).shape
        torch.Size([2, 3, 40, 40])
    """
    cfg = VAEConfig(latent_channels=latent_channels, width=width, levels=levels, patch_size=patch_size,
                    epochs=epochs, batch_size=batch_size, lr=lr, beta=beta, likelihood=likelihood, seed=seed)
    x = _as_float_images(images)
    dev = torch.device(device) if device is not None else default_device()
    key = _vae_key(cfg, x)
    if cache and not retrain and _vae_path(key).is_file():
        return _load(key, dev)
    t0 = time.perf_counter()
    vae, history = _fit(cfg, x, dev, progress)
    tv = TrainedVAE(vae, cfg, history, key, time.perf_counter() - t0, cached=False,
                    meta={"n_images": int(x.shape[0]), "device": str(dev)})
    if cache:
        _save(tv)
        tv.meta["path"] = str(_vae_path(key))
    return tv


class VAEDenoiser(nn.Module):
    """The VAE's reconstruction as a preprocessing layer: pixels in [0, 1] in and out.

    Args:
        vae: a trained :class:`ConvVAE` (or a :class:`TrainedVAE`).
        sample: False: decode the posterior mean (deterministic); True: decode one latent
            drawn from q(z|x) per image and call (random: attack it with
            :func:`advmed.defenses.eot`).
    """

    def __init__(self, vae: ConvVAE | TrainedVAE, sample: bool = False):
        super().__init__()
        vae = vae.vae if isinstance(vae, TrainedVAE) else vae
        if not isinstance(vae, ConvVAE):
            raise TypeError(f"vae must be a ConvVAE or TrainedVAE (from train_vae), got {type(vae).__name__}")
        if not isinstance(sample, bool):
            raise TypeError(f"sample must be True (random latent) or False (posterior mean), got {sample!r}")
        self.vae, self.sample = vae, sample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_images(x)
        if x.shape[1] != self.vae.in_channels:
            raise ValueError(f"the VAE was trained on {self.vae.in_channels}-channel images, got {x.shape[1]} "
                             "channels")
        return self.vae.reconstruct(x, sample=self.sample)

    def extra_repr(self) -> str:
        return f"sample={self.sample}, patch_size={self.vae.patch_size}"


def vae_defense(model: nn.Module, vae: ConvVAE | TrainedVAE, *, sample: bool = False) -> DefendedModel:
    """``model(VAE(x))`` as a model (AdversarialMed's VAE denoising).

    Example:
        >>> from advmed.attacks import pgd
        >>> from advmed.defenses import eot
        >>> defended = vae_defense(net, tv, sample=True)                 # doctest: +SKIP
        >>> x_adv = pgd(eot(defended, samples=8), x, y, eps=2 / 255)      # doctest: +SKIP
    """
    return DefendedModel(VAEDenoiser(vae, sample), model)
