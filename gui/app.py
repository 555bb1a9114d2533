"""``phototag gui [FOLDER]``: the desktop app's entry point."""

from __future__ import annotations

import os
import sys
from types import TracebackType

from gui.errors import GuiError
from indexer.settings import Settings


def _has_display() -> bool:
    if sys.platform != "linux" or os.environ.get("QT_QPA_PLATFORM"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def run(folder: str | None, settings: Settings) -> int:
    """Open the main window on the catalog of ``settings``; with ``folder``, add it to the library and
    index it in the background. Returns the exit status when the window closes.

    Raises ``GuiError`` (no display) and the catalog's errors (locked, newer, unreadable) before any
    window opens; the caller turns them into a message."""
    if not _has_display():
        raise GuiError("no display to open the app on: run it on a desktop session (or over ssh -X), "
                       "or use the phototag commands (index, search, tag) instead")
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from gui.library import Library
    from gui.main_window import MainWindow
    from gui.preferences import Preferences

    app = QApplication.instance() or QApplication([sys.argv[0] if sys.argv else "phototag"])
    app.setApplicationName("Phototag")
    preferences = Preferences.load(settings)  # the settings chosen in the app, over these
    library = Library.open(preferences.settings)
    window = MainWindow(library, preferences)
    previous_hook = sys.excepthook

    def show_unexpected(kind: type[BaseException], error: BaseException, trace: TracebackType | None) -> None:
        if not isinstance(error, Exception):  # KeyboardInterrupt and the like end the app as usual
            previous_hook(kind, error, trace)
            return
        window.errors.show(error.with_traceback(trace))  # a bug in a slot: a message (and the traceback on stderr)

    sys.excepthook = show_unexpected
    try:
        window.show()
        if folder:
            QTimer.singleShot(0, window.errors.guard(lambda: window.add_folder(folder)))
        return app.exec()
    finally:
        sys.excepthook = previous_hook
        window.shutdown()
        library.close()
