"""The decoded-tensor cache (round trip, atomic writes) and local-root verification.

Uses a synthetic data root in ``tmp_path`` laid out like the mirror's Kermany folder
(tiny generated JPEGs, a labels.csv and a SHA256SUMS), so that files can be damaged.
"""
from __future__ import annotations

import hashlib
import io
import os
import time

import numpy as np
from pathlib import Path

import pytest
import torch
from PIL import Image

import advmed.data.cache as cache_mod
from advmed.data import ChecksumError, UnreadableImageError, load_dataset
from advmed.data.cache import save_atomic


def _jpeg(seed: int, size=(40, 30)) -> bytes:
    rng = np.random.default_rng(seed)
    grey = rng.integers(0, 255, (size[1], size[0]), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(grey).convert("RGB").save(buf, format="JPEG")  # the mirror stores RGB JPEGs
    return buf.getvalue()


def make_kermany_root(root, sums=True):
    """A data root with chest_xray_kermany_224/: 24 train patients, 8 test patients."""
    rows, k = [], 0
    for split, n in (("train", 12), ("test", 4)):
        for p in range(n):
            base = 100 * (split == "test")
            for rel in (f"{split}/NORMAL/IM-{base + p:04d}-0001.jpeg",
                        f"{split}/PNEUMONIA/person{base + p}_bacteria_{2 * p}.jpeg",
                        f"{split}/PNEUMONIA/person{base + p}_virus_{2 * p + 1}.jpeg"):
                path = root / "chest_xray_kermany_224" / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(_jpeg(k))
                k += 1
                label = rel.split("/")[1]
                rows.append(f"{rel},{split},{label},{int(label == 'PNEUMONIA')}")
    (root / "chest_xray_kermany_224" / "labels.csv").write_text("path,split,label,label_id\n" + "\n".join(rows) + "\n")
    if sums:
        write_sums(root)
    return root


def write_sums(root):
    lines = [f"{hashlib.sha256(p.read_bytes()).hexdigest()}  ./{p.relative_to(root).as_posix()}"
             for p in sorted(root.rglob("*")) if p.is_file() and p.name != "SHA256SUMS"]
    (root / "SHA256SUMS").write_text("\n".join(lines) + "\n")


@pytest.fixture
def fake_root(tmp_path, monkeypatch, tmp_cache):
    root = make_kermany_root(tmp_path / "data")
    monkeypatch.setenv("ADVMED_DATA_ROOT", str(root))
    return root


def _tensor_files(cache):
    return sorted(p.name for p in (cache / "tensors").iterdir()) if (cache / "tensors").exists() else []


def test_round_trip(fake_root, tmp_cache):
    a = load_dataset("kermany_cxr", "test", size=16, progress=False)
    assert not a.meta["from_cache"] and a.class_counts() == {"normal": 4, "pneumonia": 8}
    (name,) = _tensor_files(tmp_cache)
    assert name.startswith("kermany_cxr_test_16px_1ch_v1_") and name.endswith(".pt")
    b = load_dataset("kermany_cxr", "test", size=16, progress=False)
    assert b.meta["from_cache"] and torch.equal(a.images, b.images) and a.paths == b.paths
    assert torch.equal(a.labels, b.labels) and list(a.groups) == list(b.groups)
    # A cache file holds only tensors and plain containers: it opens with weights_only.
    obj = torch.load(tmp_cache / "tensors" / name, weights_only=True)
    assert obj["images"].dtype == torch.uint8 and obj["images"].shape == (12, 1, 16, 16)


def test_crash_mid_write_leaves_nothing(fake_root, tmp_cache, monkeypatch):
    real_save = torch.save

    def crash(obj, f, *a, **k):
        # some bytes reach the disk, then the process "dies"
        f.write(b"half a tensor") if hasattr(f, "write") else Path(f).write_bytes(b"half a tensor")
        raise KeyboardInterrupt

    monkeypatch.setattr(cache_mod.torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        load_dataset("kermany_cxr", "test", size=16, progress=False)
    assert _tensor_files(tmp_cache) == []  # neither a final file nor a temporary one
    monkeypatch.setattr(cache_mod.torch, "save", real_save)
    assert not load_dataset("kermany_cxr", "test", size=16, progress=False).meta["from_cache"]
    assert load_dataset("kermany_cxr", "test", size=16, progress=False).meta["from_cache"]


def test_crash_while_replacing_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "x.pt"
    save_atomic({"v": torch.ones(3)}, target)
    import advmed.cache

    monkeypatch.setattr(advmed.cache.os, "replace", lambda *a: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        save_atomic({"v": torch.zeros(3)}, target)
    assert torch.equal(torch.load(target, weights_only=True)["v"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["x.pt"]


def test_damaged_cache_is_rebuilt(fake_root, tmp_cache):
    a = load_dataset("kermany_cxr", "test", size=16, progress=False)
    path = tmp_cache / "tensors" / _tensor_files(tmp_cache)[0]
    path.write_bytes(path.read_bytes()[:100])  # e.g. a disk error after the fact
    b = load_dataset("kermany_cxr", "test", size=16, progress=False)
    assert not b.meta["from_cache"] and torch.equal(a.images, b.images)


def test_key_follows_size_channels_and_content(fake_root, tmp_cache):
    load_dataset("kermany_cxr", "test", size=16, progress=False)
    assert load_dataset("kermany_cxr", "test", size=16, channels=1, progress=False).meta["from_cache"]
    assert not load_dataset("kermany_cxr", "test", size=12, progress=False).meta["from_cache"]
    # A changed image (with SHA256SUMS updated to match) gives a new key: decoded again.
    img = fake_root / "chest_xray_kermany_224/test/NORMAL/IM-0100-0001.jpeg"
    img.write_bytes(_jpeg(999))
    write_sums(fake_root)
    assert not load_dataset("kermany_cxr", "test", size=16, progress=False).meta["from_cache"]


def test_kermany_validation_by_patient(fake_root):
    parts = {s: load_dataset("kermany_cxr", s, size=8, progress=False) for s in ("train", "val")}
    assert len(parts["train"]) + len(parts["val"]) == 36 and len(parts["val"]) > 0
    assert not set(parts["train"].groups) & set(parts["val"].groups)


def test_sha256sums_mismatch_names_the_file(fake_root):
    bad = fake_root / "chest_xray_kermany_224/test/PNEUMONIA/person101_bacteria_2.jpeg"
    bad.write_bytes(_jpeg(12345))
    with pytest.raises(ChecksumError, match="person101_bacteria_2.jpeg") as e:
        load_dataset("kermany_cxr", "test", size=16, progress=False)
    assert "SHA256SUMS" in str(e.value) and "refused" in str(e.value)


def test_file_not_in_sha256sums_is_refused(fake_root):
    sums = (fake_root / "SHA256SUMS").read_text().splitlines()
    (fake_root / "SHA256SUMS").write_text("\n".join(l for l in sums if "IM-0101" not in l) + "\n")
    with pytest.raises(ChecksumError, match="IM-0101-0001.jpeg.*not listed"):
        load_dataset("kermany_cxr", "test", size=16, progress=False)


def test_damaged_labels_csv_is_refused(fake_root):
    csv = fake_root / "chest_xray_kermany_224/labels.csv"
    csv.write_text(csv.read_text().replace("NORMAL,0", "PNEUMONIA,1", 1))
    with pytest.raises(ChecksumError, match="labels.csv"):
        load_dataset("kermany_cxr", "test", size=16, progress=False)


def test_unreadable_image_names_the_path(tmp_path, monkeypatch, tmp_cache):
    root = make_kermany_root(tmp_path / "data", sums=False)  # no SHA256SUMS: decoding must catch it
    monkeypatch.setenv("ADVMED_DATA_ROOT", str(root))
    bad = root / "chest_xray_kermany_224/test/NORMAL/IM-0102-0001.jpeg"
    bad.write_bytes(b"not a jpeg at all")
    with pytest.raises(UnreadableImageError, match=str(bad)):
        load_dataset("kermany_cxr", "test", size=16, progress=False)
    assert _tensor_files(tmp_cache) == []


def test_stale_temporaries_of_killed_writers_are_removed(fake_root, tmp_cache):
    load_dataset("kermany_cxr", "test", size=16, progress=False)
    final = tmp_cache / "tensors" / _tensor_files(tmp_cache)[0]
    stale = final.parent / f".{final.name}.abc123.tmp"
    stale.write_bytes(b"partial")
    old = time.time() - 2 * 3600
    os.utime(stale, (old, old))
    final.unlink()
    load_dataset("kermany_cxr", "test", size=16, progress=False)
    assert not stale.exists() and final.exists()
