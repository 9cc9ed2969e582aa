"""MobileNet v1 as Keras 2.1.4 builds it, in PyTorch, with TensorFlow padding.

Howard et al. 2017, "MobileNets: Efficient convolutional neural networks for mobile
vision applications", arXiv:1704.04861; layer for layer the Keras 2.1.4
``keras.applications.mobilenet.MobileNet`` (the model behind the TF.js
``mobilenet_v1_0.75_224`` release that :mod:`advmed.models.tfjs` converts):

- ``conv1`` (3x3, stride 2, no bias) -> ``conv1_bn`` -> ReLU6;
- 13 blocks ``conv_dw_i`` (3x3 depthwise, stride 1 or 2) -> ``conv_dw_i_bn`` -> ReLU6 ->
  ``conv_pw_i`` (1x1) -> ``conv_pw_i_bn`` -> ReLU6;
- global average pool -> dropout (Keras default rate 1e-3) -> ``conv_preds`` (1x1 conv
  with bias) -> logits (the Keras softmax is left out: advmed models return logits).

BatchNorm epsilon 1e-3 and momentum 0.99 in Keras terms (0.01 in PyTorch terms).
Widths are ``int(filters * alpha)``: 24, 48, 96, 192, 384, 768 for alpha = 0.75.
Module names are the Keras layer names, so the converter maps weights by name.
"""
from __future__ import annotations

import math
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

#: (pointwise filters at alpha = 1, depthwise stride) for the 13 blocks (Keras 2.1.4).
BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
          (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1))


def tf_same_padding(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """(before, after) zero padding of TensorFlow's "same" for one spatial axis.

    The output has ``ceil(size / stride)`` positions; when the total padding is odd TF
    puts the extra pixel after (bottom/right), unlike PyTorch's symmetric padding.
    (tensorflow/core/framework/kernel_shape_util.cc, GetWindowedOutputSizeVerbose.)
    """
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


class TFConv2d(nn.Conv2d):
    """``nn.Conv2d`` with TensorFlow padding computed from the input size.

    ``tf_padding``: ``"same"`` (TF rule, extra pixel bottom/right), ``"valid"`` (none),
    or explicit ``(left, right, top, bottom)`` as a Keras ``ZeroPadding2D`` layer in
    front of a "valid" conv would give.
    """

    def __init__(self, *args, tf_padding: str | tuple[int, int, int, int] = "same", **kwargs):
        super().__init__(*args, padding=0, **kwargs)
        self.tf_padding = tf_padding

    def _pads(self, h: int, w: int) -> tuple[int, int, int, int]:
        if self.tf_padding == "valid":
            return (0, 0, 0, 0)
        if self.tf_padding == "same":
            top, bottom = tf_same_padding(h, self.kernel_size[0], self.stride[0], self.dilation[0])
            left, right = tf_same_padding(w, self.kernel_size[1], self.stride[1], self.dilation[1])
            return (left, right, top, bottom)
        return tuple(self.tf_padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        left, right, top, bottom = self._pads(x.shape[-2], x.shape[-1])
        if left == right and top == bottom:
            # Symmetric (all stride-1 layers): let the convolution pad, saving a copy.
            return F.conv2d(x, self.weight, self.bias, self.stride, (top, left), self.dilation, self.groups)
        return super().forward(F.pad(x, (left, right, top, bottom)))

    def extra_repr(self) -> str:
        return super().extra_repr() + f", tf_padding={self.tf_padding!r}"


class MobileNetV1(nn.Module):
    """MobileNet v1 (Keras 2.1.4 layout); input normalised to [-1, 1], output logits.

    ``alpha`` is the width multiplier (0.75 for ``mobilenet_v1_075``); any input size
    works (global average pooling), 224 px is the native one.
    """

    def __init__(self, num_classes: int = 1000, *, alpha: float = 0.75, in_channels: int = 3,
                 dropout: float = 1e-3, bn_eps: float = 1e-3, bn_momentum: float = 0.01):
        super().__init__()
        self.alpha = alpha
        bn = lambda c: nn.BatchNorm2d(c, eps=bn_eps, momentum=bn_momentum)  # noqa: E731
        c = int(32 * alpha)
        layers: list[tuple[str, nn.Module]] = [
            ("conv1", TFConv2d(in_channels, c, 3, stride=2, bias=False)),
            ("conv1_bn", bn(c)), ("conv1_relu", nn.ReLU6(inplace=True)),
        ]
        for i, (filters, stride) in enumerate(BLOCKS, start=1):
            out = int(filters * alpha)
            layers += [
                (f"conv_dw_{i}", TFConv2d(c, c, 3, stride=stride, groups=c, bias=False)),
                (f"conv_dw_{i}_bn", bn(c)), (f"conv_dw_{i}_relu", nn.ReLU6(inplace=True)),
                (f"conv_pw_{i}", TFConv2d(c, out, 1, bias=False)),
                (f"conv_pw_{i}_bn", bn(out)), (f"conv_pw_{i}_relu", nn.ReLU6(inplace=True)),
            ]
            c = out
        self.features = nn.Sequential(OrderedDict(layers))
        self.num_features = c
        self.dropout = nn.Dropout(dropout)
        self.conv_preds = nn.Conv2d(c, num_classes, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = x.mean(dim=(2, 3), keepdim=True)  # GlobalAveragePooling2D + Reshape (1, 1, C)
        x = self.conv_preds(self.dropout(x))
        return x.flatten(1)

    def reset_head(self, num_classes: int) -> None:
        """A fresh ``conv_preds`` with ``num_classes`` outputs (for fine-tuning)."""
        self.conv_preds = nn.Conv2d(self.num_features, num_classes, 1, bias=True)
