"""advmed.experiments.patches (chapter 6) on tiny models and synthetic images.

A tiny CNN fitted in a second stands in for the target and another for its surrogate; the
image selections and the surrogate training are monkeypatched; results go to a private cache.
"""
from __future__ import annotations

import dataclasses
import functools
import io
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from advmed.attacks.patch import patch_area
from advmed.data import ImageSet
from advmed.experiments import references
from advmed.experiments.kernel import surrogates as S
from advmed.experiments.patches import plots as P
from advmed.experiments.patches import report as R
from advmed.experiments.patches import run as PR
from advmed.experiments.patches import tables as T
from advmed.experiments.profiles import PROFILES, ModelSpec, PatchSettings, get_profile
from advmed.train import TrainConfig

from fake_zoo import FakeTrained, fit_tiny

SIZE = 20
TASK = "melanoma_derm"


def _images(n: int, seed: int, gray: bool = False) -> ImageSet:
    """Class 1 is brighter everywhere (by 0.1): a feature no small crop of it carries, as a
    lesion's malignancy is not in a patch of its skin. uint8 (n, 3, SIZE, SIZE)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = 0.35 + 0.1 * torch.rand(n, 1 if gray else 3, SIZE, SIZE, generator=g)
    x[y == 1] += 0.1
    x = x.expand(-1, 3, -1, -1) if gray else x
    return ImageSet(images=(x.clamp(0, 1) * 255).round().to(torch.uint8).contiguous(), labels=y,
                    classes=["nevus", "melanoma"], name=TASK, split="test")


@functools.lru_cache(maxsize=None)  # one fit per (width, seed) for the whole module
def _fit(width: int, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                        nn.Linear(4 * width, 2))
    return fit_tiny(net, _images(256, 100 + seed), steps=120)


@dataclass
class _TM(FakeTrained):
    classes: tuple = ("nevus", "melanoma")


@pytest.fixture(scope="module")
def zoo():
    cfg = TrainConfig(task=TASK, arch="tiny", size=SIZE, max_train=64)
    return {(TASK, "tiny", "scratch"): _TM(_fit(8, 0), cfg)}


@pytest.fixture
def profile():
    base = PROFILES["smoke"]
    return dataclasses.replace(
        base, name="test", tasks={TASK: SIZE}, models=(ModelSpec("tiny"),), seeds=(0,),
        eval=dataclasses.replace(base.eval, max_test=None, n_boot=50),
        blackbox=dataclasses.replace(base.blackbox, model="tiny:scratch", surrogate_train={}),
        patch=PatchSettings(tasks=(TASK,), n_train=64, n_eval=40, steps=60, lr=0.05, batch_size=16,
                            eval_scales=(0.5, 1.0, 1.5), model="tiny:scratch", gallery_images=2))


def _patch_data(monkeypatch, gray: bool = False):
    monkeypatch.setattr(PR, "train_set", lambda task, prof: _images(64, 1, gray))
    monkeypatch.setattr(PR, "eval_set", lambda task, prof: _images(40, 2, gray))
    monkeypatch.setattr(S, "train_split_counts", lambda cfg: (np.arange(200) % 2, None))
    monkeypatch.setattr(S, "get_trained_model", lambda cfg, device=None, progress=False: _TM(_fit(8, 7), cfg))


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("patch-cache")


@pytest.fixture
def synthetic(monkeypatch, cache):
    """Synthetic train / test images and surrogate, one cache for the module (computed once)."""
    monkeypatch.setenv("ADVMED_CACHE", str(cache))
    _patch_data(monkeypatch)


@pytest.fixture
def exp(zoo, profile, synthetic):
    return PR.patch_experiment(profile, zoo, progress=False)


def test_three_patches_each_evaluated_at_every_scale(exp):
    assert {k.kind for k in exp.runs} == set(PR.KINDS)
    sizes = {int(r.patch.shape[-1]) for r in exp.runs.values()}
    assert len(sizes) == 1  # the natural patch has the adversarial patch's size
    for k, run in exp.runs.items():
        assert run.patch.shape[0] == 2 and run.patch.min() >= 0 and run.patch.max() <= 1
        e = run.evals
        assert list(e["scale"]) == [0.5, 1.0, 1.5]
        assert np.all(np.diff(e["area"]) > 0)
        assert e["area"].iloc[1] == pytest.approx(patch_area((SIZE, SIZE), scale=1.0), rel=1e-9)
        assert e[["accuracy", "auc", "success_rate"]].stack().between(0, 1).all()
    assert exp.runs[PR.PatchKey(TASK, "tiny", "scratch", "black-box")].source.endswith("another seed")


def test_the_adversarial_patch_beats_the_natural_one(exp):
    white = exp.runs[PR.PatchKey(TASK, "tiny", "scratch", "white-box")].at(1.0)
    natural = exp.runs[PR.PatchKey(TASK, "tiny", "scratch", "natural")].at(1.0)
    assert white["success_rate"] > natural["success_rate"] + 0.2
    assert white["accuracy"] < natural["accuracy"]


def test_patch_perceptibility_measures_the_pasted_patch(exp):
    perc = PR.perceptibility(exp, n_images=8)
    assert len(perc) == len(exp.runs) and set(perc["kind"]) == set(PR.KINDS)
    area = patch_area((SIZE, SIZE), scale=exp.settings.eval_scale, shape=exp.settings.shape)
    assert np.allclose(perc["area"], area)
    # a patch replaces pixels: visible (SSIM below one) and no larger a change than the full range
    assert (perc["ssim"] < 1).all() and (perc["linf_255"] <= 255 + 1e-6).all() and (perc["n_images"] == 8).all()
    shown = T.perceptibility_summary(perc)
    assert list(shown["patch"]) == list(perc["kind"]) and "SSIM, median" in shown.columns
    assert "grey levels" in R.perceptibility_reading(perc)


def test_patches_are_memoised(zoo, profile, exp, monkeypatch):
    first = T.scale_table(exp)

    def boom(*a, **k):
        raise AssertionError("recomputed a memoised patch")

    monkeypatch.setattr(PR, "train_patch", boom)
    monkeypatch.setattr(PR, "evaluate_patch", boom)
    pd.testing.assert_frame_equal(first, T.scale_table(PR.patch_experiment(profile, zoo, progress=False)))
    with pytest.raises(AssertionError, match="recomputed"):
        PR.patch_experiment(get_profile(profile, patch={"steps": 61}), zoo, progress=False)


def test_gray_images_get_a_gray_patch(zoo, profile, monkeypatch, tmp_cache):
    _patch_data(monkeypatch, gray=True)
    exp = PR.patch_experiment(get_profile(profile, patch={"steps": 5}), zoo, progress=False)
    for kind in PR.KINDS:
        p = exp.runs[PR.PatchKey(TASK, "tiny", "scratch", kind)].patch
        assert torch.equal(p[:, 0], p[:, 1]) and torch.equal(p[:, 0], p[:, 2]), kind


def test_finlayson_table_prose_and_figures(profile, exp):
    table = T.finlayson_table(exp)
    assert list(table["patch"]) == list(PR.KINDS)
    ref = next(r for r in references.FINLAYSON_PATCH if r["task"] == TASK)
    assert list(table["accuracy study"]) == [ref["white_acc"], ref["black_acc"], ref["natural_acc"]]
    numeric = T.finlayson_table(exp, numeric=True)
    np.testing.assert_allclose(numeric["accuracy ours - study"],
                               (numeric["accuracy ours"] - numeric["accuracy study"]).round(4))
    text = R.finlayson_reading(numeric)
    assert "white-box patch" in text and "natural patch" in text
    assert "scale" in R.scale_reading(exp) and "12.6%" in R.scale_note()
    assert len(T.settings_table(profile)) > 10 and len(T.training_table(exp)) == 3
    for f in (P.gallery_grid(exp), P.scale_grid(exp)):
        f.savefig(io.BytesIO(), format="png")
    from advmed import pages

    brief = T.finlayson_summary(exp)
    assert list(brief["patch"]) == list(PR.KINDS) and len(brief.columns) == 7
    assert list(brief["accuracy study"]) == list(table["accuracy study"])
    assert brief["accuracy ours"].str.match(r"^\d\.\d\d \[\d\.\d\d, \d\.\d\d\]$").all()
    for prof in PROFILES.values():
        assert len(T.settings_brief(prof)) <= pages.MAX_TABLE_ROWS


def test_every_profile_patches_binary_tasks_it_has():
    for prof in PROFILES.values():
        s = prof.patch
        assert set(s.tasks or ()) <= set(prof.tasks), prof.name
        assert s.eval_scale in s.eval_scales or s.eval_scale == 1.0
        assert 0 < min(s.eval_scales) and max(s.eval_scales) <= 2.5  # a circle fits at <= 2.5
