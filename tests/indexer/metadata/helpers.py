"""What the metadata tests share: a library indexed once per module with the tiny models, a copy of it per
test, the CLI run as JSON, a person's tags, and the exiftool/exiv2 runners that make fixtures."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from indexer.catalog import Catalog
from indexer.schema import ACCEPTED, CUSTOM, SOURCE_USER, Photo, PhotoTag, Tag
from main import main
from tests.indexer.conftest import EMBEDDER, TAGGER


def index_once(root: Path, model_dir: Path, codes: Iterable[int] = (0,)) -> Path:
    """Index ``root/lib`` into ``root/home/catalog`` with the tiny models, in the environment of
    tests/indexer/conftest.py's ``home`` (module fixtures call this: indexing costs seconds)."""
    home = root / "home"
    home.mkdir()
    os.symlink(model_dir, home / "models")
    with pytest.MonkeyPatch.context() as patch:
        for key, value in {"HOME": home, "DEVICE": "cpu", "TAGGER": TAGGER, "EMBEDDER": EMBEDDER, "WORKERS": "0",
                           "AUTO_DOWNLOAD": "false", "BATCH_SIZE": "4"}.items():
            patch.setenv(f"PHOTOTAG_{key}", str(value))
        assert main(["index", str(root / "lib"), "--json"]) in tuple(codes)
    return root


def copy_indexed(template: Path, home: Path, tmp_path: Path) -> Path:
    """A copy of ``index_once``'s library (copy2: mtimes kept, as the catalog recorded them) and its catalog
    in ``home``, with the catalog's paths moved to the copy."""
    library = tmp_path / "lib"
    shutil.copytree(template / "lib", library)
    shutil.copytree(template / "home" / "catalog", home / "catalog")
    with Catalog.open(home / "catalog") as catalog, catalog.session() as session, session.begin():
        session.execute(update(Photo).values(path=func.replace(Photo.path, str(template / "lib"), str(library))))
    return library


def needs(tool: str) -> None:
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed: './dev test' installs it (Debian: libimage-exiftool-perl, exiv2)")


def run(capsys, *args: str | Path, code: int = 0) -> dict:  # noqa: ANN001
    """``phototag ARGS --json``: its exit code must be ``code``; its report."""
    result = main([*map(str, args), "--json"])
    out = capsys.readouterr()
    assert result == code, out.err
    return json.loads(out.out)


def tag(home: Path, photo: Path, name: str, *, state: str = ACCEPTED, source: str = SOURCE_USER,
        name_zh: str | None = None, score: float | None = None, model_version: str | None = None) -> None:
    """A tag on a photo, as a person (or the model) puts it there; new tag names become custom tags."""
    with Catalog.open(home / "catalog") as catalog, catalog.session() as session, session.begin():
        photo_id = session.scalar(select(Photo.id).where(Photo.path == str(photo)))
        assert photo_id is not None, photo
        tag_id = session.scalar(select(Tag.id).where(Tag.name == name))
        if tag_id is None:
            row = Tag(name=name, name_zh=name_zh, kind=CUSTOM)
            session.add(row)
            session.flush()
            tag_id = row.id
        existing = session.get(PhotoTag, (photo_id, tag_id))
        if existing is not None:
            existing.state = state
            return
        session.add(PhotoTag(photo_id=photo_id, tag_id=tag_id, source=source, state=state, score=score,
                             model_version=model_version, updated_at=datetime.now()))


def exiftool(*args: str | Path) -> None:
    """Run exiftool quietly (making fixtures); it must succeed."""
    needs("exiftool")
    subprocess.run(["exiftool", "-q", "-q", *map(str, args)], check=True, capture_output=True)


def exiv2(target: Path, *commands: str) -> None:
    """Apply exiv2 modify ``commands`` (``set Xmp.dc.subject XmpBag a``) to ``target``."""
    needs("exiv2")
    subprocess.run(["exiv2", *(f"-M{command}" for command in commands), str(target)], check=True,
                   capture_output=True)


def tags(group: str, name: str, *values: str) -> list[str]:
    """exiftool arguments that set a list tag to these values, in order."""
    return [f"-{group}:{name}={value}" for value in values]
