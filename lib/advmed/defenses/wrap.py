"""The one wrapper every preprocessing defense uses: ``classifier(defense(x))`` as a model.

A defended model takes pixels in [0, 1] and returns logits, like every advmed model, so
every attack of :mod:`advmed.attacks` runs on it unchanged. Its parameters are the
classifier's and the defense's (a VAE's), so :func:`advmed.attacks.frozen_eval` freezes
and restores both. A defended model starts in its classifier's mode; ``.train()`` /
``.eval()`` set the classifier's mode and keep the defense layer in eval mode.

Example:
    >>> import torch
    >>> from advmed.defenses import DefendedModel
    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 2))
    >>> blur = torch.nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    >>> DefendedModel(blur, net)(torch.rand(2, 3, 8, 8)).shape
    torch.Size([2, 2])
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn


class DefendedModel(nn.Module):
    """``classifier(defense(x))``: pixels in [0, 1] in, the classifier's logits out.

    Args:
        defense: a module mapping pixels ``(N, C, H, W)`` in [0, 1] to pixels of the
            same shape (JPEG, a VAE denoiser).
        classifier: the model being defended (normalises in its first layer, returns logits).

    ``meta`` is the classifier's ``meta`` (when it has one) plus ``"defense"``, the
    defense's ``repr``, so code that reads ``model.meta["in_channels"]`` keeps working.
    """

    def __init__(self, defense: nn.Module, classifier: nn.Module):
        super().__init__()
        if not isinstance(defense, nn.Module) or not isinstance(classifier, nn.Module):
            raise TypeError("DefendedModel(defense, classifier) takes two torch.nn.Module objects, got "
                            f"{type(defense).__name__} and {type(classifier).__name__}")
        self.defense = defense
        self.classifier = classifier
        self.meta: dict[str, Any] = {**dict(getattr(classifier, "meta", {}) or {}), "defense": repr(defense)}
        self.training = classifier.training  # a new module is in train mode; take the classifier's
        self.defense.eval()

    def train(self, mode: bool = True) -> DefendedModel:
        """Set the classifier's mode; the defense layer stays in eval mode (it is fixed
        preprocessing; advmed's defenses behave the same in both modes anyway)."""
        self.training = bool(mode)
        self.classifier.train(mode)
        self.defense.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.defense(x))

    def with_defense(self, defense: nn.Module) -> DefendedModel:
        """The same classifier (shared, not copied) behind another defense layer: e.g. the
        BPDA view of a JPEG defense for the attacker, the real codec for evaluation."""
        return DefendedModel(defense, self.classifier)
