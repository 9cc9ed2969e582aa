"""Integration: the whole book with the smoke profile, then every page in headless Chromium.

Builds into a temporary build dir (``$ADVMED_TEST_BUILD_DIR`` to choose it), with the
test cache of conftest (``$ADVMED_CACHE``) so that trained smoke models are reused.
Screenshots of every page are saved under ``<build dir>/screenshots/``.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from advmed import book

try:
    from tests.browser import Browser, external_assets, require_chromium
except ImportError:  # pytest put tests/ itself on sys.path
    from browser import Browser, external_assets, require_chromium

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
CHAPTERS = [e for e in book.toc_files(REPO / "_toc.yml") if book.find_source(REPO, e).suffix == ".py"]
ERROR_MARKERS = ("Traceback (most recent call last)", "An Exception was encountered at",
                 "papermill-error-cell")


@pytest.fixture(scope="module")
def smoke_book(tmp_path_factory):
    if os.environ.get("ADVMED_TEST_BUILD_DIR"):
        build_dir = Path(os.environ["ADVMED_TEST_BUILD_DIR"])
    else:
        build_dir = tmp_path_factory.mktemp("smoke-book") / "build"
    try:
        res = book.build_book(root=REPO, profile="smoke", build_dir=build_dir)
    except book.ChapterError as exc:
        pytest.fail(f"the smoke book did not build:\n{exc}", pytrace=False)
    print(book.format_times(res))
    return res


def _title(entry: str) -> str:
    nb = book.to_notebook(REPO / f"{entry}.py")
    md = next(c for c in nb.cells if c.cell_type == "markdown")
    heading = re.search(r"^#\s+(.+)$", md.source, re.M).group(1).strip()
    return re.sub(r"[`*_$\\]", "", heading)


def _executed(res, entry: str) -> dict:
    return json.loads((res.html.parent / "stage" / f"{entry}.ipynb").read_text())


def test_every_chapter_executed_without_errors(smoke_book):
    assert [c.chapter for c in smoke_book.chapters] == CHAPTERS
    assert all(c.ok for c in smoke_book.chapters)
    for entry in CHAPTERS:
        nb = _executed(smoke_book, entry)
        for cell in nb["cells"]:
            for out in cell.get("outputs", []):
                assert out["output_type"] != "error", f"{entry}: {out.get('ename')}: {out.get('evalue')}"
                if out["output_type"] == "stream":
                    assert out["name"] != "stderr", f"{entry} writes to stderr: {''.join(out['text'])[:500]}"


def test_no_asset_from_another_host(smoke_book):
    bad = {}
    for page in smoke_book.html.rglob("*.html"):
        found = external_assets(page.read_text(errors="replace"))
        if found:
            bad[str(page.relative_to(smoke_book.html))] = found
    assert bad == {}


def test_every_page_in_headless_chromium(smoke_book):
    require_chromium()
    html = smoke_book.html
    shots = html.parent / "screenshots"
    problems: list[str] = []
    with Browser(html, timeout=60) as b:
        b.open("index.html")  # redirect to the intro
        b.wait_until("return document.querySelector('main h1') !== null")
        b.screenshot(shots / "00_intro.png")
        assert "advmed" in b.title()
        for entry in CHAPTERS:
            name = Path(entry).name
            b.open(f"{entry}.html")
            title = _title(entry)
            h1 = b.js("const h = document.querySelector('main h1'); return h ? h.innerText : ''")
            words = re.findall(r"\w+", title)[:4]
            if not h1 or not all(w in h1 for w in words) or words[0] not in b.title():
                problems.append(f"{name}: heading {h1!r} / title {b.title()!r} lack {title!r}")
            b.wait_for_widgets(timeout=60)
            n_figures = sum(1 for c in _executed(smoke_book, entry)["cells"]
                            for o in c.get("outputs", []) if "image/png" in o.get("data", {}))
            images = b.images()
            broken = [i["src"] for i in images if not i["loaded"]]
            if broken:
                problems.append(f"{name}: images that did not load: {broken}")
            if len([i for i in images if i["loaded"]]) < n_figures:
                problems.append(f"{name}: {n_figures} figures in the notebook, "
                                f"{len(images)} <img> in the page")
            text = b.text()
            for marker in ERROR_MARKERS:
                if marker in text:
                    problems.append(f"{name}: page shows {marker!r}")
            n_stderr = b.js("return document.querySelectorAll('.output.stderr, .stderr').length")
            if n_stderr:
                problems.append(f"{name}: {n_stderr} stderr output(s) on the page")
            errors = [e for e in b.console_errors() if "favicon" not in e]
            if errors:
                problems.append(f"{name}: browser console errors: {errors[:3]}")
            b.screenshot(shots / f"{name}.png")
    print(f"screenshots: {shots}")
    assert not problems, "\n".join(problems)
