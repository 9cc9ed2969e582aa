"""Grayscale images stored as three equal channels, and attacks that keep them gray.

Chest X-rays are stored as three equal channels so that every architecture (ImageNet
stems included) takes them. A perturbation of such an image should stay gray: an X-ray
file carries no colour, so an attacker can only write gray changes into it, and the
studies' X-ray models took one channel. :class:`GrayInput` gives any model a one-channel
input (replicated to the channels the model takes), so that every attack run on it
crafts a gray perturbation; :func:`as_rgb` expands that perturbation back.

Example:
    >>> import torch
    >>> x = torch.rand(2, 1, 8, 8).expand(-1, 3, -1, -1)
    >>> is_gray(x), as_rgb(torch.zeros(1, 1, 8, 8)).shape
    (True, torch.Size([1, 3, 8, 8]))
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn


class GrayInput(nn.Module):
    """``model`` fed one gray channel, replicated to the ``channels`` it takes."""

    def __init__(self, model: nn.Module, channels: int = 3):
        super().__init__()
        self.model = model
        self.channels = int(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] != 1:
            raise ValueError(f"GrayInput takes one-channel images, got {x.shape[1]} channels; "
                             "pass x[:, :1] of a gray image")
        return self.model(x.expand(-1, self.channels, -1, -1))


def is_gray(*images: Any) -> bool:
    """True when every image of every tensor or ``ImageSet`` has three identical channels."""
    for im in images:
        im = getattr(im, "images", im)
        if im.shape[1] != 3 or not (torch.equal(im[:, 0], im[:, 1]) and torch.equal(im[:, 0], im[:, 2])):
            return False
    return True


def gray_view(model: nn.Module, x: torch.Tensor) -> tuple[nn.Module, torch.Tensor, bool]:
    """What an attack should run on: ``(GrayInput(model), x[:, :1], True)`` when every image
    of ``x`` is gray (three equal channels), else ``(model, x, False)``. Expand the attack's
    output back with :func:`as_rgb`."""
    if x.dim() == 4 and x.shape[0] > 0 and is_gray(x):
        return GrayInput(model, x.shape[1]), x[:, :1].contiguous(), True
    return model, x, False


def as_rgb(delta: torch.Tensor, channels: int = 3) -> torch.Tensor:
    """A one-channel perturbation (or image batch) expanded to ``channels``; others unchanged."""
    return delta.expand(-1, channels, -1, -1).contiguous() if delta.shape[1] == 1 else delta
