"""Orthonormal search directions for SimBA and U-SimBA: pixels or 2-D DCT basis images.

A coordinate is a flat index ``k`` into a ``(C, H, W)`` image: channel ``k // (H W)``,
row / frequency ``u = (k // W) % H``, column / frequency ``v = k % W``.

- pixel basis: the one-hot image ``e_k`` (Guo et al. 2019, "SimBA");
- DCT basis: the inverse orthonormal 2-D DCT-II of ``e_k`` on channel ``c``, i.e. the
  outer product of rows ``u`` and ``v`` of the orthonormal DCT matrices, zero on the other
  channels (Guo et al. 2019, "SimBA-DCT"; the same basis as ``scipy.fft.idctn(...,
  norm="ortho")``, which the tests check). Every basis image has unit L2 norm and any two
  are orthogonal, so ``T`` accepted steps of size ``eps`` have L2 norm ``eps * sqrt(T)``
  before clipping to [0, 1].

Orders (which coordinate is tried at iteration ``t``):

- ``"strided"``: SimBA-DCT's low-frequency-first block order (``utils.block_order`` of
  Guo et al.; ART's ``SimBA._block_order``): the ``freq_dims x freq_dims`` top-left block
  of every channel first, then rings of width ``stride`` around it, each block and ring
  in random order across channels;
- ``"random"``: a uniform random order over the low-frequency block of size
  ``freq_dims`` (DCT; Guo et al.'s ``order="rand"``) or over all coordinates (pixels,
  where ``freq_dims`` is the image side).
"""
from __future__ import annotations

import math

import torch

BASES = ("dct", "pixel")
ORDERS = ("strided", "random")


def dct_matrix(n: int, *, device=None, dtype=torch.float32) -> torch.Tensor:
    """The orthonormal DCT-II matrix ``D`` (n x n): ``dct(x) = D @ x``, ``idct(X) = D.T @ X``."""
    k = torch.arange(n, dtype=torch.float64)[:, None]
    i = torch.arange(n, dtype=torch.float64)[None, :]
    d = torch.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
    d[0] /= math.sqrt(2.0)
    return d.to(device=device, dtype=dtype)


def default_freq_dims(h: int, w: int) -> int:
    """SimBA-DCT's low-frequency block: 28 of 224 px (Guo et al. 2019), i.e. 1/8 of the side."""
    return max(1, min(h, w) // 8)


def default_stride(h: int, w: int) -> int:
    """SimBA-DCT's ring width: 7 of 224 px (Guo et al. 2019), i.e. 1/32 of the side."""
    return max(1, min(h, w) // 32)


def _rank(shape: tuple[int, int, int], freq_dims: int, stride: int, device) -> torch.Tensor:
    """Per coordinate, the block it belongs to: 0 = the low block, then rings 1, 2, ..."""
    c, h, w = shape
    u = torch.arange(h, device=device)[:, None].expand(h, w)
    v = torch.arange(w, device=device)[None, :].expand(h, w)
    m = torch.maximum(u, v)
    ring = torch.where(m < freq_dims, torch.zeros_like(m),
                       1 + torch.div(m - freq_dims, stride, rounding_mode="floor"))
    return ring.expand(c, h, w).reshape(-1).to(torch.float32)


def coordinate_orders(n: int, shape: tuple[int, int, int], *, basis: str, order: str,
                      freq_dims: int, stride: int, length: int,
                      generator: torch.Generator, device) -> torch.Tensor:
    """``n`` independent coordinate sequences of ``length`` (int64, ``(n, length)``).

    Each sequence is one random draw of the order; where ``length`` exceeds the number of
    coordinates the order is drawn again and appended (as ART does), so a coordinate can
    be tried again once all others were.
    """
    c, h, w = shape
    if order == "strided":
        rank = _rank(shape, freq_dims, stride, device)
        pool = None
    elif basis == "dct":  # random over the low-frequency block only
        u = torch.arange(h, device=device)[:, None]
        v = torch.arange(w, device=device)[None, :]
        low = ((u < freq_dims) & (v < freq_dims)).expand(c, h, w).reshape(-1)
        pool = low.nonzero().squeeze(1)
        rank = None
    else:  # pixels, random over every coordinate
        pool = torch.arange(c * h * w, device=device)
        rank = None
    size = rank.numel() if rank is not None else pool.numel()
    rounds = max(1, math.ceil(length / size))
    parts = []
    for _ in range(rounds):
        keys = torch.rand((n, size), generator=generator, device=device)
        if rank is not None:  # by block first, at random within a block (keys < 0.5: no
            parts.append((keys * 0.5 + rank).argsort(dim=1))  # float rounding into the next block)
        else:
            parts.append(pool[keys.argsort(dim=1)])
    return torch.cat(parts, dim=1)[:, :length]


class Basis:
    """Builds the unit basis images of a batch of coordinates on one device."""

    def __init__(self, shape: tuple[int, int, int], basis: str, *, device, dtype):
        self.shape, self.basis = shape, basis
        _, h, w = shape
        if basis == "dct":
            self.dh = dct_matrix(h, device=device, dtype=dtype)
            self.dw = dct_matrix(w, device=device, dtype=dtype)
        self.device, self.dtype = device, dtype

    def __call__(self, k: torch.Tensor) -> torch.Tensor:
        """Basis images ``(len(k), C, H, W)`` for flat coordinates ``k``."""
        c, h, w = self.shape
        b = k.numel()
        out = torch.zeros((b, c * h * w), device=self.device, dtype=self.dtype)
        if self.basis == "pixel":
            out[torch.arange(b, device=self.device), k] = 1.0
            return out.view(b, c, h, w)
        ch = torch.div(k, h * w, rounding_mode="floor")
        u = torch.div(k, w, rounding_mode="floor") % h
        v = k % w
        img = self.dh[u][:, :, None] * self.dw[v][:, None, :]   # (b, h, w): D[u] outer D[v]
        out = out.view(b, c, h, w)
        out[torch.arange(b, device=self.device), ch] = img
        return out
