"""Where tensors live: the device is chosen automatically, CUDA when present."""
from __future__ import annotations

import contextlib

import torch


def default_device() -> torch.device:
    """CUDA if a GPU is visible, else CPU. ``ADVMED_DEVICE`` overrides (e.g. ``cpu``)."""
    import os

    forced = os.environ.get("ADVMED_DEVICE")
    if forced:
        return torch.device(forced)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def module_device(module: torch.nn.Module) -> torch.device:
    """Where a module's parameters (or, without any, its buffers) live; CPU for neither.

    The one way the library finds a model's device: attacks, evaluation and widgets run
    where the model is, and move inputs there, never the model.
    """
    for p in module.parameters():
        return p.device
    for b in module.buffers():
        return b.device
    return torch.device("cpu")


def autocast(device: torch.device | str, enabled: bool = True):
    """Mixed precision on CUDA (bfloat16 when supported, else float16); a no-op on CPU.

    On CPU autocast brings no speed for these convolutional nets and changes the
    numbers, so it is never used there.
    """
    device = torch.device(device)
    if not enabled or device.type != "cuda":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast("cuda", dtype=dtype)


def seed_everything(seed: int) -> torch.Generator:
    """Seed python, numpy and torch; return a torch generator seeded the same way."""
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)
