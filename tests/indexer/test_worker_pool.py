"""The local engine's worker processes: one pool per pass serves identify and decoding (a spawn pool of 15
workers takes ~13 s to start: bench/results/clip_first_gpu.md), paths go to it in chunks, and the catalog a pass
with workers writes is the one a pass in this process writes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from indexer import engine as engine_module
from indexer.catalog import Catalog
from indexer.index import Indexer
from indexer.settings import Settings
from ram_model.cli import lazy_models
from tests.indexer.test_ray_engine import assert_same, records


def index(root: Path, catalog_dir: Path, workers: int) -> None:
    settings = Settings(catalog=catalog_dir, workers=workers)
    with Catalog.open(settings.catalog_dir) as catalog:
        Indexer.from_settings(catalog, *lazy_models(settings), settings).run([root])


def test_one_worker_pool_serves_the_whole_pass_and_changes_no_result(home: Path, photos: Path, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    index(photos, tmp_path / "in_process", workers=0)
    pools: list[Any] = []

    class Recorded(engine_module.Stages):  # type: ignore[misc, valid-type]
        def __init__(self, workers: int) -> None:
            super().__init__(workers)
            if workers:
                pools.append(self)

        def map(self, function: Any, items: Any, *args: Any, **options: Any) -> Any:
            self.used = [*getattr(self, "used", []), getattr(function, "__name__", None) or function.func.__name__]
            return super().map(function, items, *args, **options)

    # Workers for any number of files (the shared photos are fewer than the in-process limits).
    monkeypatch.setattr(engine_module, "Stages", Recorded)
    monkeypatch.setattr(engine_module, "IDENTIFY_IN_PROCESS", 0)
    monkeypatch.setattr(engine_module, "DECODE_IN_PROCESS", 0)
    index(photos, tmp_path / "workers", workers=2)

    assert len(pools) == 1  # identify started it, decoding took it over
    assert pools[0].used[0] == "identify" and "decode" in pools[0].used
    assert pools[0]._pool is None  # closed at the end of the pass
    assert_same(records(tmp_path / "workers", photos), records(tmp_path / "in_process", photos))


def test_chunks_keep_the_order_of_the_items() -> None:
    with engine_module.Stages(0) as stages:
        assert list(stages.map(str, range(10), lookahead=4, chunk=3)) == [str(i) for i in range(10)]
