"""Camera RAW files through their embedded preview (LibRaw, via the optional ``rawpy`` package).

Cameras store a full-size or near-full-size JPEG preview inside every RAW file; it is what photo
tools show before developing, and at the tagger's 384 pixels it loses nothing a demosaic would
add. ``rawpy`` is an optional extra (``pip install 'phototag[raw]'``): without it, a RAW file is
recorded as ``unsupported`` with that hint, and the run goes on.
"""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

from ram_model.errors import ImageError

RAW_EXTENSIONS = frozenset({".dng", ".cr2", ".cr3", ".nef", ".nrw", ".arw", ".srf", ".sr2", ".orf", ".rw2",
                            ".raf", ".pef", ".srw", ".x3f", ".3fr", ".iiq", ".rwl", ".erf", ".kdc", ".mrw"})
# LibRaw's ``sizes.flip`` → the EXIF orientation that undoes it.
_FLIP_TO_ORIENTATION = {0: 1, 3: 3, 5: 8, 6: 6}


def is_raw(path: str | Path) -> bool:
    return Path(path).suffix.lower() in RAW_EXTENSIONS


def open_raw_preview(path: Path) -> tuple[Image.Image, int]:
    """The embedded preview of a RAW file (not yet decoded, for ``draft``) and the orientation to apply.

    The orientation is the preview's own EXIF orientation when it has one, else the RAW's.
    """
    try:
        import rawpy
    except ImportError:
        raise ImageError(f"cannot read {path}: camera RAW needs the optional rawpy package "
                         "(pip install 'phototag[raw]')", reason="unsupported") from None
    try:
        with rawpy.imread(str(path)) as raw:
            flip = int(getattr(raw.sizes, "flip", 0) or 0)
            thumb = raw.extract_thumb()
    except (rawpy.LibRawNoThumbnailError, rawpy.LibRawUnsupportedThumbnailError):
        raise ImageError(f"cannot read {path}: this RAW file has no embedded preview we can use",
                         reason="unsupported") from None
    except rawpy.LibRawFileUnsupportedError:
        raise ImageError(f"cannot read {path}: LibRaw does not know this RAW format", reason="unsupported") from None
    except (rawpy.LibRawError, OSError) as exc:
        raise ImageError(f"cannot read {path}: corrupt RAW file ({exc})", reason="corrupt") from None
    if isinstance(thumb.data, bytes):  # a JPEG preview (a BITMAP one comes as an array)
        image = Image.open(io.BytesIO(thumb.data))
        own = image.getexif().get(0x0112)
        orientation = own if isinstance(own, int) and 1 < own < 9 else _FLIP_TO_ORIENTATION.get(flip, 1)
        return image, orientation
    return Image.fromarray(thumb.data), _FLIP_TO_ORIENTATION.get(flip, 1)
