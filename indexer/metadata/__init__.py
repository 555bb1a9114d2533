"""Photo metadata: reading what a file states about itself (size, time, camera, place, keywords), and
writing the catalog's tags back as keywords (XMP sidecars, JPEG XMP and EXIF), with undo.

Writing::

    from indexer.metadata import MetadataWriter, WriteOptions, select_photos, undo_run
    with catalog.writer(task="write-metadata"):
        summary = MetadataWriter(catalog, WriteOptions(mode="sidecar")).run(select_photos(catalog, "tag:dog"))
        undo_run(catalog, summary.run_id)

Both sides are imported on first use (``phototag --help`` reads the write profiles without them), so
the indexer's workers only load the reader.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "PhotoInfo": "indexer.metadata.read", "read_keywords_from_xmp": "indexer.metadata.read",
    "read_photo_info": "indexer.metadata.read",
    "MetadataWriter": "indexer.metadata.write", "WriteOptions": "indexer.metadata.write",
    "WriteSummary": "indexer.metadata.write", "FileReport": "indexer.metadata.write",
    "select_photos": "indexer.metadata.write",
    "undo_run": "indexer.metadata.journal", "list_runs": "indexer.metadata.journal",
    "UndoSummary": "indexer.metadata.journal", "UndoReport": "indexer.metadata.journal",
    "MetadataError": "indexer.errors",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'indexer.metadata' has no attribute {name!r}")


__all__ = [  # the reader first, then the writer
    "PhotoInfo", "read_keywords_from_xmp", "read_photo_info",
    "FileReport", "MetadataError", "MetadataWriter", "UndoReport", "UndoSummary", "WriteOptions",
    "WriteSummary", "list_runs", "select_photos", "undo_run",
]
