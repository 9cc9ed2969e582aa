"""``python -m advmed.book``: run one chapter, or build the whole book.

Command line::

    run CHAPTER.py [-p NAME VALUE ...] [-y YAML] [--out DIR]
        jupytext percent file -> .ipynb -> executed by papermill -> DIR/CHAPTER.ipynb
        (default DIR: the chapter's own folder; executed notebooks are git-ignored)

    build [--profile P] [--chapters NAME ...] [--build-dir DIR] [--root DIR] [--keep-going]
          [--executor serial|dask|dask://HOST:PORT|slurm] [--workers N] [--executor-option K=V ...]
        every chapter of _toc.yml executed with ``-p profile P`` into DIR/stage/, staged
        with intro, config and static files, then ``jupyter-book build`` (execution off)
        -> DIR/html. With an executor other than serial, the chapters' experiment cells
        are computed there first (advmed.book.dispatch), then the chapters read the cache.

    profile [--build-dir DIR] [--top N]
        the N costliest cells of the last build in DIR (papermill's durations; advmed.book.profile)

Bad arguments (an unknown profile, a chapter name that matches no chapter, a parameter
the chapter does not define or a value of the wrong type for one, a missing chapter file)
are errors before anything executes, saying what to pass instead (``-p n_boot many``:
``n_boot`` takes an int; a list is passed with ``-y 'eps_255: [0, 1, 2]'``).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from .build import PROFILES, build_book, format_times
from .dispatch import EXECUTORS, CellError, parse_executor
from .execute import ChapterError, run_chapter
from .params import ParameterError, parse_parameters
from .profile import cell_times, format_cell_times


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m advmed.book", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="execute one chapter with papermill")
    r.add_argument("chapter", help="a jupytext percent file, e.g. book/01_models.py")
    r.add_argument("-p", "--parameters", nargs=2, action="append", metavar=("NAME", "VALUE"),
                   help="a parameter, typed as papermill's -p (repeatable)")
    r.add_argument("-y", "--parameters-yaml", help="parameters as a YAML mapping")
    r.add_argument("--out", help="output folder or .ipynb path (default: beside the chapter)")
    r.add_argument("--log-output", action="store_true", help="echo the notebook's output")

    b = sub.add_parser("build", help="execute every chapter and build the HTML book")
    b.add_argument("--profile", default=None,
                   help=f"{', '.join(PROFILES)} (default: $ADVMED_PROFILE or auto)")
    b.add_argument("--chapters", nargs="+", help="execute only these (e.g. 01_models 03); "
                   "others reuse their last executed notebook in the build dir")
    b.add_argument("--build-dir", default=None, help="default: ROOT/_build (HTML in BUILD_DIR/html)")
    b.add_argument("--root", default=None, help="the book's root, with _toc.yml (default: the working directory)")
    b.add_argument("--keep-going", action="store_true", help="execute the other chapters after a failure")
    b.add_argument("--allow-cdn", action="store_true",
                   help="do not bundle require.js/widgets/MathJax (load them from CDNs)")
    b.add_argument("--executor", default="serial",
                   help=f"where the experiment cells run first: {', '.join(EXECUTORS)} (default serial: "
                        "each chapter computes what it needs as it runs)")
    b.add_argument("--workers", type=int, default=None,
                   help="--executor dask: local worker processes (default: one per GPU, 2 without one)")
    b.add_argument("--executor-option", action="append", metavar="KEY=VALUE",
                   help="--executor slurm: a submitit parameter (slurm_partition=gpu, timeout_min=240, "
                        "folder=DIR, cluster=local); repeatable")
    c = sub.add_parser("profile", help="the costliest cells of the last build")
    c.add_argument("--build-dir", default="_build", help="the build's folder (default: _build)")
    c.add_argument("--top", type=int, default=20, help="cells to list (default 20)")
    return p


def _missing_chapter(path: str) -> str:
    folder = Path(path).parent if Path(path).parent.is_dir() else Path("book")
    found = sorted(p.name for p in folder.glob("[0-9][0-9]_*.py")) if folder.is_dir() else []
    return (f"no chapter file {path}; chapters in {folder}/: {', '.join(found)}" if found
            else f"no chapter file {path} (run from the repository root, where book/ holds the chapters)")


def _run(args: argparse.Namespace) -> int:
    if not Path(args.chapter).is_file():
        print(f"ERROR: {_missing_chapter(args.chapter)}", file=sys.stderr)
        return 2
    params = parse_parameters(args.parameters, args.parameters_yaml)
    res = run_chapter(args.chapter, params, out=args.out, log_output=args.log_output)
    print(f"{res.chapter}: executed in {res.seconds:.1f} s -> {res.output}")
    return 0


def _build(args: argparse.Namespace) -> int:
    executor = parse_executor(args.executor, workers=args.workers, options=args.executor_option)
    res = build_book(root=args.root, profile=args.profile, chapters=args.chapters, build_dir=args.build_dir,
                     keep_going=args.keep_going, allow_cdn=args.allow_cdn, executor=executor)
    print(format_times(res))
    return 0


def _profile(args: argparse.Namespace) -> int:
    print(format_cell_times(cell_times(args.build_dir), top=args.top))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return {"run": _run, "build": _build, "profile": _profile}[args.command](args)
    except ParameterError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 2
    except ChapterError as exc:
        where = "" if args.command == "run" else " book not built:"
        print(f"ERROR:{where} {exc}" if args.command == "run" else
              f"ERROR:{where} chapter(s) {exc.chapter} raised (traceback above; executed notebook: {exc.output})",
              file=sys.stderr)
        return 1
    except CellError as exc:
        print(f"ERROR: book not built: {exc}", file=sys.stderr)
        return 1
    except (ValueError, RuntimeError, FileNotFoundError) as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ValueError) else 1


if __name__ == "__main__":
    sys.exit(main())
