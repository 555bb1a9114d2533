"""Personal learning (``indexer.personal``) sits on top of the indexer, never inside it: no module of ``indexer``
outside the subpackage imports it (no cycle with ``indexer.index``), and the index pass reaches it only through
its one extension point, ``Indexer(..., after_store=[...])``."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
from PIL import Image
from sqlalchemy import select

from indexer.catalog import Catalog
from indexer.index import Indexer
from indexer.schema import INDEXED, Photo
from indexer.settings import Settings
from ram_model.cli import lazy_models
from tests.conftest import REPO

PERSONAL = "indexer.personal"


def _imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, at its top or inside a function, relative imports resolved."""
    package = ".".join(path.relative_to(REPO).with_suffix("").parts[:-1])
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            names.update([base, *(f"{base}.{alias.name}" for alias in node.names)])
    return names


def test_no_indexer_module_imports_personal_learning() -> None:
    """The dependency is one-way: ``indexer.personal`` uses the library, no library module of ``indexer`` uses it
    (lazy imports inside functions included). The command-line modules (``cli*.py``) are exempt: like
    ``main.py`` and the app, they build Indexers and pass the extension."""
    offenders = {}
    for path in sorted((REPO / "indexer").rglob("*.py")):
        if (REPO / "indexer" / "personal") in path.parents or path.name.startswith("cli"):
            continue
        found = sorted(n for n in _imported_modules(path) if n == PERSONAL or n.startswith(PERSONAL + "."))
        if found:
            offenders[str(path.relative_to(REPO))] = found
    assert offenders == {}


def test_importing_the_indexer_loads_no_personal_learning() -> None:
    """In a fresh interpreter, importing the index pass (and the watcher, which runs it) loads no module of
    ``indexer.personal``: before, ``indexer.index`` imported the hooks module, whose functions imported
    custom tags and fine-tuning, which import ``indexer.index`` back."""
    script = textwrap.dedent("""
        import sys
        import indexer.index, indexer.watch
        parts = {"personal", "corrections", "custom_tags", "review", "finetune", "hooks", "_hooks"}
        print(sorted(m for m in sys.modules if m.startswith("indexer.") and parts & set(m.split(".")[1:])))
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_the_pass_calls_its_extensions_on_each_stored_batch(home: Path, tmp_path: Path) -> None:  # noqa: ARG001
    """Every ``after_store`` extension is called, in order, inside the batch's transaction, and between them
    they see each photo the pass indexed exactly once (identical files, given a donor's results, included)."""
    folder = tmp_path / "library"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        Image.fromarray(rng.integers(0, 255, (64, 96, 3), dtype=np.uint8)).save(folder / f"noise_{i}.jpg")
    shutil.copy(folder / "noise_0.jpg", folder / "copy_of_0.jpg")  # stored by copying noise_0's results
    calls: list[tuple[str, list[int], bool]] = []

    def extension(name: str):  # noqa: ANN202
        def after_store(session, photo_ids) -> None:  # noqa: ANN001
            calls.append((name, list(photo_ids), session.in_transaction()))
        return after_store

    settings = Settings()
    with Catalog.open(settings.catalog_dir) as catalog:
        Indexer.from_settings(catalog, *lazy_models(settings), settings,
                              after_store=[extension("first"), extension("second")]).run([folder])
        with catalog.session() as session:
            indexed = set(session.scalars(select(Photo.id).where(Photo.status == INDEXED)))
    assert len(indexed) == 7
    assert [name for name, _, _ in calls] == ["first", "second"] * (len(calls) // 2)
    assert all(in_transaction for _, _, in_transaction in calls)
    for name in ("first", "second"):
        seen = [photo_id for called, ids, _ in calls if called == name for photo_id in ids]
        assert sorted(seen) == sorted(indexed)
