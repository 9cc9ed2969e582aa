"""One-channel (greyscale) input for networks built for RGB.

Pretrained weights: the first convolution is summed over its three input channels,
the usual transfer to greyscale (as ``timm.models.adapt_input_conv`` does), made exact:
the one-channel model equals the RGB model on the grey image replicated to three
channels, normalisation and zero padding included. With per-channel statistics
``(m_c, s_c)`` for RGB and ``(m, s)`` for the grey channel, the RGB conv on a grey
image ``x`` computes, inside the image, ``sum_c w_c (x - m_c) / s_c``. The summed
kernel ``w' = s * sum_c w_c / s_c`` applied to ``(x - m) / s`` leaves out
``d = sum_c w_c (m - m_c) / s_c`` at every kernel tap that falls inside the image
(zero padding contributes nothing in both), so :class:`ChannelSummedConv` adds the
convolution of ``d`` with an all-ones image, which is exact at the borders too. When
the three channels share one mean and std (MobileNet, Inception: 0.5/0.5) ``d`` is 0
and a plain summed convolution remains.

Random initialisation: the first convolution keeps only its first input channel,
which leaves the architecture's initialiser (e.g. He fan-out for ResNet) in place.
It is wrapped exactly as a pretrained one would be (with ``d = 0``), so that the
state dict's layout depends on the architecture and channel count only, never on the
init: a checkpoint restores into a model rebuilt with ``init="scratch"``.
"""
from __future__ import annotations

import copy
from typing import Sequence

import torch
from torch import nn


class ChannelSummedConv(nn.Module):
    """``conv(z) + offset(ones)``: a summed RGB->grey first conv, exact at the borders."""

    def __init__(self, conv: nn.Conv2d, offset_kernel: torch.Tensor):
        super().__init__()
        self.conv = conv
        # Same stride/padding (TF padding included) as conv, no bias, fixed kernel.
        offset = copy.deepcopy(conv)
        offset.bias = None
        offset.weight = nn.Parameter(offset_kernel.detach().clone(), requires_grad=False)
        self.offset = offset

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        ones = torch.ones_like(z[:1])  # (1, 1, H, W): where the image is, as opposed to padding
        return self.conv(z) + self.offset(ones)


def grey_first_conv(conv: nn.Conv2d, *, pretrained: bool, mean3: Sequence[float], std3: Sequence[float],
                    mean1: float, std1: float) -> nn.Module:
    """A one-channel replacement for the RGB first ``conv`` (see module doc).

    ``pretrained``: sum the kernel over RGB, exactly; else keep the first input channel.
    The result is a :class:`ChannelSummedConv` when the RGB statistics differ between
    channels, a plain convolution when they are all equal.
    """
    if conv.in_channels != 3 or conv.groups != 1:
        raise ValueError(f"expected an RGB first convolution, got in_channels={conv.in_channels}, groups={conv.groups}")
    w = conv.weight.detach()
    m3 = torch.tensor(mean3, dtype=w.dtype).view(1, 3, 1, 1)
    s3 = torch.tensor(std3, dtype=w.dtype).view(1, 3, 1, 1)
    grey = copy.deepcopy(conv)
    grey.in_channels = 1
    if pretrained:
        grey.weight = nn.Parameter(std1 * (w / s3).sum(1, keepdim=True))
        offset = (w * (mean1 - m3) / s3).sum(1, keepdim=True)
    else:
        grey.weight = nn.Parameter(w[:, :1].clone())
        offset = torch.zeros_like(grey.weight)
    if len(set(mean3)) == 1 and len(set(std3)) == 1:
        return grey  # offset is exactly 0 for any kernel
    return ChannelSummedConv(grey, offset)


def replace_module(root: nn.Module, path: str, new: nn.Module) -> None:
    """Put ``new`` at dotted ``path`` (e.g. ``features.conv0``) inside ``root``."""
    parent_path, _, name = path.rpartition(".")
    parent = root.get_submodule(parent_path) if parent_path else root
    setattr(parent, name, new)
