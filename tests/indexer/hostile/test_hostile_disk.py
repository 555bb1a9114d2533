"""A disk that fills up while an index pass saves the vector index (``vectors.faiss``, a cache of the catalog).

The catalog is the source of truth: a vector file that cannot be written must not fail the pass or lose
anything; the pass says so, and the next search rebuilds the file from the catalog. When the catalog itself
fills up too, the person sees the catalog's message (exit 2), not the cache's.
"""

from __future__ import annotations

import errno

import pytest

import indexer.vectors as vectors_module
from main import main
from tests.indexer.hostile.test_hostile_catalog import (
    disk_full_beyond,
    fatal,
    indexed,
    indexed_library,
    page_count,
    pictures,
)


def no_space(*args: object) -> None:
    raise RuntimeError("Error in faiss::FileIOWriter: fwrite failed: No space left on device")


def test_a_vector_index_that_cannot_be_saved_does_not_fail_the_pass(home, tmp_path, monkeypatch, capsys) -> None:  # noqa: ANN001
    folder = tmp_path / "lib"
    pictures(folder, 6)
    write_index = vectors_module.faiss.write_index
    monkeypatch.setattr(vectors_module.faiss, "write_index", no_space)
    assert main(["index", str(folder)]) == 0
    out = capsys.readouterr()
    assert "vectors.faiss" in out.out + out.err and "rebuilt from the catalog" in out.out + out.err
    database = home / "catalog" / "catalog.db"
    assert len(indexed(database)) == 6  # every photo stored, with its embedding
    assert not (home / "catalog" / "vectors.json").exists()  # no description of a file that was not written
    monkeypatch.setattr(vectors_module.faiss, "write_index", write_index)
    assert main(["search", "a photo", "--json", "--limit", "50", "--min-score", "-1"]) == 0  # rebuilt from the catalog
    assert capsys.readouterr().out.count('"path"') == 6


def test_a_full_disk_everywhere_reports_the_catalog(home, tmp_path, monkeypatch, capsys) -> None:  # noqa: ANN001
    folder, _, database = indexed_library(home, tmp_path, capsys, 2)
    pictures(folder, 20, first_seed=100)

    def full(*args: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(vectors_module, "fsync_file", full)
    with disk_full_beyond(page_count(database)):
        message = fatal(capsys, "index", folder)
    assert str(database) in message and "free some space" in message, message


@pytest.mark.parametrize("error", [OSError(errno.ENOSPC, "No space left on device"), OSError(errno.EIO, "I/O")])
def test_an_os_error_saving_vectors_is_a_warning(home, tmp_path, monkeypatch, capsys, error) -> None:  # noqa: ANN001
    folder = tmp_path / "lib"
    pictures(folder, 3)

    def fail(*args: object) -> None:
        raise error

    monkeypatch.setattr(vectors_module, "fsync_file", fail)
    assert main(["index", str(folder)]) == 0
    assert "could not be saved" in "".join(capsys.readouterr())
    assert len(indexed(home / "catalog" / "catalog.db")) == 3  # the pass stored every photo all the same
