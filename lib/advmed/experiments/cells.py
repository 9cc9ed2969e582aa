"""Experiment cells: the independent, memoised units of work of a book build.

A chapter computes its results through its family's ``run`` functions, which memoise every
result in the cache (:func:`advmed.cache.memo`, checkpoints under ``checkpoints/``). A *cell*
is one such unit, computed alone: train one model, evaluate one model against one attack
family, build one UAP. Cells are independent of each other within a *stage* (stage 0
trains, stage 1 attacks the trained models, stage 2 combines the results of stage 1), so an
executor may run a stage's cells in any order, on any worker, and run the next stage when
it is done. A cell computes *through the same functions the chapter calls, with the same
arguments*, so that the chapter, executed afterwards, only reads the cache.

The contract for a family (DESIGN.md, "Cells"):

- a module (``advmed.experiments.<family>.cells``, or the zoo) with
  ``cells(profile) -> list[Cell]``: every unit of work the family's chapters read for this
  profile, with the profile's parameters (chapters executed with other parameters compute
  what differs themselves);
- each :class:`Cell` names a top-level function and picklable keyword arguments (the
  profile, task and model names, settings), so it can travel to another process or host;
  the function returns something small (a summary string), never the results;
- :func:`register` adds the family with the chapters it serves.

Example:
    >>> from advmed.experiments.profiles import get_profile
    >>> cs = book_cells(get_profile("smoke"), chapters=["01_models"])
    >>> sorted({c.family for c in cs}), cs[0].stage
    (['zoo'], 0)
"""
from __future__ import annotations

import importlib
import os
import socket
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, NamedTuple, Sequence

import torch

from ..cache import cache_root
from ..data import get_spec, get_task
from ..data.registry import get_view
from .estimate import Plan
from .profiles import Profile

#: Environment variables a worker needs to compute a cell like the driver would: the shared
#: cache, the data root, offline mode and the profile default. ``ADVMED_DEVICE`` is left to
#: the worker (each worker has its own GPU).
WORKER_ENV = ("ADVMED_CACHE", "ADVMED_DATA_ROOT", "ADVMED_OFFLINE", "ADVMED_PROFILE", "ADVMED_AMP")


@dataclass(frozen=True)
class Cell:
    """One unit of work: ``fn(**kwargs)`` computes and memoises one result.

    Attributes:
        family: the experiment family (``"zoo"``, ``"whitebox"``, ``"universal"``, ...).
        name: unique within a build, human readable (``"zoo/train/pneumonia_cxr/resnet18:scratch"``).
        fn: a module-level function (pickled by reference).
        kwargs: its keyword arguments, picklable (profiles, names, numbers).
        stage: cells of a stage run after every cell of the lower stages (0: training).
        cost_gmac: estimated work in GMAC (forward-equivalents x the model's forward cost,
            :mod:`advmed.experiments.estimate`), for the time estimate; 0 when unknown.
    """

    family: str
    name: str
    fn: Callable[..., Any]
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    stage: int = 1
    cost_gmac: float = 0.0

    def __call__(self) -> Any:
        return self.fn(**self.kwargs)


class CellOutcome(NamedTuple):
    """What a worker reports back for one cell."""

    name: str
    summary: Any
    seconds: float
    host: str
    device: str
    pid: int


@dataclass(frozen=True)
class Family:
    """An experiment family's cells: where its ``cells(profile)`` lives, which chapters read them."""

    name: str
    module: str
    chapters: tuple[str, ...]  # chapter stems ("02_whitebox"); "*": every chapter
    function: str = "cells"

    def cells(self, profile: Profile) -> list[Cell]:
        return list(getattr(importlib.import_module(self.module), self.function)(profile))

    def serves(self, chapter: str) -> bool:
        """Whether the chapter (a stem such as ``"02_whitebox"``, or its path) reads these cells."""
        return "*" in self.chapters or os.path.basename(str(chapter)).removesuffix(".py") in self.chapters


FAMILIES: dict[str, Family] = {}


def register(family: Family) -> Family:
    """Add (or replace) a family (a chapter without cells, such as 8, computes in the chapter)."""
    FAMILIES[family.name] = family
    return family


register(Family("zoo", "advmed.experiments.kernel.cells", ("*",), "train_cells"))
register(Family("whitebox", "advmed.experiments.whitebox.cells", ("02_whitebox",)))
register(Family("universal", "advmed.experiments.universal.cells", ("03_uap",)))
register(Family("natural", "advmed.experiments.universal.cells", ("04_natural_uap",), "natural_cells"))
register(Family("blackbox", "advmed.experiments.blackbox.cells", ("05_blackbox",)))
register(Family("patches", "advmed.experiments.patches.cells", ("06_patches",)))
register(Family("defenses", "advmed.experiments.defenses.cells", ("07_defenses",)))


def book_cells(profile: Profile, chapters: Iterable[str] | None = None) -> list[Cell]:
    """Every cell the given chapters (stems such as ``"02_whitebox"``; None: all) read, once
    each (cells two families share, by name, are kept once), ordered by stage."""
    wanted = None if chapters is None else [str(c) for c in chapters]
    seen: dict[str, Cell] = {}
    for fam in FAMILIES.values():
        if wanted is not None and not any(fam.serves(c) for c in wanted):
            continue
        for cell in fam.cells(profile):
            seen.setdefault(cell.name, cell)
    return sorted(seen.values(), key=lambda c: c.stage)


def stages(cells: Sequence[Cell]) -> list[list[Cell]]:
    """The cells grouped by stage, lowest first."""
    out: dict[int, list[Cell]] = {}
    for c in cells:
        out.setdefault(int(c.stage), []).append(c)
    return [out[k] for k in sorted(out)]


def task_classes(task: str) -> tuple[str, ...]:
    """A task's class names from the data registry (no images read): its view's, else its
    dataset's. Families use it to list per-class cells (targeted UAPs) before any model exists."""
    t = get_task(task)
    spec = get_spec(t.dataset)
    view = get_view(spec, t.view)
    return tuple(view.classes if view is not None else spec.classes)


def worker_env() -> dict[str, str]:
    """The driver's values of :data:`WORKER_ENV` (the cache root resolved to an absolute path)."""
    env = {k: os.environ[k] for k in WORKER_ENV if os.environ.get(k)}
    env["ADVMED_CACHE"] = str(cache_root().expanduser().resolve())
    return env


def _worker_device() -> str:
    """This worker's device: ``ADVMED_DEVICE`` if set, else, inside a dask worker of a
    multi-GPU node, GPU ``rank % count`` (``LocalCluster`` names its workers 0, 1, ...)."""
    forced = os.environ.get("ADVMED_DEVICE")
    if forced:
        return forced

    if not torch.cuda.is_available():
        return "cpu"
    count = torch.cuda.device_count()
    rank = None
    try:
        from distributed import get_worker

        name = get_worker().name
        rank = int(name) if str(name).isdigit() else None
    except (ImportError, ValueError):
        rank = None
    if rank is None:
        rank = int(os.environ.get("SLURM_LOCALID", "0") or 0)
    return f"cuda:{rank % count}"


def run_cell(cell: Cell, env: Mapping[str, str] | None = None) -> CellOutcome:
    """Compute one cell in this process (what a worker calls): set ``env`` (the driver's
    :func:`worker_env`: the shared cache above all), pick the worker's device, run it."""
    saved = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})
    device = _worker_device()
    saved.setdefault("ADVMED_DEVICE", os.environ.get("ADVMED_DEVICE"))
    os.environ["ADVMED_DEVICE"] = device
    try:
        t0 = time.perf_counter()
        summary = cell()
        return CellOutcome(cell.name, summary, time.perf_counter() - t0, socket.gethostname(), device,
                           os.getpid())
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def plan(profile, chapters: Iterable[str] | None = None) -> Plan:
    """Count the cells of a build of ``profile`` (:func:`book_cells`) and their work
    (:class:`~advmed.experiments.estimate.Plan`); with ``chapters`` (stems in build order),
    also which chapter computes each family (its first selected chapter)."""
    out = Plan(profile.name, len(profile.tasks), len(profile.models))
    for c in book_cells(profile, chapters):
        out.cells[c.family] = out.cells.get(c.family, 0) + 1
        out.gmac[c.family] = out.gmac.get(c.family, 0.0) + float(c.cost_gmac)
    if chapters is not None:
        out.chapters = tuple(os.path.basename(str(c)).removesuffix(".py").removesuffix(".ipynb") for c in chapters)
        for fam in out.cells:
            out.home[fam] = next((c for c in out.chapters if FAMILIES[fam].serves(c)), "")
    return out


__all__ = ["plan", "Cell", "CellOutcome", "FAMILIES", "Family", "WORKER_ENV", "book_cells", "register", "run_cell",
           "stages", "task_classes", "worker_env"]
