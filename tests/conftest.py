"""Shared test set-up: where the data lives and where caches go.

Tests read the real data from ``$ADVMED_DATA_ROOT`` (default: ``../shared/data``
beside the repository, as in this project's CI) and keep decoded tensors and trained
smoke checkpoints in ``.cache/advmed-test`` so that a second run is fast.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
_default_root = REPO.parent / "shared" / "data"
if "ADVMED_DATA_ROOT" not in os.environ and _default_root.is_dir():
    os.environ["ADVMED_DATA_ROOT"] = str(_default_root)
os.environ.setdefault("ADVMED_CACHE", str(REPO / ".cache" / "advmed-test"))
os.environ.setdefault("ADVMED_DEVICE", "cpu")
os.environ.setdefault("ADVMED_OFFLINE", "1")


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The real data root; tests that need real images fail loudly without it."""
    root = os.environ.get("ADVMED_DATA_ROOT")
    if not root or not Path(root).is_dir():
        pytest.fail("ADVMED_DATA_ROOT is not set to the data folder (see README: data)")
    return Path(root)


@pytest.fixture
def tmp_cache(tmp_path, monkeypatch) -> Path:
    """An empty, private cache for tests of caching itself."""
    monkeypatch.setenv("ADVMED_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def harm_label_calls(monkeypatch) -> list[tuple]:
    """The arguments of every ``advmed.widgets.core.harm_label`` call (the real one still
    answers): what a frame asked about the direction of each flip."""
    from advmed.widgets import core

    calls: list[tuple] = []
    real = core.harm_label
    monkeypatch.setattr(core, "harm_label", lambda *a: calls.append(a) or real(*a))
    return calls
