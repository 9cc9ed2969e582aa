"""advmed.experiments.universal: experiment-level UAPs on tiny trained models and synthetic data.

No real data and no checkpoints: the image selections are monkeypatched to small synthetic
sets and the "trained models" are two tiny CNNs fitted here in about a second.
"""
from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from advmed.attacks.universal import eps_from_zeta
from advmed.data import ImageSet
from advmed.experiments.profiles import PROFILES, ModelSpec, UAPSettings, get_profile
from fake_zoo import FakeTrained, fit_tiny
from advmed.experiments.universal import run as universal
from advmed.experiments.universal import report, tables
from advmed.models import as_rgb, is_gray

SIZE = 8
TASK = "pneumonia_cxr"


def _images(n: int, seed: int) -> ImageSet:
    """Two classes: class 1 has a brighter centre. uint8 (n, 3, 8, 8)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = 0.35 + 0.1 * torch.rand(n, 3, SIZE, SIZE, generator=g)
    x[y == 1, :, 2:6, 2:6] += 0.15
    return ImageSet(images=(x.clamp(0, 1) * 255).round().to(torch.uint8), labels=y,
                    classes=["normal", "pneumonia"], name=TASK, split="test")


def _net(width: int, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
                         nn.Flatten(), nn.Linear(4 * width, 2))


@dataclass
class _Config:
    name: str
    size: int = SIZE

    def key(self) -> str:
        return hashlib.sha256(self.name.encode()).hexdigest()[:16]


def _train(width: int, seed: int) -> FakeTrained:
    net = fit_tiny(_net(width, seed), _images(256, seed=100 + seed), steps=150, lr=0.02)
    return FakeTrained(net, _Config(f"tiny-{width}-{seed}"))


@pytest.fixture(scope="module")
def zoo():
    return {(TASK, "tiny_a", "scratch"): _train(8, 0), (TASK, "tiny_b", "scratch"): _train(12, 1)}


@pytest.fixture
def profile():
    base = PROFILES["smoke"]
    return dataclasses.replace(
        base, name="test", tasks={TASK: SIZE}, models=(ModelSpec("tiny_a"), ModelSpec("tiny_b")),
        eval=dataclasses.replace(base.eval, max_test=None, n_boot=50), seeds=(0,),
        uap=UAPSettings(n_build=64, n_eval=64, max_passes=3, zetas=(0.08,), norms=("l2", "linf"), method="batched",
                        batch_size=8, step_fraction=0.25, natural_images=32))


@pytest.fixture
def synthetic(monkeypatch, tmp_cache):
    """Synthetic build / eval / natural sets instead of the data layer; a private cache."""
    build, evalset = _images(64, 1), _images(64, 2)
    nat = _images(32, 3)
    nat.images = torch.flip(nat.images, dims=[1])  # "other" photos: different content
    monkeypatch.setattr(universal, "build_set", lambda task, prof, progress=True: build)
    monkeypatch.setattr(universal, "eval_set", lambda task, prof, progress=True: evalset)
    # the two disjoint photo sources: halves of the photos, each flipped its own way
    sources = {"all": nat, "animals": nat.subset(list(range(16))), "objects": nat.subset(list(range(16, 32)))}
    sources["objects"].images = torch.flip(sources["objects"].images, dims=[3])
    monkeypatch.setattr(universal, "natural_set", lambda task, prof, photos="all", progress=True: sources[photos])
    return build, evalset, nat


def test_settings_from_profile_and_overrides(profile):
    p = get_profile(profile, uap={"zetas": [0.02, 0.04], "norms": None})
    assert p.uap.zetas == (0.02, 0.04) and p.uap.norms == ("l2", "linf") and p.eval.n_boot == 50
    assert p.uap.method == "batched"
    with pytest.raises(KeyError, match="valid"):
        get_profile(profile, uap={"zeeta": 0.1})
    with pytest.raises(ValueError, match="iterative, batched"):
        get_profile(profile, uap={"method": "fast"})


def test_table_columns_and_rows(zoo, profile, synthetic):
    exp = universal.uap_experiment(profile, trained=zoo, progress=False)
    # 2 models x 2 norms x 1 zeta x (non-targeted + 2 targets)
    assert len(exp.runs) == 2 * 2 * 1 * 3
    table = tables.uap_table(exp)
    assert len(table) == 12
    for col in ("task", "arch", "init", "init_used", "size", "norm", "zeta", "eps", "eps_255", "method",
                "passes", "n_build", "n_eval", "attack", "rate", "rate_all", "random", tables.CLAIM_COLUMN):
        assert col in table.columns, col
    assert set(table["method"]) == {"batched"}
    assert table[tables.CLAIM_COLUMN].str.match(r"^(yes|no) \(\d\.\d{3}\)$").all()
    assert set(table["attack"]) == {"non-targeted", "targeted -> normal", "targeted -> pneumonia"}
    numeric = tables.uap_table(exp, numeric=True)
    assert numeric["rate"].between(0, 1).all() and (numeric["rate_lo"] <= numeric["rate_hi"]).all()
    claims = tables.claim_summary(numeric)
    assert len(claims) == 2 * 3  # per norm x zeta x attack, across the 2 models
    assert claims["little_arch_dependence"].str.match(r"^(yes|no) \(").all()


def test_perceptibility_is_chapter_2s_measure_of_each_uap_on_its_held_out_images(zoo, profile, synthetic, tmp_cache):
    from advmed.metrics import perturbation_stats

    exp = universal.uap_experiment(profile, trained=zoo, progress=False)
    perc = universal.perceptibility(exp, n_images=8)
    assert len(perc) == len(exp.runs) and (perc["n_images"] == 8).all()
    key, run = next(iter(exp.runs.items()))
    row = perc.iloc[0]
    assert row["linf_255"] == pytest.approx(float(run.delta.abs().max()) * 255)
    x = exp.sets[key.task].subset(list(range(8))).float()
    stats = perturbation_stats(x, (x + as_rgb(run.delta.float(), x.shape[1])).clamp(0, 1))
    assert row["ssim"] == pytest.approx(float(stats["ssim"].median()))
    assert row["psnr_db"] == pytest.approx(float(stats["psnr_db"].median()))
    summary = tables.perceptibility_summary(perc)
    assert len(summary) == perc.groupby(["task", "norm", "zeta"]).ngroups
    assert (summary["SSIM, lowest"] <= 1).all() and (summary["UAPs"] == 6).all()


def test_collapse_share_and_ceiling_follow_their_definitions_and_bound_the_rate(zoo, profile, synthetic):
    """one_class is the share of adversarial predictions in the most common class, ceiling the
    share of clean predictions elsewhere; a non-targeted fooling rate never exceeds the ceiling
    when every image goes to that class."""
    exp = universal.uap_experiment(profile, trained=zoo, progress=False)
    numeric = tables.uap_table(exp, numeric=True)
    strings = tables.uap_table(exp)
    for (key, r), row, srow in zip(exp.runs.items(), numeric.itertuples(), strings.itertuples()):
        adv, clean = np.asarray(r.adv), np.asarray(r.clean)
        top = np.bincount(adv).argmax()
        assert row.dominant_share == pytest.approx(np.mean(adv == top))
        assert row.ceiling == pytest.approx(np.mean(clean != top))
        assert srow.one_class == f"{row.dominant_share:.3f}" and srow.ceiling == f"{row.ceiling:.3f}"
        if key.target is None and row.dominant_share == 1.0:
            assert row.rate <= row.ceiling + 1e-12


def test_collapse_counts_and_sentence():
    t = pd.DataFrame({"attack": ["non-targeted"] * 3 + ["targeted -> a"], "zeta": [0.04, 0.04, 0.02, 0.04],
                      "dominant_share": [1.0, 0.96, 1.0, 1.0], "ceiling": [0.64, 0.9, 0.5, 0.3],
                      "rate": [0.64, 0.7, 0.5, 0.3]})
    c = tables.collapse_counts(t)
    assert (c.zeta, c.non_targeted, c.collapsed, c.at_ceiling, c.above_threshold_possible) == (0.04, 2, 2, 1, 1)
    assert c.median_ceiling == pytest.approx(0.77) and c.median_rate == pytest.approx(0.67)
    text = report.collapse_sentence(c)
    assert "2 of 2 non-targeted UAPs at zeta 4%" in text and "1 of the 2 are within 0.01" in text
    none = tables.collapse_counts(t.assign(dominant_share=0.6))
    assert none.collapsed == 0 and report.collapse_sentence(none).startswith("No non-targeted UAP")


def test_random_control_lower_than_uap(zoo, profile, synthetic):
    exp = universal.uap_experiment(get_profile(profile, uap={"norms": ["linf"]}), trained=zoo, progress=False)
    t = tables.uap_table(exp, numeric=True)
    non = t[t["attack"] == "non-targeted"]
    assert len(non) == 2
    assert (non["rate"] > non["random"]).all(), non[["arch", "rate", "random"]]
    assert (non["rate"] >= 0.5).all()


def test_memo_reuse_does_not_recompute(zoo, profile, synthetic, monkeypatch):
    first = tables.uap_table(universal.uap_experiment(profile, trained=zoo, progress=False))

    def boom(*a, **k):
        raise AssertionError("recomputed a memoised UAP")

    monkeypatch.setattr(universal, "uap", boom)
    monkeypatch.setattr(universal, "predict", boom)
    again = tables.uap_table(universal.uap_experiment(profile, trained=zoo, progress=False))
    pd.testing.assert_frame_equal(first, again)
    # a different setting is a different key: it must compute (and here, fail)
    with pytest.raises(AssertionError, match="recomputed"):
        universal.uap_experiment(get_profile(profile, uap={"zetas": [0.05]}), trained=zoo, progress=False)


def test_transfer_diagonal_is_own_fooling_rate(zoo, profile, synthetic):
    exp = universal.uap_experiment(profile, trained=zoo, progress=False)
    mat = universal.transfer_matrix(exp, TASK, norm="linf", zeta=0.08, progress=False)
    assert mat.shape == (2, 2)
    t = tables.uap_table(exp, numeric=True)
    own = t[(t["attack"] == "non-targeted") & (t["norm"] == "linf")].set_index("arch")["rate"]
    for arch in ("tiny_a", "tiny_b"):
        label = f"{arch} (scratch)"
        assert mat.loc[label, label] == pytest.approx(own[arch], abs=1e-12)
    assert mat.to_numpy().min() >= 0 and mat.to_numpy().max() <= 1


def test_natural_uaps_use_the_medical_norm(zoo, profile, synthetic):
    build, evalset, nat = synthetic
    prof = get_profile(profile, uap={"natural_models": ["tiny_a:scratch", "tiny_b:scratch"], "targeted": False})
    med = universal.uap_experiment(prof, trained=zoo, progress=False)
    natural = universal.natural_uap_experiment(prof, trained=zoo, progress=False)
    assert len(natural.runs) == 2 * 2
    for key, run in natural.runs.items():
        assert run.summary["source"] == "natural" and key.target is None
        assert run.summary["eps"] == pytest.approx(eps_from_zeta(build.float(), key.zeta, key.norm))
        assert run.summary["n_images"] == len(nat)
    table = tables.natural_vs_medical(natural, med)
    assert len(table) == 4
    for col in ("natural_uap", "medical_uap", "random", "eps", "eps_if_natural_ref", "natural_above_random"):
        assert col in table.columns
    cmp = tables.minagi_comparison(table)
    assert cmp.iloc[0]["source"].startswith("Minagi")  # study row first; ours are melanoma only
    other = universal.natural_uap_experiment(prof, trained=zoo, progress=False, zeta_reference="natural")
    run = next(iter(other.runs.values()))
    assert run.summary["eps"] == pytest.approx(eps_from_zeta(nat.float(), 0.08, "l2"))


def test_targeted_natural_uaps_aim_at_each_class_the_profile_targets(zoo, profile, synthetic):
    prof = get_profile(profile, uap={"natural_models": ["tiny_a:scratch"], "norms": ["linf"]})
    targeted = universal.natural_uap_experiment(prof, trained=zoo, targeted=True, progress=False)
    assert sorted(k.target for k in targeted.runs) == [0, 1]
    assert all(r.summary["source"] == "natural" for r in targeted.runs.values())
    med = universal.uap_experiment(prof, trained=zoo, progress=False)
    table = tables.natural_vs_medical(targeted, med)
    assert set(table["attack"]) == {"targeted -> normal", "targeted -> pneumonia"}
    # the targeted success rate counts every held-out image classified as the target
    for key, run in targeted.runs.items():
        row = table[table["attack"] == f"targeted -> {['normal', 'pneumonia'][key.target]}"].iloc[0]
        assert row["_natural"] == pytest.approx(float((run.adv == key.target).float().mean()))
        assert np.isfinite(row["_medical"])
    summary = tables.natural_summary(table)
    assert "attack" in summary.columns and len(summary) == 2
    with pytest.raises(ValueError, match="profile's"):
        universal.natural_uap_experiment(prof, trained=zoo, zetas=[0.5], progress=False)


def test_two_photo_sources_compare_on_the_same_medical_images(zoo, profile, synthetic):
    prof = get_profile(profile, uap={"natural_models": ["tiny_a:scratch", "tiny_b:scratch"], "norms": ["linf"],
                                     "targeted": False})
    animals, objects = (universal.natural_uap_experiment(prof, trained=zoo, photos=p, progress=False)
                        for p in ("animals", "objects"))
    assert {r.summary["source"] for r in objects.runs.values()} == {"natural:objects"}
    rows = universal.compare_sources(animals, objects, prof)
    assert len(rows) == 2
    for r in rows:
        a, b = animals.runs[r.key], objects.runs[r.key]
        assert r.medical[0].value == pytest.approx(a.fooling_rate) and r.medical[1].value == pytest.approx(b.fooling_rate)
        assert r.difference.value == pytest.approx(a.fooling_rate - b.fooling_rate)
        assert 0 <= r.p_mcnemar <= 1 and all(0 <= e.value <= 1 for e in r.photos)
    above = sum(all(m.lo > r.random.hi for m in r.medical) for r in rows)
    assert f"in {above} of 2 settings" in report.source_sentence(rows)
    same = universal.compare_sources(animals, animals, prof)
    assert all(r.difference.value == 0 and r.p_mcnemar == 1 for r in same)
    shown = tables.source_table(rows)
    assert list(shown.columns[:2]) == ["task", "model, norm"] and len(shown) == 2 and len(shown.columns) <= 7
    assert "animals_medical" in tables.source_table(rows, numeric=True).columns
    with pytest.raises(ValueError, match="valid: all, animals, objects"):
        universal.natural_uap_experiment(prof, trained=zoo, photos="plants", progress=False)


def test_photo_sources_are_disjoint_by_imagenet_class_and_equal_in_size(profile, monkeypatch):
    def photos(name, split, *, size, channels, progress=True):
        # 10 animal photos (classes 0-397), 30 others, 5 without a class, per folder
        labels = torch.tensor([i * 39 for i in range(10)] + [400 + i for i in range(30)] + [-1] * 5)
        return ImageSet(images=torch.zeros(len(labels), channels, size, size, dtype=torch.uint8), labels=labels,
                        classes=[], name=name, split=split)

    monkeypatch.setattr(universal, "load_dataset", photos)
    prof = get_profile(profile, uap={"natural_images": 100, "natural_split": ["a", "b"]})
    got = {p: universal.natural_set(TASK, prof, photos=p, progress=False) for p in ("animals", "objects", "all")}
    assert len(got["animals"]) == len(got["objects"]) == 20  # the smaller source, both folders
    assert bool((got["animals"].labels < 398).all()) and bool((got["objects"].labels >= 398).all())
    assert len(got["all"]) == 90 and universal.source_photos(got["all"].labels, 16) == 8


def test_photo_built_uaps_transfer_to_every_model_of_the_task(zoo, profile, synthetic):
    prof = get_profile(profile, uap={"natural_models": ["tiny_a:scratch"], "norms": ["linf"], "targeted": False})
    natural = universal.natural_uap_experiment(prof, trained=zoo, progress=False)
    mat = universal.transfer_matrix(natural, TASK, to=zoo, progress=False)
    assert list(mat.index) == ["tiny_a (scratch)"] and list(mat.columns) == ["tiny_a (scratch)", "tiny_b (scratch)"]
    own = natural.runs[(TASK, "tiny_a", "scratch", "linf", 0.08, None)].fooling_rate
    assert mat.iloc[0, 0] == pytest.approx(own) and 0 <= mat.iloc[0, 1] <= 1


def test_figures(zoo, profile, synthetic):
    from matplotlib.figure import Figure

    from advmed.experiments.universal import plots as up
    from advmed.plots import amplify

    exp = universal.uap_experiment(profile, trained=zoo, progress=False)
    key = exp.keys(targeted=False)[0]
    img, gain = amplify(exp.runs[key].delta)
    assert img.min() >= 0 and img.max() <= 1 and gain > 1
    figs = [up.transfer_heatmap(universal.transfer_matrix(exp, TASK, progress=False))]
    assert all(isinstance(f, Figure) for f in figs)
    for f in figs:
        f.savefig(__import__("io").BytesIO(), format="png")


def test_gray_images_get_a_gray_uap(zoo, profile, monkeypatch, tmp_cache):
    def gray(n, seed):
        ds = _images(n, seed)
        ds.images = ds.images[:, :1].repeat(1, 3, 1, 1)
        return ds

    build, evalset = gray(64, 1), gray(64, 2)
    monkeypatch.setattr(universal, "build_set", lambda task, prof, progress=True: build)
    monkeypatch.setattr(universal, "eval_set", lambda task, prof, progress=True: evalset)
    assert is_gray(build, evalset) and not is_gray(_images(8, 0))
    exp = universal.uap_experiment(get_profile(profile, uap={"norms": ["l2"], "targeted": False}), trained=zoo,
                                   progress=False)
    run = exp.runs[(TASK, "tiny_a", "scratch", "l2", 0.08, None)]
    assert run.delta.shape == (1, 1, SIZE, SIZE) and run.summary["gray"]
    assert run.summary["eps"] == pytest.approx(eps_from_zeta(build.float()[:, :1], 0.08, "l2"))
    assert as_rgb(run.delta).shape == (1, 3, SIZE, SIZE)
    mat = universal.transfer_matrix(exp, TASK, progress=False)
    assert np.isfinite(mat.to_numpy()).all()
    assert set(tables.uap_table(exp)["uap_channels"]) == {1}


def test_natural_gray_reference_is_one_channel(zoo, profile, monkeypatch, tmp_cache):
    def gray(n, seed):
        ds = _images(n, seed)
        ds.images = ds.images[:, :1].repeat(1, 3, 1, 1)
        return ds

    build, evalset, nat = gray(64, 1), gray(64, 2), gray(32, 3)
    monkeypatch.setattr(universal, "build_set", lambda task, prof, progress=True: build)
    monkeypatch.setattr(universal, "eval_set", lambda task, prof, progress=True: evalset)
    monkeypatch.setattr(universal, "natural_set", lambda task, prof, photos="all", progress=True: nat)
    prof = get_profile(profile, uap={"natural_models": ["tiny_a:scratch"], "norms": ["l2"]})
    natural = universal.natural_uap_experiment(prof, trained=zoo, progress=False)
    run = natural.runs[(TASK, "tiny_a", "scratch", "l2", 0.08, None)]
    assert run.delta.shape[1] == 1
    assert run.summary["eps"] == pytest.approx(eps_from_zeta(build.float()[:, :1], 0.08, "l2"))
