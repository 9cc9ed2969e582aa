"""Checksummed downloads from the official hosts into ``$ADVMED_CACHE/downloads/<dataset>``.

Built on pooch (``pooch.retrieve``): it streams into a temporary file in the target
folder and moves it into place only after the hash matched, so an interrupted or
corrupt download never leaves a file behind that a later run could trust.

Checksums, in order of preference:
1. the host's published hash (MedMNIST MD5s; Dataverse's per-file MD5);
2. otherwise trust on first use: the SHA-256 of the first complete download is written
   to ``TRUSTED_SHA256.json`` beside the file, and every later download or re-check of
   that file must match it (Mendeley Data publishes no checksum for ChestXRay2017.zip).
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import pooch
import requests

from ..cache import atomic_write
from .checksums import file_digest
from .errors import ChecksumError, DataNotFoundError, DownloadError
from .paths import ENV_OFFLINE, ENV_ROOT, downloads_dir, offline
from .registry import DatasetSpec, DataverseFiles, Remote, get_spec

log = logging.getLogger(__name__)

# Dataverse's firewall answers the default python agents with 403; name ourselves.
USER_AGENT = "advmed-data/0.1 (+https://github.com/; research data loader)"
TIMEOUT_S = 60
TRUST_FILE = "TRUSTED_SHA256.json"


def _read_trust(folder: Path) -> dict[str, dict[str, str]]:
    path = folder / TRUST_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def _write_trust(folder: Path, trust: dict[str, dict[str, str]]) -> None:
    text = json.dumps(trust, indent=2, sort_keys=True)
    atomic_write(folder / TRUST_FILE, lambda tmp: tmp.write_text(text))


def fetch(remote: Remote, folder: Path, *, progress: bool = True) -> Path:
    """Download ``remote`` into ``folder`` (or reuse a verified copy); returns its path.

    Raises:
        ChecksumError: the download does not match the published or recorded hash; the
            file was deleted.
        DownloadError: network failure, HTTP error or interrupted transfer; nothing kept.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    trust = _read_trust(folder)
    recorded = trust.get(remote.fname, {}).get("sha256")
    known = remote.known_hash or (f"sha256:{recorded}" if recorded else None)
    downloader = pooch.HTTPDownloader(progressbar=progress, headers={"User-Agent": USER_AGENT},
                                      timeout=TIMEOUT_S)
    try:
        path = Path(pooch.retrieve(remote.url, known_hash=known, fname=remote.fname, path=folder,
                                   downloader=downloader, progressbar=progress))
    except ValueError as e:
        if "hash" not in str(e).lower():
            raise
        if remote.known_hash:
            origin = f"published by {remote.host}"
            advice = f"Retry later; if it keeps failing, the file on {remote.host} changed: report it."
        else:
            origin = f"recorded on first download in {folder / TRUST_FILE}"
            advice = (f"Retry later; if it keeps failing, the file on {remote.host} changed: delete its "
                      f"entry in {TRUST_FILE} only if you trust the new version.")
        raise ChecksumError(
            f"{remote.fname} downloaded from {remote.url} does not match the checksum {origin} "
            f"({known}); the file was refused and deleted. {advice} ({e})"
        ) from None
    except (requests.RequestException, OSError) as e:
        raise DownloadError(
            f"download of {remote.fname} from {remote.url} ({remote.host}) failed: {e}. No partial "
            f"file was kept; check the connection and call the download again."
        ) from e
    if known is None:
        sha = file_digest(path)
        trust[remote.fname] = {"sha256": sha, "url": remote.url}
        _write_trust(folder, trust)
        log.warning("%s: %s publishes no checksum; recorded sha256 %s on first use in %s",
                    remote.fname, remote.host, sha, folder / TRUST_FILE)
    return path


def resolve_dataverse(src: DataverseFiles) -> list[Remote]:
    """Remotes for ``src.files``, with ids and MD5s read from the Dataverse dataset record.

    Names are matched on their stem, because Dataverse renames an ingested table
    (``HAM10000_metadata`` -> ``HAM10000_metadata.tab``); ingested tables are fetched in
    their original format (``?format=original``), whose hash the record does not give, so
    they are trusted on first use. Without the record the ``fallback_ids`` are used.
    """
    url = f"{src.server}/api/datasets/:persistentId/?persistentId={src.doi}"
    try:
        resp = requests.get(url, headers={"User-Agent": USER_AGENT}, timeout=TIMEOUT_S)
        resp.raise_for_status()
        files = resp.json()["data"]["latestVersion"]["files"]
        record = {}
        for entry in files:
            df = entry["dataFile"]
            record[Path(df["filename"]).stem] = df
            record[df["filename"]] = df
    except (requests.RequestException, ValueError, KeyError) as e:
        log.warning("could not read the Dataverse record %s (%s); using the stored file ids", url, e)
        record = None
    remotes = []
    for name in src.files:
        df = None if record is None else record.get(name, record.get(Path(name).stem))
        if record is not None and df is None:
            raise DownloadError(
                f"{name} is not in the Dataverse record {src.doi} ({url}); the dataset changed. "
                f"Files there: {', '.join(sorted(k for k in record if '.' in k))}"
            )
        file_id = df["id"] if df else src.fallback_ids[name]
        ingested = bool(df and df.get("originalFileFormat")) or (df is None and "." not in name)
        md5 = None
        if df and not ingested:
            md5 = df.get("md5") or (df.get("checksum", {}).get("value")
                                    if df.get("checksum", {}).get("type", "").upper() == "MD5" else None)
        fname = name if "." in name else f"{name}.csv"
        file_url = f"{src.server}/api/access/datafile/{file_id}" + ("?format=original" if ingested else "")
        remotes.append(Remote(fname, file_url, f"md5:{md5}" if md5 else None, src.host))
    return remotes


def remotes_of(spec: DatasetSpec) -> list[Remote]:
    """Every file the dataset's download route fetches (resolving Dataverse ids online)."""
    remotes = list(spec.remotes)
    if spec.dataverse is not None:
        remotes += resolve_dataverse(spec.dataverse)
    return remotes


def expected_files(spec: DatasetSpec) -> list[str]:
    """Names the download route leaves in ``downloads_dir(name)`` (no network needed)."""
    names = [r.fname for r in spec.remotes]
    if spec.dataverse is not None:
        names += [n if "." in n else f"{n}.csv" for n in spec.dataverse.files]
    return names


def downloaded(spec: DatasetSpec) -> Path | None:
    """The download folder when every file of the route is there, else None."""
    if not spec.downloadable:
        return None
    folder = downloads_dir(spec.name)
    return folder if all((folder / n).is_file() for n in expected_files(spec)) else None


def missing_data_message(spec: DatasetSpec, reason: str) -> str:
    need = ", ".join(spec.local_files)
    msg = (f"{spec.name}: {reason}. Set {ENV_ROOT} to a data root laid out like the project's "
           f"data mirror (it needs {need})")
    if spec.downloadable:
        msg += (f", or allow downloads (unset {ENV_OFFLINE}) and run {spec.download_route()}.")
    else:
        msg += f"; {spec.download_route()}."
    return msg


def download(name: str, *, progress: bool = True) -> Path:
    """Download a dataset's original files from its official host; returns their folder.

    ``kermany_cxr``: ChestXRay2017.zip (~1.2 GB) from Mendeley Data; ``ham10000``: two
    image zips and the metadata table (~2.8 GB) from Harvard Dataverse; the MedMNIST
    sets: their 28 px npz from Zenodo. Files already present and verified are reused.
    """
    spec = get_spec(name)
    if not spec.downloadable:
        raise DataNotFoundError(missing_data_message(spec, "it cannot be downloaded"))
    if offline():
        raise DataNotFoundError(missing_data_message(spec, f"downloads are off ({ENV_OFFLINE}=1)"))
    folder = downloads_dir(name)
    for remote in remotes_of(spec):
        fetch(remote, folder, progress=progress)
    return folder
