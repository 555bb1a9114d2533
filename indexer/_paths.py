"""How Phototag spells and shows file system paths.

Paths are bytes-safe end to end: a name the OS gives in bytes that are not valid UTF-8 (a Latin-1
``café.jpg`` from an old Samba share, say) arrives as a str holding lone surrogates (Python's
``os.fsdecode``, PEP 383), is stored in the catalog as exactly those bytes (``schema.PathText``),
and is shown with the undecodable bytes escaped (``caf\\xe9.jpg``) by :func:`display_path`.

One spelling per folder: a library folder reached through a symbolic link is recorded under its
real path (:func:`catalog_path`), so the same folder through two links maps to the same rows.
"""

from __future__ import annotations

import os


def display_path(text: str | os.PathLike[str]) -> str:
    """``text`` (a path, or a message holding one) printable anywhere: each byte that is not valid UTF-8
    shown as ``\\xNN``, everything else as it is. A valid UTF-8 name is returned unchanged."""
    text = os.fspath(text)
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a surrogate that no OS name holds (not U+DC80..U+DCFF)
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def undecodable(text: str) -> bool:
    """Whether ``text`` holds bytes that were not valid UTF-8 (lone surrogates): fine in a path, not in a tag
    name or other text the catalog stores as text."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def escape_undecodable(error: UnicodeError) -> tuple[str, int]:
    """A codec error handler (``codecs.register_error``) for text streams: writes what :func:`display_path`
    shows, so a message that names a file with an undecodable name prints instead of raising."""
    if not isinstance(error, UnicodeEncodeError):
        raise error
    shown = "".join(f"\\x{ord(c) - 0xDC00:02x}" if 0xDC80 <= ord(c) <= 0xDCFF else c.encode("ascii", "backslashreplace")
                    .decode("ascii") for c in error.object[error.start : error.end])
    return shown, error.end


def json_text(text: str) -> str:
    """JSON text (``json.dumps(..., ensure_ascii=False)``) with each undecodable byte of a name written as the
    JSON escape of its surrogate (``\\udce9``): valid JSON, and ``os.fsencode(json.loads(...))`` gives the name's
    bytes back."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def catalog_path(path: str | os.PathLike[str]) -> str:
    """The spelling under which the catalog records ``path``: absolute, ``~`` expanded, and every symbolic
    link among its folders resolved (``os.path.realpath``); the last name is kept as given unless it is a
    folder itself, so a linked file is not mistaken for its target. Works for paths that no longer exist."""
    absolute = os.path.abspath(os.path.expanduser(os.fspath(path)))
    if os.path.isdir(absolute):
        return os.path.realpath(absolute)
    folder, name = os.path.split(absolute)
    return os.path.join(os.path.realpath(folder), name) if name else absolute


def spellings(path: str | os.PathLike[str]) -> list[str]:
    """The ways the catalog may hold ``path``: :func:`catalog_path` first, then the absolute path as given (rows
    recorded through a linked folder before Phototag resolved links, until a pass over it moves them)."""
    given = os.path.abspath(os.path.expanduser(os.fspath(path)))
    return list(dict.fromkeys([catalog_path(given), given]))
