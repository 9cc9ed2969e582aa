"""Exceptions of the data layer; each message says what to do next."""
from __future__ import annotations


class DataNotFoundError(FileNotFoundError):
    """No local copy of a dataset and no way (or no permission) to download it."""


class ChecksumError(ValueError):
    """A file does not match its published or recorded checksum; the file is refused."""


class DownloadError(OSError):
    """A download failed (network, HTTP status, interrupted); no partial file is kept."""


class UnreadableImageError(OSError):
    """An image file could not be decoded; the message names its path."""
