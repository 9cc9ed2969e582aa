"""What the experiment families' tests share: a stand-in for a trained model (the fields the
families read of :class:`advmed.train.TrainedModel`) and the short full-batch fit of a tiny
network on synthetic images."""
from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
import torch
from torch import nn

from advmed.train import TrainConfig


@dataclass
class FakeTrained:
    """A trained model as the families see it, without training through the checkpoint cache."""

    model: nn.Module
    config: TrainConfig
    classes: tuple = ("normal", "pneumonia")
    init_used: str = "scratch"
    val_auc: float = 0.9
    train_seconds: float = 1.0
    best_epoch: int = 0
    history: pd.DataFrame = field(default_factory=lambda: pd.DataFrame({"epoch": [0]}))
    meta: dict = field(default_factory=lambda: {"n_train": 64})


def fit_tiny(net: nn.Module, data, *, steps: int, lr: float = 0.03, noise: float | None = None) -> nn.Module:
    """``steps`` full-batch Adam steps of cross-entropy on ``data`` (an ImageSet); with
    ``noise``, Gaussian noise of that std is added to the images at every step (a noise-trained
    base model). Returns the network in eval mode."""
    x, y = data.float(), data.labels
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        inputs = x if noise is None else x + noise * torch.randn_like(x)
        nn.functional.cross_entropy(net(inputs), y).backward()
        opt.step()
    return net.eval()
