"""Unit tests of the book runner (advmed.book): parameters, conversion, papermill
execution, failures, staging and a Jupyter Book build of a two-page mini book."""
from __future__ import annotations

import json
import os
import re
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest

from advmed import book

try:
    from tests.browser import Browser, external_assets, require_chromium
except ImportError:  # pytest put tests/ itself on sys.path
    from browser import Browser, external_assets, require_chromium

REPO = Path(__file__).resolve().parents[1]
CHAPTERS = ["book/01_models", "book/02_whitebox", "book/03_uap", "book/04_natural_uap", "book/05_blackbox",
            "book/06_patches", "book/07_defenses", "book/08_claims", "book/09_methods", "book/10_discussion"]

HEADER = """# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---
"""

GOOD = HEADER + '''
# %% [markdown]
# # Mini chapter
#
# The slider below has $\\varepsilon$ in it.

# %% tags=["parameters"]
profile = "auto"
n = 1

# %%
import sys
print("profile:", profile, "n:", n, "python:", sys.executable)

# %%
import ipywidgets as w
w.IntSlider(value=n, min=0, max=10, description="eps")
'''

BAD = HEADER + '''
# %% [markdown]
# # Broken chapter

# %% tags=["parameters"]
profile = "auto"

# %%
def inner():
    raise ZeroDivisionError("chapter blew up on purpose")
inner()
'''


def _chapter(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# --------------------------------------------------------------------------- parameters
def test_parameters_are_typed_like_papermill():
    params = book.parse_parameters(
        [["profile", "smoke"], ["n", "3"], ["eps", "0.5"], ["flag", "True"], ["none", "None"]])
    assert params == {"profile": "smoke", "n": 3, "eps": 0.5, "flag": True, "none": None}


def test_yaml_parameters_and_p_override():
    params = book.parse_parameters([["n", "2"]], "n: 1\ntasks: [pneumonia_cxr]\n")
    assert params == {"n": 2, "tasks": ["pneumonia_cxr"]}
    with pytest.raises(ValueError, match="mapping"):
        book.parse_parameters(None, "- a\n- b\n")


def test_unknown_parameter_is_refused_before_executing(tmp_path, capsys):
    src = _chapter(tmp_path, "09_params.py", GOOD)
    with pytest.raises(book.ParameterError, match=r"(?s)no parameter 'epsilon'.*profile = .auto.*n = 1"):
        book.run_chapter(src, {"profile": "smoke", "epsilon": 3}, out=tmp_path / "o")
    assert not (tmp_path / "o").exists(), "nothing may execute"
    assert book.main(["run", str(src), "-p", "epsilon", "3", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "no parameter 'epsilon'" in err and "n = 1" in err and "Traceback" not in err


def test_every_chapter_parameter_is_known():
    for entry in CHAPTERS:
        params = book.chapter_parameters(REPO / f"{entry}.py")
        assert "profile" in params, entry


def test_build_arguments_are_checked_before_any_chapter_runs(tmp_path, capsys):
    root = _mini_project(tmp_path, {"01_ok": GOOD, "02_bad": BAD})
    build = tmp_path / "b"
    assert book.main(["build", "--root", str(root), "--profile", "gpu", "--build-dir", str(build)]) == 2
    assert "unknown profile 'gpu'; valid profiles: auto, smoke, cpu, paper" in capsys.readouterr().err
    assert book.main(["build", "--root", str(root), "--profile", "smoke", "--chapters", "07",
                      "--build-dir", str(build)]) == 2
    assert "no chapter matches '07'; the chapters are: 01_ok, 02_bad" in capsys.readouterr().err
    assert not build.exists(), "a refused build writes nothing"


def test_missing_chapter_file_is_a_one_line_error(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    assert book.main(["run", "book/99_nope.py"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no chapter file book/99_nope.py" in err and "01_models.py" in err


def test_book_root_is_the_working_directory_not_the_package(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="has no _toc.yml"):
        book.book_root()
    assert book.book_root(REPO) == REPO.resolve()


# --------------------------------------------------------------------------- the project's book
def test_toc_lists_intro_the_four_chapters_and_the_bibliography():
    entries = book.toc_files(REPO / "_toc.yml")
    assert entries == ["book/intro"] + CHAPTERS + ["book/bibliography"]
    assert book.find_source(REPO, "book/intro").suffix == ".md"
    for entry in CHAPTERS:
        assert book.find_source(REPO, entry).suffix == ".py"


@pytest.mark.parametrize("entry", CHAPTERS)
def test_every_chapter_has_a_title_and_a_profile_parameter(entry):
    nb = book.to_notebook(REPO / f"{entry}.py")
    assert nb.metadata["kernelspec"]["name"] == "python3"
    assert "jupytext" not in nb.metadata
    params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1, "exactly one cell tagged 'parameters'"
    assert re.search(r"^profile\s*=", params[0].source, re.M)
    first_md = next(c for c in nb.cells if c.cell_type == "markdown")
    assert re.match(r"#\s+\S", first_md.source.lstrip())
    # the book numbers the chapters (_toc.yml `numbered`): a typed number would appear twice
    assert not re.match(r"#\s+\d+\.", first_md.source.lstrip()), "chapter headings carry no number"


def test_config_has_the_title_and_execution_off():
    import yaml

    cfg = yaml.safe_load((REPO / "_config.yml").read_text())
    assert cfg["title"] == "advmed: adversarial attacks on medical image classifiers"
    assert cfg["execute"]["execute_notebooks"] == "off"
    assert cfg["launch_buttons"]["binderhub_url"]
    assert cfg["repository"]["branch"] == "main"


def test_requirements_are_pinned_and_split():
    req = (REPO / "requirements.txt").read_text()
    lines = [ln for ln in req.splitlines() if ln and not ln.startswith("#")]
    assert all(re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[^=\s]+", ln) for ln in lines), "every line pinned"
    names = {ln.split("==")[0].lower(): ln.split("==")[1] for ln in lines}
    assert names["torch"] == "2.14.1" and names["torchvision"] == "0.29.1"
    assert names["jupyter-book"].startswith("1.")
    for test_only in ("pytest", "hypothesis", "torchattacks", "adversarial-robustness-toolbox", "advmed"):
        assert test_only not in names
    test_lines = [ln for ln in (REPO / "requirements-test.txt").read_text().splitlines()
                  if ln and not ln.startswith("#")]
    test_names = {ln.split("==")[0].lower() for ln in test_lines}
    assert {"pytest", "hypothesis", "torchattacks", "adversarial-robustness-toolbox"} <= test_names
    assert all("==" in ln for ln in test_lines)
    assert not test_names & set(names), "no package pinned twice"


# --------------------------------------------------------------------------- run
def test_run_executes_with_parameters_and_leaves_the_source(tmp_path):
    src = _chapter(tmp_path / "src", "book/05_mini.py", GOOD)
    before = src.read_text()
    res = book.run_chapter(src, {"profile": "smoke", "n": 4}, out=tmp_path / "out")
    assert res.output == tmp_path / "out" / "05_mini.ipynb" and res.seconds > 0
    nb = json.loads(res.output.read_text())
    text = "".join("".join(o.get("text", "")) for c in nb["cells"] for o in c.get("outputs", []))
    assert "profile: smoke n: 4" in text
    # the kernel is this interpreter (the venv), whatever other python3 kernels exist
    assert f"python: {sys.executable}" in text
    assert any("injected-parameters" in c["metadata"].get("tags", []) for c in nb["cells"])
    assert src.read_text() == before
    assert sorted(p.name for p in src.parent.iterdir()) == ["05_mini.py"]


def test_cli_run_prints_the_wall_time(tmp_path, capsys):
    src = _chapter(tmp_path, "06_cli.py", GOOD)
    assert book.main(["run", str(src), "-p", "profile", "smoke", "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert re.search(r"06_cli: executed in \d+\.\d s", out)
    assert (tmp_path / "o" / "06_cli.ipynb").is_file()


def test_failing_chapter_names_itself_and_shows_the_traceback(tmp_path, capsys):
    src = _chapter(tmp_path, "07_broken.py", BAD)
    with pytest.raises(book.ChapterError) as info:
        book.run_chapter(src, {"profile": "smoke"}, out=tmp_path / "o")
    msg = str(info.value)
    assert "07_broken" in msg and "ZeroDivisionError" in msg and "chapter blew up on purpose" in msg
    assert "inner()" in msg  # papermill's traceback, not only the last line
    assert "\x1b[" not in msg  # no ANSI colours
    assert book.main(["run", str(src), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "ERROR" in err and "07_broken" in err and "ZeroDivisionError" in err


def test_refuses_to_overwrite_the_source(tmp_path):
    src = _chapter(tmp_path, "08_x.ipynb", "")
    with pytest.raises(ValueError, match="overwrite"):
        book.run_chapter(src, out=tmp_path)


def test_chapter_selection():
    assert book.matches("book/01_models", ["01_models"])
    assert book.matches("book/01_models", ["book/01_models.py"])
    assert book.matches("book/01_models", ["01"])
    assert not book.matches("book/01_models", ["02_whitebox", "03"])


# --------------------------------------------------------------------------- build
def _mini_project(tmp_path: Path, chapters: dict[str, str]) -> Path:
    root = tmp_path / "proj"
    (root / "book").mkdir(parents=True)
    shutil.copy(REPO / "_config.yml", root / "_config.yml")
    shutil.copy(REPO / "references.bib", root / "references.bib")
    shutil.copytree(REPO / "book" / "_static", root / "book" / "_static")
    (root / "book" / "intro.md").write_text("# Mini book\n\nIntro with math $x^2$.\n")
    toc = "format: jb-book\nroot: book/intro\nchapters:\n" + "".join(
        f"  - file: book/{name}\n" for name in chapters)
    (root / "_toc.yml").write_text(toc)
    for name, text in chapters.items():
        (root / "book" / f"{name}.py").write_text(text)
    if (REPO / "node_modules").is_dir():
        os.symlink(REPO / "node_modules", root / "node_modules")
    return root


def _source_snapshot(root: Path) -> dict[str, float]:
    snap = {}
    for dirpath, dirnames, filenames in os.walk(root):  # does not follow node_modules' link
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            snap[str(p.relative_to(root))] = p.lstat().st_mtime
    return snap


@pytest.fixture(scope="module")
def mini_book(tmp_path_factory):
    if not (REPO / "node_modules" / "@jupyter-widgets").is_dir():
        pytest.skip("node_modules missing: run `npm ci` (make test does)")
    tmp = tmp_path_factory.mktemp("mini")
    root = _mini_project(tmp, {"01_one": GOOD, "02_two": GOOD.replace("Mini chapter", "Second")})
    before = _source_snapshot(root)
    res = book.build_book(root=root, profile="smoke", build_dir=tmp / "build")
    return root, before, res


def test_build_renders_every_page_without_touching_the_sources(mini_book):
    root, before, res = mini_book
    html = res.html
    assert (html / "index.html").is_file()
    for page in ("book/intro.html", "book/01_one.html", "book/02_two.html"):
        assert (html / page).is_file(), page
    assert "Second" in (html / "book" / "02_two.html").read_text()
    assert _source_snapshot(root) == before, "build wrote into the source tree"
    assert [c.chapter for c in res.chapters] == ["book/01_one", "book/02_two"]
    timings = json.loads((res.html.parent / "timings.json").read_text())
    assert set(timings["chapters"]) == {"book/01_one", "book/02_two"}
    cells = pd.read_csv(res.html.parent / "cell_times.csv")  # the same build by cell
    assert set(cells["chapter"]) == {"01_one", "02_two"} and (cells["seconds"] >= 0).all()
    assert "profile: smoke" in (html / "book" / "01_one.html").read_text()


def test_build_serves_widgets_and_mathjax_itself(mini_book):
    _, _, res = mini_book
    html = res.html
    page = (html / "book" / "01_one.html").read_text()
    assert "application/vnd.jupyter.widget-state+json" in page, "papermill kept the widget state"
    assert "_static/vendor/embed-amd.js" in page and "_static/vendor/require.js" in page
    assert (html / "_static" / "vendor" / "embed-amd.js").is_file()
    assert (html / "_static" / "vendor" / "mathjax" / "tex-mml-chtml.js").is_file()
    for p in html.rglob("*.html"):
        assert external_assets(p.read_text()) == [], p
    # the executed notebook is offered for download
    assert list(html.glob("_sources/book/01_one.ipynb"))


def test_build_fails_loudly_when_a_chapter_raises(tmp_path, capsys):
    root = _mini_project(tmp_path, {"01_ok": GOOD, "02_bad": BAD, "03_after": GOOD})
    code = book.main(["build", "--root", str(root), "--profile", "smoke",
                      "--build-dir", str(tmp_path / "b"), "--allow-cdn"])
    assert code == 1
    err = capsys.readouterr().err
    assert "02_bad" in err and "ZeroDivisionError" in err and "chapter blew up on purpose" in err
    assert not (tmp_path / "b" / "html").exists()
    assert (tmp_path / "b" / "failed" / "02_bad.ipynb").is_file()
    assert not (tmp_path / "b" / "stage" / "book" / "02_bad.ipynb").exists()
    assert not (tmp_path / "b" / "stage" / "book" / "03_after.ipynb").exists(), "stops at the failure"


@pytest.mark.browser
def test_mini_book_in_headless_chromium(mini_book):
    require_chromium()
    _, _, res = mini_book
    with Browser(res.html) as b:
        b.open("book/01_one.html")
        assert "Mini chapter" in b.title()
        assert b.wait_for_widgets() >= 1, "the embedded slider was not rendered"
        assert b.set_slider(".widget-slider", 3) == 3
        shot = b.screenshot(res.html.parent / "screenshots" / "mini_01_one.png")
        assert shot.stat().st_size > 1000
        b.open("book/intro.html")
        b.wait_until("return document.querySelector('mjx-container') !== null")
