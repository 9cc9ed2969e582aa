"""Checksums: hashing files and verifying a data root against its ``SHA256SUMS``.

``SHA256SUMS`` is the output of ``sha256sum`` run in the root (lines
``<hex>  ./relative/path``). When a root has one, every file the loaders read is
checked against it; a file that does not match, or is not listed, is refused.
"""
from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

from .errors import ChecksumError

_CHUNK = 1 << 20  # 1 MiB


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in 1 MiB chunks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _normalise(rel: str) -> str:
    rel = rel.strip().replace("\\", "/")
    return rel[2:] if rel.startswith("./") else rel.lstrip("*")


@lru_cache(maxsize=8)
def _read_sums(path: str, mtime_ns: int, size: int) -> dict[str, str]:
    # Keyed on mtime and size so that an edited SHA256SUMS is read again.
    sums: dict[str, str] = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.rstrip("\n")
            if not line.strip():
                continue
            digest, _, rel = line.partition(" ")
            sums[_normalise(rel.lstrip(" *"))] = digest.lower()
    return sums


class RootChecksums:
    """The ``SHA256SUMS`` of a data root, or an empty verifier when it has none."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.path = self.root / "SHA256SUMS"
        if self.path.is_file():
            st = self.path.stat()
            self.sums: dict[str, str] | None = _read_sums(str(self.path), st.st_mtime_ns, st.st_size)
        else:
            self.sums = None

    @property
    def active(self) -> bool:
        return self.sums is not None

    def expected(self, rel: str) -> str | None:
        """The listed SHA-256 of ``rel`` (path relative to the root), None if not listed."""
        return None if self.sums is None else self.sums.get(_normalise(rel))

    def digest_or_stat(self, rel: str) -> str:
        """A cheap content fingerprint: the listed hash, else size and mtime of the file."""
        listed = self.expected(rel)
        if listed:
            return listed
        st = (self.root / rel).stat()
        return f"{st.st_size}:{st.st_mtime_ns}"

    def check_bytes(self, rel: str, data: bytes) -> None:
        """Refuse ``data`` read from ``rel`` unless it matches ``SHA256SUMS`` (no-op without one)."""
        if self.sums is None:
            return
        expected = self.expected(rel)
        path = self.root / rel
        if expected is None:
            raise ChecksumError(
                f"{path} is not listed in {self.path}; refusing an unverified file. Add its line "
                f"(cd {self.root} && sha256sum ./{rel} >> SHA256SUMS) or restore the mirror."
            )
        actual = hashlib.sha256(data).hexdigest()
        if actual != expected:
            raise ChecksumError(
                f"{path} does not match {self.path} (sha256 {actual}, expected {expected}); the file "
                f"is refused. Restore it from the mirror; `cd {self.root} && sha256sum -c SHA256SUMS` "
                f"lists every damaged file."
            )

    def read_verified(self, rel: str) -> bytes:
        """The bytes of ``root/rel``, checked against ``SHA256SUMS``."""
        data = (self.root / rel).read_bytes()
        self.check_bytes(rel, data)
        return data
