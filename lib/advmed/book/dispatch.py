"""Run a build's experiment cells on many workers, through the ``concurrent.futures`` interface.

``python -m advmed.book build --executor E`` first computes every cell of the selected
chapters (:func:`advmed.experiments.cells.book_cells`: train one model, attack one model,
build one UAP) on the executor ``E``, stage by stage, into the shared cache; then it executes
the chapters serially as without it, and they read the cache. Executors:

- ``serial`` (default): no separate pass; each chapter computes what it needs as it runs.
- ``dask``: a dask.distributed ``LocalCluster`` on this node, one single-threaded worker
  process per GPU (``--workers N`` to choose; 2 without a GPU); worker ``k`` uses GPU
  ``k % count``.
- ``dask://HOST:PORT``: the workers of a running dask scheduler (start one worker per GPU,
  e.g. ``CUDA_VISIBLE_DEVICES=k dask worker HOST:PORT --nworkers 1 --nthreads 1``).
- ``slurm``: one Slurm job per cell through submitit (``--executor-option
  slurm_partition=gpu`` etc. are passed to ``AutoExecutor.update_parameters``; ``folder``
  is where submitit keeps its logs and pickles, on a shared file system).

Workers get the driver's ``ADVMED_CACHE`` (resolved to an absolute path; it must be on a file
system every worker sees), ``ADVMED_DATA_ROOT`` and ``ADVMED_OFFLINE``
(:func:`advmed.experiments.cells.worker_env`). Every cache file is written with
:func:`advmed.cache.atomic_write`, so two workers computing the same cell leave one whole
file, never a mixture.
"""
from __future__ import annotations

import concurrent.futures as cf
import contextlib
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

from tqdm.auto import tqdm

from ..experiments.cells import Cell, CellOutcome, run_cell, stages, worker_env

#: What ``--executor`` accepts.
EXECUTORS = ("serial", "dask", "dask://HOST:PORT", "slurm")
#: submitit parameters used unless ``--executor-option`` says otherwise.
SLURM_DEFAULTS: dict[str, Any] = {"gpus_per_node": 1, "tasks_per_node": 1, "cpus_per_task": 8,
                                  "timeout_min": 240, "name": "advmed-cell"}


class CellError(RuntimeError):
    """One or more cells raised on their workers."""


@dataclass(frozen=True)
class ExecutorSpec:
    """A parsed ``--executor`` value.

    Attributes:
        kind: ``serial``, ``dask`` or ``slurm``.
        address: the dask scheduler (``tcp://HOST:PORT``), None for a local cluster.
        workers: local dask workers (None: one per GPU, 2 without a GPU).
        options: submitit parameters (slurm), or ``cluster`` / ``folder`` for submitit itself.
    """

    kind: str
    address: str | None = None
    workers: int | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

    def label(self) -> str:
        return self.address or self.kind


def _typed(value: str) -> Any:
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(value.lower(), value)


def parse_options(items: Sequence[str] | None) -> dict[str, Any]:
    """``["slurm_partition=gpu", "timeout_min=120"]`` -> ``{"slurm_partition": "gpu", "timeout_min": 120}``."""
    out: dict[str, Any] = {}
    for item in items or ():
        key, sep, value = str(item).partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--executor-option takes KEY=VALUE (e.g. slurm_partition=gpu), got {item!r}")
        out[key.strip()] = _typed(value.strip())
    return out


def parse_executor(text: str | None, *, workers: int | None = None,
                   options: Sequence[str] | Mapping[str, Any] | None = None) -> ExecutorSpec:
    """Check an ``--executor`` value (and that its engine is installed) before anything runs."""
    value = (text or "serial").strip()
    opts = dict(options) if isinstance(options, Mapping) else parse_options(options)
    if workers is not None and (int(workers) != workers or workers < 1):
        raise ValueError(f"--workers must be a positive integer, got {workers!r}")
    if value == "serial":
        kind, address = "serial", None
    elif value == "dask":
        kind, address = "dask", None
    elif value.startswith("dask://"):
        kind, address = "dask", _scheduler(value)
    elif value == "slurm":
        kind, address = "slurm", None
    else:
        raise ValueError(f"unknown executor {value!r}; valid executors: {', '.join(EXECUTORS)}")
    if opts and kind != "slurm":
        raise ValueError(f"--executor-option is for --executor slurm only, got {sorted(opts)} with {value!r}")
    if workers is not None and (kind != "dask" or address is not None):
        raise ValueError("--workers sizes a local dask cluster (--executor dask) only")
    _require(kind)
    return ExecutorSpec(kind, address, workers, opts)


def _scheduler(value: str) -> str:
    host, _, port = value[len("dask://"):].rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"a dask scheduler is dask://HOST:PORT (e.g. dask://scheduler:8786), got {value!r}")
    return f"tcp://{host}:{port}"


def _require(kind: str) -> None:
    module = {"dask": "distributed", "slurm": "submitit"}.get(kind)
    if module is None:
        return
    try:
        __import__(module)
    except ImportError as err:
        raise ValueError(f"--executor {kind} needs the {module} package ({err}); it is pinned in "
                         "requirements.txt: run make setup") from None


# --------------------------------------------------------------------------- executors
class SerialExecutor(cf.Executor):
    """Runs each submitted call at once, in this process (tests, and ``serial`` cell passes)."""

    def submit(self, fn: Callable, /, *args: Any, **kwargs: Any) -> cf.Future:
        fut: cf.Future = cf.Future()
        try:
            fut.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # handed to the caller through the future, as a pool does
            fut.set_exception(exc)
        return fut


class SubmititExecutor(cf.Executor):
    """submitit (Slurm, or its ``local`` / ``debug`` clusters) behind ``concurrent.futures``:
    each ``submit`` is one job; one thread polls the jobs and resolves their futures."""

    def __init__(self, folder: str | Path, *, cluster: str | None = None, poll_s: float | None = None,
                 **parameters: Any):
        import submitit

        self._executor = submitit.AutoExecutor(folder=str(folder), cluster=cluster)
        self._executor.update_parameters(**parameters)
        self._poll_s = float(poll_s if poll_s is not None else (0.5 if cluster in ("local", "debug") else 15))
        self._jobs: list[tuple[Any, cf.Future]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="submitit-watch", daemon=True)
        self._thread.start()

    def submit(self, fn: Callable, /, *args: Any, **kwargs: Any) -> cf.Future:
        job = self._executor.submit(fn, *args, **kwargs)
        fut: cf.Future = cf.Future()
        fut.job_id = job.job_id  # type: ignore[attr-defined]
        with self._lock:
            self._jobs.append((job, fut))
        return fut

    def _watch(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                pending = [(j, f) for j, f in self._jobs if not f.done()]
            for job, fut in pending:
                if job.done():
                    try:
                        fut.set_result(job.result())
                    except BaseException as exc:  # the job's own exception, or submitit's
                        fut.set_exception(exc)
            self._stop.wait(self._poll_s)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        if wait:
            while True:
                with self._lock:
                    if all(f.done() for _, f in self._jobs):
                        break
                time.sleep(self._poll_s)
        self._stop.set()


@contextlib.contextmanager
def open_executor(spec: ExecutorSpec, *, log: Callable[[str], None] = print) -> Iterator[cf.Executor]:
    """A ``concurrent.futures.Executor`` for ``spec``, closed (cluster and client) on exit."""
    if spec.kind == "serial":
        yield SerialExecutor()
    elif spec.kind == "dask":
        with _dask_client(spec, log) as client:
            # pure=False: a cell is run for its side effect (the cache), never deduplicated
            # or served from dask's memory by a hash of its arguments
            yield client.get_executor(pure=False)
    else:
        from ..cache import cache_root

        opts = {**SLURM_DEFAULTS, **spec.options}
        folder = opts.pop("folder", str(cache_root().resolve() / "submitit" / "%j"))
        cluster = opts.pop("cluster", None)
        if cluster in ("local", "debug"):  # submitit's own clusters know no Slurm parameters
            opts = {k: v for k, v in opts.items() if k in ("timeout_min", "gpus_per_node", "tasks_per_node")}
        log(f"  submitit: folder {folder}, cluster {cluster or 'auto (slurm)'}, parameters {opts}")
        ex = SubmititExecutor(folder, cluster=cluster, **opts)
        try:
            yield ex
        finally:
            ex.shutdown(wait=False)


@contextlib.contextmanager
def _dask_client(spec: ExecutorSpec, log: Callable[[str], None]):
    from distributed import Client, LocalCluster

    if spec.address is not None:
        client = Client(spec.address)
        log(f"  dask: scheduler {spec.address}, {len(client.scheduler_info()['workers'])} worker(s)")
        try:
            yield client
        finally:
            client.close()
        return
    n = spec.workers or _local_workers()
    cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None)
    client = Client(cluster)
    log(f"  dask: LocalCluster with {n} worker process(es), one thread each")
    try:
        yield client
    finally:
        client.close()
        cluster.close()


def _local_workers() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 2


# --------------------------------------------------------------------------- running cells
def run_cells(cells: Sequence[Cell], executor: cf.Executor, *, log: Callable[[str], None] = print,
              progress: bool = True, env: Mapping[str, str] | None = None) -> list[CellOutcome]:
    """Submit every cell, stage by stage (a stage starts when the one before is done), and wait.

    A cell that raises does not stop the others of its stage; after the stage, a
    :class:`CellError` names every failed cell with its exception.
    """
    env = dict(worker_env() if env is None else env)
    outcomes: list[CellOutcome] = []
    for group in stages(cells):
        stage = group[0].stage
        futures = {executor.submit(run_cell, c, env): c for c in group}
        failed: list[str] = []
        bar = tqdm(cf.as_completed(futures), total=len(futures), desc=f"cells, stage {stage}", unit="cell",
                   disable=not progress)
        for fut in bar:
            cell = futures[fut]
            try:
                outcomes.append(fut.result())
            except Exception as exc:  # reported with the cell's name once the stage is done
                failed.append(f"{cell.name}: {type(exc).__name__}: {exc}")
        log(f"  stage {stage}: {len(group) - len(failed)} of {len(group)} cell(s) done")
        if failed:
            raise CellError(f"{len(failed)} cell(s) of stage {stage} raised:\n  " + "\n  ".join(failed))
    return outcomes


__all__ = ["EXECUTORS", "SLURM_DEFAULTS", "CellError", "ExecutorSpec", "SerialExecutor", "SubmititExecutor",
           "open_executor", "parse_executor", "parse_options", "run_cells"]
