"""Evaluating universal perturbations: apply, fooling / targeted success rates, random controls.

Definitions follow Hirano, Minagi & Takemoto (BMC Med Imaging 2021) and Hirano & Takemoto
(Algorithms 2020):

- *fooling rate* (non-targeted): share of images whose predicted class changes when the
  perturbation is added, relative to the clean *prediction* (not the label);
- *targeted success rate*: share of perturbed images classified as the target class.
  The study divides by **all** images (``among="all"``); by default we divide by the images
  whose clean prediction is not already the target (``among="non_target"``), so that a
  class-imbalanced test set cannot inflate the rate. Both are available.

Evaluate on images the perturbation was **not** built from (the study reports both its
training-set and test-set rates; the test-set rate is the honest one).

All pixels are in [0, 1]; ``eps`` is in [0, 1] pixel units. Rates and their intervals
come from :func:`advmed.metrics.attack_success` and :func:`advmed.metrics.mean_interval`,
the library's one definition of attack success and its one bootstrap.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
from torch import nn

from ...device import inference_batch
from ...metrics import attack_success, mean_interval
from ..checks import check_images, check_labels, check_norm, frozen_eval

__all__ = [
    "apply", "predict", "fooling_rate", "targeted_success_rate", "per_class_rates", "random_control",
]


def _delta_tensor(delta) -> torch.Tensor:
    """Accept a ``UAPResult`` or a tensor of shape (C, H, W) / (1, C, H, W)."""
    d = getattr(delta, "delta", delta)
    if not torch.is_tensor(d) or not d.is_floating_point():
        raise TypeError("delta must be a float tensor (1, C, H, W) or a UAPResult")
    if d.dim() == 3:
        d = d.unsqueeze(0)
    if d.dim() != 4 or d.shape[0] != 1:
        raise ValueError(f"delta must have shape (1, C, H, W), got {tuple(d.shape)}")
    return d


def apply(delta, x: torch.Tensor) -> torch.Tensor:
    """``clamp(x + delta, 0, 1)``: the perturbed images, always valid pixels in [0, 1].

    ``delta`` is a ``UAPResult`` or a (1, C, H, W) tensor; it is moved to ``x``'s device.
    """
    d = _delta_tensor(delta)
    if d.shape[1:] != x.shape[1:]:
        raise ValueError(f"delta shape {tuple(d.shape[1:])} does not match images {tuple(x.shape[1:])}")
    return (x + d.to(device=x.device, dtype=x.dtype)).clamp_(0.0, 1.0)


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, delta=None, *, batch_size: int = 256,
            progress: bool = False) -> torch.Tensor:
    """Predicted classes (int64, on ``x``'s device) of ``x`` or of ``apply(delta, x)``, in eval mode."""
    from tqdm.auto import tqdm

    out = []
    batch_size = inference_batch(batch_size, x)
    with frozen_eval(model):
        for s in tqdm(range(0, x.shape[0], batch_size), desc="predict", disable=not progress,
                      leave=False):
            xb = x[s:s + batch_size]
            if delta is not None:
                xb = apply(delta, xb)
            out.append(model(xb).argmax(1))
    if not out:
        return torch.empty(0, dtype=torch.long, device=x.device)
    return torch.cat(out)


def _check_eval_inputs(x: torch.Tensor) -> None:
    check_images(x)
    if x.shape[0] == 0:
        raise ValueError("x is empty: a rate over zero images is undefined")


def fooling_rate(model: nn.Module, x: torch.Tensor, delta, *, batch_size: int = 256,
                 progress: bool = False) -> float:
    """Share of images (in [0, 1]) whose predicted class changes under ``delta``.

    The reference is the model's clean prediction, as in the study (``get_fooling_rate``).
    """
    _check_eval_inputs(x)
    clean = predict(model, x, batch_size=batch_size, progress=progress)
    adv = predict(model, x, delta, batch_size=batch_size, progress=progress)
    return float(attack_success(clean, adv).mean())


def targeted_success_rate(model: nn.Module, x: torch.Tensor, delta, target: int, *,
                          among: str = "non_target", batch_size: int = 256,
                          progress: bool = False) -> float:
    """Share of perturbed images classified as ``target``.

    ``among="non_target"`` (default): only images whose *clean prediction* is not the target
    count (NaN if there are none); ``among="all"``: every image counts, the study's definition
    (Hirano, Minagi & Takemoto 2021), which includes images already of the target class.
    """
    _check_eval_inputs(x)
    if among not in ("non_target", "all"):
        raise ValueError(f"unknown among={among!r}; valid: 'non_target', 'all'")
    adv = predict(model, x, delta, batch_size=batch_size, progress=progress)
    clean = adv if among == "all" else predict(model, x, batch_size=batch_size, progress=progress)
    hit = attack_success(clean, adv, target=int(target), among=among)
    return float(hit.mean()) if hit.size else float("nan")


def per_class_rates(model: nn.Module, x: torch.Tensor, y: torch.Tensor, delta, *,
                    target: int | None = None, classes: Sequence[str] | None = None,
                    n_boot: int = 1000, seed: int = 0, batch_size: int = 256,
                    progress: bool = False) -> list[dict]:
    """Rates per true class (rows of ``y``) and overall, each with a bootstrap 95 % interval.

    Each row: ``class`` (index), ``name``, ``n`` images, ``fooling_rate`` (prediction
    changed vs the clean prediction) with ``fooling_ci``, and when ``target`` is given
    ``success_rate`` (share classified as the target, among images whose clean prediction
    is not the target; NaN where there are none) with ``success_ci`` and ``n_success``
    (that denominator). The last row has ``class = -1``, ``name = "all"``. Returns a list of
    dicts (``pandas.DataFrame(rows)`` makes a table).
    """
    _check_eval_inputs(x)
    check_labels(y, x)
    clean = predict(model, x, batch_size=batch_size, progress=progress).cpu()
    adv = predict(model, x, delta, batch_size=batch_size, progress=progress).cpu()
    y = y.cpu().long()
    fooled = attack_success(clean, adv)
    n_classes = int(max(int(y.max()) + 1, len(classes) if classes else 0))
    rows = []
    groups = [(c, (y == c).numpy()) for c in range(n_classes)] + [(-1, np.ones(len(y), bool))]
    for c, mask in groups:
        name = "all" if c < 0 else (classes[c] if classes else str(c))
        f = fooled[mask]
        fr = mean_interval(f, n_boot=n_boot, seed=seed)
        row = {"class": c, "name": name, "n": int(mask.sum()), "fooling_rate": fr.value,
               "fooling_ci": (fr.lo, fr.hi)}
        if target is not None:
            s = attack_success(clean[torch.from_numpy(mask)], adv[torch.from_numpy(mask)], target=int(target))
            sr = mean_interval(s, n_boot=n_boot, seed=seed)
            row.update({"n_success": int(s.size), "success_rate": sr.value, "success_ci": (sr.lo, sr.hi)})
        rows.append(row)
    return rows


def random_control(like, eps: float | None = None, norm: str | None = None, *, seed: int = 0,
                   linf_kind: str = "sign", device=None) -> torch.Tensor:
    """A random perturbation of the same size as a UAP: the study's "random UAP" control.

    ``like`` is a ``UAPResult`` (shape, norm and size taken from it; ``eps``/``norm`` may
    override) or a shape ``(C, H, W)`` / ``(1, C, H, W)`` (then ``eps`` and ``norm`` are
    required). Returns a (1, C, H, W) float32 tensor in [0, 1] pixel units.

    - L-inf: ``linf_kind="sign"`` (default) draws a uniform random sign per pixel times
      ``eps``, so the control has the UAP's L-inf bound *and* the largest L2 norm the ball
      allows (a strong control); ``linf_kind="uniform"`` draws uniformly in ``[-eps, eps]``,
      what the study did (ART ``random_sphere`` with ``norm=inf``).
    - L2: a Gaussian rescaled to L2 norm ``eps``; from a ``UAPResult`` the default ``eps`` is
      the UAP's *actual* L2 norm (which may be below its bound), so both have equal norms.
      The study drew from ART ``random_sphere`` (uniform in the ball: in these dimensions
      practically on its surface, i.e. the same thing).
    """
    if hasattr(like, "delta"):
        shape = tuple(like.delta.shape)
        norm = check_norm(norm or like.norm)
        if eps is None:
            eps = like.norms["l2"] if norm == "l2" else like.eps
        device = device if device is not None else like.delta.device
    else:
        shape = tuple(int(s) for s in like)
        if len(shape) == 3:
            shape = (1,) + shape
        if len(shape) != 4 or shape[0] != 1:
            raise ValueError(f"shape must be (C, H, W) or (1, C, H, W), got {shape}")
        if eps is None or norm is None:
            raise ValueError("random_control(shape, ...) needs eps and norm")
        norm = check_norm(norm)
    eps = float(eps)
    if not math.isfinite(eps) or eps < 0:
        raise ValueError(f"eps must be a finite number >= 0 in [0, 1] pixel units, got {eps}")
    g = torch.Generator().manual_seed(int(seed))
    if norm == "linf":
        if linf_kind == "sign":
            r = (torch.randint(0, 2, shape, generator=g).float() * 2 - 1) * eps
        elif linf_kind == "uniform":
            r = (torch.rand(shape, generator=g) * 2 - 1) * eps
        else:
            raise ValueError(f"unknown linf_kind={linf_kind!r}; valid: 'sign', 'uniform'")
    else:
        r = torch.randn(shape, generator=g)
        r = r * (eps / r.norm().clamp_min(1e-12))
    return r.to(device if device is not None else "cpu")
