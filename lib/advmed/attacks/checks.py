"""What every attack shares: input checks and a guard that leaves the model as found.

Every public attack of :mod:`advmed.attacks` calls these before it touches the model, so
bad input fails at once with a message that says what to do: non-float or non-finite
pixels, pixels outside [0, 1], budgets outside the [0, 1] pixel scale.
"""
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
    The mode of every submodule is restored, not just the top one's: ``model.train(flag)``
    would set all children alike, and a fresh wrapper (train mode by default) around an
    eval-mode classifier would leave the classifier in train mode.
    """
    modes = [(m, m.training) for m in model.modules()]
    flags = [(p, p.requires_grad) for p in model.parameters()]
    model.eval()
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield model
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
        for m, mode in modes:
            m.training = mode


def check_images(x: torch.Tensor, name: str = "x") -> None:
    """Images must be a float batch (N, C, H, W) of pixels in [0, 1]."""
    if not torch.is_tensor(x) or not x.is_floating_point():
        raise TypeError(f"{name} must be a float tensor of pixels in [0, 1], got {type(x).__name__}"
                        f"{'' if not torch.is_tensor(x) else ' of dtype ' + str(x.dtype)}; "
                        "divide uint8 images by 255")
    if x.dim() != 4:
        raise ValueError(f"{name} must have shape (N, C, H, W), got {tuple(x.shape)}")
    if x.numel() and not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).sum())
        raise ValueError(f"{name} has {bad} NaN or infinite pixel value(s); attacks need finite pixels "
                         "in [0, 1] (check the image decoding or the preprocessing before the attack)")
    if x.numel() and (x.min() < 0 or x.max() > 1):
        raise ValueError(f"{name} has pixels outside [0, 1] (min {x.min().item():.4g}, max "
                         f"{x.max().item():.4g}); advmed attacks take unnormalised pixels and the "
                         "model normalises in its first layer")


def check_labels(y: torch.Tensor, x: torch.Tensor, name: str = "y") -> None:
    if not torch.is_tensor(y) or y.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
        raise TypeError(f"{name} must be an integer tensor of class indices")
    if y.shape != (x.shape[0],):
        raise ValueError(f"{name} must have shape ({x.shape[0]},) to match x, got {tuple(y.shape)}")


def check_eps(eps: float, name: str = "eps", *, norm: str = "linf", x: torch.Tensor | None = None) -> float:
    """A budget in [0, 1] pixel units: finite, >= 0, and no larger than the pixel scale allows.

    L-inf: at most 1 (the whole [0, 1] range); a larger value is almost always a budget in
    8-bit levels, and the message says which fraction of 255 was probably meant. L2: at
    most the diameter of the image box, ``sqrt(C * H * W)`` of ``x`` (when given).
    """
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) and not (
            torch.is_tensor(eps) and eps.numel() == 1):
        raise TypeError(f"{name} must be a number in [0, 1] pixel units (e.g. 8/255), got {eps!r}")
    eps = float(eps)
    if not math.isfinite(eps) or eps < 0:
        raise ValueError(f"{name} must be a finite number >= 0 in [0, 1] pixel units (e.g. 2/255), got {eps}")
    if check_norm(norm) == "linf":
        if eps > 1:
            raise ValueError(f"{name}={eps:g} is above 1: {name} is in [0, 1] pixel units; did you mean "
                             f"{eps:g}/255 = {eps / 255:.5f}?")
    elif x is not None and x.dim() == 4:
        diameter = math.sqrt(x[0].numel())
        if eps > diameter:
            raise ValueError(f"{name}={eps:g} is larger than the L2 diameter of a [0, 1] image of shape "
                             f"{tuple(x.shape[1:])} ({diameter:.1f}); {name} is the L2 norm of the "
                             "perturbation in [0, 1] pixel units")
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
