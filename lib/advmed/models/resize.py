"""A network run at another side than the images it is given: the resize is its first layer.

An architecture designed for another side than a task's images (Inception v3 at 299 px on
a task stored at 224 px, as the studies ran it) gets :class:`ResizeInput` around its
network: the model takes the task's images, and resizes them bilinearly, inside and
differentiably, before the network. The images, the attacks and every perturbation stay
at the task's side, so one perturbation fits every model of a task, and input gradients
flow through the resize to the stored pixels.

Example:
    >>> import torch
    >>> from advmed.models import build_model
    >>> model = build_model("inception_v3", 2, input_size=32, net_size=299).eval()
    >>> model(torch.rand(1, 3, 32, 32)).shape, model.meta["net_size"]
    (torch.Size([1, 2]), 299)
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ResizeInput(nn.Module):
    """``net(resize(x))``: bilinear resize to ``size`` x ``size``, then ``net``.

    Bilinear with ``align_corners=False`` (torchvision's default for upsampling) mixes pixels
    with weights that sum to one: it commutes with the per-channel normalisation in front of
    it and keeps pixels in range. Upsampling needs no anti-aliasing. The module adds no
    parameters or buffers; the network's state-dict keys gain the prefix ``net.``.
    """

    def __init__(self, net: nn.Module, size: int):
        super().__init__()
        if isinstance(size, bool) or int(size) != size or size < 1:
            raise ValueError(f"size must be a positive number of pixels, got {size!r}")
        self.net = net
        self.size = int(size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-2:]) != (self.size, self.size):
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        return self.net(x)

    def extra_repr(self) -> str:
        return f"size={self.size}"
