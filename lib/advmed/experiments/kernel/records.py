"""Results as data: each family's typed headline record, written by its chapter, read by chapter 8.

As RobustBench keeps one ``model_info/*.json`` per model and builds its leaderboard from them,
each experiment family writes one small record per profile: a frozen dataclass
(:class:`ZooRecord`, :class:`WhiteboxRecord`, :class:`UniversalRecord`, :class:`NaturalRecord`,
:class:`BlackboxRecord`, :class:`PatchesRecord`, :class:`DefensesRecord`) holding exactly the
tables the claims chapter reads, with where they came from (:class:`Record`: family, chapter,
profile and its settings fingerprint, commit, creation time, images, the checkpoint keys
behind them). Chapter 8 reads the records and nothing else: it never calls a family's run
functions, so it never recomputes (hours at paper scale) on a cache miss; a missing record is a
:class:`MissingRecord` that names the chapter to run.

Files: ``$ADVMED_CACHE/records/<profile>-<fingerprint>/<family>.json``, one JSON document per
record (tables exact: every float as Python writes it, NaN and Infinity included, with the
column dtypes), written atomically (:func:`advmed.cache.atomic_write`: an interrupted write
leaves the previous record or none). The fingerprint hashes every setting of the profile the
chapter ran with, so a chapter run with other parameters (``-p tasks ...``) writes elsewhere
and is never read as the profile's.

A new number for a claim is a field of its family's record (a ``pd.DataFrame`` field is a
table; any other field holds JSON values), filled by the family's ``report.headline_record``.
"""
from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
from pathlib import Path
from typing import Any, ClassVar, Iterable, Mapping, TypeVar

import numpy as np
import pandas as pd

from ...cache import atomic_write, cache_root, source_commit
from ..profiles import Profile

#: The record format; a record of another format is not read (its chapter must run again).
RECORD_VERSION = 3
#: The columns that count images in a record's tables (:attr:`Record.n` is their largest value).
IMAGE_COLUMNS = ("n", "n_test", "n_images", "n_eval")


class MissingRecord(FileNotFoundError):
    """A family's record of this profile does not exist (or is of another format): its chapter
    has not run with this profile's settings. ``family`` and ``chapter`` name them."""

    def __init__(self, message: str, *, family: str = "", chapter: str = ""):
        super().__init__(message)
        self.family, self.chapter = family, chapter


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class Record:
    """What every record holds: its provenance. A family's record adds its tables as fields.

    Attributes:
        family, chapter: the family (``"whitebox"``) and the chapter that writes it
            (``"02_whitebox"``); class constants of each record type.
        profile: the profile's name; ``fingerprint``: 12 hex digits of every setting of it
            (:func:`profile_fingerprint`).
        n: the most images a table's row was computed on (its ``n``, ``n_test``, ``n_images``
            or ``n_eval`` columns; 0: not stated).
        sources: the checkpoint keys (``TrainConfig.key()``) of the models behind the results.
        commit: ``git rev-parse HEAD`` of the repository when the record was written
            (``"unknown"`` outside git).
        created: when it was written (ISO 8601, UTC).
    """

    family: ClassVar[str] = ""
    chapter: ClassVar[str] = ""

    profile: str
    fingerprint: str
    n: int = 0
    sources: tuple[str, ...] = ()
    commit: str = "unknown"
    created: str = ""

    def __post_init__(self) -> None:
        bad = [f.name for f in _result_fields(type(self)) if _is_frame_field(f)
               and not isinstance(getattr(self, f.name), pd.DataFrame)]
        if bad:
            raise TypeError(f"{type(self).__name__}: {', '.join(bad)} must be DataFrames")

    def frames(self) -> dict[str, pd.DataFrame]:
        """The record's tables by field name."""
        return {f.name: getattr(self, f.name) for f in _result_fields(type(self)) if _is_frame_field(f)}

    def equals(self, other: Record) -> bool:
        """Same type, provenance, numbers and tables (cell by cell, dtypes included)."""
        if type(other) is not type(self):
            return False
        for f in dataclasses.fields(self):
            a, b = getattr(self, f.name), getattr(other, f.name)
            same = a.equals(b) and list(a.dtypes) == list(b.dtypes) if isinstance(a, pd.DataFrame) else a == b
            if not same:
                return False
        return True


def _result_fields(cls: type) -> list[dataclasses.Field]:
    base = {f.name for f in dataclasses.fields(Record)}
    return [f for f in dataclasses.fields(cls) if f.name not in base]


def _is_frame_field(f: dataclasses.Field) -> bool:
    return f.type in ("pd.DataFrame", pd.DataFrame)


# --------------------------------------------------------------------------- the families' records
#: Every record type by family, in chapter order.
RECORDS: dict[str, type[Record]] = {}
R = TypeVar("R", bound=Record)


def _register(cls: type[R]) -> type[R]:
    RECORDS[cls.family] = cls
    return cls


@_register
@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class ZooRecord(Record):
    """Chapter 1: ``clean``, every model's clean test metrics (numeric
    :func:`~advmed.experiments.zoo.clean_results`: accuracy, AUC, ... with ``_lo`` / ``_hi``);
    ``models``, one row per model (``task, arch, init, init_used, size, val_auc``): what the
    claims say about a model, so chapter 8 loads none."""

    family = "zoo"
    chapter = "01_models"
    clean: pd.DataFrame
    models: pd.DataFrame


@_register
@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class WhiteboxRecord(Record):
    """Chapter 2: the studies' own white-box settings, one row per model and attack
    (:func:`~advmed.experiments.kernel.adversarialmed_results`,
    :func:`~advmed.experiments.kernel.finlayson_results`)."""

    family = "whitebox"
    chapter = "02_whitebox"
    adversarialmed: pd.DataFrame
    finlayson: pd.DataFrame


@_register
@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class UniversalRecord(Record):
    """Chapter 3: every UAP beside its random control (numeric ``universal.tables.uap_table``:
    ``rate``, ``random``, ``rate_all``, ``random_all``, ``dominant_share``, ...) and how visible
    each is (``universal.run.perceptibility``: norms in grey levels, median PSNR and SSIM)."""

    family = "universal"
    chapter = "03_uap"
    uap: pd.DataFrame
    perceptibility: pd.DataFrame


@_register
@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class NaturalRecord(Record):
    """Chapter 4: ``natural``, UAPs from photos beside medical ones
    (``universal.tables.natural_vs_medical``); ``targeted``, the same for the targeted UAPs;
    ``cross_source``, the UAPs from two disjoint photo sources (``universal.tables.source_table``,
    numeric); ``transfer``, the photo-built UAPs applied to every model of their task
    (``universal.tables.transfer_table``); ``drift``, each fine-tuned model's weight drift from
    ImageNet per block; ``ablation``, the resolution ablation (``universal.fidelity``)."""

    family = "natural"
    chapter = "04_natural_uap"
    natural: pd.DataFrame
    targeted: pd.DataFrame
    cross_source: pd.DataFrame
    transfer: pd.DataFrame
    drift: pd.DataFrame
    ablation: pd.DataFrame


@_register
@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class BlackboxRecord(Record):
    """Chapter 5: Finlayson et al.'s black box, one row per task and surrogate
    (``blackbox.run.finlayson_blackbox``: ``target_rate``, ``clean_accuracy``,
    ``white_target_rate``, ...); the query attacks, one row per task and attack
    (``blackbox.tables.query_record``: ``success`` within the budget among ``n`` attacked images)."""

    family = "blackbox"
    chapter = "05_blackbox"
    finlayson: pd.DataFrame
    queries: pd.DataFrame


@_register
@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class PatchesRecord(Record):
    """Chapter 6: Finlayson et al.'s patch table beside ours (numeric
    ``patches.tables.finlayson_table``), one row per task and patch."""

    family = "patches"
    chapter = "06_patches"
    finlayson: pd.DataFrame


@_register
@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class DefensesRecord(Record):
    """Chapter 7: the typed numbers of claims 4, 5, 12, 13 and 14 (``defenses.report.DefenseClaims``),
    one table per part, one row per case (``defenses.report.claims_from_record`` reads them back)."""

    family = "defenses"
    chapter = "07_defenses"
    adversarial_training: pd.DataFrame
    fgsm_training: pd.DataFrame
    preprocessing: pd.DataFrame
    retraining: pd.DataFrame
    regularisation: pd.DataFrame


#: The chapter that writes each family's record.
CHAPTERS: dict[str, str] = {family: cls.chapter for family, cls in RECORDS.items()}


# --------------------------------------------------------------------------- provenance
def _canonical(value: Any) -> Any:
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    return repr(value)


def profile_fingerprint(profile: Profile) -> str:
    """12 hex digits of the SHA-256 of every setting of ``profile`` (its dataclass fields)."""
    blob = json.dumps(dataclasses.asdict(profile), sort_keys=True, default=_canonical)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def _images(frames: Iterable[pd.DataFrame]) -> int:
    n = 0
    for f in frames:
        for col in IMAGE_COLUMNS:
            if col in f.columns and len(f):
                n = max(n, int(pd.to_numeric(f[col], errors="coerce").fillna(0).max()))
    return n


def record_type(cls_or_family: type[R] | str) -> type[R]:
    """The record type of a family name (or the type itself); an unknown one lists the valid."""
    if isinstance(cls_or_family, type) and issubclass(cls_or_family, Record) and cls_or_family.family in RECORDS:
        return cls_or_family
    if isinstance(cls_or_family, str) and cls_or_family in RECORDS:
        return RECORDS[cls_or_family]  # type: ignore[return-value]
    raise KeyError(f"unknown record family {cls_or_family!r}; valid: {', '.join(RECORDS)}")


def make_record(cls_or_family: type[R] | str, profile: Profile, *, sources: Iterable[Any] = (),
                n: int | None = None, **results: Any) -> R:
    """A record of ``profile``'s results (``results``: the record type's fields), stamped with
    the profile's fingerprint, the commit and the time; ``n`` defaults to the largest image
    count of its tables (:data:`IMAGE_COLUMNS`)."""
    cls = record_type(cls_or_family)
    wanted = {f.name for f in _result_fields(cls)}
    if set(results) != wanted:
        raise TypeError(f"{cls.__name__} holds {sorted(wanted)}; got {sorted(results)}")
    frames = [v for v in results.values() if isinstance(v, pd.DataFrame)]
    return cls(profile=profile.name, fingerprint=profile_fingerprint(profile),
               n=_images(frames) if n is None else int(n), sources=tuple(sorted({str(s) for s in sources})),
               commit=source_commit(), created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
               **results)


# --------------------------------------------------------------------------- storage
def _path(family: str, name: str, fingerprint: str) -> Path:
    return cache_root() / "records" / f"{name}-{fingerprint}" / f"{family}.json"


def record_path(cls_or_family: type[Record] | str, profile: Profile) -> Path:
    """Where the family's record of ``profile`` lives."""
    return _path(record_type(cls_or_family).family, profile.name, profile_fingerprint(profile))


def _scalar(v: Any) -> Any:
    """A table cell as a JSON value (floats exact; NaN and Infinity as Python's json writes them)."""
    if v is None or v is pd.NaT or v is pd.NA:
        return None
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, (pd.Timestamp, datetime.datetime, datetime.date)):
        return v.isoformat()
    if isinstance(v, (pd.Timedelta, datetime.timedelta)):
        return str(v)
    if isinstance(v, (tuple, list)):
        return [_scalar(x) for x in v]
    return v


def _encode_frame(name: str, f: pd.DataFrame) -> dict[str, Any]:
    if isinstance(f.columns, pd.MultiIndex) or isinstance(f.index, pd.MultiIndex):
        raise TypeError(f"record table {name!r}: flatten its MultiIndex first (reset_index / join the levels)")
    default = f.index.equals(pd.RangeIndex(len(f))) and f.index.name is None
    return {"columns": [_scalar(c) for c in f.columns], "dtypes": [str(t) for t in f.dtypes],
            "index": None if default else [_scalar(i) for i in f.index], "index_name": _scalar(f.index.name),
            "index_dtype": str(f.index.dtype),
            "data": [[_scalar(v) for v in row] for row in f.itertuples(index=False, name=None)]}


def _restore(values: pd.Series | pd.Index, dtype: str):
    try:
        return values.astype(dtype)
    except (TypeError, ValueError):
        return values


def _decode_frame(body: Mapping[str, Any]) -> pd.DataFrame:
    index = None if body["index"] is None else _restore(pd.Index(body["index"], name=body["index_name"], dtype=object),
                                                        body["index_dtype"])
    if body["columns"]:
        f = pd.DataFrame(body["data"], columns=body["columns"], index=index)
    else:
        f = pd.DataFrame(index=index if index is not None else pd.RangeIndex(len(body["data"])))
    for i, dtype in enumerate(body["dtypes"]):
        f.isetitem(i, _restore(f.iloc[:, i], dtype))
    return f


def write_record(record: Record) -> None:
    """Write ``record`` (atomically) where :func:`read_record` of its profile finds it
    (:func:`record_path`). Returns nothing, so a chapter's cell that ends with it shows nothing."""
    cls = record_type(type(record))

    def write(tmp: Path) -> None:
        results = _result_fields(cls)
        body = {"version": RECORD_VERSION, "family": cls.family, "chapter": cls.chapter,
                **{f.name: getattr(record, f.name) for f in dataclasses.fields(Record)},
                "sources": list(record.sources),
                "values": {f.name: getattr(record, f.name) for f in results if not _is_frame_field(f)},
                "frames": {f.name: _encode_frame(f.name, getattr(record, f.name)) for f in results
                           if _is_frame_field(f)}}
        with open(tmp, "w") as fh:
            json.dump(body, fh, indent=1)

    atomic_write(_path(cls.family, record.profile, record.fingerprint), write)


def read_record(cls_or_family: type[R] | str, profile: Profile) -> R:
    """The family's record of ``profile`` (a :class:`ZooRecord`, ...); :class:`MissingRecord`,
    naming the chapter to run, when that chapter has not run with this profile's settings."""
    cls = record_type(cls_or_family)
    fingerprint = profile_fingerprint(profile)
    path = _path(cls.family, profile.name, fingerprint)

    def missing(why: str) -> MissingRecord:
        return MissingRecord(
            f"no {cls.family} record for profile {profile.name!r} (settings {fingerprint}{why}): run chapter "
            f"{cls.chapter} first with the same profile and parameters (python -m advmed.book run "
            f"book/{cls.chapter}.py -p profile {profile.name}) or build the book (python -m advmed.book build "
            f"--profile {profile.name}); looked for {path}", family=cls.family, chapter=cls.chapter)

    if not path.exists():
        raise missing("")
    body = json.loads(path.read_text())
    results = _result_fields(cls)
    frames, values = body.get("frames", {}), body.get("values", {})
    absent = [f.name for f in results if f.name not in (frames if _is_frame_field(f) else values)]
    if body.get("version") != RECORD_VERSION or body.get("family") != cls.family or absent:
        raise missing(f"; the one there is of record format {body.get('version')}"
                      + (f" without {', '.join(absent)}" if absent else "") + f", this code reads {RECORD_VERSION}")
    return cls(profile=body["profile"], fingerprint=body["fingerprint"], n=int(body.get("n", 0)),
               sources=tuple(body.get("sources", ())), commit=body.get("commit", "unknown"),
               created=body.get("created", ""),
               **{f.name: _decode_frame(frames[f.name]) if _is_frame_field(f) else values[f.name] for f in results})


def zoo_record(profile: Profile, trained: Mapping[tuple, Any], clean: pd.DataFrame) -> ZooRecord:
    """Chapter 1's record: the clean metrics (numeric :func:`~advmed.experiments.zoo.clean_results`)
    and what the claims say about each model (the initialisation used, the side, the validation AUC)."""
    models = pd.DataFrame([{"task": k[0], "arch": k[1], "init": k[2], "init_used": str(tm.init_used),
                            "size": int(tm.config.size), "val_auc": float(tm.val_auc)} for k, tm in trained.items()],
                          columns=["task", "arch", "init", "init_used", "size", "val_auc"])
    return make_record(ZooRecord, profile, clean=clean, models=models,
                       sources=[tm.config.key() for tm in trained.values()])


__all__ = ["CHAPTERS", "IMAGE_COLUMNS", "RECORDS", "RECORD_VERSION", "BlackboxRecord", "DefensesRecord",
           "MissingRecord", "NaturalRecord", "PatchesRecord", "Record", "UniversalRecord", "WhiteboxRecord",
           "ZooRecord", "make_record", "profile_fingerprint", "read_record", "record_path", "record_type",
           "write_record", "zoo_record"]
