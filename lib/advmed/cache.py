"""The on-disk cache: where it is, how files get there safely, and memoised results.

Chapters re-execute on every book build; what they compute (attack sweeps, UAPs) is
memoised here by a hash of everything that determines it, so a warm build reloads it
in seconds. Results are stored with ``torch.save`` and read back with
``weights_only=True``: only tensors, numbers, strings, lists and dicts (a DataFrame is
stored as its columns), so a cache file can never run code when it is loaded.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch

FORMAT_VERSION = 1


def cache_root() -> Path:
    """``$ADVMED_CACHE`` (default ``~/.cache/advmed``), read at call time.

    The one definition of where everything cached lives: decoded tensors, downloads,
    weights, checkpoints and chapter results are folders below it.
    """
    value = os.environ.get("ADVMED_CACHE", "").strip()
    return Path(value).expanduser() if value else Path.home() / ".cache" / "advmed"


#: What :func:`source_commit` appends when the library's tracked files differ from the commit.
DIRTY = "-dirty"


def source_commit() -> str:
    """The git commit of the code that computes (full hash of ``HEAD`` of the repository this
    package lives in), followed by :data:`DIRTY` when a tracked file of the package differs from
    that commit (the numbers then come from code no commit holds), or ``"unknown"`` outside a git
    checkout or without git: the provenance a record (:mod:`advmed.experiments.kernel.records`)
    and a page's banner (:func:`advmed.pages.banner`) state beside their numbers."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10)
        sha = out.stdout.strip()
        if out.returncode != 0 or not sha:
            return "unknown"
        changed = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", str(here)], cwd=here,
                                 capture_output=True, text=True, timeout=10)
        return sha + (DIRTY if changed.returncode == 0 and changed.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def atomic_write(path: Path, write: Callable[[Path], Any]) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then move it into place.

    An interrupted run (exception, Ctrl-C, crash before the rename) leaves no file
    under ``path``: readers see the old file or none, never half of a new one. The data
    is flushed to disk before the rename (so a power cut cannot leave an empty file under
    the final name either), and the file gets the permissions of an ordinary new file
    (``mkstemp`` makes 0600; a cache may be shared by a group). The one atomic write of
    the library: data tensors, downloads, weights, checkpoints and results go through it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_torch(path: Path, obj: Any) -> None:
    """``torch.save(obj)`` to ``path`` through :func:`atomic_write`, byte for byte the same
    wherever it runs: written through a file object, the archive inside is named ``archive``;
    given the temporary file's path, torch would name it after that random name, and two
    workers computing the same cell would write different bytes."""
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            torch.save(obj, fh)

    atomic_write(path, write)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def key_hash(key: Any) -> str:
    """A short stable hash of a JSON-able description of a computation."""
    text = json.dumps(key, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def tensor_digest(*tensors: Any) -> str:
    """A short SHA-256 of tensors' (or arrays') contents, for memo keys: a different
    image selection or perturbation can never reuse a stored result."""
    h = hashlib.sha256()
    for t in tensors:
        a = t.detach().cpu().contiguous().numpy() if torch.is_tensor(t) else np.ascontiguousarray(t)
        h.update(str((a.shape, a.dtype)).encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def _encode(value: Any) -> Any:
    if isinstance(value, pd.DataFrame):
        return {"__dataframe__": {c: _encode(value[c].tolist()) for c in value.columns},
                "__columns__": [str(c) for c in value.columns]}
    if isinstance(value, np.ndarray):
        return {"__ndarray__": torch.from_numpy(np.ascontiguousarray(value))}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (bytes, bytearray)):
        return {"__bytes__": torch.frombuffer(bytearray(value), dtype=torch.uint8).clone()}
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise TypeError("memoised dicts need string keys")
        return {k: _encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    if torch.is_tensor(value):
        return value.detach().cpu()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise TypeError(f"cannot memoise a {type(value).__name__}; return tensors, arrays, "
                    "DataFrames, bytes, numbers, strings, lists or dicts")


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if "__dataframe__" in value:
            cols = value["__columns__"]
            return pd.DataFrame({c: _decode(value["__dataframe__"][c]) for c in cols}, columns=cols)
        if "__ndarray__" in value:
            return value["__ndarray__"].numpy()
        if "__bytes__" in value:
            return value["__bytes__"].numpy().tobytes()
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def memo(namespace: str, key: Any, compute: Callable[[], Any], *, refresh: bool = False) -> Any:
    """``compute()``, or its stored result for the same ``(namespace, key)``.

    ``key`` must describe everything the result depends on (model checkpoint key,
    data, attack settings, seed); it is hashed with the cache format version, and with the
    precision policy when attacks run under autocast (``ADVMED_AMP=1``), so that those
    results never stand in for full-precision ones (keys are unchanged without it).
    """
    from .device import amp_enabled

    full = {"key": key, "format": FORMAT_VERSION, "namespace": namespace}
    if amp_enabled():
        full["precision"] = "amp"
    digest = key_hash(full)
    path = cache_root() / "results" / namespace / f"{digest}.pt"
    if path.is_file() and not refresh:
        return _decode(torch.load(path, map_location="cpu", weights_only=True))
    value = compute()
    blob = _encode(value)
    save_torch(path, blob)
    return value
