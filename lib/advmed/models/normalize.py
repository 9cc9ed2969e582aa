"""The first layer of every advmed model, and the wrapper that puts it there.

advmed keeps pixels in [0, 1] outside a model (DESIGN.md, Conventions), so every
model starts with :class:`Normalize` and ends with logits. Attacks then work in
pixel units and can never mix up normalised and unnormalised eps.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

#: ImageNet channel statistics in [0, 1] pixel units (RGB), as used by torchvision's
#: ImageNet weights (torchvision.transforms._presets.ImageClassification).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: Inputs scaled to [-1, 1] ((x - 0.5) / 0.5 = x/127.5 - 1 for uint8 x): Keras/TF
#: MobileNet and Inception weights expect this (keras.applications ``preprocess_input``
#: in "tf" mode).
SIGNED_UNIT_MEAN = (0.5, 0.5, 0.5)
SIGNED_UNIT_STD = (0.5, 0.5, 0.5)


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel, for pixels ``x`` in [0, 1].

    ``mean`` and ``std`` are buffers (they move with ``.to(device)`` and are saved in
    the state dict, but are never trained).
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        if len(mean) != len(std):
            raise ValueError(f"mean and std need one value per channel, got {len(mean)} and {len(std)}")
        if min(std) <= 0:
            raise ValueError(f"std must be positive, got {tuple(std)}")
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def extra_repr(self) -> str:
        fmt = lambda t: "(" + ", ".join(f"{v:.4g}" for v in t.flatten().tolist()) + ")"  # noqa: E731
        return f"mean={fmt(self.mean)}, std={fmt(self.std)}"


class _ChannelsLast(torch.autograd.Function):
    """Channels-last copy forward; the gradient goes back in the standard layout, so attacks
    and training code see the same tensors whatever layout the network runs in."""

    @staticmethod
    def forward(ctx, x):
        return x.contiguous(memory_format=torch.channels_last)

    @staticmethod
    def backward(ctx, grad):
        return grad.contiguous()


class ImageClassifier(nn.Module):
    """``net(normalize(x))``: pixels in [0, 1] in, logits out (never a softmax).

    ``meta`` describes the model (arch, init actually used, requested_init,
    in_channels, num_classes, input_size, mean, std); it is plain data, not part of
    the state dict, so a checkpoint is rebuilt with ``build_model(**...)`` first.
    """

    def __init__(self, net: nn.Module, normalize: Normalize, meta: dict[str, Any], min_size: int = 1):
        super().__init__()
        self.normalize = normalize
        self.net = net
        self.meta = dict(meta)
        self.min_size = int(min_size)
        self.channels_last = False

    def use_channels_last(self, enabled: bool = True) -> "ImageClassifier":
        """Run the network in the channels-last memory layout (weights converted now, inputs
        at every forward, after normalisation): where measured faster, see
        :func:`advmed.models.build.prefers_channels_last`. Numbers are unchanged up to float
        rounding; gradients flow back to the caller's layout."""
        self.channels_last = bool(enabled)
        self.net.to(memory_format=torch.channels_last if enabled else torch.contiguous_format)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Shape checks cost nothing and turn deep, cryptic shape errors into advice.
        expected = self.meta["in_channels"]
        if x.dim() != 4 or x.shape[1] != expected:
            raise ValueError(
                f"{self.meta['arch']} takes (N, {expected}, H, W) pixels in [0, 1], got {tuple(x.shape)}; "
                f"load the data with channels=advmed.models.input_channels({self.meta['arch']!r}, "
                f"{self.meta['init']!r}, native_channels) or build the model with in_channels={x.shape[1] if x.dim() == 4 else '?'}")
        if min(x.shape[-2:]) < self.min_size:
            raise ValueError(f"{self.meta['arch']} needs images of at least {self.min_size} px, "
                             f"got {tuple(x.shape[-2:])}; load the data at a larger size")
        z = self.normalize(x)
        if self.channels_last:
            z = _ChannelsLast.apply(z)
        return self.net(z)

    def extra_repr(self) -> str:
        m = self.meta
        return f"arch={m['arch']}, init={m['init']}, in_channels={m['in_channels']}, num_classes={m['num_classes']}"
