"""Index builders: which images a dataset has, their labels, groups and splits.

Two layouts per dataset are read:

- the local data root (``$ADVMED_DATA_ROOT``, laid out like the project's mirror:
  ``labels.csv`` + resized JPEGs, MedMNIST npz), verified against its ``SHA256SUMS``;
- the originals downloaded by :func:`advmed.data.download` (``ChestXRay2017.zip`` with
  ``chest_xray/{train,test}/{NORMAL,PNEUMONIA}/`` full-resolution JPEGs; the two HAM10000
  image zips and the metadata CSV; MedMNIST npz), read straight from the zips.

The local root wins when it has the dataset; otherwise the downloaded copy is used,
downloading it first unless ``$ADVMED_OFFLINE`` is set.
"""
from __future__ import annotations

import io
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable

import numpy as np
import pandas as pd

from .checksums import RootChecksums, file_digest
from .decode import decode_array, decode_bytes
from .download import download, downloaded, missing_data_message
from .errors import ChecksumError, DataNotFoundError, UnreadableImageError
from .paths import ENV_ROOT, data_root, offline
from .registry import DatasetSpec
from .splits import carve_validation, kermany_patient, train_val_test_by_group


class Reader:
    """Decodes image ``i`` of an index; a context manager so zip handles get closed."""

    def decode(self, i: int, size: int, channels: int, rule: str) -> np.ndarray:
        raise NotImplementedError

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, *exc) -> None:
        return None


class FileReader(Reader):
    """Image files under a data root, each checked against the root's SHA256SUMS."""

    def __init__(self, checks: RootChecksums, rels: list[str]):
        self.checks, self.rels = checks, rels

    def decode(self, i, size, channels, rule):
        rel = self.rels[i]
        try:
            data = self.checks.read_verified(rel)
        except FileNotFoundError:
            raise UnreadableImageError(
                f"image {self.checks.root / rel} is listed in the labels but missing; restore it from "
                f"the mirror") from None
        return decode_bytes(data, str(self.checks.root / rel), size, channels, rule)


class ZipReader(Reader):
    """Members of downloaded zips; zipfile checks each member's CRC-32 as it is read."""

    def __init__(self, members: list[tuple[Path, str]]):
        self.members = members
        self._open: dict[Path, zipfile.ZipFile] = {}

    def decode(self, i, size, channels, rule):
        zpath, member = self.members[i]
        where = f"{zpath}:{member}"
        try:
            zf = self._open.get(zpath) or self._open.setdefault(zpath, zipfile.ZipFile(zpath))
            data = zf.read(member)
        except (zipfile.BadZipFile, OSError, KeyError) as e:
            raise UnreadableImageError(
                f"cannot read image {where}: {e}. Delete {zpath} so that it is downloaded again.") from e
        return decode_bytes(data, where, size, channels, rule)

    def __exit__(self, *exc):
        for zf in self._open.values():
            zf.close()
        self._open.clear()


class ArrayReader(Reader):
    """Images stored as uint8 arrays in an npz (MedMNIST), loaded once per split key."""

    def __init__(self, npz: Path, keys: list[tuple[str, int]]):
        self.npz, self.keys = npz, keys
        self._arrays: dict[str, np.ndarray] = {}

    def decode(self, i, size, channels, rule):
        split, j = self.keys[i]
        if split not in self._arrays:
            with np.load(self.npz, allow_pickle=False) as z:
                self._arrays[split] = z[f"{split}_images"]
        return decode_array(self._arrays[split][j], size, channels, rule)


@dataclass
class Index:
    """Every image of a dataset (all splits), in a fixed order."""

    items: list[str]  # where each image is (becomes ImageSet.paths)
    labels: np.ndarray  # int64
    groups: np.ndarray | None  # str, patient / lesion id
    splits: np.ndarray  # str
    digests: list[str]  # content fingerprint per image (listed sha256, CRC, npz md5, ...)
    classes: list[str]
    origin: str  # "local:<root>" or "download:<folder>"
    reader: Reader


# ----------------------------------------------------------------------------- helpers
def _read_csv(checks: RootChecksums, rel: str) -> pd.DataFrame:
    return pd.read_csv(io.BytesIO(checks.read_verified(rel)), dtype=str, keep_default_na=False)


def _label_ids(values, classes: list[str], what: str) -> np.ndarray:
    lookup = {c.lower(): i for i, c in enumerate(classes)}
    out = []
    for v in values:
        if str(v).lower() not in lookup:
            raise ValueError(f"unknown label {v!r} in {what}; expected one of {', '.join(classes)}")
        out.append(lookup[str(v).lower()])
    return np.asarray(out, dtype=np.int64)


def _sorted(items: list[str], *arrays):
    order = np.argsort(np.asarray(items), kind="stable")
    return [[items[i] for i in order]] + [np.asarray(a)[order] if not isinstance(a, list)
                                          else [a[i] for i in order] for a in arrays]


def _kermany_splits(base: np.ndarray, labels: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Kaggle train/test; validation = ~10 % of train patients (see registry split_rule)."""
    splits = np.where(base == "test", "test", "train").astype("<U5")
    train = np.flatnonzero(splits == "train")
    val = carve_validation(labels[train], groups[train])
    splits[train[val]] = "val"
    return splits


# ----------------------------------------------------------------------------- kermany
def _kermany_local(spec: DatasetSpec, root: Path) -> Index:
    checks = RootChecksums(root)
    df = _read_csv(checks, f"{spec.local_dir}/labels.csv")
    rels = [f"{spec.local_dir}/{p}" for p in df["path"]]
    labels = _label_ids(df["label"], list(spec.classes), f"{root}/{spec.local_dir}/labels.csv")
    rels, labels, base = _sorted(rels, labels, df["split"].to_numpy())
    groups = np.asarray([kermany_patient(r) for r in rels])
    return Index(rels, labels, groups, _kermany_splits(base, labels, groups),
                 [checks.digest_or_stat(r) for r in rels], list(spec.classes), f"local:{root}",
                 FileReader(checks, rels))


# chest_xray/train/PNEUMONIA/person1_bacteria_1.jpeg (Mendeley); Kaggle adds a small val/.
_KERMANY_MEMBER = re.compile(r"(?:^|/)(train|val|test)/(NORMAL|PNEUMONIA)/([^/]+\.jpe?g)$", re.I)


def _kermany_download(spec: DatasetSpec, folder: Path) -> Index:
    zpath = folder / spec.remotes[0].fname
    rows = []
    with zipfile.ZipFile(zpath) as zf:
        for info in zf.infolist():
            m = _KERMANY_MEMBER.search(info.filename)
            if m is None or "__MACOSX" in info.filename or m.group(3).startswith("._"):
                continue
            rows.append((info.filename, m.group(1).lower(), m.group(2), f"{info.CRC:08x}:{info.file_size}"))
    if not rows:
        raise DataNotFoundError(f"{zpath} holds no train/test NORMAL/PNEUMONIA images; delete it and "
                                f"download again with advmed.data.download('kermany_cxr')")
    members = [r[0] for r in rows]
    labels = _label_ids([r[2] for r in rows], list(spec.classes), str(zpath))
    members, labels, base, digests = _sorted(members, labels, np.asarray([r[1] for r in rows]), [r[3] for r in rows])
    groups = np.asarray([kermany_patient(m) for m in members])
    return Index([f"{zpath.name}:{m}" for m in members], labels, groups,
                 _kermany_splits(base, labels, groups), digests, list(spec.classes),
                 f"download:{folder}", ZipReader([(zpath, m) for m in members]))


# ----------------------------------------------------------------------------- ham10000
def _ham_index(spec, image_ids, dx, lesions, items, digests, origin, reader_of: Callable) -> Index:
    labels = _label_ids(dx, list(spec.classes), origin)
    items, labels, lesions, digests, image_ids = _sorted(items, labels, np.asarray(lesions, dtype=str),
                                                        digests, list(image_ids))
    splits = train_val_test_by_group(labels, lesions)
    return Index(items, labels, lesions, splits, digests, list(spec.classes), origin, reader_of(image_ids, items))


def _ham_local(spec: DatasetSpec, root: Path) -> Index:
    checks = RootChecksums(root)
    df = _read_csv(checks, f"{spec.local_dir}/labels.csv")
    rels = [f"{spec.local_dir}/images/{i}.jpg" for i in df["image_id"]]
    return _ham_index(spec, df["image_id"], df["dx"], df["lesion_id"], rels,
                      [checks.digest_or_stat(r) for r in rels], f"local:{root}",
                      lambda ids, items: FileReader(checks, items))


def _ham_download(spec: DatasetSpec, folder: Path) -> Index:
    meta = pd.read_csv(folder / "HAM10000_metadata.csv", sep=None, engine="python", dtype=str)
    missing_cols = {"image_id", "dx", "lesion_id"} - set(meta.columns)
    if missing_cols:
        raise ValueError(f"{folder / 'HAM10000_metadata.csv'} lacks columns {sorted(missing_cols)}; delete "
                         f"it and download again with advmed.data.download('ham10000')")
    where: dict[str, tuple[Path, zipfile.ZipInfo]] = {}
    for zname in ("HAM10000_images_part_1.zip", "HAM10000_images_part_2.zip"):
        with zipfile.ZipFile(folder / zname) as zf:
            for info in zf.infolist():
                p = PurePosixPath(info.filename)
                if p.suffix.lower() == ".jpg" and "__MACOSX" not in info.filename:
                    where[p.stem] = (folder / zname, info)
    absent = [i for i in meta["image_id"] if i not in where]
    if absent:
        raise DataNotFoundError(f"{len(absent)} HAM10000 images of the metadata are in neither zip of "
                                f"{folder} (first: {absent[0]}); delete the zips and download again")
    items = [f"{where[i][0].name}:{where[i][1].filename}" for i in meta["image_id"]]
    digests = [f"{where[i][1].CRC:08x}:{where[i][1].file_size}" for i in meta["image_id"]]
    return _ham_index(spec, meta["image_id"], meta["dx"], meta["lesion_id"], items, digests,
                      f"download:{folder}",
                      lambda ids, items: ZipReader([(where[i][0], where[i][1].filename) for i in ids]))


# ----------------------------------------------------------------------------- medmnist
def _medmnist_index(spec: DatasetSpec, npz: Path, origin: str, shown: str) -> Index:
    expected_md5 = spec.remotes[0].known_hash.split(":", 1)[1]
    md5 = file_digest(npz, "md5")
    if md5 != expected_md5:
        raise ChecksumError(f"{npz} has MD5 {md5}, not the published {expected_md5} "
                            f"({spec.source}); the file is refused. Replace it with the official file.")
    items, labels, splits = [], [], []
    with np.load(npz, allow_pickle=False) as z:
        for split in spec.splits:
            y = z[f"{split}_labels"].reshape(-1).astype(np.int64)
            items += [f"{shown}:{split}/{i}" for i in range(len(y))]
            labels.append(y)
            splits += [split] * len(y)
    keys = [(s, int(it.rsplit("/", 1)[1])) for s, it in zip(splits, items)]
    return Index(items, np.concatenate(labels), None, np.asarray(splits), [md5] * len(items),
                 list(spec.classes), origin, ArrayReader(npz, keys))


def _medmnist_local(spec: DatasetSpec, root: Path) -> Index:
    rel = spec.local_files[0]
    checks = RootChecksums(root)
    if checks.active:
        checks.check_bytes(rel, (root / rel).read_bytes())
    return _medmnist_index(spec, root / rel, f"local:{root}", rel)


def _medmnist_download(spec: DatasetSpec, folder: Path) -> Index:
    fname = spec.remotes[0].fname
    return _medmnist_index(spec, folder / fname, f"download:{folder}", fname)


# ----------------------------------------------------------------------------- imagenet
def _imagenet_local(spec: DatasetSpec, root: Path) -> Index:
    checks = RootChecksums(root)
    # Class names from the one-per-class folder: file n01440764_tench.jpg -> "tench".
    ref = _read_csv(checks, f"{spec.local_dir}/one_per_class_1000/labels.csv")
    ref = ref[ref["class_index"] != ""]
    names = {int(ci): re.sub(r"^n\d+_", "", Path(f).stem).replace("_", " ")
             for f, ci in zip(ref["file"], ref["class_index"])}
    if sorted(names) != list(range(len(names))):
        raise ValueError(f"{root}/{spec.local_dir}/one_per_class_1000/labels.csv does not list class "
                         f"indices 0..N-1; restore it from the mirror")
    classes = [names[i] for i in range(len(names))]
    items, labels, splits = [], [], []
    for split in spec.splits:
        df = _read_csv(checks, f"{spec.local_dir}/{split}/labels.csv")
        items += [f"{spec.local_dir}/{split}/images/{f}" for f in df["file"]]
        labels += [int(float(c)) if c != "" else -1 for c in df["class_index"]]
        splits += [split] * len(df)
    return Index(items, np.asarray(labels, dtype=np.int64), None, np.asarray(splits),
                 [checks.digest_or_stat(r) for r in items], classes, f"local:{root}",
                 FileReader(checks, items))


_LOCAL = {"kermany": _kermany_local, "ham": _ham_local, "medmnist": _medmnist_local,
          "imagenet": _imagenet_local}
_DOWNLOADED = {"kermany": _kermany_download, "ham": _ham_download, "medmnist": _medmnist_download}


def build_index(spec: DatasetSpec, *, progress: bool = True) -> Index:
    """The dataset's index from the local root, else from (possibly fresh) downloads."""
    root = data_root()
    if root is not None and all((root / f).is_file() for f in spec.local_files):
        return _LOCAL[spec.kind](spec, root)
    folder = downloaded(spec)
    if folder is None:
        reason = (f"{ENV_ROOT} is not set" if root is None
                  else f"the data root {root} has no {', '.join(spec.local_files)}")
        reason += " and no downloaded copy is in the cache"
        if not spec.downloadable or offline():
            if offline() and spec.downloadable:
                reason += " (downloads are off: ADVMED_OFFLINE=1)"
            raise DataNotFoundError(missing_data_message(spec, reason))
        folder = download(spec.name, progress=progress)
    return _DOWNLOADED[spec.kind](spec, folder)
