"""One mechanism for every explorer of the book: named controls, one frame per setting.

An explorer is a list of :class:`Control` (a name, a label, a widget kind and the options
it offers) and two functions: ``compute(key)`` (what a setting shows: attack, UAP, patch...;
the expensive part) and ``render(obj) -> PNG bytes`` (draw it). A *key* is the tuple of
the controls' values, in control order. The same pair serves both worlds:

* **live** (:class:`LiveExplorer`, a notebook with a kernel): every change of a control
  calls ``compute`` and ``render`` for the new key (computed objects are cached, so going
  back is instant). A control may offer more values live (``live_options``) than the
  static page holds: those settings are computed on demand.
* **static** (:class:`StaticExplorer`, the rendered HTML book, no kernel): every key of the
  grid (the product of the controls' ``options``) is computed and rendered beforehand;
  each PNG sits in an ``ipywidgets.Image``, nested ``ipywidgets.Stack``\\ s (one level per
  control) show one of them, and each Stack's ``selected_index`` is ``jslink``-ed to its
  control's ``index``, so switching happens entirely in the browser. The widget state (PNGs
  included) is saved into the executed notebook by papermill and rendered by myst-nb.
  Identical frames (the same PNG bytes, the same note) are one widget, and a subtree whose
  frames are all the same collapses into that one widget. The payload (unique PNG bytes) is
  stated under the explorer against a budget (:data:`DEFAULT_BUDGET_MB`); over budget it
  warns and says so in the note.

A setting without a frame (no model for that pair, a UAP the profile did not build) raises
:class:`Unavailable` from ``compute``: its message is shown instead of a frame (a note in
the static page, the status line live). A control with a single option is not a control: it
is shown as fixed text above the frame, so that no control on the page is dead.

Which world: :func:`resolve_mode` (``ADVMED_WIDGETS=static|live`` wins; otherwise live
inside a Jupyter kernel and static elsewhere; the book build sets ``static``).
"""
from __future__ import annotations

import hashlib
import html
import io
import itertools
import os
import warnings
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

__all__ = ["ADV_COLOR", "Control", "DEFAULT_BUDGET_MB", "FIRST", "LiveExplorer", "MODES", "Precomputed", "StaticExplorer",
           "Unavailable", "as_numpy", "dead_controls", "explorer", "figure_png", "grid", "image_panel", "in_kernel",
           "precompute", "resolve_mode", "short", "shown", "typed_explorer"]

#: the default payload budget of one page's precomputed frames (MB of PNG)
DEFAULT_BUDGET_MB = 2.0
MODES = ("static", "live")
#: bumped when the stored form of precomputed frames changes
FRAMES_VERSION = 1

KINDS = ("dropdown", "toggle", "slider")


class _First:
    def __repr__(self) -> str:
        return "FIRST"


#: ``Control.default`` when the first option is the default
FIRST = _First()


class Unavailable(Exception):
    """Raised by an explorer's ``compute`` for a setting that has no frame; the message is
    shown in its place (say what is missing and how to get it)."""


# --------------------------------------------------------------------------- controls
@dataclass(frozen=True)
class Control:
    """One control of an explorer.

    Attributes:
        name: the key's field (``"task"``, ``"eps"``).
        label: what the reader sees beside the control.
        options: ``(label, value)`` pairs of the precomputed grid (the static page).
        kind: ``"dropdown"``, ``"toggle"`` (buttons) or ``"slider"`` (a selection slider).
        default: the value shown first (:data:`FIRST`: the first option).
        live_options: the values a live explorer offers (a superset of ``options``; None:
            the same); settings outside ``options`` are computed on demand.
        width: CSS width of the widget (None: the kind's default).
        when: ``(control name, values)``: the control is shown only while that (earlier)
            control has one of these values (a JPEG quality slider only for the JPEG
            defense); elsewhere its value must not change the frame, and a static explorer
            checks that it does not.
    """

    name: str
    label: str
    options: tuple[tuple[str, Hashable], ...]
    kind: str = "dropdown"
    default: Any = FIRST
    live_options: tuple[tuple[str, Hashable], ...] | None = None
    width: str | None = None
    when: tuple[str, tuple] | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"control {self.name!r}: unknown kind {self.kind!r}; valid: {', '.join(KINDS)}")
        object.__setattr__(self, "options", tuple((str(k), v) for k, v in self.options))
        if self.live_options is not None:
            object.__setattr__(self, "live_options", tuple((str(k), v) for k, v in self.live_options))
        if not self.options:
            raise ValueError(f"control {self.name!r} has no options")
        for opts in (self.options, self.live_options or ()):
            values = [v for _, v in opts]
            if any(v is None for v in values):  # ipywidgets reads value None as "nothing selected"
                raise ValueError(f"control {self.name!r}: None is not a valid option value (a selection "
                                 "widget reads it as no selection); use a string such as 'none'")
            if len(set(map(_hashable, values))) != len(values):
                raise ValueError(f"control {self.name!r} repeats a value: {values}")
        missing = [v for v in self.values() if v not in self.values(live=True)]
        if missing:
            raise ValueError(f"control {self.name!r}: live_options lack the precomputed values {missing}")
        if self.default is not FIRST and self.default not in self.values(live=True):
            raise ValueError(f"control {self.name!r}: default {self.default!r} is not one of its options "
                             f"{self.values(live=True)}")
        if self.when is not None:
            parent, allowed = self.when
            object.__setattr__(self, "when", (str(parent), tuple(allowed)))

    def applies(self, key: Mapping[str, Any]) -> bool:
        """Whether the control is shown (matters) at the setting ``key`` (name -> value)."""
        return self.when is None or key.get(self.when[0]) in self.when[1]

    @classmethod
    def of(cls, name: str, label: str, values: Sequence[Hashable], fmt: Callable[[Any], str] = str, *,
           live_values: Sequence[Hashable] | None = None, **kwargs: Any) -> "Control":
        """A control whose option labels are ``fmt(value)``."""
        live = None if live_values is None else tuple((fmt(v), v) for v in live_values)
        return cls(name, label, tuple((fmt(v), v) for v in values), live_options=live, **kwargs)

    def choices(self, live: bool = False) -> tuple[tuple[str, Hashable], ...]:
        """The ``(label, value)`` pairs offered in that world."""
        return self.live_options if live and self.live_options is not None else self.options

    def values(self, live: bool = False) -> list:
        return [v for _, v in self.choices(live)]

    def label_of(self, value: Any, live: bool = True) -> str:
        return next((k for k, v in self.choices(live) if v == value), str(value))

    def default_value(self, live: bool = False) -> Any:
        values = self.values(live)
        return self.default if self.default is not FIRST and self.default in values else values[0]

    def visible(self, live: bool = False) -> bool:
        """A control with one option is fixed text, not a widget (it could never be moved)."""
        return len(self.choices(live)) > 1

    def widget(self, live: bool = False):
        """The ipywidgets control (its ``index`` is what a static page links)."""
        import ipywidgets as W

        style = {"description_width": "initial"}
        opts, value = list(self.choices(live)), self.default_value(live)
        if self.kind == "dropdown":
            return W.Dropdown(options=opts, value=value, description=self.label, style=style,
                              layout=W.Layout(width=self.width or "auto"))
        if self.kind == "toggle":
            w = W.ToggleButtons(options=opts, value=value, description=self.label, style=style,
                                layout=W.Layout(width=self.width or "auto"))
            w.style.button_width = "auto"
            return w
        return W.SelectionSlider(options=opts, value=value, description=self.label, continuous_update=False,
                                 style=style, layout=W.Layout(width=self.width or "420px"))


def _hashable(v: Any) -> Hashable:
    return repr(v) if isinstance(v, float) else v


def _check_controls(controls: Sequence[Control]) -> list[Control]:
    controls = list(controls)
    if not controls:
        raise ValueError("an explorer needs at least one control")
    for c in controls:
        if not isinstance(c, Control):
            raise TypeError(f"controls must be advmed.widgets.Control, got {type(c).__name__}")
    names = [c.name for c in controls]
    if len(set(names)) != len(names):
        raise ValueError(f"control names repeat: {names}")
    for i, c in enumerate(controls):
        if c.when is not None and c.when[0] not in names[:i]:
            raise ValueError(f"control {c.name!r} depends on {c.when[0]!r}, which must be an earlier control; "
                             f"controls: {names}")
    return controls


def grid(controls: Sequence[Control], live: bool = False) -> Iterator[tuple]:
    """Every key (a tuple of values in control order) of the static grid (or the live one)."""
    yield from itertools.product(*(c.values(live) for c in controls))


def default_key(controls: Sequence[Control], live: bool = False) -> tuple:
    return tuple(c.default_value(live) for c in controls)


def describe(controls: Sequence[Control], key: Sequence[Any]) -> str:
    """``task pneumonia_cxr, eps 4/255``: a key in the controls' own words."""
    return ", ".join(f"{c.label} {c.label_of(v)}" for c, v in zip(controls, key))


# --------------------------------------------------------------------------- rendering
def figure_png(fig: Any, *, dpi: int = 90, quantize: bool = True) -> bytes:
    """A matplotlib figure as PNG bytes; ``quantize`` stores a 256-colour palette (about 3x
    smaller; fast-octree palette, no dithering), which is what keeps a page's frames small."""
    from PIL import Image as PILImage

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    if not quantize:
        return buf.getvalue()
    im = PILImage.open(io.BytesIO(buf.getvalue())).convert("RGB")
    out = io.BytesIO()
    im.quantize(colors=256, method=PILImage.Quantize.FASTOCTREE, dither=PILImage.Dither.NONE) \
        .save(out, format="PNG", optimize=True)
    return out.getvalue()


#: the colour of an attacked (changed) prediction in every explorer's frames
ADV_COLOR = "#c44e52"


def as_numpy(t: Any) -> Any:
    """A tensor (or array-like) as a float32 numpy array, for drawing."""
    import numpy as np

    if hasattr(t, "detach"):
        return t.detach().cpu().float().numpy()
    return np.asarray(t, dtype=np.float32)


def short(s: str, n: int = 14) -> str:
    """``s`` cut to ``n`` characters with an ellipsis (class names in narrow panel titles)."""
    return s if len(s) <= n else s[: n - 1] + "…"


def harm_label(task: str, classes: Sequence[str], true: int, clean: int, adv: int) -> str:
    """Which way an attack's error goes for one image (Finlayson et al. 2019: "Either sent for
    unnecessary treatment, or miss required treatment"): "missed diagnosis" (a correctly
    classified diseased image now predicted outside the task's disease classes), "false alarm"
    (the reverse), else "" (no flip, a wrong clean prediction, a move between disease classes,
    or a task that names no disease)."""
    from ..data import TASKS

    t = TASKS.get(task)
    if t is None or not t.disease or clean != true or adv == clean:
        return ""
    try:
        sick = set(t.disease_ids(tuple(classes)))
    except ValueError:
        return ""
    if true in sick and adv not in sick:
        return "missed diagnosis"
    if true not in sick and adv in sick:
        return "false alarm"
    return ""


def image_panel(ax: Any, img: Any) -> None:
    """Draw a (C, H, W) image in [0, 1] (gray when its channels are equal) without ticks."""
    from ..plots import display_image

    arr, cmap = display_image(img)
    ax.imshow(arr, cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


# --------------------------------------------------------------------------- mode
def in_kernel() -> bool:
    """True inside a Jupyter (ipykernel) kernel."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover
        return False
    ip = get_ipython()
    return ip is not None and "IPKernelApp" in getattr(ip, "config", {})


def resolve_mode(mode: str | None = None) -> str:
    """``"static"`` or ``"live"``: ``mode`` itself, else ``$ADVMED_WIDGETS``, else live inside
    a Jupyter kernel (a reader's notebook) and static elsewhere. The book build sets
    ``ADVMED_WIDGETS=static`` for the chapters it executes, so its pages hold frames."""
    mode = mode if mode not in (None, "", "auto") else os.environ.get("ADVMED_WIDGETS") or None
    if mode is None:
        return "live" if in_kernel() else "static"
    if mode not in MODES:
        raise ValueError(f"unknown explorer mode {mode!r}; valid: auto, {', '.join(MODES)} "
                         "(or set ADVMED_WIDGETS)")
    return mode


# --------------------------------------------------------------------------- layout
def _note_html(text: str, cls: str = "advmed-explorer-note"):
    import ipywidgets as W

    w = W.HTML(f"<small>{text}</small>")
    w.add_class(cls)
    return w


def _fixed_html(controls: Sequence[Control], live: bool):
    fixed = [c for c in controls if not c.visible(live)]
    if not fixed:
        return None
    text = " · ".join(f"{html.escape(c.label)}: <b>{html.escape(c.choices(live)[0][0])}</b>" for c in fixed)
    return _note_html(text, "advmed-explorer-fixed")


def _rows(widgets: Mapping[str, Any], rows: Sequence[Sequence[str]] | None) -> list:
    """Controls laid out in ``rows`` (names; a name not visible is skipped; controls in no
    row get a last, wrapping row)."""
    import ipywidgets as W

    rows = [list(r) for r in rows or []]
    placed = {n for r in rows for n in r}
    rest = [n for n in widgets if n not in placed]
    if rest:
        rows.append(rest)
    out = []
    for r in rows:
        items = [widgets[n] for n in r if n in widgets]
        if items:
            out.append(W.HBox(items, layout=W.Layout(flex_flow="row wrap")))
    return out


def _dependent(specs: Sequence[Control], widgets: Mapping[str, Any], live: bool,
               links: list | None = None) -> dict[str, Any]:
    """The widgets to lay out: a control with ``when`` is shown only while its parent has
    one of the values. Static: it sits in a Stack (blank for the other values) whose
    ``selected_index`` is jslinked to the parent's ``index`` (the link is added to
    ``links``); live: its display follows the parent's value."""
    import ipywidgets as W

    placed = dict(widgets)
    for c in specs:
        if c.when is None or c.name not in widgets:
            continue
        parent = next(p for p in specs if p.name == c.when[0])
        w, pw = widgets[c.name], widgets.get(parent.name)
        if pw is None:  # a fixed parent: shown or not, once and for all
            if not c.applies({parent.name: parent.default_value(live)}):
                placed.pop(c.name)
            continue
        if live:
            def follow(change: Any = None, w: Any = w, c: Control = c, pw: Any = pw) -> None:
                w.layout.display = "" if c.applies({c.when[0]: pw.value}) else "none"

            pw.observe(follow, names="value")
            follow()
            continue
        blank = W.HTML("")
        stack = W.Stack(children=[w if v in c.when[1] else blank for v in parent.values()], selected_index=pw.index)
        link = W.jslink((pw, "index"), (stack, "selected_index"))
        if links is not None:
            links.append(link)
        placed[c.name] = stack
    return placed


try:
    import ipywidgets as _W

    _VBox = _W.VBox
except ImportError:  # pragma: no cover
    _VBox = object


# --------------------------------------------------------------------------- live
class LiveExplorer(_VBox):
    """An explorer with a kernel: every control change computes and draws the new setting.

    Args:
        controls: the :class:`Control` list (their ``live_options`` are offered).
        compute: ``key -> object`` (raise :class:`Unavailable` for a setting with no frame).
        render: ``object -> PNG bytes`` (None: ``compute`` returns the PNG itself).
        note: HTML under the frame (what the panels mean).
        rows: control names per row. data: what the frames are built from (kept as ``.data``).
        busy: the status shown while ``compute`` runs.

    Attributes: ``specs`` (the Controls), ``controls`` (name -> widget, visible ones),
    ``image`` (the ``ipywidgets.Image``), ``status`` (an ``HTML``), ``cache`` (key -> computed
    object), ``current`` (the key shown), ``calls`` (how many times ``compute`` ran).
    """

    def __init__(self, controls: Sequence[Control], compute: Callable[[tuple], Any],
                 render: Callable[[Any], bytes] | None = None, *, note: str = "",
                 rows: Sequence[Sequence[str]] | None = None, data: Any = None, busy: str = "computing…",
                 **kwargs: Any):
        import ipywidgets as W

        self.specs = _check_controls(controls)
        self.compute, self.render = compute, render or (lambda png: png)
        self.data, self.busy = data, busy
        self.controls = {c.name: c.widget(live=True) for c in self.specs if c.visible(live=True)}
        self.image = W.Image(format="png", layout=W.Layout(max_width="100%"))
        self.status = W.HTML()
        self.cache: dict[tuple, Any] = {}
        self.calls = 0
        self.current: tuple | None = None
        fixed = _fixed_html(self.specs, live=True)
        parts = ([fixed] if fixed else []) + _rows(_dependent(self.specs, self.controls, True), rows) + \
            [W.VBox([self.image, self.status]), _note_html(note + " Live: every change is computed now.")]
        super().__init__(parts, **kwargs)
        self.add_class("advmed-explorer")
        for w in self.controls.values():
            w.observe(self._on_change, names="value")
        self.update()

    def key(self) -> tuple:
        return tuple(self.controls[c.name].value if c.name in self.controls else c.default_value(live=True)
                     for c in self.specs)

    def _on_change(self, change: Any) -> None:
        self.update()

    def update(self) -> None:
        """Compute (or take from the cache) and show the frame of the current controls."""
        key = self.key()
        self.current = key
        if key not in self.cache:
            self.status.value = f"<i>{html.escape(self.busy)}</i>"
            try:
                self.cache[key] = self.compute(key)
                self.calls += 1
            except Unavailable as exc:
                self.image.value = b""
                self.status.value = f"<b>{html.escape(str(exc))}</b>"
                return
            except Exception as exc:  # show it in the widget, not only in the log
                self.status.value = f"<b>failed:</b> {html.escape(f'{type(exc).__name__}: {exc}')}"
                raise
        self.image.value = self.render(self.cache[key])
        self.status.value = ""


# --------------------------------------------------------------------------- static
class Precomputed(NamedTuple):
    """A static grid: ``frames`` (key -> PNG bytes, or the message of a setting without a
    frame) and ``computed`` (key -> the object each frame was drawn from)."""

    frames: dict[tuple, bytes | str]
    computed: dict[tuple, Any]


def precompute(controls: Sequence[Control], compute: Callable[[tuple], Any],
               render: Callable[[Any], bytes] | None = None, *, computed: Mapping[tuple, Any] | None = None,
               progress: bool = True) -> Precomputed:
    """Every key of the static grid as PNG bytes, or the :class:`Unavailable` message.

    ``computed`` (key -> object) are objects computed beforehand (e.g. batched); other keys
    call ``compute``. An object shared by several keys is rendered once.
    """
    from tqdm.auto import tqdm

    render = render or (lambda png: png)
    objs: dict[tuple, Any] = dict(computed or {})
    frames: dict[tuple, bytes | str] = {}
    drawn: dict[int, bytes] = {}
    keys = list(grid(controls))
    for key in tqdm(keys, desc="explorer frames", disable=not progress):
        if key not in objs:
            try:
                objs[key] = compute(key)
            except Unavailable as exc:
                frames[key] = str(exc)
                continue
        obj = objs[key]
        if id(obj) not in drawn:
            drawn[id(obj)] = render(obj)
        frames[key] = drawn[id(obj)]
    return Precomputed(frames, objs)


def _encode_frames(frames: Mapping[tuple, bytes | str]) -> dict[str, list]:
    return {"keys": [list(k) for k in frames], "frames": list(frames.values())}


def _decode_frames(stored: Mapping[str, list]) -> dict[tuple, bytes | str]:
    return {tuple(k): f for k, f in zip(stored["keys"], stored["frames"])}


def _grid_description(controls: Sequence[Control]) -> list:
    return [[c.name, [repr(v) for v in c.values()]] for c in controls]


class StaticExplorer(_VBox):
    """Precomputed explorer for the static book: frames switched in the browser.

    Args:
        controls: the :class:`Control` list (their ``options`` are the grid).
        frames: key -> PNG bytes or a message (str) shown instead; a grid key missing here
            shows "not precomputed".
        note: HTML under the frame; the payload and budget are appended.
        budget_mb: the page's payload budget (MB of PNG): over it, a warning and a red note.
        rows, data: as :class:`LiveExplorer`; computed: the objects the frames were drawn
            from (empty when they came from the cache).

    Structure: Stack(first visible control) > ... > Stack(last) > Image (or HTML note);
    each Stack's ``selected_index`` is ``jslink``-ed to its control's ``index``.

    Attributes: ``specs``, ``controls``, ``levels`` (visible control names, the Stack
    levels), ``stacks`` (level -> Stacks), ``links`` (every jslink), ``holders`` (dependent control
    -> the Stack that shows it only where it applies), ``images`` (key -> the leaf widget shown
    for it), ``root``, ``n_frames`` (distinct PNGs), ``payload_bytes`` (their bytes),
    ``budget_bytes``, ``n_settings`` (keys in the grid), ``data``, ``computed``.
    """

    def __init__(self, controls: Sequence[Control], frames: Mapping[tuple, bytes | str], *, note: str = "",
                 budget_mb: float = DEFAULT_BUDGET_MB, rows: Sequence[Sequence[str]] | None = None,
                 data: Any = None, computed: Mapping[tuple, Any] | None = None, **kwargs: Any):
        import ipywidgets as W

        self.specs = _check_controls(controls)
        self.data, self.computed = data, dict(computed or {})
        self.frames = dict(frames)
        self.levels = [c.name for c in self.specs if c.visible()]
        self.controls = {c.name: c.widget() for c in self.specs if c.visible()}
        self.stacks: dict[str, list] = {name: [] for name in self.levels}
        self.images: dict[tuple, Any] = {}
        self._leaves: dict[str, Any] = {}
        self._interned: dict[tuple, Any] = {}
        self.payload_bytes = 0
        self.root = self._subtree(0, ())
        self.n_frames = sum(1 for w in self._leaves.values() if isinstance(w, W.Image))
        self.n_settings = len(self.images)
        self.budget_bytes = int(budget_mb * 1e6)
        self.links = []
        for name in self.levels:  # start consistent with the controls, then tie them
            ctl = self.controls[name]
            for s in self.stacks[name]:
                s.selected_index = ctl.index
                self.links.append(W.jslink((ctl, "index"), (s, "selected_index")))
        fixed = _fixed_html(self.specs, live=False)
        placed = _dependent(self.specs, self.controls, False, self.links)
        self.holders = {n: w for n, w in placed.items() if w is not self.controls[n]}
        parts = ([fixed] if fixed else []) + _rows(placed, rows) + [self.root, _note_html(self._note(note, budget_mb))]
        super().__init__(parts, **kwargs)
        self.add_class("advmed-explorer")

    def _leaf(self, key: tuple):
        """The widget of one key: one Image per distinct PNG, one HTML per distinct message."""
        import ipywidgets as W

        content = self.frames.get(key)
        if content is None:
            content = f"This setting was not precomputed ({describe(self.specs, key)})."
        ident = ("png:" + hashlib.sha1(content).hexdigest() if isinstance(content, bytes)
                 else "note:" + str(content))
        if ident not in self._leaves:
            if isinstance(content, bytes):
                self.payload_bytes += len(content)
                w = W.Image(value=content, format="png", layout=W.Layout(max_width="100%"))
            else:
                w = W.HTML(f"<p><b>{html.escape(str(content))}</b></p>")
                w.add_class("advmed-frame-note")
            self._leaves[ident] = w
        self.images[key] = self._leaves[ident]
        return self._leaves[ident]

    def _subtree(self, level: int, prefix: tuple):
        """The widget for every key starting with ``prefix`` (values of the visible levels
        so far): a Stack over the next visible control, or the leaf. Equal subtrees are one
        widget, and a Stack whose children are all one widget is that widget."""
        import ipywidgets as W

        if level == len(self.levels):
            return self._leaf(self._full_key(prefix))
        name = self.levels[level]
        spec = next(c for c in self.specs if c.name == name)
        children = [self._subtree(level + 1, prefix + (v,)) for v in spec.values()]
        same = all(ch is children[0] for ch in children)
        known = {**{c.name: c.default_value() for c in self.specs if not c.visible()}, **dict(zip(self.levels, prefix))}
        if not same and not spec.applies(known):
            where = ", ".join(f"{k} {v!r}" for k, v in known.items())
            raise ValueError(f"control {name!r} is hidden at {where} but the frames differ across its values: "
                             "a reader could not reach them")
        if same:
            return children[0]
        sig = (name, tuple(id(ch) for ch in children))
        if sig not in self._interned:  # equal subtrees are one widget, so equal levels collapse
            s = W.Stack(children=children, selected_index=0)
            self.stacks[name].append(s)
            self._interned[sig] = s
        return self._interned[sig]

    def _full_key(self, visible_values: tuple) -> tuple:
        it = iter(visible_values)
        return tuple(next(it) if c.visible() else c.default_value() for c in self.specs)

    def _note(self, note: str, budget_mb: float) -> str:
        dims = " × ".join(f"{len(c.options)} {html.escape(c.label)}" for c in self.specs if c.visible())
        mb = self.payload_bytes / 1e6
        text = (f"{note} Precomputed for this page: {self.n_frames} frames ({dims}), {mb:.2f} MB of PNG "
                f"(budget {budget_mb:g} MB).")
        if self.payload_bytes > budget_mb * 1e6:
            warnings.warn(f"a static explorer holds {mb:.1f} MB of PNG ({self.n_frames} frames), over its "
                          f"{budget_mb:g} MB budget: precompute fewer settings (the profile's explorer sections)",
                          stacklevel=3)
            text += f" <b style='color:#c44e52'>Over the {budget_mb:g} MB budget.</b>"
        return text + " Open the notebook with a kernel to compute other settings live."

    def summary(self) -> str:
        return (f"{self.n_frames} frames, {self.payload_bytes / 1e6:.2f} MB PNG "
                f"(mean {self.payload_bytes / max(self.n_frames, 1) / 1e3:.0f} KB)")


# --------------------------------------------------------------------------- checks
def shown(explorer: StaticExplorer, key: Sequence[Any]):
    """The leaf widget a browser shows for ``key``: follow each Stack's child at the index
    its (linked) control would have, as the page does."""
    import ipywidgets as W

    values = dict(zip([c.name for c in explorer.specs], key))
    node = explorer.root
    while isinstance(node, W.Stack):
        level = next(name for name, stacks in explorer.stacks.items() if any(s is node for s in stacks))
        spec = next(c for c in explorer.specs if c.name == level)
        node = node.children[spec.values().index(values[level])]
    return node


def _start_for(specs: Sequence[Control], c: Control) -> tuple:
    """The default key, with the parent of a dependent control set to a value showing it."""
    start = list(default_key(specs))
    if c.when is not None and not c.applies(dict(zip([s.name for s in specs], start))):
        i = [s.name for s in specs].index(c.when[0])
        start[i] = next(v for v in specs[i].values() if v in c.when[1])
    return tuple(start)


def dead_controls(explorer: StaticExplorer) -> list[str]:
    """The visible controls that fail to change the shown frame: starting from the default
    key (for a dependent control, with its parent showing it), each of a control's options
    in turn, then back, must each show another frame."""
    dead = []
    for i, c in enumerate(explorer.specs):
        if not c.visible():
            continue
        start = _start_for(explorer.specs, c)
        seq = [v for v in c.values() if v != start[i]]
        prev = shown(explorer, start)
        for v in seq + [start[i]]:
            now = shown(explorer, start[:i] + (v,) + start[i + 1:])
            if now is prev:
                dead.append(c.name)
                break
            prev = now
    return dead


# --------------------------------------------------------------------------- one entry point
def explorer(controls: Sequence[Control], compute: Callable[[tuple], Any], render: Callable[[Any], bytes] | None = None,
             *, mode: str | None = None, computed: Callable[[], Mapping[tuple, Any]] | None = None,
             cache_key: Any = None, note: str = "", rows: Sequence[Sequence[str]] | None = None,
             budget_mb: float = DEFAULT_BUDGET_MB, data: Any = None, progress: bool = True,
             busy: str = "computing…"):
    """An explorer in the world of ``mode`` (:func:`resolve_mode`).

    Args:
        controls, compute, render: see the module docstring.
        computed: static only, a function returning objects for many keys at once (a batched
            computation); keys it lacks call ``compute``.
        cache_key: static only, something JSON-able that identifies everything the frames
            depend on (checkpoint keys, digests of the UAPs and images, settings, the
            renderer's version): the frames are then stored with :func:`advmed.cache.memo`
            and a second build reloads them instead of computing and drawing again.
        note, rows, budget_mb, data, busy: passed to the explorer.

    Example:
        >>> from advmed.widgets.core import Control, dead_controls, explorer
        >>> eps = Control.of("eps", "eps", [0, 2, 4], lambda e: f"{e}/255", kind="slider")
        >>> w = explorer([eps], lambda key: f"frame at eps {key[0]}".encode(), mode="static", progress=False)
        >>> w.levels, w.n_frames, dead_controls(w)
        (['eps'], 3, [])
    """
    controls = _check_controls(controls)
    if resolve_mode(mode) == "live":
        return LiveExplorer(controls, compute, render, note=note, rows=rows, data=data, busy=busy)
    objs: dict[tuple, Any] = {}

    def build() -> dict[str, list]:
        done = precompute(controls, compute, render, computed=computed() if computed else None, progress=progress)
        objs.update(done.computed)
        return _encode_frames(done.frames)

    if cache_key is None:
        stored = build()
    else:
        from ..cache import memo

        stored = memo("explorer_frames", {"v": FRAMES_VERSION, "key": cache_key,
                                          "grid": _grid_description(controls)}, build)
    return StaticExplorer(controls, _decode_frames(stored), note=note, rows=rows, budget_mb=budget_mb, data=data,
                          computed=objs)


def typed_explorer(kind: str, names: Sequence[str], setting: Callable[[tuple], Any], view: Callable[[Any], Any],
                   render: Callable[..., bytes], controls: Sequence[Control], *, version: int,
                   render_kwargs: Mapping[str, Any] | None = None, cache_key: Any = None, **kwargs: Any):
    """:func:`explorer` for an explorer whose frames come from typed settings (the UAP, patch
    and defense explorers): its controls must be ``names`` in that order; each key becomes
    ``setting(key)`` for ``view`` (the experiments layer's function), each view is drawn by
    ``render(view, **render_kwargs)``, and static frames are stored under ``cache_key`` with the
    renderer's ``version`` and arguments (``{kind: cache_key, "render": version, ...}``), so a
    change of drawing never reuses old frames. ``kwargs`` go to :func:`explorer`."""
    got = tuple(c.name for c in controls)
    if got != tuple(names):
        raise ValueError(f"{kind} explorer controls must be {tuple(names)} in that order, got {got}")
    kw = dict(render_kwargs or {})
    key = None if cache_key is None else {kind: cache_key, "render": version, "render_kwargs": kw}

    def compute(k: tuple) -> Any:
        return view(setting(k))

    def draw(v: Any) -> bytes:
        return render(v, **kw)

    return explorer(controls, compute, draw, cache_key=key, **kwargs)
