"""Where a build's time goes, cell by cell: papermill's per-cell durations of the executed chapters.

papermill records how long each cell ran (``metadata.papermill.duration``, seconds) in the
executed notebooks a build leaves in ``BUILD_DIR/stage/``; :func:`cell_times` reads them into
one table and ``python -m advmed.book profile`` prints the costliest cells, so a slow build is
answered by the cells that made it slow, not by chapter totals (``timings.json``). A cell
reloaded from a warm cache shows what loading costs; a cold build shows what computing costs.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

#: The columns of :func:`cell_times`.
COLUMNS = ("chapter", "cell", "seconds", "share", "code")


def _code(source: str, width: int) -> str:
    lines = [ln.strip() for ln in source.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    text = "; ".join(lines)
    return text if len(text) <= width else text[: width - 1] + "…"


def cell_times(build_dir: str | Path, *, width: int = 100) -> pd.DataFrame:
    """Every executed code cell of the build in ``build_dir``, costliest first: its chapter, index
    in the notebook, seconds (papermill's duration), share of all cells' seconds, and its code
    (comment lines dropped, joined by ``;``, cut at ``width`` characters).

    Raises:
        FileNotFoundError: ``build_dir`` holds no executed chapter (``BUILD_DIR/stage/**.ipynb``),
            naming the command that makes one.
    """
    stage = Path(build_dir) / "stage"
    notebooks = sorted(p for p in stage.rglob("*.ipynb") if "_vendor" not in p.parts and ".ipynb_checkpoints"
                       not in p.parts) if stage.is_dir() else []
    if not notebooks:
        raise FileNotFoundError(f"no executed chapter under {stage}; build first: python -m advmed.book build "
                                f"--build-dir {build_dir}")
    rows = []
    for nb_path in notebooks:
        nb = json.loads(nb_path.read_text())
        for i, cell in enumerate(nb.get("cells", [])):
            seconds = cell.get("metadata", {}).get("papermill", {}).get("duration")
            if cell.get("cell_type") == "code" and seconds is not None:
                src = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
                rows.append({"chapter": nb_path.stem, "cell": i, "seconds": float(seconds),
                             "code": _code(src, width)})
    out = pd.DataFrame(rows, columns=[c for c in COLUMNS if c != "share"])
    total = out["seconds"].sum()
    out.insert(3, "share", out["seconds"] / total if total > 0 else 0.0)
    return out.sort_values("seconds", ascending=False, kind="stable").reset_index(drop=True)


def format_cell_times(table: pd.DataFrame, *, top: int = 20) -> str:
    """The ``top`` costliest cells, one line each, and the share of the build they hold."""
    head = table.head(top)
    lines = [f"{len(table)} cells, {table['seconds'].sum():.0f} s; the {len(head)} costliest "
             f"({head['share'].sum():.0%} of the time):"]
    for r in head.itertuples():
        lines.append(f"  {r.seconds:8.1f} s {r.share:6.1%}  {r.chapter}[{r.cell}]  {r.code}")
    return "\n".join(lines)


__all__ = ["COLUMNS", "cell_times", "format_cell_times"]
