"""Bytes first: what the stages that read photos cost in bytes (indexer.pipeline.counting_reads), as a pass reports
them, and a camera RAW file decoded from its embedded preview without reading its sensor data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from indexer.pipeline import Decoded, DecodeJob, DecodeSettings, counting_reads, decode, identify
from main import main
from tests.conftest import PHOTOS, write_dng

ROCKET = PHOTOS / "library" / "space" / "rocket.jpg"


def test_identify_reads_every_byte_and_a_raw_decode_only_its_preview(tmp_path: Path) -> None:
    pytest.importorskip("rawpy", reason="camera RAW is read through LibRaw (pip install 'phototag[raw]')")
    settings = DecodeSettings(384, None)
    warm = write_dng(tmp_path / "IMG_0000.NEF", seed=0)
    decode(DecodeJob(0, str(warm), True, False), settings)  # the decoders' modules are read once per process
    raw = write_dng(tmp_path / "IMG_0001.NEF", seed=1)
    result, read = counting_reads(lambda job: decode(job, settings), DecodeJob(1, str(raw), True, False))
    assert isinstance(result, Decoded) and result.tagger_input is not None
    preview = 160 * 120 * 3
    assert preview <= read < preview + 64 * 1024, read  # the preview and the headers: not the 24 MB sensor data
    _, read = counting_reads(identify, str(raw))
    assert read >= raw.stat().st_size > 24_000_000  # the content hash reads every byte
    _, read = counting_reads(identify, str(ROCKET))
    assert read >= ROCKET.stat().st_size


def test_a_pass_reports_the_bytes_it_read(home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("rawpy", reason="camera RAW is read through LibRaw (pip install 'phototag[raw]')")
    folder = tmp_path / "photos"
    raw = write_dng(folder / "IMG_0001.CR2")
    (folder / "rocket.jpg").write_bytes(ROCKET.read_bytes())
    assert main(["index", str(folder), "--json"]) == 0
    read = json.loads(capsys.readouterr().out)["read"]
    files = raw.stat().st_size + ROCKET.stat().st_size
    assert read["identify"]["photos"] == 2 and read["identify"]["bytes"] >= files
    assert read["identify"]["bytes_per_photo"] == round(read["identify"]["bytes"] / 2)
    assert read["identify"]["seconds"] > 0 and read["identify"]["mb_per_s"] > 0
    # Each photo decoded twice on a CPU (embeddings, then tags): the JPEG whole, the RAW's preview only.
    assert read["decode"]["photos"] == 4 and 2 * ROCKET.stat().st_size < read["decode"]["bytes"] < files / 8
