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
from collections.abc import Iterable

_NAME_BYTES = range(0xDC80, 0xDD00)  # os.fsdecode's spelling of a byte 0x80-0xFF that is not UTF-8 (PEP 383)
_SURROGATES = range(0xD800, 0xE000)


def undecodable(text: str) -> bool:
    """Whether ``text`` holds bytes that were not valid UTF-8 (lone surrogates): fine in a path, not in a tag
    name or other text the catalog stores as text."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def unnameable(char: str) -> bool:
    """Whether ``char`` is a lone surrogate that no file name holds: not one of ``os.fsdecode``'s bytes
    (U+DC80..U+DCFF) but other text that is not Unicode (half a UTF-16 pair from a file's metadata, say)."""
    code = ord(char)
    return code in _SURROGATES and code not in _NAME_BYTES


def escaped(char: str) -> str:
    """One character as a message shows it when it cannot be printed as text: a byte that was not UTF-8 as
    ``\\xNN`` (``caf\\xe9.jpg``), any other lone surrogate as ``\\udNNN``; every other character as it is."""
    code = ord(char)
    if code in _NAME_BYTES:
        return f"\\x{code - 0xDC00:02x}"
    return f"\\u{code:04x}" if code in _SURROGATES else char


def display_path(text: str | os.PathLike[str]) -> str:
    """``text`` (a path, or a message holding one) printable anywhere: each byte that is not valid UTF-8
    shown as ``\\xNN`` (:func:`escaped`), everything else as it is. A valid UTF-8 name is returned unchanged."""
    text = os.fspath(text)
    return "".join(map(escaped, text)) if undecodable(text) else text


def escape_undecodable(error: UnicodeError) -> tuple[str, int]:
    """A codec error handler (``codecs.register_error``) for text streams: writes what :func:`display_path`
    shows, so a message that names a file with an undecodable name prints instead of raising (and any other
    character the stream cannot encode as its ``backslashreplace`` escape)."""
    if not isinstance(error, UnicodeEncodeError):
        raise error
    shown = "".join(escaped(c) if undecodable(c) else c.encode("ascii", "backslashreplace").decode("ascii")
                    for c in error.object[error.start : error.end])
    return shown, error.end


def name_bytes(text: str) -> bytes:
    """``text`` as the bytes of a file name (``os.fsencode``), for the catalog (``schema.PathText``). Text that
    merely names a file (an error message) may also hold a lone surrogate no name holds (:func:`unnameable`,
    from a file's metadata or an exception's text): that one is stored as its escape ``\\udNNN``."""
    try:
        return os.fsencode(text)
    except UnicodeEncodeError:
        return os.fsencode("".join(escaped(c) if unnameable(c) else c for c in text))


def within(path: str, folders: Iterable[str]) -> bool:
    """Whether ``path`` is one of ``folders`` (or files) or lies below one (``index.under`` in SQL)."""
    return any(path == folder or path.startswith(folder_prefix(folder)) for folder in folders)


def folder_prefix(folder: str) -> str:
    """What every path below ``folder`` starts with: the folder and one separator."""
    return folder.rstrip(os.sep) + os.sep


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
