"""How every page of the book shows its results to a reader: numbered, captioned figures,
tables formatted for reading, interactive appendix tables, a CSV of every results table.

A chapter's hidden set-up cell calls :func:`setup`; its other cells call::

    pages.figure(fig, "fig-wb-accuracy", "Accuracy against the budget ...")   # Fig. 2.1
    pages.table(frame, "tab-wb-pgd", "Accuracy before -> after PGD ...", data=numeric)
    pages.appendix_table(frame, "tab-wb-sweep", "Every attack at every budget ...", data=numeric)
    pages.glue_numbers("wb", headline)          # numbers the intro's abstract pastes

and its markdown refers to them with ``{numref}`fig-wb-accuracy``` (figures and in-text tables
are numbered by the book: "Fig. 2.1", "Table 2.3").

How it works. Each helper displays one output with two renderings: ``text/html`` (a plain
figure or table with its caption, what Jupyter and Binder show) and ``text/markdown`` (a MyST
directive: ``{glue:figure}`` for a figure glued with ``myst_nb.glue``, ``{list-table}`` for a
table). The book's ``_config.yml`` ranks ``text/markdown`` above ``text/html`` for the HTML
builder and renders markdown outputs as MyST, so the book gets numbered, labelled figures and
tables while the notebook a reader downloads stays a plain notebook. Appendix tables are
itables DataTables (search, sort, paging) that work offline: in a notebook the set-up cell's
:func:`setup` embeds the itables bundle (``init_notebook_mode(connected=False)``); in the book
the page fix of :mod:`advmed.book.sphinx_ext` serves the same bundle from ``_static``. Every
results table carries a CSV download (a ``data:`` link: no file to copy, works offline).

This is the presentation layer: it imports :mod:`advmed.plots` and the core, never the
experiments or the pipeline.
"""
from __future__ import annotations

import base64
import datetime
import html as _html
import io
import math
import re
import time
import warnings
from typing import Any

import numpy as np
import pandas as pd

from .cache import source_commit
from .metrics import fmt_interval

#: An in-text table longer than this belongs in the chapter's appendix (:func:`appendix_table`).
MAX_TABLE_ROWS = 12
#: Rows per page of an interactive appendix table.
APPENDIX_PAGE_LENGTH = 10

_NAME = re.compile(r"^(fig|tab)-[a-z0-9]+(-[a-z0-9]+)*$")
_ROLE = re.compile(r"\{[a-z]+(?::[a-z]+)?\}`([^`]*)`")

#: Column names in words: snake-case names the families' tables use, as a reader reads them.
WORDS = {
    "task": "task", "arch": "architecture", "init": "initialisation asked", "init_used": "initialisation",
    "size": "pixels", "n": "images", "n_test": "test images", "n_train": "training images",
    "n_val": "validation images", "n_build": "build images", "n_eval": "evaluation images",
    "n_natural": "photos", "val_auc": "validation AUC", "auc": "AUC", "accuracy": "accuracy",
    "balanced_accuracy": "balanced accuracy", "sensitivity": "sensitivity", "specificity": "specificity",
    "epochs_run": "epochs", "best_epoch": "kept epoch", "train_seconds": "training time (s)",
    "from_cache": "from cache", "checkpoint": "checkpoint", "attack": "attack", "eps": "eps (pixels)",
    "eps_255": "eps (/255)", "steps": "iterations", "flip_rate": "flip rate", "norm": "norm", "zeta": "zeta",
    "method": "method", "passes": "passes", "uap_channels": "UAP channels", "rate": "rate", "rate_all": "rate (all)",
    "random": "random control", "target": "target", "models": "models",
    "lowest": "lowest", "highest": "highest", "spread": "spread",
    "random_highest": "highest random control", "little_arch_dependence": "little dependence on architecture",
    "natural_uap": "UAP from photos", "medical_uap": "UAP from medical images",
    "eps_if_natural_ref": "eps if zeta referred to the photos", "natural_minus_random": "photos − random",
    "natural_above_random": "photos above random", "difference": "difference", "source": "source",
    "value": "value", "setting": "setting", "entry": "setting", "study": "study",
}


def words(name: Any) -> str:
    """A column name as a reader reads it: :data:`WORDS`, else underscores as spaces."""
    text = str(name)
    return WORDS.get(text, text.replace("_", " "))


# --------------------------------------------------------------------------- set-up
class Page:
    """What a chapter's hidden set-up cell starts: quiet warnings, offline interactive tables and
    the chapter's clock (see :func:`setup`)."""

    def __init__(self, *, tables: bool = True):
        self.started = time.time()
        # library warnings would land on stderr, which the book shows as red boxes
        warnings.filterwarnings("ignore")
        if tables:
            init_tables()

    def footer(self, profile_name: str):
        """The page's last line: how long it took with which profile (Markdown)."""
        from IPython.display import Markdown

        return Markdown(f"*Executed in {time.time() - self.started:.0f} s with profile `{profile_name}`.*")


def banner(profile: str, images: int | None, *, what: str = "test images per task",
           commit: str | None = None, when: datetime.datetime | None = None):
    """The line at the top of a chapter that says what produced its numbers: the profile,
    how many test images per task (``images``, a chapter's own count; None: the whole test
    split), the code's commit (short; ``"unknown"`` outside git) and the date and time of the
    execution in UTC. Display it in a ``remove-input`` cell right after the set-up::

        pages.banner(prof.name, prof.whitebox.n_images)

    ``commit`` and ``when`` default to :func:`advmed.cache.source_commit` and now.
    """
    from IPython.display import Markdown

    full = source_commit() if commit is None else str(commit)
    short = full[:8] + full[40:] if re.fullmatch(r"[0-9a-f]{40}(-dirty)?", full) else full
    when = when or datetime.datetime.now(datetime.timezone.utc)
    stamp = when.astimezone(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    count = "all" if images is None else f"{int(images):,}"
    return Markdown(f"> **Numbers on this page:** profile `{profile}` · {count} {what} · commit `{short}` · "
                    f"executed {stamp}")


def setup(*, tables: bool = True) -> Page:
    """Start a chapter: call it in the first cell after the parameters, tagged ``remove-cell``."""
    return Page(tables=tables)


def init_tables() -> None:
    """itables in its offline mode: the DataTables bundle is embedded in this cell's output, so the
    executed notebook's appendix tables work without a network (the book serves the bundle from
    ``_static`` instead, see :mod:`advmed.book.sphinx_ext`)."""
    import itables

    itables.init_notebook_mode(all_interactive=False, connected=False)


# --------------------------------------------------------------------------- figures
def _check(name: str, kind: str, caption: str) -> None:
    if not _NAME.match(name) or not name.startswith(kind + "-"):
        raise ValueError(f"{name!r} is not a {kind} label: use {kind}-<chapter>-<what>, lower case, "
                         f"digits and dashes (e.g. {kind}-wb-accuracy)")
    if not str(caption).strip():
        raise ValueError(f"{name}: a caption is required (say what the reader sees and what the numbers are)")


def plain_caption(caption: str) -> str:
    """A MyST caption without its roles (``{cite:p}`key``` -> ``key``), for Jupyter's HTML."""
    return _ROLE.sub(lambda m: m.group(1), caption)


def _png(fig: Any) -> bytes:
    if hasattr(fig, "_repr_png_"):
        return fig._repr_png_()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


class FigureOutput:
    """A numbered figure: ``{glue:figure}`` in the book, an ``<img>`` with its caption in Jupyter."""

    def __init__(self, png: bytes, name: str, caption: str, alt: str):
        self.png, self.name, self.caption, self.alt = png, name, caption, alt

    def markdown(self) -> str:
        return (f"```{{glue:figure}} {self.name}\n:name: {self.name}\n:alt: {self.alt}\n:figclass: advmed-figure\n\n"
                f"{self.caption}\n```\n")

    def html(self) -> str:
        data = base64.b64encode(self.png).decode("ascii")
        return (f'<figure class="advmed-figure" id="{self.name}"><img src="data:image/png;base64,{data}" '
                f'alt="{_html.escape(self.alt)}" style="max-width:100%">'
                f"<figcaption>{_html.escape(plain_caption(self.caption))}</figcaption></figure>")

    def _repr_mimebundle_(self, include=None, exclude=None):
        return {"text/markdown": self.markdown(), "text/html": self.html(),
                "text/plain": f"[{self.name}] {plain_caption(self.caption)}"}


def figure(fig: Any, name: str, caption: str, *, alt: str | None = None) -> None:
    """Show ``fig`` as a numbered figure labelled ``name`` (``fig-...``) with ``caption``.

    The PNG is glued under ``name`` (``myst_nb.glue``, not displayed on its own) and the output
    holds a ``{glue:figure}`` directive with ``:name: name``, so the chapter's markdown can write
    ``{numref}`name``` and the book prints "Fig. 2.1". ``caption`` is MyST (roles allowed): say
    what is drawn and what the numbers are; ``alt`` (default: the caption without roles) is the
    text for screen readers.
    """
    from IPython.display import Image, display
    from myst_nb import glue

    _check(name, "fig", caption)
    png = _png(fig)
    glue(name, Image(data=png, format="png"), display=False)
    display(FigureOutput(png, name, caption, alt or plain_caption(caption)))


# --------------------------------------------------------------------------- numbers
def _cell(value: Any, digits: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if v != 0 and abs(v) < 10 ** -digits:
            return f"{v:.{digits}g}" if abs(v) >= 1e-4 else f"{v:.1e}"
        return f"{v:.{digits}f}"
    if hasattr(value, "value") and hasattr(value, "lo") and hasattr(value, "hi"):  # an Estimate
        return interval(value.value, value.lo, value.hi, digits)
    return str(value)


def interval(value: float, lo: float, hi: float, digits: int = 2) -> str:
    """``"0.81 [0.78, 0.84]"``: a value and its 95 % interval, the book's one way to write them."""
    return fmt_interval(value, lo, hi, digits)


def reader_frame(frame: pd.DataFrame, *, digits: int = 2) -> pd.DataFrame:
    """``frame`` as a reader reads it: a meaningful index becomes a column, the row numbers go,
    a ``task`` column shows labels (:func:`advmed.plots.task_label`; the CSV keeps the ids),
    column names in words (:func:`words`), every cell a string (floats to ``digits`` decimals,
    missing values as a dash, booleans as yes / no)."""
    df = frame.copy()
    # a named index, or one of labels (model names, settings), is a column; bare numbers are not
    meaningful = any(n is not None for n in df.index.names) or not pd.api.types.is_integer_dtype(df.index)
    df = df.reset_index() if meaningful else df.reset_index(drop=True)
    if isinstance(df.columns, pd.MultiIndex):
        df.columns = [": ".join(str(p) for p in c if str(p)) for c in df.columns]
    if "task" in df.columns:  # a reader knows "Pneumonia (CXR)", not the registry's id
        from .plots import task_label

        df["task"] = [task_label(v) if isinstance(v, str) else v for v in df["task"]]
    df.columns = [words(c) for c in df.columns]
    out = pd.DataFrame({c: [_cell(v, digits) for v in df[c]] for c in df.columns})
    return out.reset_index(drop=True)


# --------------------------------------------------------------------------- CSV
def csv_link(data: pd.DataFrame, filename: str, text: str = "Download this table as CSV") -> str:
    """An HTML link that downloads ``data`` as ``filename`` (a ``data:`` URI: offline, no file)."""
    if not filename.endswith(".csv"):
        filename += ".csv"
    named = any(n is not None for n in data.index.names) or not pd.api.types.is_integer_dtype(data.index)
    frame = data.reset_index() if named else data
    payload = base64.b64encode(frame.to_csv(index=False).encode("utf-8")).decode("ascii")
    return (f'<a class="advmed-csv" download="{_html.escape(filename)}" '
            f'href="data:text/csv;charset=utf-8;base64,{payload}">{_html.escape(text)}</a>')


# --------------------------------------------------------------------------- tables
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>|$~#!])")


def _md_escape(text: str) -> str:
    text = _MD_SPECIAL.sub(r"\\\1", text.replace("\n", " "))
    if re.match(r"^([-+=]|\d+[.)](\s|$))", text):  # would start a list or a heading underline
        text = "\\" + text
    return text or "&nbsp;"


def _cell_markdown(text: str) -> str:
    """A cell's text, escaped, with a break opportunity (a zero-width space) after each
    underscore: a name such as ``mobilenet_v1_075 (imagenet), 128 px`` has no space to wrap at
    and would push a narrow-column table past the text column (the cpu book's Table 1.4)."""
    return _md_escape(text).replace("\\_", "\\_\u200b")


class TableOutput:
    """A numbered table: a MyST ``{list-table}`` in the book, an HTML table in Jupyter; both with
    the caption and a CSV download."""

    def __init__(self, shown: pd.DataFrame, name: str, caption: str, csv: str, long: bool = False):
        self.shown, self.name, self.caption, self.csv, self.long = shown, name, caption, csv, long

    def markdown(self) -> str:
        classes = "advmed-table advmed-table-long" if self.long else "advmed-table"
        # a tilde fence: the caption may hold backticks (code, roles), which a backtick fence's
        # info string may not (CommonMark)
        lines = [f"~~~{{list-table}} {self.caption}", f":name: {self.name}", ":header-rows: 1",
                 f":class: {classes}", ""]
        for row in [list(self.shown.columns)] + self.shown.values.tolist():
            lines.append(f"* - {_cell_markdown(str(row[0]))}")
            lines += [f"  - {_cell_markdown(str(v))}" for v in row[1:]]
        return "\n".join(lines) + f"\n~~~\n\n<p class=\"advmed-csv-line\">{self.csv}</p>\n"

    def html(self) -> str:
        table = self.shown.to_html(index=False, border=0, classes="advmed-table", escape=True)
        caption = f"<caption>{_html.escape(plain_caption(self.caption))}</caption>"
        table = table.replace(">", ">" + caption, 1)
        return f'<div class="advmed-table-wrap" style="overflow-x:auto">{table}<p>{self.csv}</p></div>'

    def _repr_mimebundle_(self, include=None, exclude=None):
        return {"text/markdown": self.markdown(), "text/html": self.html(), "text/plain": self.shown.to_string()}


def table(frame: pd.DataFrame, name: str, caption: str, *, data: pd.DataFrame | None = None, digits: int = 2,
          max_rows: int = MAX_TABLE_ROWS) -> None:
    """Show ``frame`` as a numbered in-text table labelled ``name`` (``tab-...``) with ``caption``.

    The frame should already have the shape a reader needs (a family's summary table: a dozen
    rows at most, a few columns); it is formatted by :func:`reader_frame` (no index, words,
    ``digits`` decimals). ``data`` (default ``frame``) is what the CSV link downloads: the
    numbers behind the table, unrounded. A frame longer than ``max_rows`` (a large profile can
    make a summary grow) is still shown, in a box of its own height with a scroll bar; the book's
    browser test holds the smoke book's tables to ``max_rows``.
    """
    from IPython.display import display

    _check(name, "tab", caption)
    if frame.empty:  # keep the label (the text refers to it) and say why there is nothing
        frame = pd.DataFrame({"note": ["no rows with this profile's tasks and models"]})
    shown = reader_frame(frame, digits=digits)
    display(TableOutput(shown, name, caption, csv_link(frame if data is None else data, name),
                        long=len(frame) > max_rows))


class AppendixTableOutput:
    """An interactive (itables) table with its caption and CSV link, the same in Jupyter and the book."""

    def __init__(self, shown: pd.DataFrame, name: str, caption: str, csv: str, page_length: int):
        self.shown, self.name, self.caption, self.csv, self.page_length = shown, name, caption, csv, page_length

    def html(self) -> str:
        from itables.javascript import to_html_datatable

        dt = to_html_datatable(
            self.shown, connected=False, maxBytes=0, maxColumns=0, showIndex=False, scrollX=True,
            pageLength=self.page_length, lengthMenu=[10, 25, 50, 100], classes="display compact",
            display_logo_when_loading=False, order=[])
        return (f'<div class="advmed-appendix-table" id="{self.name}">'
                f'<p class="advmed-caption"><strong>{_html.escape(plain_caption(self.caption))}</strong></p>'
                f'{dt}<p class="advmed-csv-line">{self.csv}</p></div>')

    def _repr_mimebundle_(self, include=None, exclude=None):
        return {"text/html": self.html(), "text/plain": self.shown.to_string(max_rows=20)}


def appendix_table(frame: pd.DataFrame, name: str, caption: str, *, data: pd.DataFrame | None = None,
                   digits: int = 3, page_length: int = APPENDIX_PAGE_LENGTH) -> None:
    """Show a long results table in the chapter's appendix: interactive (search, sort, paging;
    offline), with ``caption`` above it and a CSV download of ``data`` (default ``frame``)."""
    from IPython.display import display

    _check(name, "tab", caption)
    shown = reader_frame(frame, digits=digits)
    display(AppendixTableOutput(shown, name, caption, csv_link(frame if data is None else data, name),
                                page_length))


# --------------------------------------------------------------------------- glued numbers
def _plain(value: Any) -> Any:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    return str(value)


def glued_keys(prefix: str, values: Any) -> dict[str, Any]:
    """The glue keys and values :func:`glue_numbers` writes for ``values``."""
    if hasattr(values, "_asdict"):
        items = values._asdict()
    elif hasattr(values, "__dataclass_fields__"):
        items = {k: getattr(values, k) for k in values.__dataclass_fields__}
    else:
        items = dict(values)
    return {f"{prefix}-{field}".replace("_", "-"): _plain(value) for field, value in items.items()}


def glue_numbers(prefix: str, values: Any) -> None:
    """Glue every field of ``values`` (a NamedTuple, dataclass or mapping) as ``prefix-field``
    (underscores as dashes), not displayed, so that another page pastes them with
    ``{glue:text}`NN_chapter.ipynb::prefix-field:.2f``` (the format spec is required when the
    key comes from another page: myst-nb reads the text after the last colon as the format)."""
    from myst_nb import glue

    for key, value in glued_keys(prefix, values).items():
        glue(key, value, display=False)


def glue_text(key: str, text: str) -> None:
    """Glue a sentence as ``key``, not displayed: another page pastes it with
    ``{glue:text}`NN_chapter.ipynb::key:s``` (the book's abstract pastes the claims chapter's)."""
    from myst_nb import glue

    glue(key, str(text), display=False)


__all__ = ["APPENDIX_PAGE_LENGTH", "MAX_TABLE_ROWS", "WORDS", "AppendixTableOutput", "FigureOutput", "Page",
           "TableOutput", "appendix_table", "banner", "csv_link", "figure", "glue_numbers", "glue_text", "glued_keys", "init_tables", "interval",
           "plain_caption", "reader_frame", "setup", "table", "words"]
