"""advmed.data without the real data: registry, errors, ImageSet, split rules, decoding."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from advmed.data import DATASETS, DataNotFoundError, ImageSet, get_spec, load_dataset, load_task
from advmed.data.decode import decode_array, short_side, to_array
from advmed.data.splits import carve_validation, kermany_patient, stratified_subset, train_val_test_by_group
from advmed.data import TASKS


def test_registry_names_and_fields():
    assert set(DATASETS) == {"kermany_cxr", "ham10000", "retinamnist", "pneumoniamnist", "breastmnist",
                             "imagenet_samples"}
    assert DATASETS["kermany_cxr"].classes == ("normal", "pneumonia")
    assert DATASETS["ham10000"].classes == ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")
    assert DATASETS["pneumoniamnist"].classes == ("normal", "pneumonia")
    assert DATASETS["breastmnist"].classes == ("malignant", "normal/benign")
    assert len(DATASETS["retinamnist"].classes) == 5
    assert DATASETS["imagenet_samples"].splits == ("one_per_class_1000", "det200_five_per_class_1000")
    for spec in DATASETS.values():
        assert spec.source and spec.license and spec.split_rule and spec.labels
    for name in ("pneumoniamnist", "retinamnist", "breastmnist"):
        (remote,) = DATASETS[name].remotes
        assert remote.url == f"https://zenodo.org/records/10519652/files/{name}.npz?download=1"
        assert remote.known_hash.startswith("md5:") and len(remote.known_hash) == 4 + 32
    assert DATASETS["kermany_cxr"].remotes[0].known_hash is None  # Mendeley: trust on first use
    assert DATASETS["ham10000"].dataverse.doi == "doi:10.7910/DVN/DBW86T"
    assert not DATASETS["imagenet_samples"].downloadable


def test_every_task_resolves():
    for task in TASKS.values():
        spec = get_spec(task.dataset)
        if task.view is not None:
            assert task.view in spec.views


def test_views():
    mel = DATASETS["ham10000"].views["mel_vs_nv"]
    assert mel.classes == ("nevus", "melanoma")
    assert mel.mapping == {5: 0, 4: 1}  # nv -> 0, mel -> 1, others dropped
    ref = DATASETS["retinamnist"].views["referable"]
    assert ref.classes == ("non-referable", "referable")
    assert all(ref.mapping[g] == int(g >= 2) for g in range(5))


@pytest.mark.parametrize("call, valid", [
    (lambda: load_dataset("nope", "test", size=8), "kermany_cxr"),
    (lambda: load_dataset("kermany_cxr", "validation", size=8), "train, val, test"),
    (lambda: load_dataset("ham10000", "test", size=8, view="mel"), "mel_vs_nv"),
    (lambda: load_dataset("kermany_cxr", "test", size=8, view="x"), "none"),
    (lambda: load_dataset("imagenet_samples", "test", size=8), "one_per_class_1000"),
    (lambda: load_task("nope", "test", size=8), "pneumonia_cxr"),
])
def test_unknown_names_list_valid_ones(call, valid):
    with pytest.raises(KeyError, match=valid):
        call()


def test_bad_channels_and_size():
    with pytest.raises(ValueError, match="channels"):
        load_dataset("pneumoniamnist", "test", size=28, channels=2)
    with pytest.raises(ValueError, match="size"):
        load_dataset("pneumoniamnist", "test", size=0)


def test_missing_data_names_root_and_download_route(monkeypatch, tmp_cache):
    monkeypatch.delenv("ADVMED_DATA_ROOT", raising=False)
    monkeypatch.setenv("ADVMED_OFFLINE", "1")
    with pytest.raises(DataNotFoundError) as e:
        load_dataset("kermany_cxr", "test", size=8)
    msg = str(e.value)
    assert "ADVMED_DATA_ROOT" in msg and "advmed.data.download('kermany_cxr')" in msg
    assert "Mendeley Data" in msg and "ADVMED_OFFLINE" in msg
    with pytest.raises(DataNotFoundError, match="Harvard Dataverse"):
        load_dataset("ham10000", "test", size=8)
    with pytest.raises(DataNotFoundError, match="no download route"):
        load_dataset("imagenet_samples", "one_per_class_1000", size=8)


def test_root_that_does_not_exist(monkeypatch, tmp_path):
    monkeypatch.setenv("ADVMED_DATA_ROOT", str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match="ADVMED_DATA_ROOT"):
        load_dataset("pneumoniamnist", "test", size=28)


# ------------------------------------------------------------------ ImageSet
def _set(n=10, c=3, s=4):
    imgs = torch.arange(n * c * s * s, dtype=torch.int64).reshape(n, c, s, s).remainder(256).to(torch.uint8)
    return ImageSet(imgs, torch.tensor([0, 1] * (n // 2)), ["a", "b"], groups=np.arange(n).astype(str),
                    paths=[f"p{i}" for i in range(n)], name="toy", split="test")


def test_imageset_api():
    s = _set()
    assert len(s) == 10 and s.channels == 3 and s.size == 4 and s.num_classes == 2
    x = s.float()
    assert x.dtype == torch.float32 and float(x.min()) >= 0 and float(x.max()) <= 1
    assert torch.equal((x * 255).round().to(torch.uint8), s.images)
    assert s.class_counts() == {"a": 5, "b": 5}
    sub = s.subset([1, 3, 4])
    assert len(sub) == 3 and sub.paths == ["p1", "p3", "p4"] and list(sub.groups) == ["1", "3", "4"]
    assert torch.equal(sub.images[0], s.images[1]) and sub.class_counts() == {"a": 1, "b": 2}
    assert len(s.subset(s.labels == 1)) == 5
    assert len(s.subset(np.zeros(10, dtype=bool))) == 0
    assert s.subset(slice(0, 4)).paths == ["p0", "p1", "p2", "p3"]
    assert s.subset(torch.tensor([9])).paths == ["p9"]
    assert "n=10" in repr(s) and "tensor" not in repr(s)


def test_imageset_checks_and_unlabelled():
    with pytest.raises(ValueError, match="uint8"):
        ImageSet(torch.zeros(2, 1, 4, 4), torch.zeros(2), ["a"])
    with pytest.raises(ValueError, match="labels"):
        ImageSet(torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.zeros(3), ["a"])
    s = ImageSet(torch.zeros(3, 3, 2, 2, dtype=torch.uint8), torch.tensor([0, -1, -1]), ["a", "b"])
    assert s.class_counts() == {"a": 1, "b": 0, "unlabelled": 2}


# ------------------------------------------------------------------ split rules
def test_kermany_patient_ids():
    assert kermany_patient("train/PNEUMONIA/person1000_bacteria_2931.jpeg") == "person1000"
    assert kermany_patient("IM-0115-0001.jpeg") == "IM-0115"
    assert kermany_patient("x.zip:chest_xray/test/NORMAL/NORMAL2-IM-0012-0001.jpeg") == "NORMAL2-IM-0012"
    with pytest.raises(ValueError, match="patient id"):
        kermany_patient("scan_17.jpeg")


def test_group_splits_keep_groups_whole():
    rng = np.random.default_rng(1)
    groups = rng.integers(0, 400, size=2000).astype(str)
    labels = np.array([hash(g) % 3 for g in groups]) % 3  # one label per group
    split = train_val_test_by_group(labels, groups)
    for a, b in [("train", "val"), ("train", "test"), ("val", "test")]:
        assert not set(groups[split == a]) & set(groups[split == b])
    frac = {k: np.mean(split == k) for k in ("train", "val", "test")}
    assert abs(frac["train"] - 0.70) < 0.05 and abs(frac["val"] - 0.15) < 0.04
    assert np.array_equal(split, train_val_test_by_group(labels, groups))  # fixed seed
    val = carve_validation(labels, groups)
    assert not set(groups[val]) & set(groups[~val]) and 0.06 < val.mean() < 0.14


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 3), min_size=1, max_size=200), st.integers(1, 250), st.integers(0, 5))
def test_stratified_subset(labels, limit, seed):
    labels = np.asarray(labels)
    idx = stratified_subset(labels, limit, seed)
    assert len(idx) == min(limit, len(labels)) and len(set(idx)) == len(idx)
    assert np.all(np.diff(idx) > 0)
    present = np.unique(labels)
    if limit >= len(present):
        assert set(labels[idx]) == set(present)
    assert np.array_equal(idx, stratified_subset(labels, limit, seed))


def test_stratified_subset_proportions():
    labels = np.array([0] * 900 + [1] * 100)
    idx = stratified_subset(labels, 100, seed=0)
    assert np.bincount(labels[idx]).tolist() == [90, 10]
    assert not np.array_equal(idx, stratified_subset(labels, 100, seed=1))


# ------------------------------------------------------------------ decoding
def test_short_side_crop_geometry():
    assert short_side(224) == 256 and short_side(64) == 73
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (300, 400, 3), dtype=np.uint8))
    out = to_array(img, 224, 3, "short_side_crop")
    assert out.shape == (3, 224, 224)
    # Same as the reference: bilinear resize of the short side to 256, centre crop 224.
    ref = np.asarray(img.resize((341, 256), Image.BILINEAR).crop((58, 16, 282, 240))).transpose(2, 0, 1)
    assert np.array_equal(out, ref)


def test_squash_and_channels():
    rgb = np.random.default_rng(0).integers(0, 255, (30, 50, 3), dtype=np.uint8)
    out3 = decode_array(rgb, 16, 3, "squash")
    out1 = decode_array(rgb, 16, 1, "squash")
    assert out3.shape == (3, 16, 16) and out1.shape == (1, 16, 16) and out1.dtype == np.uint8
    # channels=1 of a colour image is its luminance (ITU-R 601-2, Pillow "L").
    lum = np.asarray(Image.fromarray(rgb).convert("L").resize((16, 16), Image.BILINEAR))
    assert np.array_equal(out1[0], lum)
    grey = rgb[..., 0]
    g3 = decode_array(grey, 16, 3, "squash")
    assert np.array_equal(g3[0], g3[1]) and np.array_equal(g3[1], g3[2])
    with pytest.raises(ValueError, match="resize rule"):
        decode_array(grey, 16, 1, "stretch")
