"""Decoding photos and turning them into the tagger's input tensors.

``open_image`` decodes a file the way a photo library needs it: every format Pillow reads plus
HEIC/HEIF, the first frame of MPO files and HEIF bursts, EXIF orientation applied, always RGB,
and every failure raised as one :class:`~ram_model.errors.ImageError` that names the file.

``preprocess`` is the reference RAM++ transform, bit for bit: ``convert("RGB")`` →
``resize((S, S), BILINEAR)`` (aspect ratio not kept, no crop) → ``/255`` → ImageNet
normalisation, computed exactly as torchvision's ``ToTensor()`` + ``Normalize(mean, std)`` do.
"""

from __future__ import annotations

import os
import struct
import threading
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pillow_heif
import torch
from PIL import ExifTags, Image, ImageFile, ImageOps, PngImagePlugin, UnidentifiedImageError, features

from ram_model.errors import ImageError
from ram_model.raw import is_raw, open_raw_preview

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_IMAGE_SIZE = 384

# Formats whose decoder can scale down by 1/2, 1/4 or 1/8 while decoding (``Image.draft``).
_DRAFT_FORMATS = frozenset({"JPEG", "MPO"})
# ISOBMFF containers (HEIF, AVIF): checked for truncation before decoding.
_ISOBMFF_FORMATS = frozenset({"HEIF", "AVIF"})
_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})
# The EXIF orientations, as what turns a stored image upright: (mirror left-right first?, then
# quarter turns anticlockwise). The Pillow path (``_oriented``) and the GPU path (``accel.upright``)
# are both built from this one table.
ORIENTATIONS: dict[int, tuple[bool, int]] = {
    1: (False, 0), 2: (True, 0), 3: (False, 2), 4: (True, 2),
    5: (True, 1), 6: (False, 3), 7: (True, 3), 8: (False, 1),
}
_ROTATING_ORIENTATIONS = frozenset(o for o, change in ORIENTATIONS.items() if change != (False, 0))
_QUARTER_TURNS = {1: Image.Transpose.ROTATE_90, 2: Image.Transpose.ROTATE_180, 3: Image.Transpose.ROTATE_270}


_registered = False
_register_lock = threading.Lock()
# Image.info key: the PNG text chunks skipped for being over Pillow's limits, as "'key' (why)".
SKIPPED_PNG_TEXT = "phototag:skipped_text"


class _TextTolerantPngStream(PngImagePlugin.PngStream):
    """Pillow's PNG chunk reader, except that a text chunk over Pillow's limits on text (a compressed
    one inflating past ``MAX_TEXT_CHUNK``, or more than ``MAX_TEXT_MEMORY`` of text in all) is
    skipped, and listed under :data:`SKIPPED_PNG_TEXT`, instead of failing the whole file: a PNG with
    an oversized XMP or comment chunk still has good pixels."""

    def chunk_tEXt(self, pos: int, length: int) -> bytes:
        return self._tolerant(super().chunk_tEXt, pos, length)

    def chunk_zTXt(self, pos: int, length: int) -> bytes:
        return self._tolerant(super().chunk_zTXt, pos, length)

    def chunk_iTXt(self, pos: int, length: int) -> bytes:
        return self._tolerant(super().chunk_iTXt, pos, length)

    def _tolerant(self, read: Callable[[int, int], bytes], pos: int, length: int) -> bytes:
        assert self.fp is not None
        start = self.fp.tell()
        try:
            return read(pos, length)
        except UnicodeDecodeError:
            raise  # Pillow's own handling of those stays as it is
        except ValueError as exc:
            self.fp.seek(start)
            data = ImageFile._safe_read(self.fp, length)  # the chunk's bytes: its CRC is checked next
            key = data.split(b"\0", 1)[0].decode("latin-1")
            message = str(exc)
            why = (f"larger than {PngImagePlugin.MAX_TEXT_CHUNK >> 20} MiB uncompressed" if "MAX_TEXT_CHUNK" in message
                   else f"more than {PngImagePlugin.MAX_TEXT_MEMORY >> 20} MiB of text in the file"
                   if "MAX_TEXT_MEMORY" in message else _first_line(exc))
            self.im_info.setdefault(SKIPPED_PNG_TEXT, []).append(f"{key!r} ({why})")
            return data


def register_formats() -> None:
    """Teach Pillow to open HEIC/HEIF (and AVIF where Pillow has no decoder of its own), and to skip PNG
    text chunks over its limits rather than fail the file. Safe to call often.

    Both are process-wide (Pillow has no per-call hook for either): every Pillow user in the process, the
    app's thumbnails included, opens these files the same way, which is what they should do for one
    library. The PNG reader differs from Pillow's only for a text chunk Pillow would refuse."""
    global _registered
    with _register_lock:
        if _registered:
            return
        pillow_heif.register_heif_opener()
        # What PngImageFile reads its chunks with; the stubs take a module's class as fixed.
        PngImagePlugin.PngStream = _TextTolerantPngStream  # type: ignore[misc]
        # pillow-heif < 1.0 decoded AVIF too; newer Pillow builds read AVIF natively.
        register_avif = getattr(pillow_heif, "register_avif_opener", None)
        if register_avif is not None and not features.check("avif"):
            register_avif()
        _registered = True


def open_image(path: str | os.PathLike[str], *, draft_size: int | None = None) -> Image.Image:
    """Decode a photo fully into an upright RGB image.

    Reads any format Pillow supports plus HEIC/HEIF; multi-image files (MPO stereo pairs, HEIF
    bursts) give their first (primary) image. The EXIF orientation is applied; a broken EXIF block
    is ignored and the image is kept as stored. HEIF ``irot``/``imir`` transforms are applied by
    the decoder. 16-bit greyscale is scaled to 8 bits; every other mode goes through Pillow's
    ``convert("RGB")``.

    With ``draft_size``, JPEG-family files are decoded at 1/2, 1/4 or 1/8 scale where the result
    still has both sides >= ``draft_size`` (much faster for camera photos); other formats decode
    at full size.

    Raises:
        ImageError: naming the file and why, with ``reason`` one of ``"unreadable"``, ``"empty"``,
            ``"not_an_image"``, ``"decompression_bomb"``, ``"truncated"``, ``"corrupt"``, ``"unsupported"``.
    """
    path = Path(path)
    register_formats()
    with warnings.catch_warnings():
        # Pillow only warns between 1x and 2x MAX_IMAGE_PIXELS; refuse those as well.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        # "Corrupt EXIF data" and the like: the file is still used, and a batch run should not spam stderr.
        warnings.simplefilter("ignore", UserWarning)
        raw_orientation = None

        def opener(file: Path) -> Image.Image:
            nonlocal raw_orientation
            if is_raw(file):
                image, raw_orientation = open_raw_preview(file)
                return image
            return Image.open(file)

        image = open_lazily(path, opener)
        with image:  # closes the file; the decoded pixels stay usable
            if image.format in _ISOBMFF_FORMATS:
                try:
                    overrun = _isobmff_overrun(path, path.stat().st_size)
                except OSError as exc:
                    raise _error(path, "unreadable", exc.strerror or str(exc)) from exc
                if overrun is not None:
                    raise _error(path, "truncated", f"truncated {image.format}: {overrun}")
            if draft_size is not None and image.format in _DRAFT_FORMATS:
                # Pillow picks the largest scale with both sides still >= the request; a square
                # request is the same before and after the EXIF rotation applied below.
                image.draft("RGB", (draft_size, draft_size))
            try:
                image.load()
            except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
                raise _bomb_error(path, exc) from None
            except Exception as exc:  # noqa: BLE001 - decoders raise OSError, ValueError, SyntaxError, ... on bad data
                if image.format in _ISOBMFF_FORMATS:
                    raise _error(path, "corrupt", f"corrupt {image.format}: {_first_line(exc)}") from exc
                raise _error(path, "truncated", f"truncated or corrupt image data: {_first_line(exc)}") from exc
            image = _upright(image) if raw_orientation is None else _oriented(image, raw_orientation)
            try:
                return _to_rgb(image)
            except ValueError as exc:  # a pixel layout Pillow decodes but cannot convert
                raise _error(path, "unsupported", f"cannot convert {image.mode} pixels to RGB: {exc}") from exc


def open_lazily(path: Path, opener: Callable[[Path], Image.Image] = Image.open) -> Image.Image:
    """Open a photo without decoding it, every failure an :class:`ImageError` with its ``reason``
    (``unreadable``, ``empty``, ``not_an_image``, ``decompression_bomb``). Shared by ``open_image``
    and the metadata reader, so both judge a file alike."""
    try:
        file_size = path.stat().st_size
    except OSError as exc:
        raise _error(path, "unreadable", exc.strerror or str(exc)) from exc
    if file_size == 0:
        raise _error(path, "empty", "empty file (0 bytes)")
    try:
        image = opener(path)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise _bomb_error(path, exc) from None
    except UnidentifiedImageError:
        raise _unidentified_error(path) from None
    except OSError as exc:
        raise _error(path, "unreadable", exc.strerror or str(exc)) from exc
    # Pillow's warning filter is process-wide and not thread-safe; this check does not depend on it.
    if Image.MAX_IMAGE_PIXELS is not None and image.width * image.height > Image.MAX_IMAGE_PIXELS:
        image.close()
        raise _bomb_error(path, None, image.size)
    return image


def preprocess(image: Image.Image, image_size: int = DEFAULT_IMAGE_SIZE) -> torch.Tensor:
    """The tagger's input for one image: float32 ``[3, S, S]``, ImageNet-normalised.

    Bit-exact with torchvision's ``Compose([Resize((S, S), BILINEAR), ToTensor(),
    Normalize(IMAGENET_MEAN, IMAGENET_STD)])`` on ``image.convert("RGB")``.
    """
    return normalise(resized_pixels(image, image_size))


def preprocess_batch(images: Sequence[Image.Image], image_size: int = DEFAULT_IMAGE_SIZE) -> torch.Tensor:
    """``preprocess`` for several images at once: float32 ``[B, 3, S, S]`` (``B`` may be 0)."""
    if not images:
        return torch.empty((0, 3, image_size, image_size), dtype=torch.float32)
    return normalise(torch.stack([resized_pixels(image, image_size) for image in images]))


def resized_pixels(image: Image.Image, image_size: int = DEFAULT_IMAGE_SIZE) -> torch.Tensor:
    """The tagger's input before normalisation: uint8 ``[3, S, S]`` (a quarter of the float bytes to
    move between processes and to the GPU; normalised there by ``Tagger.predict``)."""
    resized = image.convert("RGB").resize((image_size, image_size), Image.Resampling.BILINEAR)
    pixels = torch.from_numpy(np.array(resized, dtype=np.uint8, copy=True))
    return pixels.permute(2, 0, 1).contiguous()


def normalise(pixels: torch.Tensor, mean: Sequence[float] = IMAGENET_MEAN,
              std: Sequence[float] = IMAGENET_STD) -> torch.Tensor:
    """uint8 ``[..., 3, S, S]`` → float32 on the same device, as ``ToTensor()`` + ``Normalize(mean, std)``
    compute it: the same operations, in the same order and dtype (keep them so)."""
    m = torch.tensor(mean, dtype=torch.float32, device=pixels.device).view(3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32, device=pixels.device).view(3, 1, 1)
    return pixels.to(torch.float32).div(255).sub_(m).div_(s)


def _oriented(image: Image.Image, orientation: int) -> Image.Image:
    """Apply an EXIF orientation value given from elsewhere (a RAW file's, for its preview)."""
    mirror, turns = ORIENTATIONS.get(orientation, (False, 0))
    if mirror:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return image.transpose(_QUARTER_TURNS[turns]) if turns else image


def _upright(image: Image.Image) -> Image.Image:
    """The image turned as its EXIF orientation says; as stored when the EXIF block cannot be read."""
    try:
        orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
    except Exception:  # noqa: BLE001 - a malformed EXIF block raises anything; it must not cost the photo
        return image
    if orientation not in _ROTATING_ORIENTATIONS:
        return image
    try:
        return ImageOps.exif_transpose(image)
    except Exception:  # noqa: BLE001 - same: rewriting the broken EXIF block failed
        return image


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode == "RGB":
        return image
    if image.mode in _SIXTEEN_BIT_MODES:
        # Pillow's own conversion clips 16-bit values at 255 (an almost white picture); scale instead.
        eight_bit = (np.asarray(image).astype(np.uint16) >> 8).astype(np.uint8)
        return Image.fromarray(eight_bit, mode="L").convert("RGB")
    return image.convert("RGB")


def _isobmff_overrun(path: Path, file_size: int) -> str | None:
    """Why the top-level boxes of an ISOBMFF (HEIF/AVIF) file do not fit in it, or None when they do.

    A cut-off download or copy leaves the last box (usually ``mdat``) declaring more bytes than
    the file has; libheif may still decode the primary image from it, but the file is damaged.
    """
    offset = 0
    with path.open("rb") as stream:
        while offset + 8 <= file_size:
            stream.seek(offset)
            header = stream.read(16)
            size, box = struct.unpack(">I4s", header[:8])
            name = box.decode("latin-1")
            if size == 1 and len(header) == 16:  # 64-bit size follows the type
                size = struct.unpack(">Q", header[8:16])[0]
            elif size == 0:  # box runs to the end of the file
                return None
            if size < 8:
                return f"box {name!r} at byte {offset} declares an impossible size of {size} bytes"
            if offset + size > file_size:
                return f"box {name!r} at byte {offset} needs {size} bytes but the file ends after {file_size - offset}"
            offset += size
    return None


def _error(path: Path, reason: str, detail: str) -> ImageError:
    return ImageError(f"cannot read {path}: {detail}", reason=reason)


def _unidentified_error(path: Path) -> ImageError:
    """Pillow recognised no format. A HEIF container that libheif rejects is corrupt, not 'not an image'."""
    mimetype = pillow_heif.get_file_mimetype(path)
    if not mimetype:
        return _error(path, "not_an_image", "not an image (no known image format)")
    kind = "AVIF" if mimetype == "image/avif" else "HEIF"
    try:
        pillow_heif.open_heif(path)
    except Exception as exc:  # noqa: BLE001 - libheif reports any parse failure as ValueError/RuntimeError
        return _error(path, "corrupt", f"corrupt {kind}: {_first_line(exc)}")
    return _error(path, "corrupt", f"corrupt {kind}: the container is readable but its image is not")


def _bomb_error(path: Path, exc: Exception | None, size: tuple[int, int] | None = None) -> ImageError:
    size = size or _declared_size(exc)
    declared = f"{size[0]}x{size[1]} pixels, more than" if size else "more than"
    return _error(
        path, "decompression_bomb", f"refused: decompression bomb (declares {declared} {Image.MAX_IMAGE_PIXELS} pixels)"
    )


def _declared_size(exc: Exception | None) -> tuple[int, int] | None:
    """The (width, height) Pillow's bomb check was given, read from the failing frame; None if not found."""
    traceback = exc.__traceback__ if exc is not None else None
    while traceback is not None and traceback.tb_next is not None:
        traceback = traceback.tb_next
    size = traceback.tb_frame.f_locals.get("size") if traceback is not None else None
    if isinstance(size, tuple) and len(size) == 2 and all(isinstance(side, int) for side in size):
        return size
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
