"""The patch explorer (advmed.widgets.patch, fed by advmed.experiments.patches.plots.explorer).

Synthetic images and tiny CNNs fitted here (about a second each) stand in for the zoo and
the surrogates; the image selections and the surrogate training are monkeypatched; results
go to a private cache. One task is gray (three equal channels), one colour.
"""
from __future__ import annotations

import dataclasses
import functools

import numpy as np
import pytest
import torch
from torch import nn

ipywidgets = pytest.importorskip("ipywidgets")

from advmed import widgets as wg  # noqa: E402
from advmed.data import ImageSet  # noqa: E402
from advmed.experiments.kernel import surrogates as S  # noqa: E402
from advmed.experiments.patches import plots as P  # noqa: E402
from advmed.experiments.patches import run as PR  # noqa: E402
from advmed.experiments.profiles import PROFILES, ModelSpec, PatchExplorerSettings, PatchSettings  # noqa: E402
from advmed.models import predict_proba  # noqa: E402
from advmed.train import TrainConfig  # noqa: E402

from fake_zoo import FakeTrained, fit_tiny

SIZE = 20
GRAY, COLOUR = "pneumonia_cxr", "melanoma_derm"
CLASSES = {GRAY: ["normal", "pneumonia"], COLOUR: ["nevus", "melanoma"]}


def _images(task: str, n: int, seed: int) -> ImageSet:
    """Class 1 brighter everywhere; the gray task has three equal channels. uint8."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = 0.35 + 0.1 * torch.rand(n, 1 if task == GRAY else 3, SIZE, SIZE, generator=g)
    x[y == 1] += 0.1
    x = x.expand(-1, 3, -1, -1)
    return ImageSet(images=(x.clamp(0, 1) * 255).round().to(torch.uint8).contiguous(), labels=y,
                    classes=list(CLASSES[task]), name=task, split="test")


@functools.lru_cache(maxsize=None)
def _fit(task: str, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                        nn.Linear(24, 2))
    return fit_tiny(net, _images(task, 128, 100 + seed), steps=80)


_TM = FakeTrained  # always given the task's classes


def _profile():
    base = PROFILES["smoke"]
    return dataclasses.replace(
        base, name="test", tasks={GRAY: SIZE, COLOUR: SIZE}, models=(ModelSpec("tiny"),), seeds=(0,),
        eval=dataclasses.replace(base.eval, max_test=None, n_boot=50),
        blackbox=dataclasses.replace(base.blackbox, model="tiny:scratch", surrogate_train={}),
        patch=PatchSettings(tasks=(GRAY, COLOUR), n_train=48, n_eval=32, steps=20, lr=0.05, batch_size=16,
                            eval_scales=(0.5, 1.0, 1.5), model="tiny:scratch", gallery_images=2),
        patch_explorer=PatchExplorerSettings(tasks=1, scales=(0.5, 1.0), rotations=(0.0, 45.0),
                                             locations=("random", "top-left"), n_images=2, live_scales=(1.25,),
                                             live_rotations=(10.0,), budget_mb=2.0))


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The experiment on synthetic data in a private cache, and its static explorer (shared
    by the tests, which only read them)."""
    zoo = {(t, "tiny", "scratch"): _TM(_fit(t, 0), TrainConfig(task=t, arch="tiny", size=SIZE, max_train=64),
                                       tuple(CLASSES[t])) for t in (GRAY, COLOUR)}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ADVMED_CACHE", str(tmp_path_factory.mktemp("patch-explorer-cache")))
        mp.setattr(PR, "train_set", lambda task, prof: _images(task, 48, 1))
        mp.setattr(PR, "eval_set", lambda task, prof: _images(task, 32, 2))
        mp.setattr(S, "train_split_counts", lambda cfg: (np.arange(200) % 2, None))
        mp.setattr(S, "get_trained_model",
                   lambda cfg, device=None, progress=False: _TM(_fit(cfg.task, 7), cfg, tuple(CLASSES[cfg.task])))
        prof = _profile()
        exp = PR.patch_experiment(prof, zoo, progress=False)
        static = P.explorer(exp, profile=prof, mode="static")
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
    base = dict(task=GRAY, patch="white-box", scale=1.0, rotation=0.0, location="random")
    return wg.PatchSetting(**{**base, **changes})


# --------------------------------------------------------------------------- static
def test_static_explorer_holds_the_profiles_grid(static):
    w = static
    assert isinstance(w, wg.StaticExplorer)
    # tasks=1 in the profile: the task control is fixed text, not a dead control
    assert w.levels == ["patch", "scale", "rotation", "location"]
    assert {n: type(c).__name__ for n, c in w.controls.items()} == {
        "patch": "ToggleButtons", "scale": "SelectionSlider", "rotation": "SelectionSlider", "location": "Dropdown"}
    assert [v for _, v in w.controls["patch"].options] == list(PR.KINDS)
    assert [v for _, v in w.controls["scale"].options] == [0.5, 1.0]
    assert w.controls["scale"].value == 1.0  # the comparison scale first
    for key, leaf in w.images.items():  # every key reaches its own frame through the linked stacks
        assert wg.shown(w, key) is leaf and isinstance(leaf, ipywidgets.Image)
    assert wg.dead_controls(w) == []
    assert w.n_frames == 3 * 2 * 2 * 2
    assert 0 < w.payload_bytes <= w.budget_bytes
    assert f"{w.n_frames} frames" in w.children[-1].value and "budget 2 MB" in w.children[-1].value


def test_frames_show_the_experiments_patches(static, exp):
    w = static
    for kind in PR.KINDS:
        run = exp.runs[PR.PatchKey(GRAY, "tiny", "scratch", kind)]
        v = w.computed[tuple(_key(patch=kind, scale=0.5))]
        row = run.at(0.5)
        assert (v.rate.value, v.rate.lo, v.rate.hi) == (row["success_rate"], row["success_rate_lo"],
                                                        row["success_rate_hi"])
        assert v.targets == [1 - t for t in v.y] and sorted(v.y) == [0, 1]  # one image per class
        model = exp.trained[PR.PatchKey(GRAY, "tiny", "scratch", kind).model].model
        assert np.allclose(v.patched_proba, predict_proba(model, v.patched))
        # the patch changed the images, and only inside the patch's extent (a disc of side 0.2)
        changed = (v.patched - v.x).abs().amax(1) > 1e-6
        assert 0 < changed[0].float().mean() <= np.pi * (0.5 * 0.4 / 2) ** 2 * 1.6
    a, b = w.computed[tuple(_key())], w.computed[tuple(_key(location="top-left"))]
    tl = (b.patched - b.x).abs().amax(1)[0] > 1e-6
    assert tl[:SIZE // 2, :SIZE // 2].any() and not tl[SIZE // 2:, SIZE // 2:].any()  # top left corner only
    assert not torch.equal(a.patched, b.patched)


def test_frames_name_the_direction_of_each_flip(static, harm_label_calls):
    calls = harm_label_calls
    view = static.computed[_key()]
    assert view.task == GRAY
    wg.patch.render_patch_frame(view, quantize=False)
    assert [c[2] for c in calls] == [int(t) for t in view.y]
    assert [c[4] for c in calls] == [int(np.asarray(p).argmax()) for p in view.patched_proba]


def test_static_frames_are_memoised_by_the_patch_digests(static, exp, profile, monkeypatch):
    monkeypatch.setattr(wg.patch, "render_patch_frame", lambda *a, **k: pytest.fail("drew a frame again"))
    second = P.explorer(exp, profile=profile, mode="static")
    assert second.n_frames == static.n_frames and second.computed == {}
    assert [v.value for v in second.images.values()] == [v.value for v in static.images.values()]
    k = PR.PatchKey(GRAY, "tiny", "scratch", "natural")
    other = dataclasses.replace(exp, runs={**exp.runs, k: dataclasses.replace(exp.runs[k], patch=exp.runs[k].patch / 2)})
    with pytest.raises(pytest.fail.Exception, match="drew a frame"):
        P.explorer(other, profile=profile, mode="static")


# --------------------------------------------------------------------------- live
def test_live_explorer_responds_and_evaluates_other_scales(exp, profile, monkeypatch):
    w = P.explorer(exp, profile=profile, mode="live")
    assert isinstance(w, wg.LiveExplorer)
    c = w.controls
    assert [v for _, v in c["scale"].options] == [0.5, 1.0, 1.25, 1.5]  # every evaluated scale and the live one
    assert [v for _, v in c["rotation"].options] == [0.0, 10.0, 45.0]
    shown = [w.image.value]
    for name, value in (("task", COLOUR), ("patch", "black-box"), ("scale", 1.5), ("rotation", 45.0),
                        ("location", "bottom-right"), ("location", "center")):
        c[name].value = value
        assert w.image.value[:4] == b"\x89PNG" and w.image.value != shown[-1], name
        shown.append(w.image.value)
    calls = []
    real = PR.evaluate_patch
    monkeypatch.setattr(PR, "evaluate_patch", lambda *a, **k: calls.append(k["scale"]) or real(*a, **k))
    c["scale"].value = 1.25  # not evaluated by the experiment: evaluated now, once
    assert calls == [1.25] and w.image.value != shown[-1] and w.status.value == ""
    v = w.cache[w.current]
    assert v.rate_name.endswith("1.25") and 0 <= v.rate.lo <= v.rate.value <= v.rate.hi <= 1
    assert all(not (r.evals["scale"] == 1.25).any() for r in exp.runs.values())
    again = P.explorer(exp, profile=profile, mode="live")  # memoised: a second explorer evaluates nothing
    for name, value in (("task", COLOUR), ("patch", "black-box"), ("scale", 1.25)):
        again.controls[name].value = value
    assert calls == [1.25] and again.image.value[:4] == b"\x89PNG"


def test_live_says_what_is_missing(exp, profile):
    k = PR.PatchKey(COLOUR, "tiny", "scratch", "black-box")
    partial = dataclasses.replace(exp, runs={kk: r for kk, r in exp.runs.items() if kk != k})
    w = P.explorer(partial, profile=profile, mode="live")
    w.controls["task"].value = COLOUR
    w.controls["patch"].value = "black-box"
    assert w.image.value == b"" and "No black-box patch" in w.status.value


def test_controls_refuse_unknown_values():
    kw = dict(tasks=[("t", "t")], patches=["white-box"], scales=[1.0], rotations=[0.0], locations=["center"])
    with pytest.raises(ValueError, match="valid: white-box, black-box, natural"):
        wg.patch_controls(**{**kw, "patches": ["grey-box"]})
    with pytest.raises(ValueError, match="valid: random, center"):
        wg.patch_controls(**{**kw, "locations": ["middle"]})
    with pytest.raises(KeyError, match="valid: task, patch"):
        wg.patch_controls(**kw, live={"size": [1]})
    ctl = wg.patch_controls(**kw)
    with pytest.raises(ValueError, match="in that order"):
        wg.patch_explorer(lambda s: None, ctl[::-1], mode="static")
