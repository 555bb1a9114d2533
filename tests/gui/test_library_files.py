"""The app's own file in the catalog folder (the library's folders) is never read or written through a link."""

from __future__ import annotations

import json
import os

import pytest

from gui.library import LIBRARY_FILE, Library, LibraryError


def test_the_folders_file_is_never_written_through_a_link(settings, tmp_path) -> None:  # noqa: ANN001
    outside = tmp_path / "outside.json"
    outside.write_text("precious", encoding="utf-8")
    folders_file = settings.catalog / LIBRARY_FILE
    os.symlink(outside, folders_file.with_suffix(".json.tmp"))  # where the app used to stage it
    new_folder = tmp_path / "more photos"
    new_folder.mkdir()
    library = Library.open(settings)
    try:
        library.add_folder(new_folder)
    finally:
        library.close()
    assert outside.read_text(encoding="utf-8") == "precious"
    assert not folders_file.is_symlink()
    assert str(new_folder) in json.loads(folders_file.read_text(encoding="utf-8"))["folders"]


def test_a_link_planted_at_the_folders_file_is_refused_not_followed(settings, tmp_path) -> None:  # noqa: ANN001
    outside = tmp_path / "outside.json"
    outside.write_text(json.dumps({"folders": ["/somewhere/else"]}), encoding="utf-8")
    folders_file = settings.catalog / LIBRARY_FILE
    folders_file.unlink(missing_ok=True)
    os.symlink(outside, folders_file)
    library = Library.open(settings)
    try:
        with pytest.raises(LibraryError, match="unreadable"):
            library.folders()
    finally:
        library.close()
    assert json.loads(outside.read_text(encoding="utf-8")) == {"folders": ["/somewhere/else"]}
