"""``load_dataset`` and ``load_task``: an index, the decoded-tensor cache, views and subsets.

A split is decoded once per (dataset, split, size, stored channels) and cached under
``$ADVMED_CACHE/tensors``; later loads read the cache. Grayscale datasets are cached with
one channel and replicated to three on load, so the 1- and 3-channel variants share a
single decode; colour datasets are cached per requested channel count.
"""
from __future__ import annotations

import time

import numpy as np
import torch
from tqdm.auto import tqdm

from .cache import cache_path, fingerprint, load_images, store_images
from .imageset import ImageSet
from .registry import check_split, get_spec, get_view
from .sources import Index, build_index
from .splits import stratified_subset
from .tasks import get_task


def _decode_split(index: Index, rows: np.ndarray, size: int, channels: int, rule: str,
                  desc: str, progress: bool) -> torch.Tensor:
    out = torch.empty((len(rows), channels, size, size), dtype=torch.uint8)
    view = out.numpy()  # shares memory: fill without a second copy
    with index.reader as reader:
        for k, i in enumerate(tqdm(rows, desc=desc, unit="img", disable=not progress, leave=False)):
            view[k] = reader.decode(int(i), size, channels, rule)
    return out


def _split_images(spec, index: Index, rows: np.ndarray, split: str, size: int, channels: int,
                  progress: bool) -> tuple[torch.Tensor, dict]:
    items = [index.items[i] for i in rows]
    params = {"dataset": spec.name, "split": split, "size": size, "channels": channels,
              "resize": spec.resize, "split_rule": spec.split_rule, "origin": index.origin.split(":")[0]}
    lines = (f"{index.items[i]}\t{index.digests[i]}\t{index.labels[i]}\t"
             f"{'' if index.groups is None else index.groups[i]}" for i in rows)
    key = fingerprint(params, lines)
    path = cache_path(spec.name, split, size, channels, key)
    t0 = time.perf_counter()
    images = load_images(path, key, items)
    cached = images is not None
    if images is None:
        images = _decode_split(index, rows, size, channels, spec.resize,
                               f"decoding {spec.name}/{split} at {size} px", progress)
        store_images(path, key, items, images)
    info = {"cache_path": str(path), "from_cache": cached, "seconds": time.perf_counter() - t0,
            "origin": index.origin}
    return images, info


def load_dataset(name: str, split: str, *, size: int, channels: int = 3, view: str | None = None,
                 limit: int | None = None, seed: int = 0, progress: bool = True) -> ImageSet:
    """One split of a registered dataset, decoded to ``uint8 (N, channels, size, size)``.

    Args:
        name: a key of ``DATASETS``.
        split: ``train``, ``val`` or ``test`` (``imagenet_samples``: ``one_per_class_1000``,
            ``det200_five_per_class_1000``).
        size: output side in pixels.
        channels: 3 (RGB; grey images replicated) or 1 (luminance).
        view: a label view of the dataset (``ham10000``: ``mel_vs_nv``; ``retinamnist``:
            ``referable``); images outside the view are dropped.
        limit: keep a stratified random subset of this many images (drawn with ``seed``).
        progress: show a tqdm bar while decoding.

    Data come from ``$ADVMED_DATA_ROOT`` or from the official hosts (see
    :func:`advmed.data.download`); errors name the missing piece and the way to get it.
    """
    spec = get_spec(name)
    check_split(spec, split)
    v = get_view(spec, view)
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels!r}")
    if int(size) != size or size < 1:
        raise ValueError(f"size must be a positive number of pixels, got {size!r}")
    size = int(size)

    index = build_index(spec, progress=progress)
    rows = np.flatnonzero(index.splits == split)
    stored = 1 if spec.grayscale else channels
    images, info = _split_images(spec, index, rows, split, size, stored, progress)
    if stored != channels:
        images = images.repeat(1, channels, 1, 1)  # a real copy: callers may write into it

    labels = index.labels[rows]
    groups = None if index.groups is None else index.groups[rows]
    paths = [index.items[i] for i in rows]
    classes = list(index.classes)
    shown = name
    if v is not None:
        keep = np.isin(labels, list(v.mapping))
        images = images[torch.from_numpy(np.flatnonzero(keep))]
        labels = np.asarray([v.mapping[int(y)] for y in labels[keep]], dtype=np.int64)
        groups = None if groups is None else groups[keep]
        paths = [p for p, k in zip(paths, keep) if k]
        classes = list(v.classes)
        shown = f"{name}:{v.name}"
    out = ImageSet(images=images, labels=torch.from_numpy(np.ascontiguousarray(labels)), classes=classes,
                   groups=groups, paths=paths, name=shown, split=split, meta=info)
    if limit is not None and limit < len(out):
        out = out.subset(stratified_subset(out.labels.numpy(), limit, seed))
    return out


def load_task(task: str, split: str, *, size: int, channels: int = 3, limit: int | None = None,
              seed: int = 0, progress: bool = True) -> ImageSet:
    """A task's split (``advmed.data.TASKS``): its dataset with the task's label view."""
    t = get_task(task)
    out = load_dataset(t.dataset, split, size=size, channels=channels, view=t.view, limit=limit,
                       seed=seed, progress=progress)
    out.name = t.name
    return out
