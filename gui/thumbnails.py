"""Thumbnails: made off the UI thread, upright (EXIF orientation applied), cached as JPEG files.

The cache is ``<catalog>/thumbnails/ab/abcdef….jpg`` keyed by the photo's content hash, so a moved
or duplicated photo reuses its thumbnail and an edited one (new bytes, new hash) gets a new one; a
photo not identified yet is keyed by path, size and mtime. :class:`ImageLoader` decodes on a few
worker threads, newest request first (what is on screen now beats what was scrolled past), and
drops the oldest requests beyond its capacity.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from pathlib import Path

from PIL import Image
from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QImage

from gui.errors import message_for
from ram_model.preprocess import open_image

THUMBNAILS_FOLDER = "thumbnails"
THUMBNAIL_SIZE = 256  # pixels, the longer side
JPEG_QUALITY = 85


def thumbnail_key(path: str, content_hash: str | None) -> str:
    if content_hash:
        return content_hash
    stat = os.stat(path)
    key = os.fsencode(path) + f"\0{stat.st_size}\0{stat.st_mtime_ns}".encode()
    return hashlib.blake2b(key, digest_size=16).hexdigest()


def _to_qimage(image: Image.Image) -> QImage:
    image = image.convert("RGB")
    data = image.tobytes()
    return QImage(data, image.width, image.height, 3 * image.width, QImage.Format.Format_RGB888).copy()


class ThumbnailStore:
    """The on-disk cache (no Qt): ``file_for`` returns a thumbnail's JPEG, making it on first use."""

    def __init__(self, folder: Path, size: int = THUMBNAIL_SIZE) -> None:
        self.folder = folder
        self.size = size

    def path_for(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.jpg"

    def file_for(self, path: str, content_hash: str | None) -> Path:
        """Raises ``ImageError`` (naming the file and why) when the photo cannot be decoded."""
        target = self.path_for(thumbnail_key(path, content_hash))
        if target.is_file():
            return target
        image = open_image(path, draft_size=self.size)
        image.thumbnail((self.size, self.size), Image.Resampling.BICUBIC, reducing_gap=2.0)
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".{target.stem}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            image.save(temporary, "JPEG", quality=JPEG_QUALITY)
            os.replace(temporary, target)  # two makers of one thumbnail both succeed; readers never see half
        finally:
            temporary.unlink(missing_ok=True)
        return target


class ImageLoader(QObject):
    """Decodes photos to ``QImage``s on worker threads: ``request(path)`` → ``ready(path, image)`` or
    ``failed(path, message)`` on the UI thread. With a :class:`ThumbnailStore` the images are its
    cached thumbnails; without one, fresh decodes at most ``size`` pixels (the photo pane's preview)."""

    # ``object``, not ``str``: Qt would drop the undecodable bytes of a file name (a str with lone surrogates).
    ready = Signal(object, QImage)
    failed = Signal(object, str)

    def __init__(self, store: ThumbnailStore | None, *, size: int = THUMBNAIL_SIZE, threads: int = 2,
                 capacity: int = 400, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.store = store
        self.size = size
        self.capacity = capacity
        self._wanted: OrderedDict[str, str | None] = OrderedDict()
        self._in_flight: set[str] = set()
        self._condition = threading.Condition()
        self._closing = False
        self._threads = [threading.Thread(target=self._work, name=f"phototag-images-{i}", daemon=True)
                         for i in range(max(1, threads))]
        for thread in self._threads:
            thread.start()

    def request(self, path: str, content_hash: str | None = None) -> None:
        """Ask for ``path`` (again: it moves to the front); a photo being decoded now is not asked twice."""
        with self._condition:
            if path in self._in_flight:
                return
            self._wanted[path] = content_hash
            self._wanted.move_to_end(path)
            while len(self._wanted) > self.capacity:
                self._wanted.popitem(last=False)
            self._condition.notify()

    def pending(self) -> int:
        with self._condition:
            return len(self._wanted)

    def cancel_all(self) -> list[str]:
        """Forget the requests not started yet; returns their paths."""
        with self._condition:
            paths = list(self._wanted)
            self._wanted.clear()
            return paths

    def shutdown(self) -> None:
        with self._condition:
            self._closing = True
            self._wanted.clear()
            self._condition.notify_all()
        for thread in self._threads:
            thread.join(timeout=30)

    def _work(self) -> None:
        while True:
            with self._condition:
                while not self._wanted and not self._closing:
                    self._condition.wait()
                if self._closing:
                    return
                path, content_hash = self._wanted.popitem(last=True)  # newest first
                self._in_flight.add(path)
            try:
                image, message = self._load(path, content_hash), None
            except Exception as exc:  # noqa: BLE001 - reported per photo; the loader goes on
                image, message = None, message_for(exc)
            with self._condition:
                self._in_flight.discard(path)
            if self._closing:
                return
            if image is None:
                self.failed.emit(path, message)
            else:
                self.ready.emit(path, image)

    def _load(self, path: str, content_hash: str | None) -> QImage:
        if self.store is not None:
            cached = self.store.file_for(path, content_hash)
            image = QImage(str(cached))
            if image.isNull():  # a damaged cache file: make it again, once
                cached.unlink(missing_ok=True)
                image = QImage(str(self.store.file_for(path, content_hash)))
            if image.isNull():
                raise OSError(f"{path}: its thumbnail cannot be made (the cache folder {cached.parent} may be full)")
            return image
        decoded = open_image(path, draft_size=self.size)
        decoded.thumbnail((self.size, self.size), Image.Resampling.BICUBIC, reducing_gap=2.0)
        return _to_qimage(decoded)
