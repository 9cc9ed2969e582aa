"""Execute one chapter: jupytext percent file -> notebook -> papermill, with the project's kernel."""
from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .params import check_parameters

#: Kernel name written into every notebook (portable: any Jupyter has a ``python3``).
KERNEL_NAME = "python3"

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
    """One executed chapter: where its notebook is and how long it took."""

    chapter: str
    output: Path
    seconds: float
    ok: bool = True
    error: str = ""


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


def run_chapter(chapter: str | os.PathLike, parameters: dict | None = None, *,
                out: str | os.PathLike | None = None, progress: bool | None = None,
                cwd: str | os.PathLike | None = None, log_output: bool = False) -> ChapterResult:
    """Convert, execute and write one chapter; raise :class:`ChapterError` if it raises.

    The parameters are checked against the chapter's ``parameters`` cell first (names and
    types, :func:`advmed.book.params.check_parameters`): a :class:`ParameterError` comes before
    anything executes or is written.

    ``out`` is a folder (the notebook keeps the chapter's name) or a path ending in
    ``.ipynb``. The working directory of the kernel is the output notebook's folder
    unless ``cwd`` is given.
    """
    chapter = Path(chapter)
    if not chapter.is_file():
        raise FileNotFoundError(f"no chapter file {chapter}")
    name = chapter.stem
    if out is None:
        output = chapter.with_suffix(".ipynb")
    else:
        out = Path(out)
        output = out if out.suffix == ".ipynb" else out / f"{name}.ipynb"
    if output.resolve() == chapter.resolve():
        raise ValueError(f"refusing to overwrite the source {chapter}")
    # names and types first: a typo or a wrong value would otherwise cost a whole execution
    check_parameters(chapter, dict(parameters or {}))
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    output.parent.mkdir(parents=True, exist_ok=True)
    nb = to_notebook(chapter)
    if progress is None:
        progress = sys.stderr.isatty()

    kernels = Path(tempfile.mkdtemp(prefix="advmed-kernel-"))
    old_path = os.environ.get("JUPYTER_PATH")
    os.environ["JUPYTER_PATH"] = os.pathsep.join(
        [str(kernel_env_dir(kernels))] + ([old_path] if old_path else []))
    # the kernel inherits it: explorers precompute their frames (advmed.widgets.resolve_mode)
    old_widgets = os.environ.get("ADVMED_WIDGETS")
    if old_widgets is None:
        os.environ["ADVMED_WIDGETS"] = "static"
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
        if old_widgets is None:
            os.environ.pop("ADVMED_WIDGETS", None)
        shutil.rmtree(kernels, ignore_errors=True)
    return ChapterResult(name, output, time.perf_counter() - t0)
