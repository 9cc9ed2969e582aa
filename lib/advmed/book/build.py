"""Build the whole book: execute every chapter of ``_toc.yml`` with papermill inside a staging
folder, then render it with Jupyter Book 1.x (execution off).

The source tree is never written: notebooks are executed inside ``BUILD_DIR/stage/``, with
the staging folder's ``book/`` as working directory. A chapter that raises stops the build
(unless ``keep_going``) with its name and papermill's traceback on stderr. Every argument
(profile, chapter names, parameters) is checked before the first chapter executes.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from ..experiments.estimate import fmt_seconds
from ..experiments.profiles import PROFILE_NAMES
from .dispatch import ExecutorSpec, open_executor, parse_executor, run_cells
from .execute import ChapterError, ChapterResult, run_chapter
from .params import ParameterError, check_parameters
from .plan import check_scale
from .profile import cell_times
from .stage import (copy_tree, find_source, matches, stage_bibliography, stage_config, stage_vendor,
                    stage_widget_fonts, toc_files)

#: Profiles a build accepts (``auto``: paper with CUDA, else cpu).
PROFILES = ("auto", *PROFILE_NAMES)


@dataclass
class BuildResult:
    """Where the HTML is, and how long each chapter and the rendering took."""

    html: Path
    chapters: list[ChapterResult] = field(default_factory=list)
    book_seconds: float = 0.0
    total_seconds: float = 0.0


def book_root(root: str | os.PathLike | None = None) -> Path:
    """The book's root: ``root``, else the working directory; it must hold ``_toc.yml``."""
    path = Path(root if root is not None else Path.cwd()).resolve()
    if not (path / "_toc.yml").is_file():
        raise FileNotFoundError(f"{path} has no _toc.yml: run from the book's root (the repository folder "
                                "with _config.yml and _toc.yml) or pass --root")
    return path


def check_build(root: Path, entries: Sequence[str], profile: str, chapters: Sequence[str] | None,
                parameters: dict) -> None:
    """Fail before executing anything: unknown profile, chapter names that match no chapter,
    parameters a chapter does not define."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; valid profiles: {', '.join(PROFILES)}")
    executable = [e for e in entries if find_source(root, e).suffix == ".py"]
    for wanted in chapters or ():
        if not any(matches(e, [wanted]) for e in executable):
            names = ", ".join(Path(e).name for e in executable)
            raise ValueError(f"no chapter matches {wanted!r}; the chapters are: {names}")
    for e in executable:
        if not chapters or matches(e, chapters):
            check_parameters(find_source(root, e), parameters)


def _execute(root: Path, entries: Sequence[str], stage: Path, build_dir: Path, params: dict,
             chapters: Sequence[str] | None, keep_going: bool, result: BuildResult,
             progress: "Progress") -> tuple[list[str], list[ChapterError]]:
    """Execute (or reuse) every chapter; copy markdown pages. Returns staged entries, failures."""
    log = progress.log
    staged: list[str] = []
    failures: list[ChapterError] = []
    for entry in entries:
        src = find_source(root, entry)
        dest_dir = stage / Path(entry).parent
        dest_dir.mkdir(parents=True, exist_ok=True)
        if src.suffix != ".py":
            shutil.copy2(src, dest_dir / src.name)
            staged.append(entry)
            continue
        target = dest_dir / f"{src.stem}.ipynb"
        if chapters and not matches(entry, chapters):
            if target.is_file():
                staged.append(entry)
                log(f"  {entry}: not selected, reusing {target}")
            else:
                log(f"  {entry}: not selected and never executed, left out of the book")
            continue
        log(progress.starting(src.stem))
        try:
            res = run_chapter(src, params, out=target)
        except ChapterError as exc:
            # keep the failed notebook for inspection, but out of the book
            failed = build_dir / "failed" / target.name
            failed.parent.mkdir(parents=True, exist_ok=True)
            if target.exists():
                os.replace(target, failed)
            exc = ChapterError(exc.chapter, failed, exc.message)
            result.chapters.append(ChapterResult(entry, failed, 0.0, ok=False, error=str(exc)))
            print(f"\nERROR: {exc}\n", file=sys.stderr, flush=True)
            failures.append(exc)
            if not keep_going:
                break
            continue
        result.chapters.append(ChapterResult(entry, res.output, res.seconds))
        log(progress.finished(src.stem, res.seconds))
        staged.append(entry)
    return staged, failures


class Progress:
    """The build's line per chapter: which of how many, time elapsed and the estimate left
    (:meth:`advmed.experiments.estimate.Plan.chapter_seconds`), and after it, its time beside
    its estimate. Chapters without an estimate (a precomputed build) show elapsed time only."""

    def __init__(self, estimates: dict[str, float], log: Callable[[str], None]):
        self.estimates, self.log = dict(estimates), log
        self.t0 = time.perf_counter()
        self.done: set[str] = set()

    def _left(self) -> float:
        return sum(s for c, s in self.estimates.items() if c not in self.done)

    def starting(self, stem: str) -> str:
        elapsed = time.perf_counter() - self.t0
        n = f"[{len(self.done) + 1}/{len(self.estimates)}] " if stem in self.estimates else ""
        if stem not in self.estimates:
            return f"  {n}{stem}: executing with papermill ({fmt_seconds(elapsed)} elapsed) ..."
        return (f"  {n}{stem}: executing with papermill ({fmt_seconds(elapsed)} elapsed; estimated "
                f"{fmt_seconds(self.estimates[stem])} for it, {fmt_seconds(self._left())} left in all) ...")

    def finished(self, stem: str, seconds: float) -> str:
        self.done.add(stem)
        est = self.estimates.get(stem)
        return f"  {stem}: {seconds:.1f} s" + ("" if est is None else f" (estimated {fmt_seconds(est)})")


def _render(root: Path, stage: Path, build_dir: Path, staged: list[str], allow_cdn: bool,
            log: Callable[[str], None]) -> Path:
    """Stage static files and configuration, run ``jupyter-book build``; return the HTML folder."""
    # static files: the project's own, then the vendored JavaScript (outside _static,
    # because Jupyter Book adds every .js found under <book>/_static to every page)
    static_src = root / "book" / "_static"
    if static_src.is_dir():
        copy_tree(static_src, stage / "book" / "_static")
    if not allow_cdn:
        stage_vendor(root, stage / "_vendor")
    stage_bibliography(root, stage)
    stage_config(root, stage, staged, allow_cdn=allow_cdn)
    jb_out = build_dir / ".jb"
    jb = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(jb) if jb.exists() else (shutil.which("jupyter-book") or "jupyter-book"),
           "build", str(stage), "--path-output", str(jb_out), "--builder", "html"]
    log("  jupyter-book: " + " ".join(cmd))
    proc = subprocess.run(cmd, cwd=stage)
    if proc.returncode != 0:
        raise RuntimeError(f"jupyter-book build failed with exit status {proc.returncode}")
    html = build_dir / "html"
    if html.exists():
        shutil.rmtree(html)
    os.replace(jb_out / "_build" / "html", html)
    if not allow_cdn:
        stage_widget_fonts(root, html)
    return html


def _precompute(root: Path, entries: Sequence[str], profile: str, chapters: Sequence[str] | None,
                executor: ExecutorSpec, extra: dict, log: Callable[[str], None]) -> None:
    """Compute every cell of the selected chapters on ``executor`` (not for ``serial``)."""
    from ..experiments.cells import book_cells
    from ..experiments.profiles import get_profile

    if executor.kind == "serial":
        return
    stems = [Path(e).name for e in entries if find_source(root, e).suffix == ".py"
             and (not chapters or matches(e, chapters))]
    if set(extra) - {"profile"}:
        log(f"  note: cells use the profile's settings; the chapters' other parameters "
            f"({', '.join(sorted(set(extra) - {'profile'}))}) are computed by the chapters themselves")
    cells = book_cells(get_profile(profile), stems)
    log(f"advmed.book: {len(cells)} cell(s) of {', '.join(stems)} on {executor.label()} ...")
    t0 = time.perf_counter()
    with open_executor(executor, log=log) as pool:
        run_cells(cells, pool, log=log)
    log(f"  cells done in {time.perf_counter() - t0:.1f} s; the chapters now read the cache")


def build_book(*, root: str | os.PathLike | None = None, profile: str | None = None,
               chapters: Sequence[str] | None = None, build_dir: str | os.PathLike | None = None,
               keep_going: bool = False, allow_cdn: bool = False, extra_parameters: dict | None = None,
               log: Callable[[str], None] | None = None, executor: str | ExecutorSpec | None = None,
               workers: int | None = None, executor_options: Sequence[str] | None = None) -> BuildResult:
    """Execute every chapter of ``_toc.yml`` and render the book to ``build_dir/html``.

    Args:
        root: the book's root (default: the working directory; it must hold ``_toc.yml``).
        profile: smoke, cpu, paper or auto (default ``$ADVMED_PROFILE`` or auto), passed to
            every chapter as its ``profile`` parameter.
        chapters: execute only these (``01_models``, ``03``, ``book/02_whitebox.py``); the
            others reuse their last executed notebook in the build dir.
        build_dir: default ``ROOT/_build``; the HTML goes to ``BUILD_DIR/html``.
        keep_going: execute the other chapters after one raises.
        allow_cdn: load RequireJS, the widget manager and MathJax from CDNs instead of
            bundling them.
        extra_parameters: more parameters for every chapter (each must define them).
        executor: ``serial`` (default), ``dask``, ``dask://HOST:PORT`` or ``slurm``: compute the
            selected chapters' cells there first (:mod:`advmed.book.dispatch`), then execute
            the chapters serially, reading the cache.
        workers, executor_options: ``--workers`` (local dask) and ``--executor-option``
            (slurm) of the command line.

    Before anything runs, the build says what the profile runs and how long it should take
    (:func:`advmed.book.plan.check_scale`); ``auto`` estimated above an hour stops there and
    asks for the profile by name.
    """
    log = log or (lambda msg: print(msg, flush=True))
    root = book_root(root)
    build_dir = Path(build_dir).resolve() if build_dir else root / "_build"
    profile = profile or os.environ.get("ADVMED_PROFILE") or "auto"
    entries = toc_files(root / "_toc.yml")
    params = {**(extra_parameters or {}), "profile": profile}
    check_build(root, entries, profile, chapters, params)
    spec = executor if isinstance(executor, ExecutorSpec) else parse_executor(executor, workers=workers,
                                                                             options=executor_options)
    selected = [Path(e).name for e in entries if find_source(root, e).suffix == ".py"
                and (not chapters or matches(e, chapters))]
    scale = check_scale(profile, selected, workers=_n_workers(spec), log=log)
    resolved = scale.profile
    stage = build_dir / "stage"
    stage.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    result = BuildResult(html=build_dir / "html")
    log(f"advmed.book: profile={profile}, build dir {build_dir}")
    _precompute(root, entries, resolved, chapters, spec, params, log)
    # after a dask/slurm precompute the chapters only read the cache: no per-chapter estimate
    progress = Progress(scale.chapter_seconds if spec.kind == "serial" else {}, log)
    staged, failures = _execute(root, entries, stage, build_dir, params, chapters, keep_going, result, progress)
    if failures:
        _write_timings(build_dir, result, profile)
        names = ", ".join(f.chapter for f in failures)
        details = "\n\n".join(f"{f.chapter}{f.message}" for f in failures)
        raise ChapterError(names, failures[0].output, f": {len(failures)} chapter(s) raised:\n\n{details}")
    t_book = time.perf_counter()
    _render(root, stage, build_dir, staged, allow_cdn, log)
    result.book_seconds = time.perf_counter() - t_book
    result.total_seconds = time.perf_counter() - t_start
    _write_timings(build_dir, result, profile)
    return result


def _n_workers(spec: ExecutorSpec) -> int:
    """Devices the estimate shares the work among (a remote scheduler's are not counted)."""
    if spec.kind != "dask" or spec.address is not None:
        return 1
    if spec.workers:
        return int(spec.workers)
    import torch

    return max(1, torch.cuda.device_count()) if torch.cuda.is_available() else 1


def _write_timings(build_dir: Path, result: BuildResult, profile: str) -> None:
    data = {
        "profile": profile,
        "chapters": {c.chapter: {"seconds": round(c.seconds, 2), "ok": c.ok} for c in result.chapters},
        "jupyter_book_seconds": round(result.book_seconds, 2),
        "total_seconds": round(result.total_seconds, 2),
    }
    (build_dir / "timings.json").write_text(json.dumps(data, indent=1))
    try:  # the same build by cell (advmed.book.profile), for `python -m advmed.book profile` and reviews
        cell_times(build_dir).to_csv(build_dir / "cell_times.csv", index=False)
    except FileNotFoundError:
        pass


def format_times(result: BuildResult) -> str:
    """The time of every chapter, of the rendering and the total, one line each."""
    lines = ["", "time per chapter:"]
    for c in result.chapters:
        lines.append(f"  {c.chapter:<28s} {c.seconds:8.1f} s{'' if c.ok else '  FAILED'}")
    lines.append(f"  {'jupyter-book (html)':<28s} {result.book_seconds:8.1f} s")
    lines.append(f"  {'total':<28s} {result.total_seconds:8.1f} s")
    lines.append(f"html: {result.html / 'index.html'}")
    return "\n".join(lines)


__all__ = ["PROFILES", "BuildResult", "ParameterError", "book_root", "build_book", "check_build", "format_times"]
