"""The app's one error boundary: a library error becomes a message a person reads, never a traceback.

Library code raises :class:`ram_model.errors.PhototagError` subclasses whose message says what
happened, to which file, and what to do next; that one line is what the box shows. Anything else
is a bug: the box says so in one line and the traceback goes to stderr for the report.
"""

from __future__ import annotations

import functools
import os
import sys
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

from PySide6.QtWidgets import QMessageBox, QWidget

from indexer._paths import display_path
from ram_model.errors import PhototagError

F = TypeVar("F", bound=Callable[..., Any])


def message_for(error: BaseException) -> str:
    """The text a person sees for ``error`` (a file name that is not valid UTF-8 shown escaped: Qt would drop
    its undecodable bytes)."""
    if isinstance(error, PhototagError):
        return display_path(str(error))
    if isinstance(error, OSError):
        where = f" ({os.fsdecode(error.filename)})" if error.filename else ""
        return display_path(f"{error.strerror or error}{where}")
    return display_path(f"unexpected error ({type(error).__name__}: {error}); please report it with the terminal's "
                        "output")


class ErrorReporter:
    """Shows errors in a window-modal box that does not block the event loop (``open``, not ``exec``).

    ``messages`` keeps what was shown (tests read it)."""

    def __init__(self, parent: QWidget) -> None:
        self.parent = parent
        self.messages: list[str] = []
        self._box: QMessageBox | None = None

    def show(self, error: BaseException | str, title: str = "Phototag") -> None:
        if isinstance(error, BaseException) and not isinstance(error, PhototagError | OSError):
            traceback.print_exception(error, file=sys.stderr)
        text = display_path(error) if isinstance(error, str) else message_for(error)
        self.messages.append(text)
        if self._box is not None:
            self._box.close()
        box = QMessageBox(QMessageBox.Icon.Warning, title, text.splitlines()[0] if text else title,
                          QMessageBox.StandardButton.Ok, self.parent)
        if "\n" in text:  # a query's caret display: shown as typed, in a fixed-width font
            box.setInformativeText(f"<pre>{_escape(text.split(chr(10), 1)[1])}</pre>")
        self._box = box
        box.open()

    def guard(self, function: F) -> F:
        """Wrap a slot: a raised error is shown, not propagated."""

        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return function(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - the boundary
                self.show(exc)
                return None

        return wrapper  # type: ignore[return-value]


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class GuiError(PhototagError):
    """The app cannot start (no display, say); the message says what to do instead."""
