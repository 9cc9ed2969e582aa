"""Downloads against a local HTTP server (127.0.0.1, a thread) serving files the tests make.

Covers: published-checksum verification and mismatch, trust on first use, an
interrupted transfer (no file left), the Dataverse record lookup, and the three
download layouts (MedMNIST npz, ChestXRay2017.zip, HAM10000 zips + metadata) read
through ``load_dataset`` with no local data root.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from PIL import Image

import advmed.data.registry as registry
from advmed.data import ChecksumError, DownloadError, Remote, download, load_dataset
from advmed.data.download import TRUST_FILE, fetch


class _Handler(BaseHTTPRequestHandler):
    routes: dict[str, tuple[bytes, int | None]] = {}  # path -> (body, bytes actually sent)

    def do_GET(self):  # noqa: N802 (http.server API)
        if self.path not in self.routes:
            self.send_error(404)
            return
        body, cut = self.routes[self.path]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body if cut is None else body[:cut])
        if cut is not None:
            self.wfile.flush()
            self.close_connection = True  # the connection drops mid-transfer

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    """``(base_url, routes)``: put ``routes[path] = (body, None)`` (or a byte count to cut at)."""
    routes: dict[str, tuple[bytes, int | None]] = {}
    handler = type("H", (_Handler,), {"routes": routes})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", routes
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def online(monkeypatch, tmp_cache):
    """No local root, downloads allowed, a private cache."""
    monkeypatch.delenv("ADVMED_DATA_ROOT", raising=False)
    monkeypatch.setenv("ADVMED_OFFLINE", "0")
    return tmp_cache


def _md5(b: bytes) -> str:
    return hashlib.md5(b).hexdigest()


def _files(folder):
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# ------------------------------------------------------------------ fetch
def test_fetch_verifies_published_checksum(server, tmp_path):
    base, routes = server
    routes["/a.bin?download=1"] = (b"x" * 5000, None)
    path = fetch(Remote("a.bin", f"{base}/a.bin?download=1", f"md5:{_md5(b'x' * 5000)}", "Test host"),
                 tmp_path, progress=False)
    assert path.read_bytes() == b"x" * 5000 and _files(tmp_path) == ["a.bin"]


def test_fetch_refuses_checksum_mismatch(server, tmp_path):
    base, routes = server
    routes["/a.bin"] = (b"tampered", None)
    remote = Remote("a.bin", f"{base}/a.bin", f"md5:{_md5(b'original')}", "Test host")
    with pytest.raises(ChecksumError, match="a.bin") as e:
        fetch(remote, tmp_path, progress=False)
    assert "Test host" in str(e.value) and "refused" in str(e.value)
    assert _files(tmp_path) == []  # nothing left that a later run could trust


def test_interrupted_download_leaves_no_file(server, tmp_path):
    base, routes = server
    body = bytes(range(256)) * 400
    routes["/big.zip"] = (body, 30_000)
    for known in (f"md5:{_md5(body)}", None):  # with and without a published checksum
        with pytest.raises(DownloadError, match="big.zip"):
            fetch(Remote("big.zip", f"{base}/big.zip", known, "Test host"), tmp_path, progress=False)
        assert _files(tmp_path) == []


def test_trust_on_first_use(server, tmp_path):
    base, routes = server
    routes["/c.zip"] = (b"first version", None)
    remote = Remote("c.zip", f"{base}/c.zip", None, "Test host")
    path = fetch(remote, tmp_path, progress=False)
    trust = json.loads((tmp_path / TRUST_FILE).read_text())
    assert trust["c.zip"]["sha256"] == hashlib.sha256(b"first version").hexdigest()
    assert fetch(remote, tmp_path, progress=False) == path  # verified against the record, reused
    # Upstream changes: the local copy is stale, the new bytes do not match the record.
    path.unlink()
    routes["/c.zip"] = (b"second version", None)
    with pytest.raises(ChecksumError, match="c.zip.*recorded"):
        fetch(remote, tmp_path, progress=False)
    assert _files(tmp_path) == [TRUST_FILE]


def test_offline_refuses_to_download(monkeypatch, tmp_cache):
    monkeypatch.setenv("ADVMED_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match="ADVMED_OFFLINE"):
        download("pneumoniamnist")


# ------------------------------------------------------------------ full routes
def _replace_spec(monkeypatch, name, **changes):
    spec = dataclasses.replace(registry.DATASETS[name], **changes)
    monkeypatch.setitem(registry.DATASETS, name, spec)
    return spec


def _npz_bytes() -> bytes:
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 20), ("val", 6), ("test", 8)):
        arrays[f"{split}_images"] = rng.integers(0, 255, (n, 28, 28), dtype=np.uint8)
        arrays[f"{split}_labels"] = (np.arange(n) % 2).astype(np.uint8).reshape(-1, 1)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def test_medmnist_route(server, online, monkeypatch):
    base, routes = server
    body = _npz_bytes()
    routes["/files/pneumoniamnist.npz?download=1"] = (body, None)
    _replace_spec(monkeypatch, "pneumoniamnist", remotes=(Remote(
        "pneumoniamnist.npz", f"{base}/files/pneumoniamnist.npz?download=1", f"md5:{_md5(body)}", "Zenodo"),))
    s = load_dataset("pneumoniamnist", "test", size=32, channels=1, progress=False)
    assert s.images.shape == (8, 1, 32, 32) and s.class_counts() == {"normal": 4, "pneumonia": 4}
    assert s.meta["origin"].startswith("download:") and s.paths[0] == "pneumoniamnist.npz:test/0"
    assert (online / "downloads" / "pneumoniamnist" / "pneumoniamnist.npz").read_bytes() == body


def _jpeg(seed, size=(64, 48), mode="L") -> bytes:
    arr = np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).convert(mode).save(buf, format="JPEG")
    return buf.getvalue()


def test_kermany_zip_route(server, online, monkeypatch, data_root):
    """ChestXRay2017.zip layout, with the mirror's full-resolution originals as content."""
    base, routes = server
    sample = data_root / "chest_xray_kermany_fullres_sample"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for p in sorted(sample.glob("*/*.jpeg")):
            zf.writestr(f"chest_xray/train/{p.parent.name}/{p.name}", p.read_bytes())
            zf.writestr(f"__MACOSX/chest_xray/train/{p.parent.name}/._{p.name}", b"junk")
        for i in range(3):
            zf.writestr(f"chest_xray/test/NORMAL/IM-{9000 + i}-0001.jpeg", _jpeg(i, mode="RGB"))
            zf.writestr(f"chest_xray/test/PNEUMONIA/person{9000 + i}_virus_{i}.jpeg", _jpeg(10 + i))
    routes["/ChestXRay2017.zip"] = (buf.getvalue(), None)
    _replace_spec(monkeypatch, "kermany_cxr",
                  remotes=(Remote("ChestXRay2017.zip", f"{base}/ChestXRay2017.zip", None, "Mendeley Data"),))
    test = load_dataset("kermany_cxr", "test", size=64, channels=1, progress=False)
    assert test.class_counts() == {"normal": 3, "pneumonia": 3}
    assert test.paths[0] == "ChestXRay2017.zip:chest_xray/test/NORMAL/IM-9000-0001.jpeg"
    train, val = (load_dataset("kermany_cxr", s, size=64, progress=False) for s in ("train", "val"))
    assert len(train) + len(val) == 14 and train.images.shape[1:] == (3, 64, 64)
    assert not set(train.groups) & set(val.groups)
    assert (online / "downloads" / "kermany_cxr" / TRUST_FILE).is_file()  # no published hash


def test_ham_dataverse_route(server, online, monkeypatch):
    base, routes = server
    dx = ["nv", "mel", "bkl", "nv", "bcc", "nv", "mel", "akiec", "df", "vasc", "nv", "nv"]
    meta = "lesion_id,image_id,dx,dx_type,age,sex,localization\n" + "".join(
        f"HAM_{i // 2:07d},ISIC_{i:07d},{d},histo,50.0,male,back\n" for i, d in enumerate(dx))
    zips = {}
    for part, ids in (("1", range(0, 6)), ("2", range(6, 12))):
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            for i in ids:
                zf.writestr(f"ISIC_{i:07d}.jpg", _jpeg(i, (60, 45), "RGB"))
        zips[f"HAM10000_images_part_{part}.zip"] = buf.getvalue()
    files = [{"dataFile": {"id": 11, "filename": "HAM10000_images_part_1.zip",
                           "md5": _md5(zips["HAM10000_images_part_1.zip"])}},
             {"dataFile": {"id": 12, "filename": "HAM10000_images_part_2.zip",
                           "checksum": {"type": "MD5", "value": _md5(zips["HAM10000_images_part_2.zip"])}}},
             {"dataFile": {"id": 13, "filename": "HAM10000_metadata.tab", "originalFileFormat": "text/csv",
                           "md5": "0" * 32}}]
    doi = "doi:10.7910/DVN/DBW86T"
    routes[f"/api/datasets/:persistentId/?persistentId={doi}"] = (
        json.dumps({"data": {"latestVersion": {"files": files}}}).encode(), None)
    routes["/api/access/datafile/11"] = (zips["HAM10000_images_part_1.zip"], None)
    routes["/api/access/datafile/12"] = (zips["HAM10000_images_part_2.zip"], None)
    routes["/api/access/datafile/13?format=original"] = (meta.encode(), None)
    _replace_spec(monkeypatch, "ham10000",
                  dataverse=dataclasses.replace(registry.DATASETS["ham10000"].dataverse, server=base))
    parts = {s: load_dataset("ham10000", s, size=16, progress=False) for s in ("train", "val", "test")}
    assert sum(len(p) for p in parts.values()) == 12
    lesions = {s: set(p.groups) for s, p in parts.items()}
    assert not (lesions["train"] & lesions["val"] or lesions["train"] & lesions["test"]
                or lesions["val"] & lesions["test"])
    mel = sum(len(load_dataset("ham10000", s, size=16, view="mel_vs_nv", progress=False))
              for s in ("train", "val", "test"))
    assert mel == dx.count("mel") + dx.count("nv")
    folder = online / "downloads" / "ham10000"
    assert sorted(json.loads((folder / TRUST_FILE).read_text())) == ["HAM10000_metadata.csv"]

    # A zip that does not match the MD5 in the Dataverse record is refused.
    (folder / "HAM10000_images_part_2.zip").unlink()
    routes["/api/access/datafile/12"] = (zips["HAM10000_images_part_1.zip"], None)
    with pytest.raises(ChecksumError, match="HAM10000_images_part_2.zip"):
        download("ham10000", progress=False)
    assert not (folder / "HAM10000_images_part_2.zip").exists()
