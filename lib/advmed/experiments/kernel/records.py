"""Results as data: each family's headline record, written by its chapter, read by chapter 8.

As RobustBench keeps one ``model_info/*.json`` per model and builds its leaderboard from them,
each experiment family writes one small :class:`Record` per profile: the tables and numbers
the claims chapter needs, with where they came from (profile and its fingerprint, commit,
creation time, images, the checkpoint keys behind them). Chapter 8 reads the records and
nothing else: it never calls a family's run functions, so it never recomputes (hours at paper
scale) on a cache miss; a missing record is an error that names the chapter to run.

Files: ``$ADVMED_CACHE/records/<profile>-<fingerprint>/<family>.json``, written atomically
(:func:`advmed.cache.atomic_write`: an interrupted write leaves the previous record or none).
The fingerprint hashes every setting of the profile the chapter ran with, so a chapter run
with other parameters (``papermill -p n_images 50``) writes elsewhere and is never read as the
profile's.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import subprocess
import time
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from ...cache import atomic_write, cache_root
from ..profiles import Profile

#: The chapter that writes each family's record.
CHAPTERS: dict[str, str] = {"zoo": "01_models", "whitebox": "02_whitebox", "universal": "03_uap",
                            "natural": "04_natural_uap", "blackbox": "05_blackbox", "patches": "06_patches",
                            "defenses": "07_defenses"}
RECORD_VERSION = 1


class MissingRecord(FileNotFoundError):
    """A family's record for this profile does not exist: its chapter has not run."""


@dataclasses.dataclass(frozen=True)
class Record:
    """One family's headline results for one profile.

    Attributes:
        family: a key of :data:`CHAPTERS`.
        profile: the profile's name; ``fingerprint``: 12 hex digits of its settings.
        frames: the tables the claims read, by name.
        numbers: scalars (JSON values) by name.
        sources: the checkpoint keys of the models behind the results.
        n: the most images any table's row was computed on (0: not stated).
        commit: the repository's commit when the record was written ("unknown" outside git).
        created: ISO time of writing.
    """

    family: str
    profile: str
    fingerprint: str
    frames: Mapping[str, pd.DataFrame]
    numbers: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    sources: tuple[str, ...] = ()
    n: int = 0
    commit: str = "unknown"
    created: str = ""

    @property
    def chapter(self) -> str:
        return CHAPTERS[self.family]


def profile_fingerprint(profile: Profile) -> str:
    """12 hex digits of the SHA-256 of every setting of ``profile``."""
    blob = json.dumps(dataclasses.asdict(profile), sort_keys=True, default=repr)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def _commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent, capture_output=True,
                             text=True, timeout=10)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _check_family(family: str) -> None:
    if family not in CHAPTERS:
        raise KeyError(f"unknown record family {family!r}; valid: {', '.join(CHAPTERS)}")


def _path(family: str, name: str, fingerprint: str) -> Path:
    _check_family(family)
    return cache_root() / "records" / f"{name}-{fingerprint}" / f"{family}.json"


def record_path(family: str, profile: Profile) -> Path:
    """Where ``family``'s record of ``profile`` lives."""
    return _path(family, profile.name, profile_fingerprint(profile))


def make_record(family: str, profile: Profile, *, frames: Mapping[str, pd.DataFrame],
                numbers: Mapping[str, Any] | None = None, sources: Any = ()) -> Record:
    """A record of ``profile``'s results, stamped with the commit and the time; ``n`` is the
    largest ``n`` / ``n_test`` / ``n_images`` column of the frames."""
    _check_family(family)
    bad = [k for k, f in frames.items() if not isinstance(f, pd.DataFrame)]
    if bad:
        raise TypeError(f"record frames must be DataFrames; not: {bad}")
    n = 0
    for f in frames.values():
        for col in ("n", "n_test", "n_images"):
            if col in f.columns and len(f):
                n = max(n, int(pd.to_numeric(f[col], errors="coerce").fillna(0).max()))
    return Record(family, profile.name, profile_fingerprint(profile), dict(frames), dict(numbers or {}),
                  tuple(sorted({str(s) for s in sources})), n, _commit(), time.strftime("%Y-%m-%dT%H:%M:%S%z"))


def write_record(record: Record) -> None:
    """Write ``record`` (atomically) where :func:`read_record` of its profile finds it
    (:func:`record_path`)."""
    body = {"version": RECORD_VERSION, **{f.name: getattr(record, f.name) for f in dataclasses.fields(record)
                                           if f.name != "frames"},
            "sources": list(record.sources),
            "frames": {k: f.to_json(orient="split", date_format="iso", double_precision=15)
                       for k, f in record.frames.items()}}
    text = json.dumps(body, indent=1, default=float)
    path = _path(record.family, record.profile, record.fingerprint)
    atomic_write(path, lambda p: p.write_text(text))


def read_record(family: str, profile: Profile) -> Record:
    """``family``'s record of ``profile``; :class:`MissingRecord` (naming the chapter to run)
    when its chapter has not run with this profile's settings."""
    path = record_path(family, profile)
    if not path.exists():
        chapter = CHAPTERS[family]
        raise MissingRecord(f"no {family} record for profile {profile.name!r} (settings {profile_fingerprint(profile)}): "
                            f"run chapter {chapter} with the same profile first "
                            f"(python -m advmed.book run book/{chapter}.py -p profile {profile.name}), or build the "
                            f"book (make book PROFILE={profile.name}); looked for {path}")
    body = json.loads(path.read_text())
    frames = {k: pd.read_json(io.StringIO(v), orient="split", precise_float=True) for k, v in body["frames"].items()}
    return Record(family=body["family"], profile=body["profile"], fingerprint=body["fingerprint"], frames=frames,
                  numbers=body.get("numbers", {}), sources=tuple(body.get("sources", ())), n=int(body.get("n", 0)),
                  commit=body.get("commit", "unknown"), created=body.get("created", ""))


def zoo_record(profile: Profile, trained: Mapping[tuple, Any], clean: pd.DataFrame) -> Record:
    """Chapter 1's record: the clean metrics (numeric :func:`~advmed.experiments.zoo.clean_results`)
    and what the claims say about each model (the initialisation used, the side, the validation AUC)."""
    models = pd.DataFrame([{"task": k[0], "arch": k[1], "init": k[2], "init_used": str(tm.init_used),
                            "size": int(tm.config.size), "val_auc": float(tm.val_auc)} for k, tm in trained.items()],
                          columns=["task", "arch", "init", "init_used", "size", "val_auc"])
    return make_record("zoo", profile, frames={"clean": clean, "models": models},
                       sources=[tm.config.key() for tm in trained.values()])


__all__ = ["CHAPTERS", "MissingRecord", "Record", "make_record", "profile_fingerprint", "read_record", "record_path",
           "write_record", "zoo_record"]
