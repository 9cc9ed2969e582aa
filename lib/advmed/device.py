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


def _flag(name: str) -> bool:
    import os

    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def amp_enabled() -> bool:
    """The precision policy of attacks: ``ADVMED_AMP=1`` runs every attack called through the
    registry (and every UAP) under :func:`autocast` on CUDA. Off by default: autocast changes
    the numbers (``tests/test_scale_cuda.py`` bounds by how much) and is used where
    ``benchmarks/gpu_check.sh`` measures that it helps. Results computed with it are stored
    under other memo keys (:func:`advmed.cache.memo`), never mixed with full-precision ones."""
    return _flag("ADVMED_AMP")


def resident(x: torch.Tensor, device: torch.device | str, *, fraction: float = 0.25) -> torch.Tensor:
    """``x`` where batches of it will be used, moved once rather than batch by batch.

    On CUDA the whole tensor (uint8 images: 150 KB per 224 px image) goes to the GPU when it
    takes at most ``fraction`` of the free memory, else it is pinned on the host so that the
    per-batch copies are asynchronous; batches are converted to float on the GPU. On the CPU
    ``x`` is returned as it is.
    """
    device = torch.device(device)
    if device.type != "cuda" or x.device == device:
        return x
    free, _ = torch.cuda.mem_get_info(device)
    if x.numel() * x.element_size() <= fraction * free:
        return x.to(device, non_blocking=True)
    return x.pin_memory() if x.device.type == "cpu" else x


def maybe_compile(module: torch.nn.Module, enabled: bool | None = None) -> torch.nn.Module:
    """``torch.compile(module)`` when ``enabled`` (default: ``ADVMED_COMPILE=1``) and on CUDA,
    else ``module``. Opt-in: whether it pays (compile time against step time) is measured by
    ``benchmarks/bench_pgd.py --compile``, not assumed."""
    on = _flag("ADVMED_COMPILE") if enabled is None else bool(enabled)
    if not on or module_device(module).type != "cuda":
        return module
    return torch.compile(module)


def seed_everything(seed: int) -> torch.Generator:
    """Seed python, numpy and torch; return a torch generator seeded the same way."""
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


#: On a CPU, a batch's activations beyond about this many pixels per image plane times images
#: leave the caches: a MobileNet forward at 128 px ran 582 images/s in batches of 32 and 300
#: in batches of 256 on the project's 2-core machine (``benchmarks/bench_chunk.py``).
CPU_BATCH_PIXELS = 32 * 128 * 128


def work_batch(batch_size: int | None, x: torch.Tensor) -> int:
    """The chunk an attack or scoring loop runs ``x`` ``(N, C, H, W)`` in: ``batch_size`` when
    given; None means all ``N`` at once, except on a CPU, where it is capped at
    :data:`CPU_BATCH_PIXELS` ``// (H * W)`` images (an attack step on 300 images at 128 px ran
    4.3x faster in chunks of 32). Chunking changes nothing but the order random starts are
    drawn in."""
    if batch_size is not None:
        return int(batch_size)
    return inference_batch(max(1, int(x.shape[0])), x)


def inference_batch(batch_size: int, x: torch.Tensor, device: torch.device | str | None = None) -> int:
    """``batch_size`` for a forward-only pass over ``x`` ``(N, C, H, W)``: on a CPU capped at
    :data:`CPU_BATCH_PIXELS` ``// (H * W)`` images (at least 1), elsewhere as given. The
    outputs do not depend on it (eval mode, no gradients)."""
    dev = torch.device(device) if device is not None else x.device
    if dev.type != "cpu" or x.dim() != 4:
        return int(batch_size)
    return max(1, min(int(batch_size), CPU_BATCH_PIXELS // (int(x.shape[-1]) * int(x.shape[-2]))))
