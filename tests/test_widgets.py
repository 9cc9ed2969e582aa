"""The attack explorer (advmed.widgets.whitebox on advmed.widgets.core): live callback,
precomputed frames, embedding.

A tiny conv net and random images stand in for the trained models; recording stand-in
attacks check what the explorer asks for, and one test runs the real advmed attacks.
The ``browser`` test renders the embedded widget state with the same local JavaScript
the book serves (require.js + @jupyter-widgets/html-manager embed-amd.js from
node_modules) in headless Chromium and moves the controls.
"""
from __future__ import annotations

import base64
import io
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

ipywidgets = pytest.importorskip("ipywidgets")

from advmed import widgets as wg  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


# --------------------------------------------------------------------------- stand-ins
class Tiny(torch.nn.Module):
    def __init__(self, c: int, k: int, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.conv = torch.nn.Conv2d(c, 4, 3, padding=1)
        self.fc = torch.nn.Linear(4 * 4 * 4, k)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)

    def forward(self, x):
        h = torch.relu(self.conv(x))
        h = torch.nn.functional.adaptive_avg_pool2d(h, 4).flatten(1)
        return self.fc(h)


def sign_attack(model, x, y, *, eps, steps=1):
    """FGSM written out: the stand-in for the real attacks."""
    x = x.clone().requires_grad_(True)
    loss = torch.nn.functional.cross_entropy(model(x), y)
    (g,) = torch.autograd.grad(loss, x)
    return (x + eps * g.sign()).clamp(0, 1).detach()


class Recorder:
    """An attack that records its calls (eps, batch size, kwargs) and runs sign_attack."""

    def __init__(self, name: str):
        self.name = name
        self.calls: list[dict] = []

    def __call__(self, model, x, y, *, eps, **kw):
        self.calls.append({"eps": eps, "n": len(x), "kw": kw, "model": model})
        return sign_attack(model, x, y, eps=eps)


def make_inputs(size: int = 16, n: int = 3):
    torch.manual_seed(0)
    models = {
        ("cxr", "netA"): Tiny(1, 2, seed=1),
        ("cxr", "netB"): Tiny(1, 2, seed=2),
        ("derm", "netA"): Tiny(3, 7, seed=3),  # ("derm", "netB") is missing on purpose
    }
    images = {
        "cxr": (torch.rand(n, 1, size, size), torch.tensor([0, 1, 0, 1][:n]), ("normal", "pneumonia")),
        "derm": ((torch.rand(n + 1, 3, size, size) * 255).to(torch.uint8), torch.tensor([0, 4, 6, 5][: n + 1]),
                 ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")),
    }
    return models, images


def recorders(names=("fgsm", "pgd")):
    return {n: Recorder(n) for n in names}


# --------------------------------------------------------------------------- prepare
def test_prepare_normalises_inputs():
    models, images = make_inputs()
    data = wg.prepare(models, images, recorders(), (0, 2, 8), n_images=2)
    assert data.tasks == ["cxr", "derm"] and data.archs == ["netA", "netB"]
    assert data.n_images == 2
    x, y, classes = data.images["derm"]
    assert x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1 and x.shape[0] == 2
    assert classes[4] == "mel"
    assert len(list(data.keys())) == 2 * 2 * 2 * 2 * 3


def test_prepare_errors_name_what_is_missing():
    models, images = make_inputs()
    with pytest.raises(KeyError, match="derm"):
        wg.prepare(models, {"cxr": images["cxr"]}, recorders())
    with pytest.raises(ValueError, match="eps_255"):
        wg.prepare(models, images, recorders(), eps_255=(-1,))
    with pytest.raises(ValueError, match="unknown attack"):
        wg.prepare(models, images, ("nope",))  # resolved by advmed.attacks.get_attack


# --------------------------------------------------------------------------- rendering
def test_render_frame_is_a_small_png_with_the_right_size():
    from PIL import Image

    models, images = make_inputs(size=32)
    data = wg.prepare(models, images, recorders(), (0, 4), n_images=1)
    for eps in (0, 4):
        f = wg.compute_frame(data, "derm", "netA", 0, "pgd", eps)
        png = wg.render_frame(f)
        im = Image.open(io.BytesIO(png))
        assert im.format == "PNG" and im.size == (810, 225)
        assert len(png) < 60_000
        if eps:
            assert f.linf_255 <= eps + 1e-3 and f.linf_255 > 0
        else:
            assert f.linf_255 == 0


# --------------------------------------------------------------------------- live mode
def test_live_callback_recomputes_with_the_attack_function():
    models, images = make_inputs()
    atk = recorders()
    w = wg.explorer(models, images, atk, eps_255=(0, 2, 8))
    assert isinstance(w, wg.LiveExplorer) and isinstance(w, ipywidgets.VBox)
    c = w.controls
    # initial frame: middle eps (2/255), first attack
    assert w.current == ("cxr", "netA", 0, "fgsm", 2.0)
    assert len(atk["fgsm"].calls) == 1 and atk["fgsm"].calls[0]["eps"] == pytest.approx(2 / 255)
    first = w.image.value
    assert first[:8] == b"\x89PNG\r\n\x1a\n"

    c["eps"].value = 8.0
    assert len(atk["fgsm"].calls) == 2 and atk["fgsm"].calls[-1]["eps"] == pytest.approx(8 / 255)
    assert w.image.value != first
    assert w.cache[w.current].linf_255 == pytest.approx(8, abs=1e-3)

    c["attack"].value = "pgd"
    assert len(atk["pgd"].calls) == 1 and atk["pgd"].calls[0]["n"] == 1

    c["arch"].value = "netB"
    assert atk["pgd"].calls[-1]["model"] is models[("cxr", "netB")]

    c["task"].value = "derm"
    c["image"].value = 2
    assert w.current == ("derm", "netB", 2, "pgd", 8.0)
    assert "No model" in w.status.value and w.image.value == b""
    c["arch"].value = "netA"
    assert w.cache[w.current].label == 6 and w.cache[w.current].classes[6] == "vasc"

    n = sum(len(a.calls) for a in atk.values())
    c["eps"].value = 0.0  # eps = 0 never calls the attack
    assert sum(len(a.calls) for a in atk.values()) == n
    assert w.cache[w.current].linf_255 == 0
    c["eps"].value = 8.0  # cached: no new call
    assert sum(len(a.calls) for a in atk.values()) == n
    assert w.calls == len(w.cache)  # every cached frame was computed once


def test_live_shows_attack_errors():
    models, images = make_inputs()

    def broken(model, x, y, *, eps):
        raise RuntimeError("boom")

    w = wg.explorer(models, images, {"fgsm": sign_attack, "bad": broken}, eps_255=(0, 2))
    with pytest.raises(RuntimeError):
        w.controls["attack"].value = "bad"
    assert "boom" in w.status.value


def test_real_advmed_attacks():
    attacks = pytest.importorskip("advmed.attacks")
    if not hasattr(attacks, "get_attack"):
        pytest.skip("advmed.attacks.get_attack not there yet")
    models, images = make_inputs()
    w = wg.explorer(models, images, wg.DEFAULT_ATTACKS, eps_255=(0, 4), n_images=1,
                    attack_kwargs={"pgd": {"steps": 3}, "ifgsm": {"steps": 3}, "mifgsm": {"steps": 3}},
                    precompute=True, progress=False)
    assert w.n_frames == 2 * 1 * (1 + 4) + 1 * (1 + 4)
    for key, f in w.computed.items():
        assert f.linf_255 <= key[4] + 1e-3
        if key[4]:
            assert f.linf_255 > 0.5 * key[4], key


# --------------------------------------------------------------------------- static mode
@pytest.fixture(scope="module")
def static():
    models, images = make_inputs()
    atk = recorders()
    w = wg.explorer(models, images, atk, eps_255=(0, 2, 8), n_images=2, precompute=True,
                    progress=False)
    return w, atk, models


def test_static_frames_exist_for_every_control_combination(static):
    w, _, models = static
    data = w.data
    keys = list(data.keys())
    assert len(keys) == 2 * 2 * 2 * 2 * 3
    for t, a, i, at, e in keys:
        if (t, a) not in models:
            assert isinstance(w.images[(t, a, i, at, e)], ipywidgets.HTML)
            continue
        img = w.images[(t, a, i, at, e)]
        assert isinstance(img, ipywidgets.Image) and img.value[:4] == b"\x89PNG"
        # the stack path chosen by the controls' indices leads to this very widget
        ti, ai = data.tasks.index(t), data.archs.index(a)
        ati, ei = list(data.attacks).index(at), data.eps_255.index(e)
        node = w.root.children[ti].children[ai].children[i].children[ati].children[ei]
        assert node is img
    # the missing (derm, netB) pair shows a note instead of frames
    note = w.root.children[1].children[1]
    assert isinstance(note, ipywidgets.HTML) and "No model" in note.value
    # eps = 0 is one widget shared by all attacks; distinct frames otherwise
    assert w.images[("cxr", "netA", 0, "fgsm", 0.0)] is w.images[("cxr", "netA", 0, "pgd", 0.0)]
    assert w.n_frames == 3 * 2 * (1 + 2 * 2)
    pngs = {id(v): v for v in w.images.values() if isinstance(v, ipywidgets.Image)}
    assert len(pngs) == w.n_frames and len({id(v) for v in w.images.values()}) == w.n_frames + 1  # + the note
    assert w.payload_bytes == sum(len(v.value) for v in pngs.values())
    assert f"{w.n_frames} frames" in w.children[-1].value and "budget 2 MB" in w.children[-1].value
    assert wg.dead_controls(w) == []


def test_static_frames_come_from_the_attack(static):
    w, atk, _ = static
    for name, rec in atk.items():
        # one batched call per (task, arch) with a model and per non-zero eps
        assert sorted(c["eps"] for c in rec.calls) == pytest.approx(sorted([2 / 255, 8 / 255] * 3))
        assert all(c["n"] == 2 for c in rec.calls)
    assert len(w.computed) == 3 * 2 * 2 * 3  # every key with a model; none from the cache
    for key, f in w.computed.items():
        assert (f.task, f.arch, f.image_index, f.eps_255) == key[:3] + key[4:]
        assert f.attack == key[3] or key[4] == 0  # eps = 0 frames are shared
        if key[4]:
            assert f.linf_255 == pytest.approx(key[4], abs=1e-3)
        else:
            assert np.array_equal(f.x, f.x_adv)


def test_static_stacks_are_jslinked_to_the_controls(static):
    w, _, _ = static
    links = {(id(l.source[0]), l.source[1], id(l.target[0]), l.target[1]) for l in w.links}
    from ipywidgets.widgets.widget_link import Link

    assert all(type(l) is Link for l in w.links)  # jslink (LinkModel), not a kernel-side link
    n_stacks = 0
    assert w.levels == ["task", "arch", "image", "attack", "eps"]
    for level in w.levels:
        ctl = w.controls[level]
        assert "index" in ctl.keys  # a synced trait the browser can link
        for s in w.stacks[level]:
            n_stacks += 1
            assert isinstance(s, ipywidgets.Stack)
            assert (id(ctl), "index", id(s), "selected_index") in links
            assert s.selected_index == ctl.index
    assert len(w.links) == n_stacks == 1 + 2 + 3 + 3 * 2 + 3 * 2 * 2
    # everything the page needs is in the embeddable state, links included
    from ipywidgets.embed import dependency_state

    state = dependency_state([w])
    ids = {l.model_id for l in w.links}
    assert ids <= set(state)
    assert {m["model_name"] for m in state.values()} >= {"StackModel", "ImageModel", "LinkModel",
                                                          "DropdownModel", "SelectionSliderModel",
                                                          "ToggleButtonsModel"}


# --------------------------------------------------------------------------- papermill
NOTEBOOK_CODE = """
import torch, sys
sys.path.insert(0, {tests!r})
from test_widgets import make_inputs, sign_attack
from advmed.widgets import static_explorer
models, images = make_inputs(size=8, n=1)
w = static_explorer(models, images, {{"fgsm": sign_attack, "pgd": sign_attack}}, eps_255=(0, 4),
                    progress=False)
w
"""


def test_papermill_saves_the_widget_state(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    papermill = pytest.importorskip("papermill")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(NOTEBOOK_CODE.format(tests=str(Path(__file__).parent)))]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    src, out = tmp_path / "in.ipynb", tmp_path / "out.ipynb"
    nbformat.write(nb, src)
    papermill.execute_notebook(str(src), str(out), kernel_name="python3", progress_bar=False,
                               cwd=str(tmp_path))
    done = json.loads(out.read_text())
    state = done["metadata"]["widgets"][WIDGET_STATE]["state"]
    outputs = done["cells"][0]["outputs"]
    view = next(o["data"][WIDGET_VIEW] for o in outputs if WIDGET_VIEW in o.get("data", {}))
    assert view["model_id"] in state
    names = [m["model_name"] for m in state.values()]
    assert names.count("LinkModel") >= 5 and names.count("ImageModel") == 2 * (1 + 2) + 1 * (1 + 2)
    img = next(m for m in state.values() if m["model_name"] == "ImageModel")
    assert img["buffers"] and img["buffers"][0]["encoding"] == "base64"


# --------------------------------------------------------------------------- browser
def widget_js_files() -> dict[str, Path]:
    """The JavaScript the book serves for widgets: {"require.js": path, "embed-amd.js": path}.

    Same files as the book (``advmed.book.VENDOR_FILES`` from the repository's
    ``node_modules``, made by ``npm ci``); ``$ADVMED_WIDGET_JS_NODE_MODULES`` points at
    another node_modules folder.
    """
    roots = [Path(p) for p in [os.environ.get("ADVMED_WIDGET_JS_NODE_MODULES")] if p]
    try:
        from advmed.book import VENDOR_FILES, vendor_root

        files = dict(VENDOR_FILES)
        roots.append(vendor_root(REPO))
    except ImportError:  # the book module is not there: the same two files by hand
        files = {"requirejs/require.js": "vendor/require.js",
                 "@jupyter-widgets/html-manager/dist/embed-amd.js": "vendor/embed-amd.js"}
        roots.append(REPO / "node_modules")
    for nm in roots:
        found = {Path(dst).name: nm / src for src, dst in files.items()}
        if all(p.is_file() for p in found.values()):
            return found
    pytest.skip("widget JavaScript missing: run `npm ci` in the repository (make test does)")


PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>advmed explorer test</title>
<script type="{state_mime}">{state}</script>
<script src="vendor/require.js"></script>
<script src="vendor/embed-amd.js"></script>
</head><body><main><h1>explorer</h1>
<div class="cell_output"><script type="{view_mime}">{view}</script></div>
</main></body></html>
"""


def write_page(widget, folder: Path) -> Path:
    """A page laid out like a myst-nb one: state script in the head, local require.js and
    embed-amd.js, the view script where the output was."""
    from ipywidgets.embed import dependency_state, embed_data, escape_script

    # the full state, as papermill saves it into a notebook: with drop_defaults a selection
    # slider at index 0 loses its index (Python's default 0, JavaScript's ''), and a Stack
    # linked to it would be sent an empty index
    data = embed_data(widget, state=dependency_state([widget], drop_defaults=False))
    (folder / "vendor").mkdir(parents=True, exist_ok=True)
    for name, path in widget_js_files().items():
        shutil.copy2(path, folder / "vendor" / name)
    page = folder / "index.html"
    page.write_text(PAGE.format(state_mime=WIDGET_STATE, view_mime=WIDGET_VIEW,
                                state=escape_script(json.dumps(data["manager_state"])),
                                view=escape_script(json.dumps(data["view_specs"][0]))))
    return page


SHOWN_PNG = """
const done = arguments[arguments.length - 1];
const imgs = Array.from(document.querySelectorAll('.widget-image')).filter(i => i.offsetParent !== null);
if (imgs.length !== 1) { done({n: imgs.length}); return; }
fetch(imgs[0].src).then(r => r.arrayBuffer()).then(b => {
  let s = ''; const u = new Uint8Array(b);
  for (let i = 0; i < u.length; i++) s += String.fromCharCode(u[i]);
  done({n: 1, png: btoa(s), src: imgs[0].src});
}).catch(e => done({n: 1, error: String(e)}));
"""


@pytest.mark.browser
def test_static_explorer_in_headless_chromium(tmp_path):
    try:
        from tests.browser import Browser, require_chromium
    except ImportError:  # pytest put tests/ itself on sys.path
        from browser import Browser, require_chromium
    require_chromium()

    models, images = make_inputs(size=24)
    w = wg.static_explorer(models, images, {"fgsm": sign_attack, "pgd": sign_attack},
                           eps_255=(0, 2, 8), n_images=2, progress=False)
    write_page(w, tmp_path)

    def shown(b):
        b.wait_until("return Array.from(document.querySelectorAll('.widget-image'))"
                     ".filter(i => i.offsetParent !== null && i.complete && i.naturalWidth > 0).length === 1")
        r = b.driver.execute_async_script(SHOWN_PNG)
        assert r["n"] == 1 and "error" not in r, r
        return base64.b64decode(r["png"]), r["src"]

    def expect(b, key):
        png, src = shown(b)
        assert png == w.images[key].value, f"browser does not show the frame for {key}"
        return src

    with Browser(tmp_path, timeout=60) as b:
        b.driver.set_script_timeout(30)
        b.open("index.html")
        assert b.wait_for_widgets(timeout=60) >= 1
        b.wait_until("return document.querySelectorAll('.widget-image').length > 0", timeout=60)
        # controls rendered: 3 dropdowns, the attack buttons, the eps slider with its readout
        assert len(b.find_all(".widget-dropdown select")) == 3
        assert len(b.find_all(".widget-toggle-button")) == 2
        readout = b.find_all(".widget-readout")[0]
        assert readout.text == "2/255"
        src0 = expect(b, ("cxr", "netA", 0, "fgsm", 2.0))

        # the eps slider (keyboard), then the attack buttons, image, task and arch dropdowns
        assert b.set_slider(".widget-slider", 2) == 2
        assert readout.text == "8/255"
        src1 = expect(b, ("cxr", "netA", 0, "fgsm", 8.0))
        assert src1 != src0
        b.find_all(".widget-toggle-button")[1].click()
        expect(b, ("cxr", "netA", 0, "pgd", 8.0))
        b.select(".widget-dropdown", "image 2", index=2)
        expect(b, ("cxr", "netA", 1, "pgd", 8.0))
        b.select(".widget-dropdown", "derm", index=0)
        expect(b, ("derm", "netA", 1, "pgd", 8.0))
        b.set_slider(".widget-slider", 0)
        expect(b, ("derm", "netA", 1, "pgd", 0.0))
        b.select(".widget-dropdown", "netB", index=1)
        b.wait_until("return document.body.innerText.includes('No model for task derm')")
        b.select(".widget-dropdown", "netA", index=1)
        b.set_slider(".widget-slider", 1)
        expect(b, ("derm", "netA", 1, "pgd", 2.0))
        assert f"{w.n_frames} frames" in b.text()

        # nothing came from another host (the machine has no network anyway)
        urls = b.js("return performance.getEntriesByType('resource').map(e => e.name)")
        assert urls and all(u.startswith(b.base_url) or u.startswith("blob:") or u.startswith("data:")
                            for u in urls), urls
        assert not [e for e in b.console_errors() if "favicon" not in e]
        b.screenshot(Path(os.environ.get("ADVMED_WIDGET_SCREENSHOT", "/tmp/widget_test.png")),
                     full_page=False)


def test_static_frames_are_memoised_by_cache_key(tmp_cache, monkeypatch):
    """A second static explorer with the same cache_key reloads its PNGs: no attack, no drawing."""
    from advmed import widgets as Wm
    from advmed.widgets import whitebox

    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 2)).eval()
    x = torch.rand(2, 3, 8, 8)
    images = {"t": (x, torch.tensor([0, 1]), ("a", "b"))}
    first = Wm.static_explorer({("t", "m"): model}, images, attacks=["fgsm"], eps_255=[0, 4],
                               progress=False, cache_key="k")
    monkeypatch.setattr(whitebox, "compute_frames", lambda *a, **k: pytest.fail("recomputed frames"))
    monkeypatch.setattr(whitebox, "compute_frame", lambda *a, **k: pytest.fail("recomputed a frame"))
    second = Wm.static_explorer({("t", "m"): model}, images, attacks=["fgsm"], eps_255=[0, 4],
                                progress=False, cache_key="k")
    assert second.n_frames == first.n_frames
    assert [w.value for w in second.images.values()] == [w.value for w in first.images.values()]
    assert second.computed == {} and len(first.computed) == 2 * 2  # images x eps
