"""Photo metadata: reading what a file states about itself (size, time, camera, place, keywords), and
writing the catalog's tags back as keywords (XMP sidecars, JPEG XMP and EXIF), with undo.

Writing::

    from indexer.metadata import MetadataWriter, WriteOptions, select_photos, undo_run
    with catalog.writer(task="write-metadata"):
        summary = MetadataWriter(catalog, WriteOptions(mode="sidecar")).run(select_photos(catalog, "tag:dog"))
        undo_run(catalog, summary.run_id)

The writing side is imported on first use, so the indexer's workers only load the reader.
"""

from __future__ import annotations

import importlib
from typing import Any

from indexer.metadata.read import PhotoInfo, read_keywords_from_xmp, read_photo_info

_LAZY = {
    "MetadataWriter": "indexer.metadata.write", "WriteOptions": "indexer.metadata.write",
    "WriteSummary": "indexer.metadata.write", "FileReport": "indexer.metadata.write",
    "MetadataSettings": "indexer.metadata.write", "select_photos": "indexer.metadata.write",
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
    "FileReport", "MetadataError", "MetadataSettings", "MetadataWriter", "UndoReport", "UndoSummary", "WriteOptions",
    "WriteSummary", "list_runs", "select_photos", "undo_run",
]
