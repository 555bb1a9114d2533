"""Camera RAW files: read through LibRaw's embedded preview; anything else is a clear, recorded error."""

from __future__ import annotations

import sys

import pytest

from ram_model.errors import ImageError
from ram_model.preprocess import open_image
from tests.conftest import PHOTOS


def test_a_file_named_like_raw_that_libraw_rejects_is_unsupported(tmp_path) -> None:  # noqa: ANN001
    pytest.importorskip("rawpy")
    fake = tmp_path / "IMG_0001.NEF"
    fake.write_bytes((PHOTOS / "library/space/rocket.jpg").read_bytes())  # a JPEG is not a RAW file
    with pytest.raises(ImageError) as error:
        open_image(fake)
    assert error.value.reason == "unsupported" and "IMG_0001.NEF" in str(error.value)


def test_without_rawpy_the_message_says_how_to_get_raw_support(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setitem(sys.modules, "rawpy", None)  # import rawpy -> ImportError
    raw = tmp_path / "DSC_0002.arw"
    raw.write_bytes(b"\0" * 1024)
    with pytest.raises(ImageError, match=r"pip install 'phototag\[raw\]'") as error:
        open_image(raw)
    assert error.value.reason == "unsupported"


def test_raw_orientation_from_libraw_flip_is_applied() -> None:
    from PIL import Image

    from ram_model.preprocess import _oriented
    from ram_model.raw import _FLIP_TO_ORIENTATION

    image = Image.new("RGB", (4, 2))
    image.putpixel((0, 0), (255, 0, 0))
    # LibRaw flip 6 = the camera was turned 90 degrees clockwise: the upright image is portrait.
    upright = _oriented(image, _FLIP_TO_ORIENTATION[6])
    assert upright.size == (2, 4) and upright.getpixel((1, 0)) == (255, 0, 0)
    assert _oriented(image, _FLIP_TO_ORIENTATION[0]) is image
