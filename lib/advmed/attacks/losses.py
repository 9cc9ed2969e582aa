"""Attack losses on logits, and the choice of which labels they are taken against.

Every loss here maps ``(logits (N, K), labels (N,)) -> (N,)``, one value per image,
and is the quantity an *untargeted* attack ascends. A targeted attack descends the
same loss taken against the target labels. The attacks sum the per-image values
before differentiating, so the gradient of each image depends on that image alone
(unlike the batch mean of ``nn.CrossEntropyLoss``, which scales every gradient by
``1/N``; the sign and the per-image normalisations of the attacks make the two give
the same steps).

- ``"ce"``: cross-entropy on logits (Goodfellow et al. 2015; Madry et al. 2018).
- ``"margin"``: the Carlini & Wagner (2017) logit margin
  ``max_{j != y} z_j - z_y`` (their f_6 with kappa = infinity): positive exactly when
  the image is misclassified, and it does not saturate the way softmax
  cross-entropy does on a confident model. It is minus :func:`true_margin`, the one
  definition of "true-class score minus the largest other" (which the robust ensemble and
  the defenses' per-image worst case also rank images by, on logits or probabilities).

Targets (``target=`` of every attack, with ``targeted=True``):

- an ``int``: the same target class for every image;
- an integer tensor ``(N,)``: one target class per image;
- ``"other"``: the other class of a binary (two-logit) task, ``1 - y``, as in
  Finlayson et al. (2019), who pushed every image to the opposite class.
"""
from __future__ import annotations

import numbers
from typing import Any, Callable, Union

import numpy as np
import torch
import torch.nn.functional as F

from .checks import check_labels

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Target = Union[None, int, str, torch.Tensor]


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-image softmax cross-entropy of ``logits`` (never probabilities) against ``labels``."""
    return F.cross_entropy(logits, labels, reduction="none")


def true_margin(scores: Any, labels: Any) -> Any:
    """Per image, the true-class score minus the largest other one, ``s_y - max_{j != y} s_j``:
    > 0 exactly while the image is classified correctly.

    Args:
        scores: ``(N, K)`` logits or probabilities, a torch tensor (differentiable) or a numpy
            array (then the result is one too).
        labels: ``(N,)`` integer labels.
    """
    if torch.is_tensor(scores):
        labels = labels if torch.is_tensor(labels) else torch.as_tensor(labels, device=scores.device)
        true = scores.gather(1, labels[:, None]).squeeze(1)
        return true - scores.scatter(1, labels[:, None], float("-inf")).amax(dim=1)
    scores, labels = np.asarray(scores), np.asarray(labels)
    rows = np.arange(len(labels))
    others = scores.copy()
    others[rows, labels] = -np.inf
    return scores[rows, labels] - others.max(1)


def margin(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-image CW logit margin ``max_{j != y} z_j - z_y`` (Carlini & Wagner 2017): minus
    :func:`true_margin`, the loss an untargeted attack ascends."""
    return -true_margin(logits, labels)


LOSSES: dict[str, LossFn] = {
    "ce": cross_entropy,
    "cross_entropy": cross_entropy,
    "margin": margin,
    "cw": margin,
}


def get_loss(loss: str | LossFn) -> LossFn:
    """A loss by name (``"ce"``, ``"margin"``, ...) or a callable returned as is."""
    if callable(loss):
        return loss
    key = str(loss).lower()
    if key not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; valid losses: {', '.join(LOSSES)} "
                         "(or a callable (logits, labels) -> per-image loss)")
    return LOSSES[key]


def check_target(targeted: bool, target: Target, x: torch.Tensor) -> None:
    """Checks that need no forward pass: the target's kind and shape."""
    if not isinstance(targeted, bool):
        raise TypeError(f"targeted must be True or False, got {targeted!r}")
    if not targeted:
        if target is not None:
            raise ValueError("a target was given but targeted=False; pass targeted=True to "
                             "attack towards it")
        return
    if target is None:
        raise ValueError("targeted=True needs target=: an int class, an integer tensor of shape "
                         "(N,), or 'other' (the other class of a binary task)")
    if isinstance(target, str):
        if target != "other":
            raise ValueError(f"unknown target {target!r}; valid: an int, an integer tensor (N,), "
                             "or 'other'")
    elif isinstance(target, bool) or not isinstance(target, (numbers.Integral, torch.Tensor)):
        raise TypeError(f"target must be an int, an integer tensor (N,) or 'other', got {target!r}")
    elif torch.is_tensor(target):
        check_labels(target, x, "target")


def resolve_labels(logits: torch.Tensor, y: torch.Tensor, targeted: bool,
                   target: Target) -> torch.Tensor:
    """The labels the loss is taken against, checked against the model's ``K`` logits.

    Untargeted: ``y``. Targeted: the target classes. Called once the first forward
    pass has told how many classes the model has.
    """
    if logits.dim() != 2 or logits.shape[0] != y.shape[0]:
        raise ValueError(f"the model must return logits of shape (N, K) = ({y.shape[0]}, K), "
                         f"got {tuple(logits.shape)}")
    k = logits.shape[1]
    if k < 2:
        raise ValueError("the model returns a single logit; advmed models return one logit per "
                         "class (two for a binary task)")
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= k):
        raise ValueError(f"labels y must lie in [0, {k - 1}] for a model with {k} logits, got "
                         f"values in [{int(y.min())}, {int(y.max())}]")
    if not targeted:
        return y
    if isinstance(target, str):  # "other", checked by check_target
        if k != 2:
            raise ValueError(f"target='other' needs a binary model (2 logits); this one has {k}; "
                             "pass an int or a tensor of target classes")
        return 1 - y
    if isinstance(target, numbers.Integral):
        target = int(target)
        if not 0 <= target < k:
            raise ValueError(f"target class {target} is out of range for a model with {k} logits")
        return torch.full_like(y, target)
    t = target.to(device=y.device, dtype=torch.int64)
    if t.numel() and (int(t.min()) < 0 or int(t.max()) >= k):
        raise ValueError(f"target classes must lie in [0, {k - 1}] for a model with {k} logits")
    return t
