"""Integration: the whole book with the smoke profile, then every page in headless Chromium.

Builds into a temporary build dir (``$ADVMED_TEST_BUILD_DIR`` to choose it), with the
test cache of conftest (``$ADVMED_CACHE``) so that trained smoke models are reused.
Screenshots of every page are saved under ``<build dir>/screenshots/`` (a 1280-px window).

Besides loading, the browser checks what a reader sees (DESIGN.md, "Pages"): no element
wider than the text column without its own scroll container, every figure numbered and
captioned, in-text tables of at most a dozen rows with a caption and a CSV download, the
interactive appendix tables rendered and filtering with no network, no traceback or warning
text, and the intro's abstract made of numbers pasted from the chapters.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from advmed import book, pages

try:
    from tests.browser import Browser, external_assets, require_chromium
except ImportError:  # pytest put tests/ itself on sys.path
    from browser import Browser, external_assets, require_chromium

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
CHAPTERS = [e for e in book.toc_files(REPO / "_toc.yml") if book.find_source(REPO, e).suffix == ".py"]
ERROR_MARKERS = ("Traceback (most recent call last)", "An Exception was encountered at",
                 "papermill-error-cell", "Warning:", "UserWarning", "FutureWarning", "DeprecationWarning",
                 "RuntimeWarning", "{glue", "{numref}", "{cite", "???", "```{", "~~~{", ":header-rows:")
PAGES = ["book/intro"] + CHAPTERS + ["book/bibliography"]


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
            # plain PNG outputs and figures glued by advmed.pages.figure (each shown once, numbered)
            n_figures = sum(1 for c in _executed(smoke_book, entry)["cells"] for o in c.get("outputs", [])
                            if {"image/png", "application/papermill.record/image/png"} & set(o.get("data", {})))
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


def _page_problems(b, name: str) -> list[str]:
    """The reader's checks of one open page (see the module docstring)."""
    problems = [f"{name}: wider than the text column: {w}" for w in b.overflowing()]
    for fig in b.figures():
        if not fig["caption"] or not fig["number"].startswith("Fig."):
            problems.append(f"{name}: a figure without a numbered caption: {fig}")
    for t in b.reader_tables():
        if not t["number"].startswith("Table") or len(t["caption"]) < 15:
            problems.append(f"{name}: an in-text table without a numbered caption: {t['caption'][:60]!r}")
        if t["rows"] > pages.MAX_TABLE_ROWS:
            problems.append(f"{name}: an in-text table of {t['rows']} rows ({t['caption'][:40]!r}): appendix")
        if not t["csv"].startswith("data:text/csv"):
            problems.append(f"{name}: an in-text table without a CSV download ({t['caption'][:40]!r})")
        if not t["fits"]:
            problems.append(f"{name}: an in-text table wider than the text column ({t['caption'][:40]!r})")
    return problems


def test_every_page_reads_like_a_paper(smoke_book):
    """Every page at a 1280-px window, as a reader sees it; screenshots under the build dir."""
    require_chromium()
    html = smoke_book.html
    shots = html.parent / "screenshots"
    problems: list[str] = []
    filtered = 0
    with Browser(html, timeout=60) as b:
        for entry in PAGES:
            name = Path(entry).name
            b.open(f"{entry}.html")
            b.wait_for_widgets(timeout=60)
            problems += _page_problems(b, name)
            tables = b.appendix_tables(timeout=60)
            for t in tables:
                if not t["rendered"] or not t["rows"]:
                    problems.append(f"{name}: interactive table {t['id']} did not render offline")
                if not t["csv"].startswith("data:text/csv"):
                    problems.append(f"{name}: interactive table {t['id']} has no CSV download")
            searchable = [t for t in tables if t["search"]]
            if searchable:  # filter one: a string no row holds empties it, clearing restores it
                t = searchable[0]
                empty = b.filter_table(t["id"], "zzz-no-such-row")
                restored = b.filter_table(t["id"], "")
                if not empty.startswith("Showing 0") or restored != t["info"]:
                    problems.append(f"{name}: filtering {t['id']} gave {empty!r}, then {restored!r}")
                filtered += 1
            if entry in CHAPTERS and not tables:
                problems.append(f"{name}: no appendix table")
            b.screenshot(shots / f"reader_{name}.png")
        assert filtered, "no page had a searchable interactive table to filter"
    assert not problems, "\n".join(problems)


def test_the_abstract_is_pasted_from_the_chapters(smoke_book):
    page = (smoke_book.html / "book" / "intro.html").read_text()
    abstract = re.search(r'<section id="abstract">(.*?)</section>', page, re.S)
    assert abstract, "the intro has no Abstract section"
    text = abstract.group(1)
    pasted = re.findall(r'<span class="pasted-text">([^<]*)</span>', text)
    source = (REPO / "book" / "intro.md").read_text()
    source = source[source.index("## Abstract"):]
    source = source[:source.index("\n## ", 1)]  # the abstract section only (the profile table glues too)
    assert len(pasted) == source.count("{glue:text}"), "a glued number did not resolve"
    assert all(p.strip() for p in pasted)
    nb = _executed(smoke_book, "book/01_models")
    glued = [o["metadata"]["scrapbook"]["name"] for c in nb["cells"] for o in c.get("outputs", [])
             if "scrapbook" in o.get("metadata", {})]
    assert "clean-models" in glued and "book-profile" in glued


def test_figures_and_tables_are_numbered_by_chapter(smoke_book):
    page = (smoke_book.html / "book" / "02_whitebox.html").read_text()
    assert re.search(r'<span class="caption-number">Fig\. 2\.1 </span>', page)
    assert re.search(r'<span class="caption-number">Table 2\.1 </span>', page)
    assert 'href="#fig-wb-accuracy"' in page  # the text refers to the figure by its number
    bib = (smoke_book.html / "book" / "bibliography.html").read_text()
    assert "Madry" in bib and "Goodfellow" in bib
    assert 'href="bibliography.html#' in page  # citations link to the bibliography

#: chapters with explorers (advmed.widgets) and how many each page has
EXPLORER_PAGES = {"book/02_whitebox": 1, "book/03_uap": 1, "book/04_natural_uap": 1, "book/06_patches": 1,
                  "book/07_defenses": 1}


def _frame_payload(nb: dict) -> tuple[int, int]:
    """(PNG frames, their bytes) held in an executed notebook's widget state."""
    import base64

    state = nb["metadata"].get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {}).get("state", {})
    sizes = [len(base64.b64decode(b["data"])) for m in state.values() if m["model_name"] == "ImageModel"
             for b in m.get("buffers", [])]
    return len(sizes), sum(sizes)


def test_explorer_frames_fit_the_page_budget(smoke_book):
    from advmed.experiments.profiles import PROFILES

    prof = PROFILES["smoke"]
    budget = {"book/02_whitebox": prof.explorer.budget_mb}
    budget.update({e: prof.uap_explorer.budget_mb for e in ("book/03_uap", "book/04_natural_uap")})
    budget["book/06_patches"] = prof.patch_explorer.budget_mb
    budget["book/07_defenses"] = prof.defense_explorer.budget_mb
    for entry, mb in budget.items():
        n, size = _frame_payload(_executed(smoke_book, entry))
        print(f"{entry}: {n} frames, {size / 1e6:.2f} MB (budget {mb:g} MB)")
        assert n > 0 and size <= mb * 1e6, entry


def test_every_explorer_responds_in_headless_chromium(smoke_book):
    """Each explorer of the smoke book: every control moved through its options in the
    browser changes the shown frame (no dead control)."""
    require_chromium()
    shots = smoke_book.html.parent / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []
    with Browser(smoke_book.html, timeout=60) as b:
        b.driver.set_script_timeout(30)
        for entry, expected in EXPLORER_PAGES.items():
            b.open(f"{entry}.html")
            b.wait_for_widgets(timeout=60)
            b.wait_until(f"return document.querySelectorAll('.advmed-explorer').length >= {expected}", timeout=60)
            roots = b.explorers()
            if len(roots) != expected:
                problems.append(f"{entry}: {len(roots)} explorers, expected {expected}")
            for i, root in enumerate(roots):
                b.driver.execute_script("arguments[0].scrollIntoView()", root)
                problems += [f"{entry} explorer {i + 1}: {p}" for p in b.explorer_problems(root)]
                b.driver.save_screenshot(str(shots / f"{Path(entry).name}_explorer{i + 1}.png"))
            errors = [e for e in b.console_errors() if "favicon" not in e]
            if errors:
                problems.append(f"{entry}: browser console errors: {errors[:3]}")
    assert not problems, "\n".join(problems)


def test_the_claims_chapter_shows_every_registry_claim_at_both_settings(smoke_book):
    """Chapter 8's table, as the smoke book's cache gives it: every registry claim, each with a
    verdict at the study's setting and under the strongest evaluation, and the same verdicts the
    executed page shows in its CSV."""
    import base64
    import io

    import pandas as pd

    from advmed.experiments.claims import registry, run, verdicts
    from advmed.experiments.profiles import get_profile

    claims = run.all_claims(get_profile("smoke"))
    assert [c.number for c in claims] == [c.number for c in registry.CLAIMS]
    assert all(v.verdict in verdicts.VERDICTS for c in claims for v in c.verdicts)
    page = (smoke_book.html / "book" / "08_claims.html").read_text()
    link = re.search(r'download="tab-claims\.csv" href="data:text/csv;charset=utf-8;base64,([^"]+)"', page)
    assert link, "the claims table has no CSV download"
    text = base64.b64decode(link.group(1)).decode()
    shown = pd.read_csv(io.StringIO(text))
    assert list(shown["verdict"]) == [v.verdict for c in claims for v in c.verdicts]
