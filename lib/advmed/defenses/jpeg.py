"""JPEG compression as a preprocessing defense, and the two ways an adaptive attacker sees it.

The defense (Dziugaite, Ghahramani & Roy 2016; Das et al. 2017; Guo et al. ICLR 2018;
AdversarialMed, CSC2516 2019, at quality 20) re-encodes every input image as a JPEG and
classifies the decoded image. The codec rounds its DCT coefficients, so its gradient is
zero almost everywhere: an attacker who differentiates through it naively learns nothing,
which is gradient masking, not robustness (Athalye, Carlini & Wagner, ICML 2018). Three modes:

- ``"real"``: the real codec (Pillow's libjpeg; 4:2:0 chroma subsampling, Pillow's
  default, for colour images), image by image on the CPU. For *evaluation*. Its backward
  raises an error that names the adaptive modes, instead of silently returning zeros.
- ``"bpda"``: the real codec forward and the identity backward: Athalye et al.'s Backward
  Pass Differentiable Approximation with ``g(x) = x`` (their Sec. 4.1), the standard
  adaptive attack on JPEG.
- ``"differentiable"``: kornia's differentiable JPEG (``kornia.enhance.jpeg_codec_differentiable``;
  Reich, Debnath, Patel & Chakradhar, WACV 2024, "Differentiable JPEG: the devil is in the
  details"): the same pipeline (YCbCr, 4:2:0, 8x8 DCT, standard tables scaled by quality)
  with polynomial approximations of rounding, so forward *and* backward approximate the codec.

Grayscale images (one channel, or three equal channels as advmed stores them) are
compressed as one-channel JPEGs by the real codec, as a grayscale file would be; the
differentiable codec needs no special case (equal RGB channels give constant chroma,
which its quantisation keeps exactly). An attack on a grayscale task may make the three
channels differ slightly; ``grayscale="auto"`` (default) then compresses the image in colour,
as it arrived; ``grayscale=True`` first converts every image to its luma
(ITU-R 601, ``0.299 R + 0.587 G + 0.114 B``, as Pillow's ``convert("L")``), what a
grayscale pipeline would store.

Units: pixels in [0, 1]; the real codec sees them rounded to 8 bits (``round(255 x)``) and
returns multiples of 1/255. ``quality`` is libjpeg's 1..100 scale (100 least compression).

Example:
    >>> import torch
    >>> from advmed.defenses.jpeg import JPEGCompression, jpeg_defense
    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 16 * 16, 2))
    >>> defended = jpeg_defense(net, quality=20)                 # real codec: evaluate on this
    >>> attacker = defended.with_defense(JPEGCompression(20, mode="bpda"))  # craft on this
    >>> x = torch.rand(4, 3, 16, 16, requires_grad=True)
    >>> attacker(x).sum().backward(); bool(x.grad.abs().sum() > 0)
    True
"""
from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image
from torch import nn

from ..attacks.checks import check_images
from .wrap import DefendedModel

__all__ = ["GRAYSCALE_OPTIONS", "JPEG_MODES", "JPEGCompression", "check_quality", "jpeg_defense",
           "jpeg_differentiable", "jpeg_real", "to_luma"]

JPEG_MODES = ("real", "bpda", "differentiable")
#: AdversarialMed's quality.
ADVERSARIALMED_QUALITY = 20


def check_quality(quality) -> int:
    """``quality`` must be an integer in 1..100 (libjpeg's scale, 100 = least compression)."""
    if isinstance(quality, bool) or not isinstance(quality, (int, np.integer)) and not (
            isinstance(quality, float) and quality.is_integer()):
        raise TypeError(f"quality must be an integer in 1..100 (libjpeg's scale), got {quality!r}")
    q = int(quality)
    if not 1 <= q <= 100:
        raise ValueError(f"quality must be in 1..100 (libjpeg's scale; AdversarialMed used 20), got {q}")
    return q


def check_mode(mode: str) -> str:
    if mode not in JPEG_MODES:
        raise ValueError(f"unknown JPEG mode {mode!r}; valid modes: {', '.join(JPEG_MODES)} "
                         "('real' to evaluate, 'bpda' or 'differentiable' for an adaptive attacker)")
    return mode


GRAYSCALE_OPTIONS = ("auto", True, False)
#: ITU-R 601 luma weights (Pillow's convert("L")).
LUMA = (0.299, 0.587, 0.114)


def check_grayscale(grayscale) -> str | bool:
    if not any(grayscale is g or grayscale == g and isinstance(grayscale, str) for g in GRAYSCALE_OPTIONS):
        raise ValueError(f"grayscale must be 'auto' (equal channels compressed as gray), True (convert to luma "
                         f"first) or False (always colour), got {grayscale!r}")
    return grayscale


def to_luma(x: torch.Tensor) -> torch.Tensor:
    """``(N, 3, H, W)`` -> the ITU-R 601 luma repeated in 3 channels (1 channel passes through)."""
    if x.shape[1] == 1:
        return x
    w = torch.tensor(LUMA, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True).expand(-1, 3, -1, -1)


def _is_gray(img: torch.Tensor) -> bool:
    """One channel, or three channels equal at 8 bits."""
    return img.shape[0] == 1 or bool((img[0] == img[1]).all() and (img[0] == img[2]).all())


def _codec_one(img: torch.Tensor, quality: int, gray: bool | str) -> torch.Tensor:
    """Encode and decode one uint8 image (C, H, W) with Pillow; returns uint8 (C, H, W)."""
    c = img.shape[0]
    if c == 1 or gray is True or gray == "auto" and _is_gray(img):
        pil = Image.fromarray(img[0].numpy(), mode="L")
    elif c == 3:
        pil = Image.fromarray(img.permute(1, 2, 0).contiguous().numpy(), mode="RGB")
    else:
        raise ValueError(f"JPEG takes images with 1 or 3 channels, got {c}")
    buf = io.BytesIO()
    pil.save(buf, format="JPEG", quality=quality)
    buf.seek(0)
    with Image.open(buf) as dec:
        arr = np.asarray(dec.convert("L" if pil.mode == "L" else "RGB"))
    out = torch.from_numpy(arr.copy())
    if out.dim() == 2:  # grayscale file: give back as many equal channels as came in
        return out.unsqueeze(0).expand(c, -1, -1)
    return out.permute(2, 0, 1)


def jpeg_real(x: torch.Tensor, quality: int = ADVERSARIALMED_QUALITY, *,
              grayscale: str | bool = "auto") -> torch.Tensor:
    """The real JPEG codec (Pillow / libjpeg) on a batch; no gradient.

    Args:
        x: float pixels ``(N, C, H, W)`` in [0, 1], C = 1 or 3, on any device.
        quality: 1..100.
        grayscale: ``"auto"`` (images with equal channels as one-channel JPEGs), True
            (every image converted to luma first) or False (always colour).

    Returns:
        The decoded images, float pixels in [0, 1] (multiples of 1/255), same shape,
        dtype and device as ``x``. Deterministic (libjpeg's integer DCT).
    """
    check_images(x)
    quality, grayscale = check_quality(quality), check_grayscale(grayscale)
    if x.shape[1] not in (1, 3):
        raise ValueError(f"JPEG takes images with 1 or 3 channels, got {x.shape[1]}")
    if grayscale is True:
        x = to_luma(x.detach())
    u8 = x.detach().float().mul(255).round_().clamp_(0, 255).to("cpu", torch.uint8)
    out = torch.empty_like(u8)
    for i in range(u8.shape[0]):
        out[i] = _codec_one(u8[i], quality, grayscale)
    return out.to(device=x.device, dtype=x.dtype).div_(255)


def jpeg_differentiable(x: torch.Tensor, quality: int = ADVERSARIALMED_QUALITY, *,
                        grayscale: str | bool = "auto") -> torch.Tensor:
    """kornia's differentiable JPEG (Reich et al. 2024) on a batch of 1- or 3-channel images.

    One-channel images are expanded to three equal channels and the output averaged back.
    ``grayscale=True`` converts to luma first (differentiably); "auto" and False need no
    special case (equal channels already give constant chroma).
    """
    from kornia.enhance import jpeg_codec_differentiable

    check_images(x)
    quality, grayscale = check_quality(quality), check_grayscale(grayscale)
    c = x.shape[1]
    if c not in (1, 3):
        raise ValueError(f"JPEG takes images with 1 or 3 channels, got {c}")
    if grayscale is True:
        x = to_luma(x)
    rgb = x.expand(-1, 3, -1, -1) if c == 1 else x
    q = torch.tensor([float(quality)], device=x.device, dtype=x.dtype)
    out = jpeg_codec_differentiable(rgb, q)
    return out.mean(dim=1, keepdim=True) if c == 1 else out


class _RealJPEG(torch.autograd.Function):
    """Real codec forward; a backward that refuses, so nobody reads its zero gradient as robustness."""

    @staticmethod
    def forward(ctx, x, quality, grayscale):
        return jpeg_real(x, quality, grayscale=grayscale)

    @staticmethod
    def backward(ctx, grad):
        raise RuntimeError(
            "JPEG mode 'real' runs the real codec and has no gradient (it is zero almost everywhere: "
            "gradient masking). Attack the defense adaptively: JPEGCompression(quality, mode='bpda') "
            "(Athalye et al. 2018: identity backward) or mode='differentiable' (kornia, Reich et al. "
            "2024), and evaluate the adversarial images on mode='real'.")


class _BPDAJPEG(torch.autograd.Function):
    """Real codec forward, identity backward (Athalye, Carlini & Wagner 2018, BPDA)."""

    @staticmethod
    def forward(ctx, x, quality, grayscale):
        return jpeg_real(x, quality, grayscale=grayscale)

    @staticmethod
    def backward(ctx, grad):
        return grad, None, None


class JPEGCompression(nn.Module):
    """JPEG encode-decode as a layer: pixels in [0, 1] in, decoded pixels out.

    Args:
        quality: libjpeg quality 1..100 (AdversarialMed: 20).
        mode: ``"real"`` (Pillow codec; backward raises), ``"bpda"`` (Pillow forward,
            identity backward) or ``"differentiable"`` (kornia's differentiable JPEG).
        grayscale: ``"auto"``, True or False (see :func:`jpeg_real`).

    No parameters; behaves the same in train and eval mode. NaN pixels, pixels outside
    [0, 1] and channel counts other than 1 or 3 are refused.
    """

    def __init__(self, quality: int = ADVERSARIALMED_QUALITY, mode: str = "real", *,
                 grayscale: str | bool = "auto"):
        super().__init__()
        self.quality = check_quality(quality)
        self.mode = check_mode(mode)
        self.grayscale = check_grayscale(grayscale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "differentiable":
            return jpeg_differentiable(x, self.quality, grayscale=self.grayscale)
        check_images(x)  # before autograd.Function, so the message is the library's
        fn = _RealJPEG if self.mode == "real" else _BPDAJPEG
        return fn.apply(x, self.quality, self.grayscale)

    def with_mode(self, mode: str) -> JPEGCompression:
        """The same quality and grayscale handling in another mode."""
        return JPEGCompression(self.quality, mode, grayscale=self.grayscale)

    def extra_repr(self) -> str:
        return f"quality={self.quality}, mode={self.mode!r}, grayscale={self.grayscale!r}"


def jpeg_defense(model: nn.Module, *, quality: int = ADVERSARIALMED_QUALITY, mode: str = "real",
                 grayscale: str | bool = "auto") -> DefendedModel:
    """``model(JPEG(x))`` as a model (see :class:`JPEGCompression` for the modes).

    Example:
        >>> import torch
        >>> from advmed.attacks import pgd
        >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 16 * 16, 2))
        >>> x, y = torch.rand(4, 3, 16, 16), torch.tensor([0, 1, 0, 1])
        >>> defended = jpeg_defense(net, quality=20)
        >>> x_adv = pgd(defended.with_defense(JPEGCompression(20, "bpda")), x, y, eps=4 / 255)
        >>> defended(x_adv).shape
        torch.Size([4, 2])
    """
    return DefendedModel(JPEGCompression(quality, mode, grayscale=grayscale), model)
