"""Which images an experiment attacks, in what chunks, for how many steps.

Every family draws its held-out images from :func:`test_images` (chapter 2's selection, so
that per-image results line up across chapters) and subsets of it from :func:`subset`;
:func:`batching` and :func:`study_steps` are the profile's rules for chunks and for the
studies' iteration counts.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from ...data.splits import stratified_subset
from ..profiles import Profile
from ..zoo import test_set


def test_images(task: str, profile: Profile, n_images: int | None = None, *, progress: bool = False):
    """The held-out images every attack of a task uses: :func:`~advmed.experiments.zoo.test_set`
    with ``n_images`` (default ``profile.whitebox.n_images``) as its limit (a stratified
    subset drawn with the profile's first seed; None: the whole test split)."""
    n = profile.whitebox.n_images if n_images is None else n_images
    return test_set(task, profile, limit="all" if n is None else int(n), progress=progress)


test_images.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


class Subset(NamedTuple):
    """Images drawn from a larger selection, and their rows in it (so per-image results of
    the two line up)."""

    images: Any
    positions: np.ndarray


def subset(images: Any, n: int | None, seed: int) -> Subset:
    """A stratified subset of ``n`` of ``images`` (seeded; all of them when ``n`` is None or
    not smaller)."""
    if n is None or int(n) >= len(images.labels):
        return Subset(images, np.arange(len(images.labels)))
    pos = np.asarray(stratified_subset(images.labels.numpy(), int(n), seed))
    return Subset(images.subset(pos), pos)


def batching(profile: Profile, images: Any = None) -> dict[str, int]:
    """``{"batch_size": n}`` when the profile attacks in chunks (``whitebox.batch_size``, or for
    ``images`` (a tensor or an image set) larger than ``whitebox.chunk_pixels`` allows at their
    side, that chunk), else ``{}``: memo keys (and results) of attacks on all images at once
    are unchanged."""
    w = profile.whitebox
    if w.batch_size is not None:
        return {"batch_size": int(w.batch_size)}
    if w.chunk_pixels is None or images is None:
        return {}
    x = getattr(images, "images", images)
    chunk = max(1, int(w.chunk_pixels) // (int(x.shape[-1]) * int(x.shape[-2])))
    return {"batch_size": chunk} if chunk < len(x) else {}


def study_steps(steps: int, profile: Profile) -> int:
    """A study's iteration count, capped at ``profile.whitebox.study_steps`` (a dry run's)."""
    cap = profile.whitebox.study_steps
    return int(steps) if cap is None else min(int(steps), int(cap))


def explorer_images(labels: Any, n: int, seed: int = 0) -> list[int]:
    """``n`` held-out image indices cycling through the classes (seeded, each class's order
    drawn once): every frame of a task shows the same images, so a move of a control shows
    what that control changes."""
    y = np.asarray(labels)
    rng = np.random.default_rng(seed)
    pools = [list(rng.permutation(np.flatnonzero(y == c))) for c in np.unique(y)]
    out: list[int] = []
    while len(out) < min(n, len(y)):
        for p in pools:
            if p and len(out) < n:
                out.append(int(p.pop(0)))
    return out


__all__ = ["Subset", "batching", "explorer_images", "study_steps", "subset", "test_images"]
