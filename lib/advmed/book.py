"""Execute the book's chapters with papermill and render them with Jupyter Book 1.x.

Command line (``python -m advmed.book``)::

    run CHAPTER.py [-p NAME VALUE ...] [-y YAML] [--out DIR]
        jupytext percent file -> .ipynb -> executed by papermill -> DIR/CHAPTER.ipynb
        (default DIR: the chapter's own folder; executed notebooks are git-ignored)

    build [--profile P] [--chapters NAME ...] [--build-dir DIR] [--keep-going]
        every chapter of _toc.yml executed with ``-p profile P`` into
        DIR/stage/, staged with intro, config and static files, then
        ``jupyter-book build`` (execution off) -> DIR/html

The source tree is never written by ``build``: notebooks are executed inside the
staging folder, with the staging folder's ``book/`` as working directory.

A chapter that raises stops the build (unless ``--keep-going``) with the chapter's
name and papermill's traceback on stderr, and the exit status is non-zero.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

#: The repository root (``lib/advmed/book.py`` -> three levels up) when run from a checkout.
REPO = Path(__file__).resolve().parents[2]

#: Kernel name written into every notebook (portable: any Jupyter has a ``python3``).
KERNEL_NAME = "python3"

#: Files from ``node_modules`` that the book serves itself instead of loading from a CDN,
#: as (source inside node_modules, destination inside the staged static folder).
VENDOR_FILES = (
    ("requirejs/require.js", "vendor/require.js"),
    ("@jupyter-widgets/html-manager/dist/embed-amd.js", "vendor/embed-amd.js"),
)
VENDOR_DIRS = (("mathjax/es5", "vendor/mathjax"),)
#: ``nb_ipywidgets_js`` for myst-nb: local copies, no ``data-jupyter-widgets-cdn``.
IPYWIDGETS_JS = {"vendor/require.js": {}, "vendor/embed-amd.js": {}}
MATHJAX_PATH = "vendor/mathjax/tex-mml-chtml.js"

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class ChapterError(RuntimeError):
    """A chapter raised while papermill executed it."""

    def __init__(self, chapter: str, output: Path, message: str):
        self.chapter = chapter
        self.output = output
        self.message = message
        super().__init__(f"chapter {chapter} failed (executed notebook: {output}){message}")


@dataclass
class ChapterResult:
    chapter: str
    output: Path
    seconds: float
    ok: bool = True
    error: str = ""


@dataclass
class BuildResult:
    html: Path
    chapters: list[ChapterResult] = field(default_factory=list)
    book_seconds: float = 0.0
    total_seconds: float = 0.0


# --------------------------------------------------------------------------- parameters
def resolve_value(value: str) -> Any:
    """Type a ``-p NAME VALUE`` string the way papermill's own CLI does."""
    from papermill.cli import _resolve_type

    return _resolve_type(value)


def parse_parameters(pairs: Sequence[Sequence[str]] | None, yaml_text: str | None = None) -> dict:
    params: dict[str, Any] = {}
    if yaml_text:
        import yaml

        loaded = yaml.safe_load(yaml_text) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"-y must be a YAML mapping, got {type(loaded).__name__}")
        params.update(loaded)
    for name, value in pairs or ():
        params[name] = resolve_value(value)
    return params


# --------------------------------------------------------------------------- notebooks
def to_notebook(chapter: Path):
    """Read a jupytext percent file (or an .ipynb) as a notebook with the python3 kernel."""
    import jupytext

    nb = jupytext.read(str(chapter))
    nb.metadata.pop("jupytext", None)
    nb.metadata["kernelspec"] = {
        "name": KERNEL_NAME,
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
    }
    nb.metadata.setdefault("language_info", {"name": "python"})
    if not any("parameters" in c.get("metadata", {}).get("tags", []) for c in nb.cells):
        print(f"warning: {chapter} has no cell tagged 'parameters'; "
              "papermill adds the parameters at the top", file=sys.stderr)
    return nb


def kernel_env_dir(root: Path) -> Path:
    """A Jupyter data dir whose ``python3`` kernelspec runs *this* interpreter.

    It is put first on ``JUPYTER_PATH`` while papermill runs, so a user-level
    ``python3`` kernel pointing at another Python can never be picked instead of the
    project's virtual environment.
    """
    spec_dir = root / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True, exist_ok=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
        "metadata": {"debugger": False},
    }
    path = spec_dir / "kernel.json"
    text = json.dumps(spec, indent=1)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return root


def _chapter_name(chapter: Path) -> str:
    return chapter.stem


def run_chapter(chapter: str | os.PathLike, parameters: dict | None = None, *,
                out: str | os.PathLike | None = None, progress: bool | None = None,
                cwd: str | os.PathLike | None = None, log_output: bool = False) -> ChapterResult:
    """Convert, execute and write one chapter; raise :class:`ChapterError` if it raises.

    ``out`` is a folder (the notebook keeps the chapter's name) or a path ending in
    ``.ipynb``. The working directory of the kernel is the output notebook's folder
    unless ``cwd`` is given.
    """
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    chapter = Path(chapter)
    if not chapter.is_file():
        raise FileNotFoundError(f"no chapter file {chapter}")
    name = _chapter_name(chapter)
    if out is None:
        output = chapter.with_suffix(".ipynb")
    else:
        out = Path(out)
        output = out if out.suffix == ".ipynb" else out / f"{name}.ipynb"
    if output.resolve() == chapter.resolve():
        raise ValueError(f"refusing to overwrite the source {chapter}")
    output.parent.mkdir(parents=True, exist_ok=True)
    nb = to_notebook(chapter)
    if progress is None:
        progress = sys.stderr.isatty()

    kernels = Path(tempfile.mkdtemp(prefix="advmed-kernel-"))
    old_path = os.environ.get("JUPYTER_PATH")
    os.environ["JUPYTER_PATH"] = os.pathsep.join(
        [str(kernel_env_dir(kernels))] + ([old_path] if old_path else []))
    t0 = time.perf_counter()
    try:
        pm.execute_notebook(
            nb, str(output), parameters=parameters or {}, kernel_name=KERNEL_NAME,
            language="python", cwd=str(cwd or output.parent), progress_bar=progress,
            log_output=log_output, report_mode=False,
        )
    except PapermillExecutionError as exc:
        seconds = time.perf_counter() - t0
        message = (f" after {seconds:.1f} s in cell In [{exc.exec_count}]:\n"
                   + _ANSI.sub("", "\n".join(exc.traceback)))
        raise ChapterError(name, output, message) from None
    finally:
        if old_path is None:
            os.environ.pop("JUPYTER_PATH", None)
        else:
            os.environ["JUPYTER_PATH"] = old_path
        shutil.rmtree(kernels, ignore_errors=True)
    return ChapterResult(name, output, time.perf_counter() - t0)


# --------------------------------------------------------------------------- the book
def toc_files(toc_path: Path) -> list[str]:
    """Every ``root``/``file`` entry of a Jupyter Book ``_toc.yml``, in reading order."""
    import yaml

    toc = yaml.safe_load(Path(toc_path).read_text())
    files: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key in ("root", "file"):
                if key in node and isinstance(node[key], str):
                    files.append(node[key])
            for key in ("parts", "chapters", "sections"):
                for child in node.get(key, []) or []:
                    walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk(toc)
    return files


def find_source(root: Path, entry: str) -> Path:
    """The source file for a toc entry (``book/01_models`` -> ``book/01_models.py``)."""
    base = root / entry
    if base.suffix and base.is_file():
        return base
    for suffix in (".py", ".md", ".ipynb"):
        if base.with_suffix(suffix).is_file():
            return base.with_suffix(suffix)
    raise FileNotFoundError(f"_toc.yml names {entry!r} but no {entry}.py/.md/.ipynb exists under {root}")


def _matches(entry: str, wanted: Iterable[str]) -> bool:
    stem = Path(entry).name
    for w in wanted:
        w_stem = Path(w).with_suffix("").name if Path(w).suffix in (".py", ".ipynb", ".md") else Path(w).name
        if w_stem == stem or w_stem == entry or stem.startswith(w_stem + "_") or stem.split("_")[0] == w_stem:
            return True
    return False


def vendor_root(root: Path) -> Path:
    return root / "node_modules"


def stage_vendor(root: Path, dest: Path) -> None:
    """Copy the JavaScript the book serves itself (no CDN) into ``dest``."""
    nm = vendor_root(root)
    missing = [src for src, _ in VENDOR_FILES + VENDOR_DIRS if not (nm / src).exists()]
    if missing:
        raise FileNotFoundError(
            f"{', '.join(missing)} missing under {nm}: run `npm ci` in {root} "
            "(`make book` does) or pass --allow-cdn")
    for src, dst in VENDOR_FILES:
        (dest / dst).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(nm / src, dest / dst)
    for src, dst in VENDOR_DIRS:
        if (dest / dst).exists():
            shutil.rmtree(dest / dst)
        shutil.copytree(nm / src, dest / dst, ignore=shutil.ignore_patterns("*.map"))


WIDGET_FONTS = "@jupyter-widgets/html-manager/dist"


def stage_widget_fonts(root: Path, html: Path) -> None:
    """Put the widget manager's icon fonts where embed-amd.js asks for them.

    Its webpack build resolves the Font Awesome files relative to the page
    (``<page dir>/@jupyter-widgets/html-manager/dist/``), so every folder that holds
    pages gets a copy; otherwise pages log 404s for them.
    """
    src = vendor_root(root) / WIDGET_FONTS
    fonts = [f for f in src.iterdir() if f.suffix in (".woff2", ".woff", ".ttf", ".eot", ".svg")]
    page_dirs = {p.parent for p in html.rglob("*.html") if "_static" not in p.parts}
    for d in page_dirs:
        dest = d / WIDGET_FONTS
        dest.mkdir(parents=True, exist_ok=True)
        for f in fonts:
            shutil.copy2(f, dest / f.name)


def stage_config(root: Path, stage: Path, entries: list[str], *, allow_cdn: bool) -> None:
    """Write the staged _config.yml and _toc.yml (toc limited to the staged entries)."""
    import yaml

    config = yaml.safe_load((root / "_config.yml").read_text()) or {}
    config.setdefault("execute", {})["execute_notebooks"] = "off"
    sphinx_cfg = config.setdefault("sphinx", {}).setdefault("config", {}) or {}
    config["sphinx"]["config"] = sphinx_cfg
    static = list(sphinx_cfg.get("html_static_path", []) or [])
    if not allow_cdn:
        static.append("_vendor")
        sphinx_cfg["nb_ipywidgets_js"] = IPYWIDGETS_JS
        sphinx_cfg["mathjax_path"] = MATHJAX_PATH
    sphinx_cfg["html_static_path"] = static
    (stage / "_config.yml").write_text(yaml.safe_dump(config, sort_keys=False))

    toc = yaml.safe_load((root / "_toc.yml").read_text())
    keep = set(entries)

    def prune(node: Any) -> Any:
        if isinstance(node, dict):
            node = dict(node)
            for key in ("parts", "chapters", "sections"):
                if key in node:
                    kids = [prune(c) for c in node[key] or []]
                    kids = [c for c in kids if c is not None]
                    if kids:
                        node[key] = kids
                    else:
                        node.pop(key)
            if "file" in node and node["file"] not in keep and not any(
                    k in node for k in ("parts", "chapters", "sections")):
                return None
            return node
        return node

    (stage / "_toc.yml").write_text(yaml.safe_dump(prune(toc), sort_keys=False))


def _copy_tree(src: Path, dst: Path) -> None:
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst)


def build_book(*, root: str | os.PathLike = REPO, profile: str | None = None,
               chapters: Sequence[str] | None = None,
               build_dir: str | os.PathLike | None = None, keep_going: bool = False,
               allow_cdn: bool = False, extra_parameters: dict | None = None,
               log=None) -> BuildResult:
    """Execute every chapter of ``_toc.yml`` and render the book to ``build_dir/html``."""
    log = log or (lambda msg: print(msg, flush=True))
    root = Path(root).resolve()
    build_dir = Path(build_dir).resolve() if build_dir else root / "_build"
    profile = profile or os.environ.get("ADVMED_PROFILE") or "auto"
    stage = build_dir / "stage"
    stage.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()

    entries = toc_files(root / "_toc.yml")
    sources = {e: find_source(root, e) for e in entries}
    result = BuildResult(html=build_dir / "html")
    staged: list[str] = []
    failures: list[ChapterError] = []
    params = {**(extra_parameters or {}), "profile": profile}
    log(f"advmed.book: profile={profile}, build dir {build_dir}")
    for entry in entries:
        src = sources[entry]
        dest_dir = stage / Path(entry).parent
        dest_dir.mkdir(parents=True, exist_ok=True)
        if src.suffix == ".py":
            target = dest_dir / f"{src.stem}.ipynb"
            if chapters and not _matches(entry, chapters):
                if target.is_file():
                    staged.append(entry)
                    log(f"  {entry}: not selected, reusing {target}")
                else:
                    log(f"  {entry}: not selected and never executed, left out of the book")
                continue
            log(f"  {entry}: executing with papermill ...")
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
            log(f"  {entry}: {res.seconds:.1f} s")
            staged.append(entry)
        else:
            shutil.copy2(src, dest_dir / src.name)
            staged.append(entry)

    if failures:
        _write_timings(build_dir, result, profile)
        names = ", ".join(f.chapter for f in failures)
        details = "\n\n".join(f"{f.chapter}{f.message}" for f in failures)
        raise ChapterError(names, failures[0].output,
                           f": {len(failures)} chapter(s) raised:\n\n{details}")

    # static files: the project's own, then the vendored JavaScript (outside _static,
    # because Jupyter Book adds every .js found under <book>/_static to every page)
    static_src = root / "book" / "_static"
    if static_src.is_dir():
        _copy_tree(static_src, stage / "book" / "_static")
    if not allow_cdn:
        stage_vendor(root, stage / "_vendor")
    stage_config(root, stage, staged, allow_cdn=allow_cdn)

    t_book = time.perf_counter()
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
    result.book_seconds = time.perf_counter() - t_book
    result.total_seconds = time.perf_counter() - t_start
    _write_timings(build_dir, result, profile)
    return result


def _write_timings(build_dir: Path, result: BuildResult, profile: str) -> None:
    data = {
        "profile": profile,
        "chapters": {c.chapter: {"seconds": round(c.seconds, 2), "ok": c.ok} for c in result.chapters},
        "jupyter_book_seconds": round(result.book_seconds, 2),
        "total_seconds": round(result.total_seconds, 2),
    }
    (build_dir / "timings.json").write_text(json.dumps(data, indent=1))


def format_times(result: BuildResult) -> str:
    lines = ["", "time per chapter:"]
    for c in result.chapters:
        lines.append(f"  {c.chapter:<28s} {c.seconds:8.1f} s{'' if c.ok else '  FAILED'}")
    lines.append(f"  {'jupyter-book (html)':<28s} {result.book_seconds:8.1f} s")
    lines.append(f"  {'total':<28s} {result.total_seconds:8.1f} s")
    lines.append(f"html: {result.html / 'index.html'}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- CLI
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
                   help="smoke, cpu, paper or auto (default: $ADVMED_PROFILE or auto)")
    b.add_argument("--chapters", nargs="+", help="execute only these (e.g. 01_models 03); "
                   "others reuse their last executed notebook in the build dir")
    b.add_argument("--build-dir", default=None, help="default: _build (HTML in BUILD_DIR/html)")
    b.add_argument("--root", default=str(REPO), help=argparse.SUPPRESS)
    b.add_argument("--keep-going", action="store_true", help="execute the other chapters after a failure")
    b.add_argument("--allow-cdn", action="store_true",
                   help="do not bundle require.js/widgets/MathJax (load them from CDNs)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "run":
        params = parse_parameters(args.parameters, args.parameters_yaml)
        try:
            res = run_chapter(args.chapter, params, out=args.out, log_output=args.log_output)
        except ChapterError as exc:
            print(f"ERROR: {exc}", file=sys.stderr)
            return 1
        print(f"{res.chapter}: executed in {res.seconds:.1f} s -> {res.output}")
        return 0
    try:
        res = build_book(root=args.root, profile=args.profile, chapters=args.chapters,
                         build_dir=args.build_dir, keep_going=args.keep_going,
                         allow_cdn=args.allow_cdn)
    except ChapterError as exc:
        print(f"ERROR: book not built: chapter(s) {exc.chapter} raised (traceback above; "
              f"executed notebook: {exc.output})", file=sys.stderr)
        return 1
    except (RuntimeError, FileNotFoundError) as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 1
    print(format_times(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
