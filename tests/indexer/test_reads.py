"""Bytes first: what the stages that read photos cost in bytes (indexer.pipeline.counting_reads), as a pass reports
them, and a camera RAW file decoded from its embedded preview without reading its sensor data."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest

from indexer.pipeline import Decoded, DecodeJob, DecodeSettings, counting_reads, decode, identify
from main import main
from tests.conftest import PHOTOS

ROCKET = PHOTOS / "library" / "space" / "rocket.jpg"


def preview_dng(path: Path, seed: int = 0, preview: tuple[int, int] = (160, 120),
                sensor: tuple[int, int] = (4000, 3000)) -> Path:
    """A DNG laid out as cameras write RAW files (any RAW extension: LibRaw goes by content): IFD0 a small 8-bit RGB
    preview, its SubIFD the sensor's 16-bit RGGB Bayer data, here 24 MB."""
    rng = np.random.default_rng(seed)
    (pw, ph), (width, height) = preview, sensor
    thumb = rng.integers(0, 255, (ph, pw, 3), dtype=np.uint8).tobytes()
    raw = rng.integers(0, 4095, (height, width), dtype=np.uint16).astype("<u2").tobytes()
    byte, ascii_, short, long_ = 1, 2, 3, 4
    formats = {byte: "B", ascii_: "B", short: "H", long_: "I"}

    def ifd(entries: list[tuple[int, int, list[int] | str]], at: int) -> bytes:
        head, extra = struct.pack("<H", len(entries)), b""
        extra_at = at + 2 + 12 * len(entries) + 4
        for number, kind, values in sorted(entries):
            items = list(values.encode() + b"\0") if isinstance(values, str) else values
            payload = struct.pack("<" + formats[kind] * len(items), *items)
            if len(payload) <= 4:
                head += struct.pack("<HHI", number, kind, len(items)) + payload.ljust(4, b"\0")
            else:
                extra += b"\0" * (len(extra) % 2)
                head += struct.pack("<HHII", number, kind, len(items), extra_at + len(extra))
                extra += payload
        return head + struct.pack("<I", 0) + extra

    thumb_at = 8
    raw_at = thumb_at + len(thumb)
    first_at = raw_at + len(raw)

    def first(sub_at: int) -> bytes:
        return ifd([(254, long_, [1]), (256, long_, [pw]), (257, long_, [ph]), (258, short, [8, 8, 8]),
                    (259, short, [1]), (262, short, [2]), (271, ascii_, "Phototag"), (272, ascii_, "Test DNG"),
                    (273, long_, [thumb_at]), (277, short, [3]), (278, long_, [ph]), (279, long_, [len(thumb)]),
                    (284, short, [1]), (330, long_, [sub_at]), (50706, byte, [1, 4, 0, 0]),
                    (50707, byte, [1, 1, 0, 0]), (50708, ascii_, "Phototag Test DNG")], first_at)

    sub_at = first_at + len(first(0))
    sub_at += sub_at % 2
    sub = ifd([(254, long_, [0]), (256, long_, [width]), (257, long_, [height]), (258, short, [16]),
               (259, short, [1]), (262, short, [32803]), (273, long_, [raw_at]), (277, short, [1]),
               (278, long_, [height]), (279, long_, [len(raw)]), (284, short, [1]), (33421, short, [2, 2]),
               (33422, byte, [0, 1, 1, 2])], sub_at)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes((b"II*\0" + struct.pack("<I", first_at) + thumb + raw + first(sub_at)).ljust(sub_at, b"\0") + sub)
    return path


def test_identify_reads_every_byte_and_a_raw_decode_only_its_preview(tmp_path: Path) -> None:
    pytest.importorskip("rawpy", reason="camera RAW is read through LibRaw (pip install 'phototag[raw]')")
    settings = DecodeSettings(384, None)
    warm = preview_dng(tmp_path / "IMG_0000.NEF", seed=0)
    decode(DecodeJob(0, str(warm), True, False), settings)  # the decoders' modules are read once per process
    raw = preview_dng(tmp_path / "IMG_0001.NEF", seed=1)
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
    raw = preview_dng(folder / "IMG_0001.CR2")
    (folder / "rocket.jpg").write_bytes(ROCKET.read_bytes())
    assert main(["index", str(folder), "--json"]) == 0
    read = json.loads(capsys.readouterr().out)["read"]
    files = raw.stat().st_size + ROCKET.stat().st_size
    assert read["identify"]["photos"] == 2 and read["identify"]["bytes"] >= files
    assert read["identify"]["bytes_per_photo"] == round(read["identify"]["bytes"] / 2)
    assert read["identify"]["seconds"] > 0 and read["identify"]["mb_per_s"] > 0
    # Each photo decoded twice on a CPU (embeddings, then tags): the JPEG whole, the RAW's preview only.
    assert read["decode"]["photos"] == 4 and 2 * ROCKET.stat().st_size < read["decode"]["bytes"] < files / 8
