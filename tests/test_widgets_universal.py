"""The UAP explorer (advmed.widgets.universal, fed by advmed.experiments.universal.plots.explorer).

Synthetic data and tiny CNNs fitted here (about a second each) stand in for the zoo; the
image selections of the experiment are monkeypatched. One task is gray (three equal
channels: its UAPs are one channel), one colour.
"""
from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass

import pytest
import torch
from torch import nn

ipywidgets = pytest.importorskip("ipywidgets")

from advmed import widgets as wg  # noqa: E402
from advmed.attacks.universal import predict  # noqa: E402
from advmed.data import ImageSet  # noqa: E402
from advmed.experiments.profiles import PROFILES, ModelSpec, UAPExplorerSettings, UAPSettings  # noqa: E402
from advmed.experiments.universal import plots as uplots  # noqa: E402
from advmed.experiments.universal import run as universal  # noqa: E402
from advmed.experiments.zoo import ModelKey  # noqa: E402

SIZE = 12
GRAY, COLOUR = "pneumonia_cxr", "melanoma_derm"
CLASSES = {GRAY: ("normal", "pneumonia"), COLOUR: ("benign", "melanoma")}


def _images(task: str, n: int, seed: int) -> ImageSet:
    """Two classes, class 1 brighter in the centre; the gray task has three equal channels."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = 0.35 + 0.1 * torch.rand(n, 3, SIZE, SIZE, generator=g)
    x[y == 1, :, 3:9, 3:9] += 0.15
    if task == GRAY:
        x = x[:, :1].repeat(1, 3, 1, 1)
    return ImageSet(images=(x.clamp(0, 1) * 255).round().to(torch.uint8), labels=y, classes=list(CLASSES[task]),
                    name=task, split="test")


@dataclass
class _Config:
    name: str

    def key(self) -> str:
        return hashlib.sha256(self.name.encode()).hexdigest()[:16]


@dataclass
class _TM:
    model: nn.Module
    config: _Config
    classes: tuple
    init_used: str = "scratch"


def _train(task: str, width: int, seed: int) -> _TM:
    data = _images(task, 96, seed=100 + seed)
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                        nn.Linear(4 * width, 2))
    opt = torch.optim.Adam(net.parameters(), lr=0.02)
    for _ in range(60):
        opt.zero_grad()
        nn.functional.cross_entropy(net(data.float()), data.labels).backward()
        opt.step()
    return _TM(net.eval(), _Config(f"{task}-{width}-{seed}"), CLASSES[task])


@pytest.fixture(scope="module")
def zoo():
    return {(t, arch, "scratch"): _train(t, w, i) for i, (t, (arch, w)) in
            enumerate((t, a) for t in (GRAY, COLOUR) for a in (("tiny_a", 6), ("tiny_b", 8)))}


def _profile():
    base = PROFILES["smoke"]
    return dataclasses.replace(
        base, name="test", tasks={GRAY: SIZE, COLOUR: SIZE}, models=(ModelSpec("tiny_a"), ModelSpec("tiny_b")),
        eval=dataclasses.replace(base.eval, max_test=None, n_boot=50), seeds=(0,),
        uap=UAPSettings(n_build=48, n_eval=48, max_passes=2, zetas=(0.04, 0.08), norms=("l2", "linf"),
                        method="batched", batch_size=16, step_fraction=0.25, targeted_zetas=(0.08,),
                        natural_images=32, natural_models=("tiny_a:scratch",)),
        uap_explorer=UAPExplorerSettings(models=1, n_images=2, live_zetas=(0.12,), budget_mb=2.0))


@pytest.fixture(scope="module")
def world(zoo, tmp_path_factory):
    """Build / held-out / photo sets per task instead of the data layer, a private cache, the
    experiment and its static explorer (shared by the tests, which only read them)."""
    sets = {t: {"build": _images(t, 48, 1), "eval": _images(t, 48, 2), "natural": _images(t, 32, 3)} for t in CLASSES}
    for ds in (s["natural"] for s in sets.values()):
        ds.images = torch.flip(ds.images, dims=[2])  # "photos": other content
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ADVMED_CACHE", str(tmp_path_factory.mktemp("uap-explorer-cache")))
        mp.setattr(universal, "build_set", lambda task, prof, progress=True: sets[task]["build"])
        mp.setattr(universal, "eval_set", lambda task, prof, progress=True: sets[task]["eval"])
        mp.setattr(universal, "natural_set", lambda task, prof, photos="all", progress=True: sets[task]["natural"])
        prof = _profile()
        exp = universal.uap_experiment(prof, trained=zoo, progress=False)
        static = uplots.explorer(exp, profile=prof, mode="static")
        yield prof, exp, static


@pytest.fixture
def profile(world):
    return world[0]


@pytest.fixture
def exp(world):
    return world[1]


@pytest.fixture
def static(world):
    return world[2]


def _key(**changes):
    base = dict(task=GRAY, model="tiny_a:scratch", norm="l2", zeta=0.08, target=None, source="medical")
    return wg.UAPSetting(**{**base, **changes})


# --------------------------------------------------------------------------- static
def test_static_explorer_holds_the_profiles_grid(static):
    w = static
    assert isinstance(w, wg.StaticExplorer)
    # models=1 in the profile: the model control is fixed text, not a dead control
    assert w.levels == ["task", "norm", "zeta", "target", "source"]
    assert "tiny_a (scratch)" in w.children[0].value
    assert [v for _, v in w.controls["target"].options] == ["none", 0, 1]
    assert w.controls["zeta"].value == 0.08  # the largest zeta first: where targeted UAPs exist
    # every key of the grid reaches its own leaf through the linked stacks
    for key, leaf in w.images.items():
        assert wg.shown(w, key) is leaf
    assert wg.dead_controls(w) == []
    # 2 tasks x 2 norms x (zeta 0.04: non-targeted; 0.08: 3 targets) x 2 sources
    assert w.n_frames == 2 * 2 * (1 + 3) * 2
    note = w.images[_key(zeta=0.04, target=1).key()]
    assert isinstance(note, ipywidgets.HTML) and "zeta 8 %" in note.value and "on demand" in note.value
    assert 0 < w.payload_bytes <= w.budget_bytes
    assert f"{w.n_frames} frames" in w.children[-1].value and "budget 2 MB" in w.children[-1].value


def test_frames_show_the_experiments_runs(static, exp, profile, zoo):
    w = static
    k = _key()
    run = exp.runs[universal.RunKey(GRAY, "tiny_a", "scratch", "l2", 0.08, None)]
    v = w.computed[k.key()]
    assert torch.equal(v.delta, run.delta)
    assert v.rate == exp.rates(universal.RunKey(*k[:1], "tiny_a", "scratch", "l2", 0.08, None)).rate
    idx = uplots.explorer_images(exp.sets[GRAY].labels, 2, profile.seed)
    assert v.clean == run.clean[idx].tolist() and v.adv == run.adv[idx].tolist()
    assert sorted(exp.sets[GRAY].labels[idx].tolist()) == [0, 1]  # one image per class
    # the random-control frame draws the very control whose predictions the run holds
    r = w.computed[_key(source="random").key()]
    assert r.delta.shape == run.delta.shape and not torch.equal(r.delta, run.delta)
    assert float(r.delta.norm()) == pytest.approx(float(run.delta.norm()), rel=1e-5)  # L2: the UAP's own norm
    xe = exp.sets[GRAY].float()[:, :1]
    gray_model = universal.GrayInput(zoo[(GRAY, "tiny_a", "scratch")].model)
    assert torch.equal(predict(gray_model, xe, r.delta), run.random)
    assert r.rate == exp.rates(universal.RunKey(GRAY, "tiny_a", "scratch", "l2", 0.08, None)).random


def test_gray_tasks_show_gray_perturbations(static):
    import io

    import numpy as np
    from PIL import Image

    w = static
    gray, colour = w.computed[_key().key()], w.computed[_key(task=COLOUR).key()]
    assert gray.delta.shape[1] == 1 and colour.delta.shape[1] == 3
    # the perturbation panel (top left) of a gray task's frame has no colour at all
    for view, expect_gray in ((gray, True), (colour, False)):
        im = Image.open(io.BytesIO(wg.render_uap_frame(view, quantize=False))).convert("RGB")
        W, H = im.size
        panel = np.asarray(im.crop((int(0.04 * W), int(0.3 * H), int(0.2 * W), int(0.5 * H))), dtype=int)
        spread = int((panel.max(axis=2) - panel.min(axis=2)).max())
        assert (spread == 0) == expect_gray, spread


def test_frames_name_the_direction_of_each_flip(static, harm_label_calls):
    calls = harm_label_calls
    view = static.computed[_key().key()]
    assert view.task == GRAY
    wg.render_uap_frame(view, quantize=False)
    assert [c[2:] for c in calls] == [(int(t), int(c), int(a)) for t, c, a in zip(view.y, view.clean, view.adv)]
    assert {c[0] for c in calls} == {GRAY}


def test_static_frames_are_memoised_by_the_run_digests(static, exp, profile, monkeypatch):
    first = static
    monkeypatch.setattr(wg.universal, "render_uap_frame", lambda *a, **k: pytest.fail("drew a frame again"))
    second = uplots.explorer(exp, profile=profile, mode="static")
    assert second.n_frames == first.n_frames and second.computed == {}
    assert [v.value for v in second.images.values()] == [v.value for v in first.images.values()]
    # another UAP is another key: drawn again (and here, fails)
    k = next(iter(exp.runs))
    other = dataclasses.replace(exp, runs={**exp.runs, k: dataclasses.replace(exp.runs[k], delta=exp.runs[k].delta / 2)})
    with pytest.raises(pytest.fail.Exception, match="drew a frame"):
        uplots.explorer(other, profile=profile, mode="static")


def test_photo_uaps_for_chapter_4(zoo, profile):
    natural = universal.natural_uap_experiment(profile, trained=zoo, progress=False)
    medical = universal.uap_experiment(dataclasses.replace(profile, uap=dataclasses.replace(
        profile.uap, targeted=False)), trained=zoo, progress=False)
    w = uplots.explorer(medical, natural, profile=profile, mode="static")
    assert [v for _, v in w.controls["source"].options] == ["natural", "medical", "random"]
    assert "target" not in w.controls  # no targeted UAP in either: fixed text
    k = _key(source="natural").key()
    assert torch.equal(w.computed[k].delta, natural.runs[universal.RunKey(GRAY, "tiny_a", "scratch", "l2", 0.08,
                                                                         None)].delta)
    assert "natural photos" in w.computed[_key(source="random").key()].setting
    assert wg.dead_controls(w) == []


# --------------------------------------------------------------------------- live
def test_live_explorer_responds_and_builds_other_settings(exp, profile, monkeypatch):
    w = uplots.explorer(exp, profile=profile, mode="live")
    assert isinstance(w, wg.LiveExplorer)
    c = w.controls
    # live, every model and the extra zeta are offered
    assert [v for _, v in c["model"].options] == ["tiny_a:scratch", "tiny_b:scratch"]
    assert [v for _, v in c["zeta"].options] == [0.04, 0.08, 0.12]
    shown = [w.image.value]
    for name, value in (("task", COLOUR), ("model", "tiny_b:scratch"), ("norm", "linf"), ("target", 1),
                        ("source", "random"), ("zeta", 0.04)):
        c[name].value = value
        assert w.image.value[:4] == b"\x89PNG" and w.image.value != shown[-1], name
        shown.append(w.image.value)
    # zeta 0.04 targeted was not built by the experiment: the explorer built it now
    built = universal.RunKey(COLOUR, "tiny_b", "scratch", "linf", 0.04, 1)
    assert built not in exp.runs and w.current == _key(task=COLOUR, model="tiny_b:scratch", norm="linf",
                                                       zeta=0.04, target=1, source="random").key()
    calls = []
    real = universal.uap
    monkeypatch.setattr(universal, "uap", lambda *a, **k: calls.append(1) or real(*a, **k))
    c["zeta"].value = 0.12  # outside the experiment: one UAP built on demand
    assert len(calls) == 1 and w.image.value != shown[-1]
    c["zeta"].value = 0.04  # cached in the widget
    c["zeta"].value = 0.12
    assert len(calls) == 1 and w.status.value == ""
    # a second explorer reloads the on-demand UAP from the memo: no new build
    again = uplots.explorer(exp, profile=profile, mode="live")
    for name, value in (("task", COLOUR), ("model", "tiny_b:scratch"), ("norm", "linf"), ("target", 1),
                        ("zeta", 0.12)):
        again.controls[name].value = value
    assert len(calls) == 1 and again.image.value[:4] == b"\x89PNG"


def test_live_says_what_is_missing(exp, profile, zoo):
    one = {k: v for k, v in exp.trained.items() if k.task == GRAY}
    colour_a = ModelKey(COLOUR, "tiny_a", "scratch")
    partial = dataclasses.replace(exp, trained={**one, colour_a: zoo[tuple(colour_a)]})
    w = uplots.explorer(partial, profile=profile, mode="live")
    w.controls["task"].value = COLOUR
    w.controls["model"].value = "tiny_b:scratch"
    assert w.image.value == b"" and "No tiny_b (scratch) model" in w.status.value


def test_mode_follows_the_environment(exp, profile, monkeypatch):
    monkeypatch.setenv("ADVMED_WIDGETS", "live")
    assert wg.resolve_mode() == "live" and wg.resolve_mode("static") == "static"
    monkeypatch.setenv("ADVMED_WIDGETS", "static")
    assert isinstance(uplots.explorer(exp, profile=profile), wg.StaticExplorer)
    monkeypatch.delenv("ADVMED_WIDGETS")
    assert wg.resolve_mode() == "static"  # no kernel here
    with pytest.raises(ValueError, match="static, live"):
        wg.resolve_mode("browser")


@pytest.mark.browser
def test_static_uap_explorer_in_headless_chromium(static, tmp_path):
    """Every control of the static UAP explorer, moved in the browser, shows another frame,
    and the frames shown are the precomputed ones."""
    try:
        from tests.browser import Browser, require_chromium
        from tests.test_widgets import write_page
    except ImportError:  # pytest put tests/ itself on sys.path
        from browser import Browser, require_chromium
        from test_widgets import write_page
    import hashlib

    require_chromium()
    write_page(static, tmp_path)
    with Browser(tmp_path, timeout=60) as b:
        b.driver.set_script_timeout(30)
        b.open("index.html")
        assert b.wait_for_widgets(timeout=60) >= 1
        b.wait_until("return document.querySelectorAll('.advmed-explorer').length === 1", timeout=60)
        root = b.explorers()[0]
        first = b.wait_for_frame(root)
        default = tuple(c.default_value() for c in static.specs)
        assert first == ("png", hashlib.sha1(static.images[default].value).hexdigest())
        assert [b.control_state(c)[0] for c in b.explorer_controls(root)] == ["task", "target", "norm", "UAP from",
                                                                             "zeta"]
        assert b.explorer_problems(root) == []
        assert "budget 2 MB" in b.text()
        assert not [e for e in b.console_errors() if "favicon" not in e]
        b.screenshot(tmp_path / "uap_explorer.png", full_page=False)
