"""Decoding real photos (../shared/photos) and the bit-exact RAM++ input transform."""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile
from torchvision import transforms

from ram_model.errors import ImageError
from ram_model.preprocess import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    open_image,
    preprocess,
    preprocess_batch,
    register_formats,
)

PHOTOS = Path(__file__).resolve().parents[2].parent / "shared" / "photos"
MANIFEST = json.loads((PHOTOS / "manifest.json").read_text(encoding="utf-8"))
LIBRARY = [entry["path"] for entry in MANIFEST["library"]]
EDGE = {Path(entry["path"]).name: entry["path"] for entry in MANIFEST["edge"]}
ORIENTATION = "library/orientation/hopper_orientation_{}.jpg"

# Measured: upright copies differ from orientation 1 by 4.65..4.85 grey levels (each file is a separate JPEG
# encode); the raw, untransposed files 2..8 differ by 59..82.
UPRIGHT_MAX_DIFFERENCE = 6.0
RAW_MIN_DIFFERENCE = 40.0

# Measured mean |full - draft| of the preprocessed tensors (normalised units): 0.0166 and 0.0113.
DRAFT_CASES = [
    ("library/space/hubble_deep_field.jpg", 0.02),
    ("library/travel/fujifilm.mpo", 0.015),
]


def reference_transform(size: int = 384) -> Callable[[Image.Image], torch.Tensor]:
    return transforms.Compose([
        transforms.Resize((size, size), interpolation=transforms.InterpolationMode.BILINEAR),
        transforms.ToTensor(),
        transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])


@pytest.fixture(scope="module")
def decoded() -> Callable[[str], Image.Image]:
    """open_image at full size, once per file: the 33 MP HEIF alone takes seconds."""
    cache: dict[str, Image.Image] = {}

    def decode(relative: str) -> Image.Image:
        if relative not in cache:
            cache[relative] = open_image(PHOTOS / relative)
        return cache[relative]

    return decode


def mean_abs_difference(a: Image.Image, b: Image.Image) -> float:
    return float(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)).mean())


def raw_rgb(relative: str) -> Image.Image:
    with Image.open(PHOTOS / relative) as image:
        return image.convert("RGB")


@pytest.mark.parametrize("relative", LIBRARY)
def test_library_photo_preprocesses_bit_exact_with_torchvision(decoded, relative):  # noqa: ANN001
    image = decoded(relative)
    assert image.mode == "RGB"
    ours = preprocess(image)
    assert ours.dtype == torch.float32
    assert ours.shape == (3, 384, 384)
    assert torch.equal(ours, reference_transform()(image))


def test_batch_equals_single_images_and_other_sizes(decoded):  # noqa: ANN001
    images = [decoded("library/documents/page.png"), decoded("library/flowers/flower.webp")]
    batch = preprocess_batch(images, image_size=224)
    assert batch.shape == (2, 3, 224, 224)
    for row, image in zip(batch, images, strict=True):
        assert torch.equal(row, preprocess(image, image_size=224))
        assert torch.equal(row, reference_transform(224)(image))
    assert preprocess_batch([], image_size=224).shape == (0, 3, 224, 224)


def test_preprocess_converts_non_rgb_input_itself():
    grey = Image.fromarray(np.arange(64 * 48, dtype=np.uint8).reshape(48, 64) % 251, mode="L")
    assert torch.equal(preprocess(grey, 32), reference_transform(32)(grey.convert("RGB")))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_gives_the_same_upright_picture(orientation):  # noqa: ANN001
    upright_reference = open_image(PHOTOS / ORIENTATION.format(1))
    image = open_image(PHOTOS / ORIENTATION.format(orientation))
    assert image.size == upright_reference.size
    assert mean_abs_difference(image, upright_reference) < UPRIGHT_MAX_DIFFERENCE
    assert image.getexif().get(0x0112, 1) == 1


@pytest.mark.parametrize("orientation", range(2, 9))
def test_untransposed_files_really_differ(orientation):  # noqa: ANN001
    # Guards the test above: without applying the orientation it could not pass.
    upright_reference = raw_rgb(ORIENTATION.format(1))
    raw = raw_rgb(ORIENTATION.format(orientation))
    assert raw.size != upright_reference.size or mean_abs_difference(raw, upright_reference) > RAW_MIN_DIFFERENCE


def test_heif_irot_rotation_is_applied(decoded):  # noqa: ANN001
    image = decoded("library/music/guitar_cw90.hif")
    # Stored as a 7008x4672 landscape picture with a 90-degree irot: shown upright it is portrait.
    assert image.size == (4672, 7008)


def test_multi_image_files_give_their_first_image(decoded):  # noqa: ANN001
    assert decoded("library/travel/fujifilm.mpo").size == (3648, 2736)
    assert decoded("library/animals/bird_burst.heic").size == (1280, 720)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("zero_bytes.jpg", "empty"),
        ("empty.heic", "empty"),
        ("not_an_image.jpg", "not_an_image"),
        ("decompression_bomb.gif", "decompression_bomb"),
        ("corrupted.heic", "corrupt"),
        ("truncated.heic", "truncated"),
    ],
)
def test_unusable_files_raise_image_error_with_reason(name, reason):  # noqa: ANN001
    with pytest.raises(ImageError) as caught:
        open_image(PHOTOS / EDGE[name])
    assert caught.value.reason == reason
    assert name in str(caught.value)


def test_error_messages_say_what_happened():
    messages = {}
    for name in ("zero_bytes.jpg", "not_an_image.jpg", "decompression_bomb.gif", "corrupted.heic"):
        with pytest.raises(ImageError) as caught:
            open_image(PHOTOS / EDGE[name])
        messages[name] = str(caught.value)
    assert "empty file (0 bytes)" in messages["zero_bytes.jpg"]
    assert "not an image" in messages["not_an_image.jpg"]
    assert "refused: decompression bomb (declares 65535x66601 pixels" in messages["decompression_bomb.gif"]
    assert "corrupt HEIF: " in messages["corrupted.heic"]


def test_decompression_bomb_is_refused_before_allocation(monkeypatch):  # noqa: ANN001
    def no_decoding(self):  # noqa: ANN001, ANN202
        raise AssertionError("a decompression bomb must not be decoded")

    monkeypatch.setattr(Image.Image, "load", no_decoding)
    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    with pytest.raises(ImageError) as caught:
        open_image(PHOTOS / EDGE["decompression_bomb.gif"])
    assert caught.value.reason == "decompression_bomb"


def test_between_one_and_two_times_the_pixel_limit_is_refused_too(tmp_path, monkeypatch):  # noqa: ANN001
    path = tmp_path / "big.png"
    Image.new("RGB", (100, 100)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 6000)  # 10000 pixels: Pillow only warns below 12000
    with pytest.raises(ImageError) as caught:
        open_image(path)
    assert caught.value.reason == "decompression_bomb"
    assert "100x100" in str(caught.value)


@pytest.mark.parametrize("name", ["invalid-exif.jpg", "hopper_bad_exif.jpg", "exif_gps_typeerror.jpg"])
def test_broken_exif_is_ignored(name):  # noqa: ANN001
    image = open_image(PHOTOS / EDGE[name])
    assert image.mode == "RGB"
    assert min(image.size) > 0


def test_cmyk_jpeg_becomes_rgb():
    image = open_image(PHOTOS / EDGE["pil_sample_cmyk.jpg"])
    assert image.mode == "RGB"
    assert image.size == (100, 100)
    assert np.asarray(image).std() > 10  # a real picture, not a flat fill


def test_truncated_jpeg_opens_or_raises_image_error():
    try:
        image = open_image(PHOTOS / EDGE["truncated_jpeg.jpg"])
    except ImageError as exc:
        assert exc.reason == "truncated"
        assert "truncated_jpeg.jpg" in str(exc)
    else:
        assert image.mode == "RGB"


def test_missing_file_raises_image_error(tmp_path):  # noqa: ANN001
    with pytest.raises(ImageError) as caught:
        open_image(tmp_path / "gone.jpg")
    assert caught.value.reason == "unreadable"
    assert "gone.jpg" in str(caught.value)


def test_image_error_survives_pickling_to_and_from_workers():
    with pytest.raises(ImageError) as caught:
        open_image(PHOTOS / EDGE["not_an_image.jpg"])
    copy = pickle.loads(pickle.dumps(caught.value))
    assert (str(copy), copy.reason) == (str(caught.value), "not_an_image")


@pytest.mark.parametrize(
    ("mode", "make"),
    [
        ("I;16", lambda: Image.fromarray(np.full((8, 8), 0x8000, dtype=np.uint16))),
        ("P", lambda: Image.frombytes("P", (8, 8), bytes(64)).remap_palette([0], bytes([128, 128, 128]))),
        ("RGBA", lambda: Image.new("RGBA", (8, 8), (128, 128, 128, 10))),
        ("LA", lambda: Image.new("LA", (8, 8), (128, 255))),
    ],
)
def test_every_mode_ends_as_rgb(tmp_path, mode, make):  # noqa: ANN001
    path = tmp_path / "image.png"
    source = make()
    assert source.mode == mode
    source.save(path)
    image = open_image(path)
    assert image.mode == "RGB"
    # 16-bit 0x8000 is mid-grey, not clipped to white as Pillow's own I;16 -> RGB conversion does.
    assert np.abs(np.asarray(image, dtype=np.int16) - 128).max() <= 1


@pytest.mark.parametrize(("relative", "bound"), DRAFT_CASES)
def test_draft_decode_is_smaller_but_close(decoded, relative, bound):  # noqa: ANN001
    full = decoded(relative)
    draft = open_image(PHOTOS / relative, draft_size=384)
    assert draft.mode == "RGB"
    assert min(draft.size) >= 384
    assert draft.width < full.width and draft.height < full.height
    assert draft.width / draft.height == pytest.approx(full.width / full.height, rel=0.01)
    difference = (preprocess(full) - preprocess(draft)).abs().mean().item()
    assert 0 < difference < bound


def test_draft_keeps_small_jpegs_and_other_formats_at_full_size(decoded):  # noqa: ANN001
    for relative in ("library/people/grace_hopper.jpg", "library/animals/chelsea.png"):
        assert open_image(PHOTOS / relative, draft_size=384).size == decoded(relative).size


def test_draft_after_exif_rotation_still_covers_the_target(tmp_path):  # noqa: ANN001
    # A landscape-stored JPEG with orientation 6 (shown portrait), large enough for a 1/4 draft.
    path = tmp_path / "rotated.jpg"
    source = raw_rgb("library/people/grace_hopper.jpg").resize((2000, 1600))
    exif = Image.Exif()
    exif[0x0112] = 6
    source.save(path, quality=95, exif=exif)
    image = open_image(path, draft_size=384)
    assert image.size == (400, 500)
    assert open_image(path).size == (1600, 2000)


def test_register_formats_is_idempotent():
    register_formats()
    register_formats()
    assert Image.ID.count("HEIF") == 1


@pytest.mark.parametrize("orientation", range(1, 9))
def test_an_orientation_given_from_elsewhere_turns_as_exif_transpose(orientation: int) -> None:
    """``_oriented`` (a RAW preview's orientation, from the ORIENTATIONS table) turns pixels exactly as Pillow
    does for the same EXIF value."""
    from PIL import ImageOps

    from ram_model.preprocess import _oriented

    with Image.open(PHOTOS / "library" / "orientation" / f"hopper_orientation_{orientation}.jpg") as image:
        image.load()
        assert image.getexif().get(0x0112, 1) == orientation
        expected = ImageOps.exif_transpose(image)
        turned = _oriented(image, orientation)
    assert turned.size == expected.size
    assert np.array_equal(np.asarray(turned), np.asarray(expected))
