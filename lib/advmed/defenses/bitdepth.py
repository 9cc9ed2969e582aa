"""Bit-depth reduction, the simplest of feature squeezing's input transformations (Xu, Evans &
Qi, NDSS 2018), as a preprocessing defense: every pixel rounded to ``2**bits`` levels before
the classifier. A baseline the peers compare JPEG and denoisers with.

Rounding has a zero gradient almost everywhere, so a naive gradient attack meets a masked
gradient (Athalye, Carlini & Wagner 2018 broke it with BPDA). Two modes, as for JPEG:

- ``"real"``: the rounding; its backward raises an error that names the adaptive mode, instead
  of silently returning zeros. For *evaluation*.
- ``"bpda"``: the rounding forward, the identity backward (Athalye et al.'s BPDA, ``g(x) = x``).

Units: pixels in [0, 1]; ``bits`` in 1..8 (8 bits is the identity on an 8-bit image).

Example:
    >>> import torch
    >>> from advmed.defenses.bitdepth import BitDepthReduction
    >>> x = torch.tensor([[[[0.0, 0.2, 0.49, 1.0]]]])
    >>> (BitDepthReduction(1)(x) * 1).tolist()
    [[[[0.0, 0.0, 0.0, 1.0]]]]
    >>> x = torch.rand(2, 1, 4, 4, requires_grad=True)
    >>> BitDepthReduction(3, "bpda")(x).sum().backward(); bool((x.grad == 1).all())
    True
"""
from __future__ import annotations

import torch
from torch import nn

from ..attacks.checks import check_images

BITDEPTH_MODES = ("real", "bpda")


def check_bits(bits) -> int:
    """``bits`` must be an integer in 1..8 (levels per channel: ``2**bits``)."""
    if isinstance(bits, bool) or not isinstance(bits, int):
        raise TypeError(f"bits must be an integer in 1..8, got {bits!r}")
    if not 1 <= bits <= 8:
        raise ValueError(f"bits must be in 1..8 (8: the identity on an 8-bit image), got {bits}")
    return int(bits)


def reduce_bit_depth(x: torch.Tensor, bits: int) -> torch.Tensor:
    """``x`` rounded to ``2**bits`` levels per channel in [0, 1] (no gradient)."""
    levels = 2 ** check_bits(bits) - 1
    return torch.round(x.detach() * levels) / levels


class _Rounding(torch.autograd.Function):
    """The rounding forward; backward the identity (BPDA) or, in mode "real", an error."""

    @staticmethod
    def forward(ctx, x, bits, bpda):
        ctx.bpda = bpda
        return reduce_bit_depth(x, bits)

    @staticmethod
    def backward(ctx, grad):
        if not ctx.bpda:
            raise RuntimeError("bit-depth reduction mode 'real' rounds the pixels and has no gradient (zero almost "
                               "everywhere: gradient masking). Attack it adaptively with "
                               "BitDepthReduction(bits, mode='bpda') (identity backward) and evaluate on mode='real'.")
        return grad, None, None


class BitDepthReduction(nn.Module):
    """Pixels rounded to ``2**bits`` levels, as a layer: ``"real"`` (backward raises) or ``"bpda"``
    (identity backward). No parameters; the same in train and eval mode."""

    def __init__(self, bits: int = 5, mode: str = "real"):
        super().__init__()
        self.bits = check_bits(bits)
        if mode not in BITDEPTH_MODES:
            raise ValueError(f"unknown bit-depth mode {mode!r}; valid modes: {', '.join(BITDEPTH_MODES)} "
                             "('real' to evaluate, 'bpda' for an adaptive attacker)")
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_images(x)
        return _Rounding.apply(x, self.bits, self.mode == "bpda")

    def with_mode(self, mode: str) -> BitDepthReduction:
        return BitDepthReduction(self.bits, mode)

    def extra_repr(self) -> str:
        return f"bits={self.bits}, mode={self.mode!r}"


__all__ = ["BITDEPTH_MODES", "BitDepthReduction", "check_bits", "reduce_bit_depth"]
