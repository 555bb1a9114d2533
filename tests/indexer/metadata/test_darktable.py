"""A real photo app reads what `write-metadata` wrote: darktable (darktable-cli, headless).

darktable-cli imports a photo with its sidecar into an in-memory library and exports it; the export
carries the tags darktable read, in dc:subject (each level of a hierarchical one). Skipped where
darktable-cli is not installed (`./dev test` tries `apt-get install darktable`).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from main import main
from tests.conftest import PHOTOS
from tests.indexer.metadata.helpers import needs, run, tag

SOURCE = PHOTOS / "library" / "people" / "grace_hopper.jpg"


def darktable_tags(tmp: Path, photo: Path, sidecar: Path | None) -> list[str]:
    """The tags darktable imports for ``photo`` (with ``sidecar``), read from its export by exiftool."""
    needs("darktable-cli")
    needs("exiftool")
    out = tmp / f"export-{photo.stem}.jpg"
    command = ["darktable-cli", str(photo), *([str(sidecar)] if sidecar else []), str(out), "--core",
               "--configdir", str(tmp / f"darktable-{photo.stem}"), "--library", ":memory:"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert out.exists(), done.stdout + done.stderr
    found = json.loads(subprocess.run(["exiftool", "-j", "-XMP-dc:Subject", str(out)], capture_output=True,
                                      text=True, check=True).stdout)[0].get("Subject", [])
    return [str(value) for value in (found if isinstance(found, list) else [found])]


@pytest.fixture()
def library(home, tmp_path) -> Path:  # noqa: ANN001
    needs("darktable-cli")
    folder = tmp_path / "lib"
    folder.mkdir()
    for name in ("sidecar.jpg", "embedded.jpg", "lightroom.jpg"):
        shutil.copyfile(SOURCE, folder / name)
    # Tagged in Lightroom before: a hierarchy darktable must keep reading after Phototag's write.
    subprocess.run(["exiftool", "-q", "-overwrite_original", "-XMP-dc:Subject=Paris",
                    "-XMP-lr:HierarchicalSubject=Places|Europe|Paris", str(folder / "lightroom.jpg")], check=True)
    assert main(["index", str(folder), "--json"]) == 0
    return folder


def test_darktable_reads_the_tags_phototag_wrote(home, library, tmp_path, capsys) -> None:  # noqa: ANN001
    for name in ("sidecar.jpg", "embedded.jpg", "lightroom.jpg"):
        tag(home, library / name, "keepsake")
        tag(home, library / name, "猫咪")
    run(capsys, "write-metadata", "--for", "darktable", f"folder:{library}")
    sidecar = library / "sidecar.jpg.xmp"
    assert {"keepsake", "猫咪"} <= set(darktable_tags(tmp_path, library / "sidecar.jpg", sidecar))
    # Its own layout kept: the Lightroom hierarchy is still read, with Phototag's keywords beside it.
    read = darktable_tags(tmp_path, library / "lightroom.jpg", library / "lightroom.jpg.xmp")
    assert {"keepsake", "猫咪", "Paris"} <= set(read) and {"Places", "Europe"} <= set(read)
    run(capsys, "undo-metadata")
    # The default profile embeds into the JPEG too: darktable reads a JPEG without any sidecar.
    run(capsys, "write-metadata", f"folder:{library}")
    # darktable loads IMG.jpg.xmp by itself when it exists: set the default profile's sidecar aside, so the
    # tags can only come from the JPEG.
    (library / "embedded.jpg.xmp").unlink(missing_ok=True)
    assert {"keepsake", "猫咪"} <= set(darktable_tags(tmp_path, library / "embedded.jpg", None))
