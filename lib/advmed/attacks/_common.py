"""What every attack shares: input checks and a guard that leaves the model as found."""
from __future__ import annotations

import contextlib
import math

import torch
from torch import nn


@contextlib.contextmanager
def frozen_eval(model: nn.Module):
    """Run ``model`` in eval mode with parameter gradients off; restore both on exit.

    Attacking a model left in train mode (batch-norm statistics drifting, dropout on)
    is a known trap; so is leaving ``.grad`` on the parameters after an attack.
    Parameter ``.grad`` fields that existed before are left exactly as they were.
    """
    was_training = model.training
    flags = [(p, p.requires_grad) for p in model.parameters()]
    model.eval()
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield model
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
        model.train(was_training)


def check_images(x: torch.Tensor, name: str = "x") -> None:
    """Images must be a float batch (N, C, H, W) of pixels in [0, 1]."""
    if not torch.is_tensor(x) or not x.is_floating_point():
        raise TypeError(f"{name} must be a float tensor of pixels in [0, 1], got {type(x).__name__}"
                        f"{'' if not torch.is_tensor(x) else ' of dtype ' + str(x.dtype)}; "
                        "divide uint8 images by 255")
    if x.dim() != 4:
        raise ValueError(f"{name} must have shape (N, C, H, W), got {tuple(x.shape)}")
    if x.numel() and (x.min() < 0 or x.max() > 1):
        raise ValueError(f"{name} has pixels outside [0, 1] (min {x.min().item():.4g}, max "
                         f"{x.max().item():.4g}); advmed attacks take unnormalised pixels and the "
                         "model normalises in its first layer")


def check_labels(y: torch.Tensor, x: torch.Tensor, name: str = "y") -> None:
    if not torch.is_tensor(y) or y.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
        raise TypeError(f"{name} must be an integer tensor of class indices")
    if y.shape != (x.shape[0],):
        raise ValueError(f"{name} must have shape ({x.shape[0]},) to match x, got {tuple(y.shape)}")


def check_eps(eps: float, name: str = "eps") -> float:
    eps = float(eps)
    if not math.isfinite(eps) or eps < 0:
        raise ValueError(f"{name} must be a finite number >= 0 in [0, 1] pixel units (e.g. 2/255), got {eps}")
    return eps


def check_steps(steps: int) -> int:
    if int(steps) != steps or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    return int(steps)


NORMS = ("linf", "l2")


def check_norm(norm: str) -> str:
    key = str(norm).lower().replace("∞", "inf")
    if key in ("inf", "linf", "l_inf"):
        return "linf"
    if key in ("2", "l2", "l_2"):
        return "l2"
    raise ValueError(f"unsupported norm {norm!r}; valid norms: {', '.join(NORMS)}")
