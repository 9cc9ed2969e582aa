"""Where data comes from and where derived files go.

- ``data_root()``: the local data root named by ``$ADVMED_DATA_ROOT`` (laid out like the
  project's data mirror, see its README), or None when unset.
- ``cache_dir()``: ``$ADVMED_CACHE`` or ``~/.cache/advmed``; decoded tensors live in
  ``cache_dir()/tensors`` and downloads in ``cache_dir()/downloads/<dataset>``.
- ``offline()``: true when ``$ADVMED_OFFLINE`` is ``1``/``true``/``yes``; the loaders
  then never touch the network (the test-suite sets it).
"""
from __future__ import annotations

import os
from pathlib import Path

ENV_ROOT = "ADVMED_DATA_ROOT"
ENV_OFFLINE = "ADVMED_OFFLINE"


def data_root() -> Path | None:
    """The local data root from ``$ADVMED_DATA_ROOT``; None when the variable is unset or empty.

    A variable that names a missing folder is an error, not a silent fall-back to
    downloading: a typo there should not start a 3 GB download.
    """
    value = os.environ.get(ENV_ROOT, "").strip()
    if not value:
        return None
    root = Path(value).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(
            f"{ENV_ROOT}={value!r} is not a folder. Point it at the data mirror "
            f"(the folder holding medmnist/, chest_xray_kermany_224/, ...) or unset it "
            f"to download from the official hosts."
        )
    return root


def cache_dir() -> Path:
    """``$ADVMED_CACHE`` or ``~/.cache/advmed`` (created on first use)."""
    from ..cache import cache_root

    path = cache_root()
    path.mkdir(parents=True, exist_ok=True)
    return path


def downloads_dir(dataset: str) -> Path:
    """Folder for one dataset's downloaded originals: ``cache_dir()/downloads/<dataset>``."""
    path = cache_dir() / "downloads" / dataset
    path.mkdir(parents=True, exist_ok=True)
    return path


def tensors_dir() -> Path:
    """Folder for decoded uint8 tensors: ``cache_dir()/tensors``."""
    path = cache_dir() / "tensors"
    path.mkdir(parents=True, exist_ok=True)
    return path


def offline() -> bool:
    """True when ``$ADVMED_OFFLINE`` asks the loaders never to download."""
    return os.environ.get(ENV_OFFLINE, "").strip().lower() in {"1", "true", "yes", "on"}
