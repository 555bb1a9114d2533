"""Typed errors of metadata writing. A whole run fails with a :class:`MetadataError`; one file that
cannot be written is a :class:`FileSkipped` inside the run, reported with its reason and skipped."""

from __future__ import annotations

from indexer.errors import IndexerError


class MetadataError(IndexerError):
    """Metadata cannot be written or undone at all (journal unwritable, no such run, ...)."""


class XmpError(MetadataError):
    """An XMP packet or sidecar that cannot be read; it is never overwritten."""


class FileSkipped(MetadataError):
    """One file is left as it is, for ``reason``: a short word the report and ``--json`` show
    (``changed``, ``read_only``, ``disk_full``, ``missing``, ``not_indexed``, ``unreadable_xmp``,
    ``unsupported``, ``verify_failed``, ``io_error``; ``link``: a symbolic link where the file, or the
    photo's folder, belongs — never followed; ``not_a_file``: a FIFO, device, socket or folder there;
    ``too_large``)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
