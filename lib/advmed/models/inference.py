"""Inference helpers every layer above the models uses: pixels in, probabilities out.

Example:
    >>> import torch
    >>> from advmed.models import build_model, predict_proba
    >>> model = build_model("small_cnn", 2, input_size=32)
    >>> predict_proba(model, torch.zeros(4, 3, 32, 32, dtype=torch.uint8)).shape
    (4, 2)
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..device import inference_batch, module_device, resident


def as_module(trained_or_model: Any) -> nn.Module:
    """The ``nn.Module`` of a ``TrainedModel`` (its ``.model``) or the module itself."""
    model = trained_or_model if isinstance(trained_or_model, nn.Module) else getattr(trained_or_model, "model", None)
    if not isinstance(model, nn.Module):
        raise TypeError(f"expected a TrainedModel or an nn.Module returning logits, got "
                        f"{type(trained_or_model).__name__}")
    return model


def as_pixels(x: Any) -> torch.Tensor:
    """Images as a float tensor in [0, 1]; uint8 input (and an ImageSet) is divided by 255."""
    if hasattr(x, "images") and hasattr(x, "labels"):  # an ImageSet
        x = x.images
    x = torch.as_tensor(x)
    if x.dtype == torch.uint8:
        return x.float().div_(255)
    if not x.is_floating_point():
        raise TypeError(f"images must be uint8 or float pixels in [0, 1], got {x.dtype}")
    return x.float()


@torch.no_grad()
def predict_proba(model: nn.Module, x: Any, *, batch_size: int = 256,
                  device: torch.device | str | None = None, progress: bool = False) -> np.ndarray:
    """Class probabilities ``(N, C)``: softmax over the model's logits, in float64.

    ``x`` is ``(N, C, H, W)`` pixels in [0, 1] (float tensor or array, or uint8 which is
    divided by 255). Runs in eval mode without gradients, ``batch_size`` images at a
    time on ``device`` (default: where the model's parameters are), and leaves the
    model's mode and device as it found them. No autocast: probabilities near 0 or 1
    (what attacks change) need full precision. uint8 images go to a GPU once, as they are
    (:func:`advmed.device.resident`), and each batch is converted to float there.
    """
    raw = torch.as_tensor(x.images if hasattr(x, "images") and hasattr(x, "labels") else x)
    if raw.dim() != 4:
        raise ValueError(f"x must have shape (N, C, H, W), got {tuple(raw.shape)}")
    home = module_device(model)
    dev = torch.device(device) if device is not None else home
    x = resident(raw, dev) if raw.dtype == torch.uint8 else as_pixels(raw)
    was_training = model.training
    model.eval()
    if dev != home:
        model.to(dev)
    try:
        out = []
        batch_size = inference_batch(batch_size, x, dev)
        starts = range(0, len(x), batch_size)
        for s in tqdm(starts, desc="predict", leave=False, disable=not progress):
            logits = model(as_pixels(x[s:s + batch_size].to(dev, non_blocking=True)))
            out.append(torch.softmax(logits.double(), dim=1).cpu())
        n_cls = out[0].shape[1] if out else 0
        return torch.cat(out).numpy() if out else np.zeros((0, n_cls))
    finally:
        if dev != home:
            model.to(home)
        model.train(was_training)
