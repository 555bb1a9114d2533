"""Typed exceptions of ram_model. Library code raises these; the CLI and GUI turn them into messages."""


class PhototagError(Exception):
    """Base of every error Phototag reports to a person: the message says what and what next."""


class ConfigError(PhototagError):
    """An architecture config is malformed or names an unknown architecture."""


class CheckpointError(PhototagError):
    """A weight file is unreadable, truncated, or does not fit the model it is loaded into."""


class ChecksumError(CheckpointError):
    """A downloaded or imported file does not have the sha256 it must have."""


class ModelNotFoundError(PhototagError):
    """A model bundle is not in the model store."""


class DownloadError(PhototagError):
    """Weights could not be fetched from the hub."""


class ImageError(PhototagError):
    """A file could not be decoded as an image.

    ``reason`` is a short machine-friendly word for why (``"empty"``, ``"not_an_image"``,
    ``"truncated"``, ``"corrupt"``, ``"decompression_bomb"``, ``"unreadable"``, ``"unsupported"``),
    or None.
    """

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason
