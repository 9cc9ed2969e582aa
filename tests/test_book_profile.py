"""advmed.book.profile: the costliest cells of a build, from papermill's per-cell durations."""
from __future__ import annotations

import json

import pytest

from advmed import book


def _notebook(path, durations):
    cells = [{"cell_type": "markdown", "metadata": {}, "source": "# title"}]
    for i, d in enumerate(durations):
        cells.append({"cell_type": "code", "metadata": {"papermill": {"duration": d}},
                      "source": [f"# comment\n", f"x{i} = run.step({i})\n", "y = x + 1"], "outputs": []})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))


def test_cells_are_ranked_by_papermills_duration_with_their_share(tmp_path):
    _notebook(tmp_path / "stage" / "book" / "01_a.ipynb", [1.0, 6.0])
    _notebook(tmp_path / "stage" / "book" / "02_b.ipynb", [3.0])
    t = book.cell_times(tmp_path)
    assert list(t["seconds"]) == [6.0, 3.0, 1.0] and list(t["chapter"]) == ["01_a", "02_b", "01_a"]
    assert list(t["cell"]) == [2, 1, 1]  # notebook indices, the markdown title counted
    assert t["share"].sum() == pytest.approx(1.0) and t["share"].iloc[0] == pytest.approx(0.6)
    assert t["code"].iloc[0] == "x1 = run.step(1); y = x + 1"  # comments dropped
    text = book.format_cell_times(t, top=2)
    assert "3 cells, 10 s" in text and "(90% of the time)" in text and "01_a[2]" in text


def test_a_build_dir_without_executed_chapters_says_how_to_make_one(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m advmed.book build"):
        book.cell_times(tmp_path)
