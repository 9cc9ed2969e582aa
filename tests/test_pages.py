"""The book's page conventions (DESIGN.md, "Pages"): numbered captioned figures, reader tables,
offline interactive appendix tables, CSV downloads, one colour per attack and model, legends
outside the data, citations from references.bib, an abstract of glued numbers, and the
publishing files (CITATION.cff, LICENSE, the Pages workflow) with one repository URL."""
from __future__ import annotations

import base64
import io
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from advmed import pages, plots

REPO = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((REPO / "book").glob("[0-9][0-9]_*.py"))
#: Chapters of text and tables only (the Methods, and the Discussion and limitations): every
#: other chapter reports results and must show at least one numbered figure.
TEXT_CHAPTERS = ("09_methods", "10_discussion")


@pytest.fixture(autouse=True)
def _no_pyplot_figures():
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    yield
    assert plt.get_fignums() == before


@pytest.fixture
def shown(monkeypatch):
    """What the page helpers display and glue, without a kernel."""
    import IPython.display
    import myst_nb

    out = {"display": [], "glue": []}
    monkeypatch.setattr(IPython.display, "display", lambda obj, **kw: out["display"].append(obj))
    monkeypatch.setattr(myst_nb, "glue", lambda name, value, display=True: out["glue"].append((name, value, display)))
    return out


def _figure():
    fig, axes = plots.new_figure()
    axes[0, 0].plot([0, 1], [1, 0], label="a line")
    return fig


def _render_myst(markdown: str) -> str:
    """MyST markdown -> HTML with docutils (no Sphinx): what the book does with an output."""
    from docutils.core import publish_string
    from myst_parser.parsers.docutils_ import Parser

    return publish_string(markdown, parser=Parser(), writer_name="html5",
                          settings_overrides={"output_encoding": "unicode", "report_level": 4,
                                              "myst_enable_extensions": ["dollarmath"]})


# --------------------------------------------------------------------------- figures
def test_figure_is_glued_once_and_shown_as_a_numbered_directive(shown):
    pages.figure(_figure(), "fig-test-line", "A falling line, cited {cite:p}`madry2018towards`.")
    (name, image, display), = shown["glue"]
    assert name == "fig-test-line" and display is False  # the book shows the directive, not the glue
    assert image.data[:8] == b"\x89PNG\r\n\x1a\n"
    (out,), = [shown["display"]]
    bundle = out._repr_mimebundle_()
    md = bundle["text/markdown"]
    assert md.startswith("```{glue:figure} fig-test-line\n:name: fig-test-line\n")
    assert "cited {cite:p}`madry2018towards`" in md  # MyST caption, roles kept for the book
    html = bundle["text/html"]
    assert "<figcaption>A falling line, cited madry2018towards.</figcaption>" in html  # roles stripped
    assert base64.b64encode(image.data).decode()[:200] in html


@pytest.mark.parametrize("name, caption", [("fig-Test", "c"), ("tab-test-x", "c"), ("fig-x_y", "c"),
                                           ("fig-test-ok", " ")])
def test_figure_labels_and_captions_are_checked(shown, name, caption):
    with pytest.raises(ValueError, match="label|caption"):
        pages.figure(_figure(), name, caption)


# --------------------------------------------------------------------------- reader tables
def test_reader_frame_rounds_words_and_drops_the_row_numbers():
    df = pd.DataFrame({"val_auc": [0.988464, np.nan], "n_test": [624, 12], "init_used": ["imagenet", "scratch"],
                       "ok": [True, False]}, index=[3, 7])
    out = pages.reader_frame(df, digits=2)
    assert list(out.columns) == ["validation AUC", "test images", "initialisation", "ok"]
    assert out.iloc[0].tolist() == ["0.99", "624", "imagenet", "yes"]
    assert out.iloc[1, 0] == "–" and out.iloc[1, 3] == "no"
    assert isinstance(out.index, pd.RangeIndex)
    named = pd.DataFrame({"value": [1.5]}, index=pd.Index(["eps"], name="setting"))
    assert pages.reader_frame(named).columns.tolist() == ["setting", "value"]  # a named index is a column


def test_reader_tables_name_tasks_by_their_labels_and_the_csv_keeps_the_ids():
    df = pd.DataFrame({"accuracy": [0.5, 0.6]},
                      index=pd.MultiIndex.from_tuples([("pneumonia_cxr", "none"), ("Referable DR", "JPEG")],
                                                      names=["task", "defense"]))
    assert pages.reader_frame(df)["task"].tolist() == ["Pneumonia (CXR)", "Referable DR"]
    csv = base64.b64decode(pages.csv_link(df, "t").split("base64,")[1].split('"')[0]).decode()
    assert "pneumonia_cxr" in csv


def test_interval_is_the_books_one_format():
    assert pages.interval(0.8123, 0.7777, 0.8444) == "0.81 [0.78, 0.84]"


def test_table_renders_as_a_captioned_list_table_with_literal_cells(shown):
    df = pd.DataFrame({"model": ["a*b*", "x|y"], "auc": ["0.81 [0.78, 0.84]", "$5 <b>"], "n": [1, 2]})
    pages.table(df, "tab-test-cells", "Two models of profile `cpu`: AUC [95 % interval].")
    (out,) = shown["display"]
    md = out._repr_mimebundle_()["text/markdown"]
    assert md.startswith("~~~{list-table} Two models of profile `cpu`: AUC [95 % interval].\n:name: tab-test-cells\n")
    html = _render_myst(md)
    assert "<caption>Two models of profile <span class=\"docutils literal\">cpu</span>" in html  # backticks in a caption
    for literal in ("a*b*", "x|y", "0.81 [0.78, 0.84]", "$5 &lt;b&gt;"):
        assert literal in html, literal
    assert html.count("<tr") == 3  # header + two rows: no cell split by | or eaten by markup
    assert "advmed-csv" in html


def test_an_empty_table_keeps_its_label_and_says_why(shown):
    pages.table(pd.DataFrame(), "tab-test-empty", "Nothing here.")
    md = shown["display"][0]._repr_mimebundle_()["text/markdown"]
    assert ":name: tab-test-empty" in md and "no rows" in md


def test_a_too_long_summary_scrolls_in_its_own_box(shown):
    pages.table(pd.DataFrame({"i": range(pages.MAX_TABLE_ROWS + 1)}), "tab-test-long", "Long.")
    assert "advmed-table-long" in shown["display"][0]._repr_mimebundle_()["text/markdown"]
    css = (REPO / "book" / "_static" / "advmed.css").read_text()
    assert "advmed-table-long" in css and "overflow-y: auto" in css


def test_csv_link_downloads_the_numbers_behind_the_table():
    data = pd.DataFrame({"auc": [0.912345, 0.5], "task": ["a", "b"]}, index=pd.Index(["m1", "m2"], name="model"))
    link = pages.csv_link(data, "tab-x")
    assert 'download="tab-x.csv"' in link
    payload = re.search(r"base64,([A-Za-z0-9+/=]+)", link).group(1)
    back = pd.read_csv(io.StringIO(base64.b64decode(payload).decode()))
    assert back.columns.tolist() == ["model", "auc", "task"]
    assert back["auc"].tolist() == [0.912345, 0.5]  # unrounded


# --------------------------------------------------------------------------- appendix tables
def test_appendix_table_is_an_offline_itable_that_the_book_can_serve(shown):
    from advmed.book import sphinx_ext

    pages.appendix_table(pd.DataFrame({"x": np.arange(30) / 7}), "tab-test-appendix", "Thirty rows.")
    html = shown["display"][0]._repr_mimebundle_()["text/html"]
    global_name, ready_event, folder = sphinx_ext._itables_names()
    assert f"window.{global_name}" in html and ready_event in html  # what the page fix provides
    assert "https://www.unpkg.com" not in html and "cdn" not in html.lower()
    assert (folder / "dt_bundle.js").is_file() and (folder / "dt_bundle.css").is_file()
    assert "Thirty rows." in html and "advmed-csv" in html
    assert '"pageLength": 10' in html and '"scrollX": true' in html  # wide tables scroll in their box


def test_page_fix_adds_the_itables_loader_only_where_needed():
    from advmed.book import sphinx_ext

    global_name, _, _ = sphinx_ext._itables_names()
    context = {"body": f"<p>x</p><script>await window.{global_name};</script>",
               "pathto": lambda p, _: "../" + p}
    sphinx_ext._serve_itables(None, "book/02", "page.html", context, None)
    assert context["body"].startswith('<link rel="stylesheet" href="../_static/itables/dt_bundle.css">')
    assert f'window.{global_name} = import("../_static/itables/dt_bundle.js")' in context["body"]
    plain = {"body": "<p>no tables</p>", "pathto": lambda p, _: p}
    sphinx_ext._serve_itables(None, "intro", "page.html", plain, None)
    assert plain["body"] == "<p>no tables</p>"


# --------------------------------------------------------------------------- glued numbers
def test_glue_numbers_glues_plain_python_values(shown):
    from typing import NamedTuple

    class H(NamedTuple):
        models: int
        auc_median: float

    pages.glue_numbers("clean", H(np.int64(12), np.float64(0.91)))
    assert shown["glue"] == [("clean-models", 12, False), ("clean-auc-median", 0.91, False)]
    assert all(type(v) in (int, float) for _, v, _ in shown["glue"])  # text/plain must be literal_eval-able
    assert shown["display"] == []


# --------------------------------------------------------------------------- colours and figures
def test_one_colour_per_attack_and_per_model_from_colour_blind_safe_palettes():
    from advmed.attacks import ATTACKS
    from advmed.experiments.profiles import PROFILES

    attack_colours = {a: plots.attack_color(a) for a in ATTACKS}
    assert len(set(attack_colours.values())) == len(attack_colours), "two attacks share a colour"
    assert plots.attack_color("I-FGSM") == plots.attack_color("ifgsm") == plots.attack_color("bim")
    safe = set(plots.OKABE_ITO) | set(plots.TOL_MUTED) | {"#9A9A9A"}
    assert set(plots.ATTACK_COLORS.values()) <= safe
    models = {m.label for p in PROFILES.values() for m in p.models}
    model_colours = {m: plots.model_color(m) for m in models}
    assert len(set(model_colours.values())) == len(models), "two models share a colour"
    assert set(model_colours.values()) <= set(plots.TOL_MUTED) | set(plots.OKABE_ITO)
    # every way of naming a model gives its colour
    assert plots.model_color("resnet18 (scratch)") == plots.model_color(("pneumonia_cxr", "resnet18", "scratch")) \
        == plots.model_color("resnet18", "scratch") == plots.MODEL_COLORS["resnet18:scratch"]


def _history(shift=0.0):
    return pd.DataFrame({"epoch": [1, 2, 3], "val_loss": [0.7, 0.5, 0.55], "val_auc": [0.7 + shift, 0.8, 0.78],
                         "best": [False, True, False]})


def _panels():
    models = ["resnet18:scratch", "mobilenet_v1_075:imagenet", "mobilenet_v1_075:scratch", "small_cnn:scratch"]
    return {(t, m): _history(0.01 * i) for t in ("pneumonia_cxr", "melanoma_derm", "referable_dr", "pneumoniamnist",
                                                  "skin7_derm") for i, m in enumerate(models)}


def _renderer(fig):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)  # our figures have no pyplot canvas
    canvas.draw()
    return canvas.get_renderer()


def _overlaps(fig, texts) -> list[tuple[str, str]]:
    renderer = _renderer(fig)
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in texts if t.get_visible() and t.get_text()]
    return [(a, b) for i, (a, ba) in enumerate(boxes) for b, bb in boxes[i + 1:] if ba.overlaps(bb)]


def test_validation_curves_put_one_legend_outside_every_panel():
    fig = plots.validation_curves(_panels())
    assert all(ax.get_legend() is None for ax in fig.axes), "a legend inside the data"
    (legend,) = fig.legends
    labels = [t.get_text() for t in legend.get_texts()]
    assert labels[:4] == ["resnet18 (scratch)", "mobilenet_v1_075 (imagenet)", "mobilenet_v1_075 (scratch)",
                          "small_cnn (scratch)"] and labels[-1] == "kept epoch"
    renderer = _renderer(fig)
    legend_box = legend.get_window_extent(renderer)
    page = fig.bbox
    assert page.x0 <= legend_box.x0 and legend_box.x1 <= page.x1, "the legend runs off the figure"
    for ax in fig.axes:
        if ax.get_visible():
            assert not legend_box.overlaps(ax.get_window_extent(renderer)), "the legend covers a panel"
    # the same model has the same colour in every panel
    colours = {line.get_label(): line.get_color() for ax in fig.axes for line in ax.get_lines()
               if not line.get_label().startswith("_")}
    assert colours["resnet18 (scratch)"] == plots.model_color("resnet18:scratch")


def test_roc_and_confusion_grids_are_small_multiples():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 60)
    p = np.stack([1 - rng.random(60), rng.random(60)], 1)
    res = {(t, m): (y, p / p.sum(1, keepdims=True)) for t in ("pneumonia_cxr", "melanoma_derm")
           for m in ("resnet18:scratch", "mobilenet_v1_075:imagenet")}
    fig = plots.roc_grid(res)
    assert sum(ax.get_visible() for ax in fig.axes) == 2 and len(fig.legends) == 1
    assert all(ax.get_legend() is None for ax in fig.axes)
    cm = plots.confusion_grid({k: (y, v[1].argmax(1), ["normal", "pneumonia"]) for k, v in res.items()})
    assert len([ax for ax in cm.axes if ax.get_images()]) == 4


def test_uap_rate_panels_labels_do_not_collide():
    from advmed.experiments.universal import plots as uplots

    models = [("resnet18", "scratch"), ("mobilenet_v1_075", "imagenet"), ("mobilenet_v1_075", "scratch"),
              ("resnet50", "imagenet"), ("densenet121", "imagenet"), ("vgg16_bn", "imagenet"),
              ("inception_v3", "imagenet")]
    rows = [{"task": t, "arch": a, "init": i, "norm": n, "zeta": z, "attack": "non-targeted", "rate": 0.5,
             "rate_lo": 0.4, "rate_hi": 0.6, "random": 0.1, "random_lo": 0.05, "random_hi": 0.15}
            for t in ("pneumonia_cxr", "melanoma_derm") for a, i in models for n in ("l2", "linf")
            for z in (0.02, 0.04)]
    fig = uplots.rate_panels(pd.DataFrame(rows), threshold=0.8)
    texts = [fig._supxlabel] if getattr(fig, "_supxlabel", None) else []
    for ax in fig.axes:  # every label of every panel, against every other one
        texts += ax.get_yticklabels() + ax.get_xticklabels() + [ax.xaxis.label, ax.yaxis.label, ax.title]
    texts += [*fig.legends[0].get_texts(), fig.legends[0].get_title()]  # the legend ran over a figure label once
    assert not _overlaps(fig, texts), "colliding labels"
    assert "rate on held-out images" in fig.legends[0].get_title().get_text()  # the x axis is named
    assert all(ax.get_legend() is None for ax in fig.axes) and len(fig.legends) == 1
    assert fig.get_figwidth() <= plots.PAGE_WIDTH + 1e-9


# --------------------------------------------------------------------------- citations
def _bib_keys() -> set[str]:
    from pybtex.database import parse_file

    return set(parse_file(str(REPO / "references.bib")).entries)


def _cited_keys(text: str) -> set[str]:
    keys = set()
    for group in re.findall(r"\{cite(?::[a-z]+)?\}`([^`]+)`", text):
        keys |= {k.strip() for k in group.split(",")}
    return keys


def test_every_citation_has_a_bibliography_entry():
    bib = _bib_keys()
    from advmed.attacks import ATTACKS
    from advmed.experiments.references import STUDIES

    registry = {spec.cite for spec in ATTACKS.values() if spec.cite}
    assert registry <= bib, f"AttackSpec.cite keys missing from references.bib: {sorted(registry - bib)}"
    studies = {s["bibkey"] for s in STUDIES.values()}
    assert studies <= bib, sorted(studies - bib)
    for page in [REPO / "book" / "intro.md", *CHAPTERS]:
        cited = _cited_keys(page.read_text())
        assert cited <= bib, f"{page.name} cites {sorted(cited - bib)}, not in references.bib"
    assert {"goodfellow2015explaining", "yang2023medmnist", "kermany2018identifying", "tschandl2018ham10000",
            "moosavidezfooli2017universal", "shafahi2020universal", "brown2017adversarial", "athalye2018obfuscated",
            "carlini2019evaluating", "tramer2020adaptive", "cohen2019certified", "wong2020fast",
            "reich2024differentiable"} <= bib


def test_citations_are_roles_not_typed_text():
    typed = re.compile(r"\((?:[A-Z][a-z]+(?: et al\.)?(?:,| &| and)[^()]*)?(?:ICLR|CVPR|ICML|NeurIPS|ECCV|AAAI) \d{4}\)"
                       r"|arXiv:\d{4}\.\d{4,5}")
    for page in [REPO / "book" / "intro.md", *CHAPTERS]:
        text = page.read_text()
        assert not typed.findall(text), f"{page.name} types citations: {typed.findall(text)[:3]}"


def test_config_has_the_bibliography_and_a_bibliography_page():
    cfg = yaml.safe_load((REPO / "_config.yml").read_text())
    assert cfg["bibtex_bibfiles"] == ["references.bib"]
    assert "```{bibliography}" in (REPO / "book" / "bibliography.md").read_text()
    from advmed import book

    assert "book/bibliography" in book.toc_files(REPO / "_toc.yml")


# --------------------------------------------------------------------------- the abstract
def _abstract() -> str:
    text = (REPO / "book" / "intro.md").read_text()
    match = re.search(r"^## Abstract\n(.*?)(?=^The three studies|^## )", text, re.M | re.S)
    assert match, "intro.md has no '## Abstract' section"
    return match.group(1)


def test_abstract_numbers_are_glued_from_the_chapters_not_typed():
    abstract = _abstract()
    glued = re.findall(r"\{glue:text\}`([0-9a-z_]+)\.ipynb::([a-z0-9-]+):([^`]+)`", abstract)
    assert len(glued) >= 10
    prose = "\n".join(ln for ln in abstract.splitlines() if not ln.startswith("%"))
    prose = re.sub(r"\{(glue:text|cite:[a-z]+|numref|ref)\}`[^`]*`", "", prose)
    typed = re.findall(r".{0,20}\d.{0,10}", prose)
    assert not typed, f"typed numbers in the abstract: {typed}"
    # each key is glued by its chapter (the prefix of pages.glue_numbers) and names a field there
    for chapter, key, fmt in glued:
        source = (REPO / "book" / f"{chapter}.py").read_text()
        prefixes = re.findall(r'pages\.glue_numbers\("([a-z]+)"', source)
        assert any(key.startswith(p + "-") for p in prefixes), f"{chapter} glues no {key}"
        assert fmt[-1] in "dfgs", f"{key}: a cross-page glue needs a format spec"


# --------------------------------------------------------------------------- publishing
def _config() -> dict:
    return yaml.safe_load((REPO / "_config.yml").read_text())


def test_repository_url_is_written_once_and_citation_cff_matches():
    url = _config()["repository"]["url"]
    assert re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", url)
    cff = yaml.safe_load((REPO / "CITATION.cff").read_text())
    assert cff["repository-code"] == url
    for path in [REPO / "book" / "intro.md", *CHAPTERS, REPO / "README.md"]:
        assert url not in path.read_text(), f"{path.name} repeats the repository URL (use the buttons)"
    assert "url" not in (_config().get("launch_buttons") or {}), "launch buttons take repository.url"


def test_repository_url_override_for_one_build(tmp_path, monkeypatch):
    from advmed import book

    (tmp_path / "_config.yml").write_text(yaml.safe_dump({"repository": {"url": "https://github.com/a/b/"}}))
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: intro\n")
    monkeypatch.delenv(book.REPOSITORY_ENV, raising=False)
    assert book.repository_url(tmp_path) == "https://github.com/a/b"
    monkeypatch.setenv(book.REPOSITORY_ENV, "https://github.com/fork/advmed")
    stage = tmp_path / "stage"
    stage.mkdir()
    book.stage_config(tmp_path, stage, ["intro"], allow_cdn=True)
    assert yaml.safe_load((stage / "_config.yml").read_text())["repository"]["url"] == "https://github.com/fork/advmed"


def test_citation_cff_and_license():
    cff = yaml.safe_load((REPO / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0" and cff["type"] == "software"
    assert cff["title"] and cff["authors"] and cff["message"]
    assert cff["license"] == "MIT"
    pyproject = (REPO / "pyproject.toml").read_text()
    assert f'version = "{cff["version"]}"' in pyproject and 'license = { text = "MIT" }' in pyproject
    licence = (REPO / "LICENSE").read_text()
    assert licence.startswith("MIT License") and "Permission is hereby granted, free of charge" in licence


def _workflow() -> dict:
    return yaml.safe_load((REPO / ".github" / "workflows" / "book.yml").read_text())


def test_publish_workflow_builds_the_cpu_book_and_deploys_it_with_the_official_actions():
    wf = _workflow()
    triggers = wf.get("on", wf.get(True))  # YAML 1.1 reads a bare `on` as True
    assert "push" in triggers and "workflow_dispatch" in triggers
    assert wf["permissions"] == {"contents": "read", "pages": "write", "id-token": "write"}
    build, deploy = wf["jobs"]["build"], wf["jobs"]["deploy"]
    uses = [s.get("uses", "") for s in build["steps"]]
    for action in ("actions/checkout@", "actions/setup-python@", "actions/cache@", "actions/upload-pages-artifact@"):
        assert any(u.startswith(action) for u in uses), action
    runs = "\n".join(s.get("run", "") for s in build["steps"])
    assert re.search(r"make book PROFILE=cpu\b", runs)
    env = {**wf.get("env", {}), **build.get("env", {})}
    cache = next(s for s in build["steps"] if s.get("uses", "").startswith("actions/cache@"))
    assert cache["with"]["path"] == "${{ env.ADVMED_CACHE }}" and env["ADVMED_CACHE"]
    assert "ADVMED_REPOSITORY_URL" in env and "github.repository" in env["ADVMED_REPOSITORY_URL"]
    upload = next(s for s in build["steps"] if s.get("uses", "").startswith("actions/upload-pages-artifact@"))
    assert upload["with"]["path"] == "_build/html"
    assert deploy["needs"] == "build" and deploy["environment"]["name"] == "github-pages"
    assert any(s.get("uses", "").startswith("actions/deploy-pages@") for s in deploy["steps"])


# --------------------------------------------------------------------------- the chapters' cells
#: The widest visible code line (characters) the book's code box shows without a scroll bar
#: (measured on the browser test's screenshots: a 79-character line was cut).
VISIBLE_WIDTH = 78


def _cells(chapter: Path):
    from advmed import book

    return book.to_notebook(chapter).cells


@pytest.mark.parametrize("chapter", CHAPTERS, ids=[c.stem for c in CHAPTERS])
def test_setup_is_removed_code_folded_and_visible_calls_short(chapter):
    for cell in _cells(chapter):
        if cell.cell_type != "code":
            continue
        tags = set(cell.metadata.get("tags", []))
        src = cell.source
        if "parameters" in tags:
            assert not tags & {"remove-cell", "remove-input", "hide-input", "hide-cell"}, "parameters stay visible"
            continue
        if re.search(r"^\s*(import |from \S+ import )|warnings\.|time\.time|pages\.setup\(", src, re.M):
            assert "remove-cell" in tags, f"set-up code shown on the page: {src[:80]!r}"
            continue
        if not tags & {"remove-cell", "remove-input", "hide-input", "hide-cell"}:
            lines = [ln for ln in src.splitlines() if ln.strip() and not ln.strip().startswith("#")]
            assert len(lines) <= 3, f"a visible cell of {len(lines)} lines (fold it with hide-input): {src[:80]!r}"
            wide = [ln for ln in lines if len(ln) > VISIBLE_WIDTH]
            assert not wide, f"a visible line wider than the page's code box (it would scroll): {wide[0]!r}"


@pytest.mark.parametrize("chapter", CHAPTERS, ids=[c.stem for c in CHAPTERS])
def test_every_figure_is_referred_to_by_its_number(chapter):
    text = chapter.read_text()
    names = re.findall(r'pages\.figure\([^"]*?"(fig-[a-z0-9-]+)"', text, re.S)
    assert names or chapter.stem in TEXT_CHAPTERS, f"{chapter.name} shows no numbered figure"
    markdown = "\n".join(c.source for c in _cells(chapter) if c.cell_type == "markdown")
    for name in names:
        assert f"{{numref}}`{name}`" in markdown, f"{chapter.name}: the text never refers to {name}"
    assert len(names) == len(set(names)), "a figure label used twice"
    tables = re.findall(r'pages\.(?:appendix_)?table\([^"]*?"(tab-[a-z0-9-]+)"', text, re.S)
    assert len(tables) == len(set(tables)), "a table label used twice"


# --------------------------------------------------------------------------- the families' page summaries
MODELS = [("resnet18", "scratch"), ("mobilenet_v1_075", "imagenet"), ("mobilenet_v1_075", "scratch")]
TASKS = ["pneumonia_cxr", "melanoma_derm", "referable_dr", "pneumoniamnist"]


def _sweep() -> pd.DataFrame:
    """A white-box sweep of the cpu profile's shape: 4 tasks x 3 models x (clean + 4 attacks x 3 eps)."""
    rows = []
    for t, task in enumerate(TASKS):
        for m, (arch, init) in enumerate(MODELS):
            base = 0.9 - 0.02 * t - 0.01 * m
            rows.append({"task": task, "arch": arch, "init": init, "init_used": init, "attack": "clean",
                         "eps_255": 0.0, "accuracy": base, "psnr_db_median": np.nan, "ssim_median": np.nan})
            for a, attack in enumerate(("fgsm", "ifgsm", "pgd", "mifgsm")):
                for eps in (1.0, 2.0, 4.0):
                    rows.append({"task": task, "arch": arch, "init": init, "init_used": init, "attack": attack,
                                 "eps_255": eps, "accuracy": base / (1 + eps * (a + 1)),
                                 "psnr_db_median": 50 - 5 * eps, "ssim_median": 1 - 0.01 * eps})
    return pd.DataFrame(rows)


def test_whitebox_page_summaries_are_models_by_tasks():
    from advmed.experiments.whitebox import report, tables

    res = _sweep()
    pgd = tables.attack_summary(res, 2.0)
    assert len(pgd) == len(MODELS) and list(pgd.columns) == ["model"] + [plots.task_label(t) for t in TASKS]
    clean = res[(res.task == "melanoma_derm") & (res.arch == "resnet18") & (res.attack == "clean")].accuracy.item()
    attacked = clean / (1 + 2.0 * 3)
    assert pgd.loc[0, "Melanoma (derm.)"] == f"{clean:.2f} → {attacked:.2f}"
    vis = tables.visibility_summary(res, 2.0)
    assert vis["attack"].tolist() == ["FGSM", "I-FGSM", "PGD", "MI-FGSM"] and vis.iloc[0, 1] == "40.0 dB / 0.98"
    h = report.headline(res, 2.0)
    at = res[(res.attack == "pgd") & (res.eps_255 == 2.0)]
    assert h.models == 12 and h.pgd_accuracy == pytest.approx(at.accuracy.median())
    assert h.models_below_half == int((at.accuracy < 0.5).sum())
    assert f"{h.pgd_accuracy:.2f}" in report.summary_sentence(res, 2.0)
    assert len(tables.conventions_table()) == 2


def test_clean_summary_is_models_by_tasks_with_intervals():
    from advmed.experiments import zoo

    numeric = pd.DataFrame([{"task": t, "arch": a, "init": i, "init_used": i, "size": 64, "n_test": 100,
                             "val_auc": 0.9, "auc": 0.9, "auc_lo": 0.85, "auc_hi": 0.95}
                            for t in TASKS for a, i in MODELS])
    table = zoo.clean_summary(numeric)
    assert table.shape == (len(MODELS), 1 + len(TASKS)) and table.iloc[0, 1] == "0.90 [0.85, 0.95]"
    h = zoo.clean_headline(numeric)
    assert (h.models, h.tasks, h.auc_median) == (12, 4, 0.9)


def test_uap_page_summaries_stay_short():
    from advmed.experiments.universal import tables

    rows = [{"task": t, "arch": a, "init": i, "init_used": i, "norm": n, "zeta": z, "attack": "non-targeted",
             "rate": 0.5, "random": 0.1} for t in TASKS for a, i in MODELS for n in ("l2", "linf")
            for z in (0.02, 0.04)]
    fooling = tables.fooling_summary(pd.DataFrame(rows))
    assert len(fooling) == len(MODELS) * 2 and fooling.iloc[0, 2] == "0.50 (0.10)"
    natural = pd.DataFrame([{"task": t, "arch": "mobilenet_v1_075", "init": i, "norm": n, "zeta": z,
                             "_natural": 0.3 if i == "imagenet" else 0.2, "_medical": 0.6, "_random": 0.1,
                             "natural_above_random": "yes"}
                            for t in TASKS for i in ("imagenet", "scratch") for n in ("l2", "linf")
                            for z in (0.02, 0.04)])
    summary = tables.natural_summary(natural)
    assert len(summary) == len(TASKS) * 2 <= pages.MAX_TABLE_ROWS
    assert summary.loc[0, "imagenet: photos"] == 0.3 and summary.loc[0, "random (highest)"] == 0.1
    assert list(summary["norm"][:2]) == ["l2", "linf"]  # both norms, each row named
    assert "norm" not in tables.natural_summary(natural, norm="l2").columns  # the one asked for
    h = tables.natural_headline(natural)
    assert (h.rows, h.above_random, h.settings, h.imagenet_more) == (32, 32, 16, 16)
    from advmed.experiments.profiles import PROFILES

    for prof in PROFILES.values():
        assert len(tables.settings_brief(prof)) <= pages.MAX_TABLE_ROWS


def test_a_missing_bibliography_file_is_named(tmp_path):
    from advmed import book

    (tmp_path / "_config.yml").write_text("bibtex_bibfiles: [refs.bib]\n")
    with pytest.raises(FileNotFoundError, match="refs.bib"):
        book.stage_bibliography(tmp_path, tmp_path / "stage")
    (tmp_path / "refs.bib").write_text("@misc{a2020b, title={T}, year={2020}}\n")
    (tmp_path / "stage").mkdir()
    assert book.stage_bibliography(tmp_path, tmp_path / "stage") == ["refs.bib"]
    assert (tmp_path / "stage" / "refs.bib").is_file()


def test_legend_columns_wrap_long_labels():
    short = ["FGSM", "PGD", "MI-FGSM", "I-FGSM"]
    assert plots.legend_columns(short, plots.PAGE_WIDTH) == 4
    long = ["mobilenet_v1_075 (imagenet)"] * 6
    n = plots.legend_columns(long, plots.PAGE_WIDTH)
    assert 1 <= n < 4 and n * (len(long[0]) * 0.068 + 0.55) <= plots.PAGE_WIDTH
