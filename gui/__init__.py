"""Phototag's desktop app (PySide6): a thin shell over the ``indexer`` library.

    from gui import run
    run("~/Pictures", Settings())  # opens the window; indexes the folder in the background

Nothing here talks SQL: the windows call :class:`gui.library.Library`, which calls ``indexer``.
"""

from gui.app import run

__all__ = ["run"]
