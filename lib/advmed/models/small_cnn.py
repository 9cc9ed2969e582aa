"""A tiny CNN for smoke runs and unit tests: 0.14 M parameters, fast on a CPU.

Works from 28 px (MedMNIST, the smallest size build_model accepts for it) upwards
with 1 or 3 channels: two 2x2 poolings, then a global average pool.
Its numbers say nothing about medicine; it exists so that the whole book and the test
suite run in minutes.
"""
from __future__ import annotations

from torch import nn


def _block(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class SmallCNN(nn.Module):
    """conv-conv-pool, conv-conv-pool, conv, global average pool, linear -> logits."""

    def __init__(self, num_classes: int, in_channels: int = 3, width: int = 32):
        super().__init__()
        w = width
        self.features = nn.Sequential(
            *_block(in_channels, w), *_block(w, w), nn.MaxPool2d(2),
            *_block(w, 2 * w), *_block(2 * w, 2 * w), nn.MaxPool2d(2),
            *_block(2 * w, 4 * w),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(1),
        )
        self.fc = nn.Linear(4 * w, num_classes)

    def forward(self, x):
        return self.fc(self.features(x))
