"""The explorer mechanism itself (advmed.widgets.core) on synthetic frames.

The frames are tiny PNGs that print their own setting, so what a control shows can be read
back. Two stand-ins have the controls the patch (chapter 6) and defense (chapter 7)
explorers will need: toggle buttons, sliders (scale, rotation, eps, a JPEG quality that is
shown only for the JPEG defense), dropdowns (task, location, defense, attacker), settings
without a frame, and live values outside the precomputed grid.
"""
from __future__ import annotations

import io
import warnings

import pytest

ipywidgets = pytest.importorskip("ipywidgets")

from advmed import widgets as wg  # noqa: E402
from advmed.widgets import core  # noqa: E402
from advmed.widgets.core import Control  # noqa: E402


def png_of(text: str) -> bytes:
    from PIL import Image, ImageDraw

    im = Image.new("RGB", (160, 24), "white")
    ImageDraw.Draw(im).text((2, 6), text, fill="black")
    out = io.BytesIO()
    im.save(out, format="PNG")
    return out.getvalue()


# --------------------------------------------------------------------------- stand-ins
def patch_controls() -> list[Control]:
    return [
        Control.of("task", "task", ["cxr", "derm"]),
        Control.of("patch", "patch", ["whitebox", "blackbox", "natural"], kind="toggle"),
        Control.of("scale", "scale", [0.2, 0.4, 0.8], lambda s: f"{s:g}", kind="slider", default=0.4,
                   live_values=[0.2, 0.3, 0.4, 0.6, 0.8, 1.2]),
        Control.of("rotation", "rotation", [0, 22.5], lambda r: f"{r:g}°", kind="slider"),
        Control.of("location", "location", ["centre", "top left", "bottom right"]),
    ]


class PatchFrames:
    """compute: the setting as text (a stand-in for applying a patch); derm has no black-box patch."""

    def __init__(self):
        self.calls: list[tuple] = []

    def __call__(self, key: tuple) -> str:
        self.calls.append(key)
        if key[0] == "derm" and key[1] == "blackbox":
            raise wg.Unavailable("No black-box patch for derm in this build.")
        return "|".join(map(str, key))


def defense_controls() -> list[Control]:
    return [
        Control.of("task", "task", ["cxr"]),  # one option: fixed text, not a control
        Control.of("defense", "defense", ["none", "jpeg", "advtrain", "vae", "retrain", "smoothing"]),
        Control.of("quality", "JPEG quality", [20, 50, 90], str, kind="slider", when=("defense", ("jpeg",)),
                   live_values=list(range(10, 101, 10))),
        Control.of("attacker", "attacker", ["oblivious", "adaptive"], kind="toggle"),
        Control.of("eps", "eps", [1, 2, 4], lambda e: f"{e}/255", kind="slider"),
    ]


def defense_frame(key: tuple) -> str:
    task, defense, quality, attacker, eps = key
    q = f"q{quality}" if defense == "jpeg" else ""  # quality matters for JPEG only
    return f"{task}|{defense}{q}|{attacker}|{eps}"


# --------------------------------------------------------------------------- controls
def test_controls_check_their_options():
    with pytest.raises(ValueError, match="unknown kind"):
        Control.of("a", "a", [1, 2], kind="knob")
    with pytest.raises(ValueError, match="no options"):
        Control.of("a", "a", [])
    with pytest.raises(ValueError, match="repeats"):
        Control.of("a", "a", [1, 1])
    with pytest.raises(ValueError, match="lack the precomputed"):
        Control.of("a", "a", [1, 2], live_values=[1, 3])
    with pytest.raises(ValueError, match="default"):
        Control.of("a", "a", [1, 2], default=5)
    with pytest.raises(ValueError, match="earlier control"):
        core.explorer([Control.of("q", "q", [1, 2], when=("d", ("jpeg",))), Control.of("d", "d", ["jpeg", "no"])],
                      str, mode="static")
    with pytest.raises(ValueError, match="None is not a valid"):
        Control.of("target", "target", [None, 0, 1])
    mixed = Control.of("target", "target", ["none", 0, 1], lambda t: f"→ {t}")
    assert mixed.default_value() == "none" and mixed.label_of(1) == "→ 1"


# --------------------------------------------------------------------------- static
@pytest.fixture(scope="module")
def patch_static():
    frames = PatchFrames()
    w = core.explorer(patch_controls(), frames, png_of, mode="static", progress=False, note="Patches.")
    return w, frames


def test_static_patch_explorer_reaches_every_setting(patch_static):
    w, frames = patch_static
    assert w.levels == ["task", "patch", "scale", "rotation", "location"]
    kinds = {n: type(c).__name__ for n, c in w.controls.items()}
    assert kinds == {"task": "Dropdown", "patch": "ToggleButtons", "scale": "SelectionSlider",
                     "rotation": "SelectionSlider", "location": "Dropdown"}
    assert w.controls["scale"].value == 0.4
    keys = list(core.grid(w.specs))
    assert len(keys) == 2 * 3 * 3 * 2 * 3 and len(frames.calls) == len(keys)  # the grid only, no live value
    for key in keys:
        leaf = core.shown(w, key)
        assert leaf is w.images[key]
        if key[:2] == ("derm", "blackbox"):
            assert isinstance(leaf, ipywidgets.HTML) and "No black-box patch" in leaf.value
        else:
            assert leaf.value == png_of("|".join(map(str, key)))
    # the missing settings are one note widget, collapsed at the patch level
    assert w.root.children[1].children[1] is w.images[("derm", "blackbox", 0.2, 0, "centre")]
    assert w.n_frames == len(keys) - 3 * 2 * 3
    assert core.dead_controls(w) == []
    assert "Patches." in w.children[-1].value and f"{w.n_frames} frames" in w.children[-1].value


def test_static_stacks_are_jslinked(patch_static):
    from ipywidgets.embed import dependency_state
    from ipywidgets.widgets.widget_link import Link

    w, _ = patch_static
    pairs = {(id(link.source[0]), id(link.target[0])) for link in w.links}
    assert all(type(link) is Link for link in w.links)  # jslink (the browser), not a kernel link
    for name, stacks in w.stacks.items():
        for s in stacks:
            assert (id(w.controls[name]), id(s)) in pairs and s.selected_index == w.controls[name].index
    state = dependency_state([w])
    assert {link.model_id for link in w.links} <= set(state)


def test_defense_quality_shows_only_for_jpeg():
    w = core.explorer(defense_controls(), defense_frame, png_of, mode="static", progress=False)
    assert "task" not in w.controls and "task: <b>cxr</b>" in w.children[0].value
    # the quality slider sits in a Stack linked to the defense: blank except under JPEG
    holder = w.holders["quality"]
    defenses = [v for _, v in w.controls["defense"].options]
    assert [ch is w.controls["quality"] for ch in holder.children] == [d == "jpeg" for d in defenses]
    assert any(link.source[0] is w.controls["defense"] and link.target == (holder, "selected_index")
               for link in w.links)
    assert holder.selected_index == w.controls["defense"].index
    # frames: quality changes the JPEG frame only; elsewhere the quality level collapses
    assert core.shown(w, ("cxr", "jpeg", 20, "adaptive", 4)) is not core.shown(w, ("cxr", "jpeg", 90, "adaptive", 4))
    assert core.shown(w, ("cxr", "vae", 20, "adaptive", 4)) is core.shown(w, ("cxr", "vae", 90, "adaptive", 4))
    assert core.dead_controls(w) == []
    assert w.n_frames == (5 + 3) * 2 * 3


def test_a_hidden_control_that_changes_frames_is_refused():
    def leaky(key):  # quality changes every defense's frame: unreachable frames
        return "|".join(map(str, key))

    with pytest.raises(ValueError, match="hidden at .* frames differ"):
        core.explorer(defense_controls(), leaky, png_of, mode="static", progress=False)


def test_budget_is_stated_and_enforced():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        w = core.explorer(patch_controls(), PatchFrames(), png_of, mode="static", progress=False, budget_mb=0.001)
    assert any("budget" in str(c.message) for c in caught)
    assert "Over the 0.001 MB budget" in w.children[-1].value and w.payload_bytes > w.budget_bytes


def test_frames_are_memoised_by_cache_key(tmp_cache):
    first = PatchFrames()
    a = core.explorer(patch_controls(), first, png_of, mode="static", progress=False, cache_key={"run": "x"})
    again = PatchFrames()
    b = core.explorer(patch_controls(), again, png_of, mode="static", progress=False, cache_key={"run": "x"})
    assert again.calls == [] and b.computed == {} and len(a.computed) > 0
    assert [v.value for v in b.images.values()] == [v.value for v in a.images.values()]
    other = PatchFrames()
    core.explorer(patch_controls(), other, png_of, mode="static", progress=False, cache_key={"run": "y"})
    assert len(other.calls) == len(first.calls)


# --------------------------------------------------------------------------- live
def test_live_patch_explorer_computes_settings_outside_the_grid():
    frames = PatchFrames()
    w = core.explorer(patch_controls(), frames, png_of, mode="live")
    assert isinstance(w, wg.LiveExplorer)
    assert [v for _, v in w.controls["scale"].options] == [0.2, 0.3, 0.4, 0.6, 0.8, 1.2]
    assert w.current == ("cxr", "whitebox", 0.4, 0, "centre") and w.image.value == png_of("cxr|whitebox|0.4|0|centre")
    for name, value in (("scale", 1.2), ("rotation", 22.5), ("location", "top left"), ("patch", "natural"),
                        ("task", "derm")):
        before = w.image.value
        w.controls[name].value = value
        assert w.image.value != before and w.image.value == png_of("|".join(map(str, w.current))), name
    assert ("derm", "natural", 1.2, 22.5, "top left") in frames.calls  # 1.2 is not in the static grid
    w.controls["patch"].value = "blackbox"
    assert w.image.value == b"" and "No black-box patch" in w.status.value
    n = len(frames.calls)
    w.controls["patch"].value = "natural"  # cached
    assert len(frames.calls) == n and w.status.value == ""


def test_live_quality_follows_the_defense():
    w = core.explorer(defense_controls(), defense_frame, png_of, mode="live")
    q = w.controls["quality"]
    assert q.layout.display == "none"  # defense "none" first
    w.controls["defense"].value = "jpeg"
    assert q.layout.display == ""
    q.value = 30  # a live-only quality
    assert w.image.value == png_of("cxr|jpegq30|oblivious|1")
    w.controls["attacker"].value = "adaptive"
    assert w.image.value == png_of("cxr|jpegq30|adaptive|1")
    w.controls["defense"].value = "smoothing"
    assert q.layout.display == "none"


# --------------------------------------------------------------------------- which world
CHAPTER = '''# %% [markdown]
# # Mode
#
# %% tags=["parameters"]
profile = "smoke"

# %%
from advmed import widgets
print("mode:", widgets.resolve_mode())
'''


def test_the_book_executes_chapters_with_static_explorers(tmp_path, monkeypatch):
    pytest.importorskip("papermill")
    import json
    import os

    from advmed.book import run_chapter

    monkeypatch.delenv("ADVMED_WIDGETS", raising=False)
    chapter = tmp_path / "mode.py"
    chapter.write_text(CHAPTER)
    res = run_chapter(chapter, out=tmp_path / "out")
    cells = json.loads(res.output.read_text())["cells"]
    text = "".join("".join(o.get("text", "")) for c in cells for o in c.get("outputs", []))
    assert "mode: static" in text  # the kernel inherited ADVMED_WIDGETS=static
    assert "ADVMED_WIDGETS" not in os.environ  # and it is gone afterwards


# --------------------------------------------------------------------------- browser
def _browser():
    try:
        from tests.browser import Browser, require_chromium
        from tests.test_widgets import write_page
    except ImportError:  # pytest put tests/ itself on sys.path
        from browser import Browser, require_chromium
        from test_widgets import write_page
    require_chromium()
    return Browser, write_page


@pytest.mark.browser
def test_every_control_moves_the_frame_in_headless_chromium(tmp_path):
    """The patch- and defense-like explorers on one page: each control, moved through its
    options in the browser, changes the shown frame; a control that changes nothing is found."""
    Browser, write_page = _browser()
    patch = core.explorer(patch_controls(), PatchFrames(), png_of, mode="static", progress=False)
    defense = core.explorer(defense_controls(), defense_frame, png_of, mode="static", progress=False)
    dead = core.explorer([Control.of("a", "alive", [1, 2]), Control.of("d", "dead", ["x", "y"])],
                         lambda k: f"a={k[0]}", png_of, mode="static", progress=False)
    write_page(ipywidgets.VBox([patch, defense, dead]), tmp_path)
    with Browser(tmp_path, timeout=60) as b:
        b.driver.set_script_timeout(30)
        b.open("index.html")
        assert b.wait_for_widgets(timeout=60) >= 1
        b.wait_until("return document.querySelectorAll('.advmed-explorer').length === 3", timeout=60)
        roots = b.explorers()
        assert b.explorer_problems(roots[0]) == []
        # the quality slider appears with the JPEG defense only
        assert len(b.explorer_controls(roots[1])) == 3  # defense, attacker, eps
        b.set_control(b.explorer_controls(roots[1])[0], 1)  # defense: JPEG
        assert len(b.explorer_controls(roots[1])) == 4
        assert b.explorer_problems(roots[1]) == []
        problems = b.explorer_problems(roots[2])
        assert len(problems) == 1 and "'dead'" in problems[0]
        assert not [e for e in b.console_errors() if "favicon" not in e]


@pytest.mark.parametrize("task, classes, true, clean, adv, expected", [
    ("pneumonia_cxr", ("normal", "pneumonia"), 1, 1, 0, "missed diagnosis"),
    ("pneumonia_cxr", ("normal", "pneumonia"), 0, 0, 1, "false alarm"),
    ("pneumonia_cxr", ("normal", "pneumonia"), 1, 1, 1, ""),  # not flipped
    ("pneumonia_cxr", ("normal", "pneumonia"), 1, 0, 1, ""),  # wrong before the attack
    ("not_a_task", ("a", "b"), 1, 1, 0, ""),
])
def test_harm_label_names_the_direction_of_a_flip(task, classes, true, clean, adv, expected):
    from advmed.widgets import core

    assert core.harm_label(task, classes, true, clean, adv) == expected


def test_harm_label_ignores_a_move_between_disease_classes():
    from advmed.data import TASKS
    from advmed.experiments.cells import task_classes
    from advmed.widgets import core

    classes = task_classes("skin7_derm")
    sick = TASKS["skin7_derm"].disease_ids(classes)
    healthy = [i for i in range(len(classes)) if i not in sick]
    if len(sick) >= 2:
        assert core.harm_label("skin7_derm", classes, sick[0], sick[0], sick[1]) == ""
    assert core.harm_label("skin7_derm", classes, sick[0], sick[0], healthy[0]) == "missed diagnosis"
