"""The dataset registry: what each dataset is, where it comes from, how it is split.

``DATASETS[name]`` is a :class:`DatasetSpec`. The index builders in
:mod:`advmed.data.sources` read the files it names; :mod:`advmed.data.download`
fetches its :class:`Remote` files; :mod:`advmed.data.splits` applies its split rule.

Sources (official hosts, used when the local data root lacks a dataset):

- MedMNIST v2 (Yang et al., Sci Data 10:41, 2023), Zenodo record 10519652; the MD5s
  are those of the ``medmnist`` package's ``INFO[flag]["MD5"]`` (equal to the mirror's).
- Kermany et al. 2018 (Cell 172(5):1122), Mendeley Data doi:10.17632/rscbjbr9sj.2,
  ``ChestXRay2017.zip``. Mendeley publishes no checksum for it: the SHA-256 is recorded
  on first download (trust on first use) and verified afterwards.
- HAM10000 (Tschandl et al., Sci Data 5:180161, 2018), Harvard Dataverse
  doi:10.7910/DVN/DBW86T. File ids and MD5s are read from the Dataverse dataset record
  at download time (Dataverse publishes an MD5 per file); the metadata table is served
  in its original (pre-ingest) format, whose hash is recorded on first use.
- ``imagenet_samples``: only in the local mirror (ImageNet terms forbid redistribution
  and there is no public per-file host).
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Remote:
    """One file on an official host.

    ``known_hash`` is pooch's ``"md5:<hex>"`` / ``"sha256:<hex>"``; None means the host
    publishes no checksum, so the SHA-256 of the first download is recorded and enforced
    afterwards (see :mod:`advmed.data.download`).
    """

    fname: str
    url: str
    known_hash: str | None
    host: str


@dataclass(frozen=True)
class DataverseFiles:
    """Files of a Dataverse dataset, resolved by name from the dataset's JSON record.

    ``fallback_ids`` (file name -> numeric file id, as observed in the DBW86T record) are
    used only when the record cannot be read; those downloads carry no published MD5 and
    fall back to trust on first use.
    """

    server: str
    doi: str
    files: tuple[str, ...]  # names as listed in the record (stem match: .tab/.csv vary)
    fallback_ids: dict[str, int] = field(default_factory=dict)
    host: str = "Harvard Dataverse"


@dataclass(frozen=True)
class View:
    """A relabelling of a dataset: ``mapping`` old label -> new label; others are dropped."""

    name: str
    classes: tuple[str, ...]
    mapping: dict[int, int]
    description: str


@dataclass(frozen=True)
class DatasetSpec:
    """Everything the loaders need to know about one dataset.

    Attributes:
        kind: which index builder reads it (``medmnist``, ``kermany``, ``ham``, ``imagenet``).
        grayscale: natively one channel (then cached with one channel and replicated on
            load when 3 are asked for).
        resize: ``squash`` (resize to size x size, as the mirror's redistributors did) or
            ``short_side_crop`` (short side to round(size*256/224), centre crop size x size).
        local_dir / local_files: the dataset's folder in the data root and the files that
            must be there for the local copy to count as present.
        remotes / dataverse: the download route; ``download_fn`` names the public function.
    """

    name: str
    title: str
    kind: str
    classes: tuple[str, ...]
    splits: tuple[str, ...]
    grayscale: bool
    resize: str
    local_dir: str
    local_files: tuple[str, ...]
    source: str
    license: str
    labels: str
    split_rule: str
    remotes: tuple[Remote, ...] = ()
    dataverse: DataverseFiles | None = None
    views: dict[str, View] = field(default_factory=dict)
    group_name: str | None = None  # what a group is ("patient", "lesion")

    @property
    def downloadable(self) -> bool:
        return bool(self.remotes) or self.dataverse is not None

    def download_route(self) -> str:
        """One sentence naming the host and the function that downloads this dataset."""
        if not self.downloadable:
            return (f"{self.name} has no download route (only the local data mirror carries it: "
                    f"{self.source})")
        hosts = sorted({r.host for r in self.remotes} | ({self.dataverse.host} if self.dataverse else set()))
        what = ", ".join(r.fname for r in self.remotes) or ", ".join(self.dataverse.files)
        return (f"advmed.data.download({self.name!r}) fetches {what} from {' and '.join(hosts)} "
                f"({self.source}) into $ADVMED_CACHE/downloads/{self.name}")


# Zenodo record of MedMNIST+ (v3 files; the 28 px files are the MedMNIST v2 ones).
_ZENODO = "https://zenodo.org/records/10519652/files/{name}.npz?download=1"
_MEDMNIST_MD5 = {  # medmnist package INFO[flag]["MD5"]; equal to the mirror's files
    "pneumoniamnist": "28209eda62fecd6e6a2d98b1501bb15f",
    "retinamnist": "bd4c0672f1bba3e3a89f0e4e876791e4",
    "breastmnist": "750601b1f35ba3300ea97c75c52ff8f6",
}
_MEDMNIST_CITE = "MedMNIST v2, Yang et al., Sci Data 10:41 (2023); Zenodo record 10519652"


def _medmnist(name: str, title: str, classes: tuple[str, ...], grayscale: bool, labels: str,
              views: dict[str, View] | None = None) -> DatasetSpec:
    return DatasetSpec(
        name=name, title=title, kind="medmnist", classes=classes, splits=("train", "val", "test"),
        grayscale=grayscale, resize="squash", local_dir="medmnist", local_files=(f"medmnist/{name}.npz",),
        source=_MEDMNIST_CITE, license="CC BY 4.0", labels=labels,
        split_rule="official MedMNIST train/val/test",
        remotes=(Remote(f"{name}.npz", _ZENODO.format(name=name), f"md5:{_MEDMNIST_MD5[name]}", "Zenodo"),),
        views=views or {},
    )


_HAM_CLASSES = ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")

DATASETS: dict[str, DatasetSpec] = {
    "kermany_cxr": DatasetSpec(
        name="kermany_cxr",
        title="Paediatric chest X-ray, pneumonia vs normal (Kermany et al. 2018)",
        kind="kermany", classes=("normal", "pneumonia"), splits=("train", "val", "test"),
        grayscale=True, resize="squash",
        local_dir="chest_xray_kermany_224", local_files=("chest_xray_kermany_224/labels.csv",),
        source="Kermany et al., Cell 172(5) 2018; Mendeley Data doi:10.17632/rscbjbr9sj.2, ChestXRay2017.zip",
        license="CC BY 4.0",
        labels="folder NORMAL -> 0 normal, PNEUMONIA -> 1 pneumonia",
        split_rule=("Kaggle/Mendeley train and test folders; val = about 10 % of train carved by "
                    "patient (StratifiedKFold over patients, 10 folds, fold 0, seed 0); patient id from the "
                    "file name: personN_..., IM-XXXX-..., NORMAL2-IM-XXXX-..."),
        remotes=(Remote(
            "ChestXRay2017.zip",
            "https://data.mendeley.com/public-files/datasets/rscbjbr9sj/files/"
            "f12eaf6d-6023-432f-acc9-80c9d7393433/file_downloaded",
            None,  # Mendeley Data publishes no checksum: trust on first use
            "Mendeley Data"),),
        group_name="patient",
    ),
    "ham10000": DatasetSpec(
        name="ham10000",
        title="Dermoscopy, seven diagnoses (HAM10000, Tschandl et al. 2018)",
        kind="ham", classes=_HAM_CLASSES, splits=("train", "val", "test"),
        grayscale=False, resize="squash",
        local_dir="ham10000_224", local_files=("ham10000_224/labels.csv",),
        source="Tschandl et al., Sci Data 5:180161 (2018); Harvard Dataverse doi:10.7910/DVN/DBW86T",
        license="CC BY-NC 4.0",
        labels="dx column: akiec, bcc, bkl, df, mel, nv, vasc -> 0..6",
        split_rule=("70/15/15 train/val/test by lesion_id, stratified by dx "
                    "(StratifiedKFold over lesions, 20 folds, seed 0: folds 0-2 test, 3-5 val, rest train)"),
        dataverse=DataverseFiles(
            server="https://dataverse.harvard.edu", doi="doi:10.7910/DVN/DBW86T",
            files=("HAM10000_images_part_1.zip", "HAM10000_images_part_2.zip", "HAM10000_metadata"),
            fallback_ids={"HAM10000_images_part_1.zip": 3172585, "HAM10000_images_part_2.zip": 3172584,
                          "HAM10000_metadata": 4338392},
        ),
        views={"mel_vs_nv": View(
            "mel_vs_nv", ("nevus", "melanoma"), {_HAM_CLASSES.index("nv"): 0, _HAM_CLASSES.index("mel"): 1},
            "melanoma (mel) = 1 vs melanocytic nevus (nv) = 0; other diagnoses dropped")},
        group_name="lesion",
    ),
    "retinamnist": _medmnist(
        "retinamnist", "Fundus, diabetic retinopathy grade 0-4 (RetinaMNIST, DeepDRiD)",
        ("0", "1", "2", "3", "4"), grayscale=False, labels="ICDR grade 0..4",
        views={"referable": View("referable", ("non-referable", "referable"),
                                 {0: 0, 1: 0, 2: 1, 3: 1, 4: 1},
                                 "referable diabetic retinopathy: grade >= 2 -> 1")}),
    "pneumoniamnist": _medmnist(
        "pneumoniamnist", "Chest X-ray, pneumonia vs normal at 28 px (PneumoniaMNIST)",
        ("normal", "pneumonia"), grayscale=True, labels="0 normal, 1 pneumonia"),
    "breastmnist": _medmnist(
        "breastmnist", "Breast ultrasound, malignant vs normal/benign at 28 px (BreastMNIST)",
        ("malignant", "normal/benign"), grayscale=True, labels="0 malignant, 1 normal + benign"),
    "imagenet_samples": DatasetSpec(
        name="imagenet_samples",
        title="Natural ImageNet photos (1 per class; 5 per class of 200 detection categories)",
        kind="imagenet", classes=(), splits=("one_per_class_1000", "det200_five_per_class_1000"),
        grayscale=False, resize="short_side_crop",
        local_dir="imagenet_samples",
        local_files=("imagenet_samples/one_per_class_1000/labels.csv",
                     "imagenet_samples/det200_five_per_class_1000/labels.csv"),
        source="ILSVRC-2012 / ILSVRC detection photos (Russakovsky et al., IJCV 2015), local mirror only",
        license="ImageNet terms (research use)",
        labels="class_index in sorted-wnid order (torchvision/Keras); -1 where the wnid is not one of the 1,000",
        split_rule="the two folders of the mirror",
    ),
}


def _names(items) -> str:
    return ", ".join(sorted(items))


def get_spec(name: str) -> DatasetSpec:
    """The spec of a dataset; unknown names list the valid ones."""
    try:
        return DATASETS[name]
    except KeyError:
        raise KeyError(f"unknown dataset {name!r}; valid datasets: {_names(DATASETS)}") from None


def check_split(spec: DatasetSpec, split: str) -> None:
    if split not in spec.splits:
        raise KeyError(f"unknown split {split!r} of {spec.name}; valid splits: {', '.join(spec.splits)}")


def get_view(spec: DatasetSpec, view: str | None) -> View | None:
    if view is None:
        return None
    try:
        return spec.views[view]
    except KeyError:
        valid = _names(spec.views) if spec.views else "none (use view=None)"
        raise KeyError(f"unknown view {view!r} of {spec.name}; valid views: {valid}") from None


def datasets_table():
    """The registry as a pandas table (one row per dataset) for the book."""
    import pandas as pd

    rows = [{
        "dataset": s.name, "title": s.title,
        "classes": ", ".join(s.classes) if s.classes else "1,000 ImageNet classes",
        "splits": ", ".join(s.splits), "views": ", ".join(s.views) or "-",
        "split rule": s.split_rule, "source": s.source, "licence": s.license,
    } for s in DATASETS.values()]
    return pd.DataFrame(rows).set_index("dataset")
