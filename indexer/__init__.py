"""Phototag's library side: the catalog, scanning and watching, the index pass, vectors and reports.

Public surface::

    from indexer import Catalog, Indexer
    with Catalog.open(folder) as catalog, catalog.writer():
        summary = Indexer(catalog, tagger, embedder).run(["/photos"])

Names are imported on first use, so ``import indexer`` stays cheap (no torch, no SQLAlchemy).
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "Catalog": "indexer.catalog", "Indexer": "indexer.index", "IndexSummary": "indexer.index",
    "ScanRules": "indexer.scan", "Watcher": "indexer.watch",
    "VectorIndex": "indexer.vectors", "PhotoInfo": "indexer.metadata", "read_photo_info": "indexer.metadata",
    "Settings": "indexer.settings",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'indexer' has no attribute {name!r}")


__all__ = sorted(_LAZY)
