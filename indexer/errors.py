"""Typed exceptions of the indexer. Library code raises these; the CLI and GUI turn them into messages.

Every message says what happened, to which path, and what to do next.
"""

from ram_model.errors import PhototagError


class IndexerError(PhototagError):
    """Base of every error the indexer (catalog, scan, watch, pipeline, search) reports."""


class SettingsError(IndexerError):
    """A setting has a value it cannot take (a ``PHOTOTAG_…`` variable, a flag, the app's stored choice)."""


class ScanError(IndexerError):
    """A library root cannot be scanned at all (missing, not a folder where one is needed)."""


class WatchError(IndexerError):
    """A library root cannot be watched for changes."""


class CatalogError(IndexerError):
    """The catalog database is unreadable, corrupt or cannot be written (a full disk, a damaged file, a lock
    another program holds...): every SQLite error leaves ``indexer.catalog`` as one of these, its message
    naming the database and what to do (``indexer.catalog.catalog_error``)."""


class CatalogLockedError(CatalogError):
    """Another Phototag process holds the catalog's lock."""


class CatalogVersionError(CatalogError):
    """The catalog was written by a newer Phototag (or its schema cannot be migrated)."""


class ModelMismatchError(IndexerError):
    """A command would compare with a catalog's embeddings using another model than the one that made them."""


class MetadataError(IndexerError):
    """Metadata cannot be written or undone at all (journal unwritable, no such run, ...). A whole
    run fails with one of these; one file that cannot be written is a :class:`FileSkipped` inside
    the run, reported with its reason and skipped."""


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


class EngineError(IndexerError):
    """The engine a pass runs on cannot work: Ray not installed, its cluster unreachable, or a task that failed
    beyond its retries. Nothing is lost: every batch stored before it stays, and the next pass does the rest."""
