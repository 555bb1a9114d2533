"""Shared fixtures: the ../shared reference data, the golden run, tiny models and a model store."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
PHOTOS = SHARED / "photos"
GOLDEN = SHARED / "golden" / "ram_plus_tiny.pt"


@pytest.fixture(scope="session")
def golden() -> dict:
    if not GOLDEN.is_file():
        pytest.fail(f"{GOLDEN} is missing: the tests need ../shared next to the checkout")
    import torch  # here, not at the top: tests that need no model should not pay torch's import

    return torch.load(GOLDEN, map_location="cpu", weights_only=True)


@pytest.fixture(scope="session")
def golden_model(golden):  # noqa: ANN001, ANN201
    from ram_model import create_tagger, load_weights

    model = create_tagger(golden["config"]).eval()
    load_weights(model, golden["state_dict"])
    return model


@pytest.fixture(scope="session")
def manifest() -> dict:
    return json.loads((PHOTOS / "manifest.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def library_photos(manifest) -> list[Path]:  # noqa: ANN001
    return [PHOTOS / entry["path"] for entry in manifest["library"]]


def write_dng(path: Path, seed: int = 0, preview: tuple[int, int] = (160, 120),
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
