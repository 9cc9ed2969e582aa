"""MobileNet v1 0.75/224: the TF.js -> PyTorch port is exact, padding follows TensorFlow."""
from __future__ import annotations

import csv
import json
import shutil
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from advmed.models import PretrainedWeightsWarning, build_model, load_tfjs_mobilenet
from advmed.models.mobilenet_v1 import TFConv2d, tf_same_padding
from advmed.models.tfjs import TFJS_FOLDER, TFJS_SHA256, read_tfjs_weights


@pytest.fixture(scope="module")
def tfjs_dir(data_root):
    return data_root / "weights" / TFJS_FOLDER


@pytest.fixture(scope="module")
def imagenet_mobilenet(tfjs_dir):
    return load_tfjs_mobilenet(tfjs_dir)


def test_tf_same_padding_puts_the_extra_pixel_bottom_right():
    assert tf_same_padding(224, 3, 2) == (0, 1)
    assert tf_same_padding(225, 3, 2) == (1, 1)
    assert tf_same_padding(112, 3, 1) == (1, 1)
    assert tf_same_padding(7, 1, 1) == (0, 0)
    conv = TFConv2d(2, 4, 3, stride=2, bias=False)
    x = torch.rand(1, 2, 8, 8)
    torch.testing.assert_close(conv(x), F.conv2d(F.pad(x, (0, 1, 0, 1)), conv.weight, stride=2))
    assert conv(x).shape[-2:] == (4, 4)  # ceil(8 / 2), as TF's "same"


def test_manifest_has_every_weight(tfjs_dir):
    weights = read_tfjs_weights(tfjs_dir)
    assert sum(a.size for a in weights.values()) == 2_601_976  # data/README.md
    assert weights["conv1/kernel"].shape == (3, 3, 3, 24)
    assert weights["conv_dw_1/depthwise_kernel"].shape == (3, 3, 24, 1)
    assert weights["conv_preds/bias"].shape == (1000,)


def test_keras_layouts_are_transposed(tfjs_dir, imagenet_mobilenet):
    weights = read_tfjs_weights(tfjs_dir)
    f = imagenet_mobilenet.net.features
    assert torch.equal(f.conv1.weight, torch.from_numpy(weights["conv1/kernel"].transpose(3, 2, 0, 1)))
    assert torch.equal(f.conv_dw_5.weight[7, 0], torch.from_numpy(weights["conv_dw_5/depthwise_kernel"][:, :, 7, 0]))
    assert torch.equal(f.conv_pw_13_bn.running_var, torch.from_numpy(weights["conv_pw_13_bn/moving_variance"]))
    assert f.conv_pw_13_bn.eps == 1e-3 and f.conv_dw_2.stride == (2, 2) and f.conv_dw_3.stride == (1, 1)
    assert imagenet_mobilenet.net.alpha == 0.75 and imagenet_mobilenet.meta["mean"] == (0.5, 0.5, 0.5)
    assert not imagenet_mobilenet.training


def test_build_model_imagenet_replaces_the_head(imagenet_mobilenet):
    model = build_model("mobilenet_v1_075", 2, init="imagenet", seed=0)
    assert model.meta["init"] == "imagenet" and model.net.conv_preds.out_channels == 2
    assert all(m.training for m in model.modules())  # ready to fine-tune, like every fresh build
    assert torch.equal(model.net.features.conv_pw_7.weight, imagenet_mobilenet.net.features.conv_pw_7.weight)
    full = build_model("mobilenet_v1_075", 1000, init="imagenet").eval()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(full(x), imagenet_mobilenet(x))


def test_one_channel_imagenet_equals_rgb_on_replicated_grey(imagenet_mobilenet):
    grey = build_model("mobilenet_v1_075", 1000, in_channels=1, init="imagenet").eval()
    assert grey.meta["in_channels"] == 1 and grey.meta["mean"] == (0.5,)
    x = torch.rand(2, 1, 65, 65)
    with torch.no_grad():
        torch.testing.assert_close(grey(x), imagenet_mobilenet(x.expand(-1, 3, -1, -1)), rtol=1e-4, atol=1e-4)


def test_missing_weights_offline_fall_back_to_scratch(tmp_path, monkeypatch):
    monkeypatch.setenv("ADVMED_DATA_ROOT", str(tmp_path / "empty"))
    monkeypatch.setenv("ADVMED_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("ADVMED_OFFLINE", "1")
    with pytest.warns(PretrainedWeightsWarning, match="ADVMED_OFFLINE"):
        model = build_model("mobilenet_v1_075", 2, init="imagenet")
    assert model.meta["init"] == "scratch" and model.meta["requested_init"] == "imagenet"


def test_failed_download_falls_back_to_scratch(tmp_path, monkeypatch):
    import pooch

    monkeypatch.setenv("ADVMED_DATA_ROOT", str(tmp_path / "empty"))
    monkeypatch.setenv("ADVMED_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("ADVMED_OFFLINE", "0")
    urls = []

    def unreachable(url, **kwargs):
        urls.append(url)
        raise OSError("no network")

    monkeypatch.setattr(pooch, "retrieve", unreachable)
    with pytest.warns(PretrainedWeightsWarning, match="could not download the MobileNet"):
        model = build_model("mobilenet_v1_075", 2, init="imagenet")
    assert model.meta["init"] == "scratch"
    assert urls == ["https://storage.googleapis.com/tfjs-models/tfjs/mobilenet_v1_0.75_224/model.json"]


def test_checksum_mismatch_names_the_file(tfjs_dir, tmp_path, monkeypatch):
    copy = tmp_path / "root" / "weights" / TFJS_FOLDER
    shutil.copytree(tfjs_dir, copy)
    with open(copy / "group7-shard1of1", "r+b") as f:
        f.write(b"\0\0\0\0")
    monkeypatch.setenv("ADVMED_DATA_ROOT", str(tmp_path / "root"))
    with pytest.raises(ValueError, match="checksum mismatch for .*group7-shard1of1"):
        build_model("mobilenet_v1_075", 2, init="imagenet")
    assert len(TFJS_SHA256) == 56 and json.loads((tfjs_dir / "model.json").read_text())["weightsManifest"]


def _load_center_crops(folder, files):
    """Short side bilinear-resized to 256 (already so as stored), centre crop 224, x in [0, 1]."""
    from PIL import Image

    out = np.empty((len(files), 224, 224, 3), dtype=np.uint8)
    for i, name in enumerate(files):
        with Image.open(folder / "images" / name) as im:
            im = im.convert("RGB")
            w, h = im.size
            if min(w, h) != 256:
                s = 256 / min(w, h)
                im = im.resize((round(w * s), round(h * s)), Image.BILINEAR)
                w, h = im.size
            left, top = (w - 224) // 2, (h - 224) // 2
            out[i] = np.asarray(im.crop((left, top, left + 224, top + 224)))
    return torch.from_numpy(out).permute(0, 3, 1, 2).float().div_(255)


def test_port_is_exact_on_imagenet_samples(data_root, imagenet_mobilenet):
    """Top-1 83.8 % / top-5 96.0 % on one photo per class, from an independent float32
    forward pass of the same files (data/README.md). A wrong padding side, transpose or
    BatchNorm epsilon costs more than the 0.5 point tolerance."""
    folder = data_root / "imagenet_samples" / "one_per_class_1000"
    with open(folder / "labels.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    start = time.perf_counter()
    x = _load_center_crops(folder, [r["file"] for r in rows])
    y = torch.tensor([int(r["class_index"]) for r in rows])
    with torch.no_grad():
        top5 = torch.cat([imagenet_mobilenet(x[i:i + 100]).topk(5, dim=1).indices for i in range(0, len(x), 100)])
    top1_acc = (top5[:, 0] == y).float().mean().item() * 100
    top5_acc = (top5 == y[:, None]).any(1).float().mean().item() * 100
    print(f"mobilenet_v1_075 on {len(y)} images: top-1 {top1_acc:.1f} %, top-5 {top5_acc:.1f} %, "
          f"{time.perf_counter() - start:.0f} s")
    assert len(y) == 1000
    assert abs(top1_acc - 83.8) <= 0.5
    assert abs(top5_acc - 96.0) <= 0.5
