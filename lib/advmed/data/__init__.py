"""advmed.data: the data layer (registry, loaders, decoded-tensor cache, downloads).

Public API (DESIGN.md):

- ``DATASETS``: name -> :class:`DatasetSpec` (files, labels, classes, checksums, source,
  split rule, label views); ``datasets_table()`` shows it.
- ``TASKS``: task name -> :class:`Task` (dataset, label view, title); ``get_task(name)``.
- ``load_task(task, split, *, size, channels=3, limit=None, seed=0) -> ImageSet``
- ``load_dataset(name, split, *, size, channels=3, view=None, limit=None, seed=0) -> ImageSet``
- ``ImageSet``: ``images`` uint8 (N, C, H, W), ``labels`` int64 (N,), ``classes``,
  ``groups``, ``paths``, ``name``, ``split``; ``.float()``, ``.subset(idx)``, ``len()``,
  ``.class_counts()``.
- ``data_root()`` ($ADVMED_DATA_ROOT), ``cache_dir()`` ($ADVMED_CACHE or ~/.cache/advmed),
  ``download(name)`` (official hosts, checksummed).

Example::

    from advmed.data import load_task
    test = load_task("pneumonia_cxr", "test", size=64)
    x, y = test.float(), test.labels   # float32 (624, 3, 64, 64) in [0, 1], int64 (624,)
"""
from .download import download
from .errors import (
    ChecksumError,
    DataNotFoundError,
    DownloadError,
    UnreadableImageError,
)
from .imageset import ImageSet
from .load import load_dataset, load_task
from .paths import cache_dir, data_root
from .registry import DATASETS, DatasetSpec, Remote, View, datasets_table, get_spec
from .tasks import TASKS, Task, get_task

__all__ = [
    "DATASETS", "TASKS", "Task", "get_task", "DatasetSpec", "Remote", "View", "ImageSet", "load_dataset", "load_task",
    "data_root", "cache_dir", "download", "datasets_table", "get_spec",
    "ChecksumError", "DataNotFoundError", "DownloadError", "UnreadableImageError",
]
