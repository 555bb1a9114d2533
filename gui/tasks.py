"""Running library calls off the UI thread and getting their results back on it.

``TaskRunner.submit(function, on_done, on_error)`` runs ``function()`` on the runner's worker thread;
``on_done(result)`` or ``on_error(exception)`` then run on the UI thread (a queued signal). One
worker means calls run in the order given, so a newer search never races an older one.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from PySide6.QtCore import QObject, Signal


class TaskRunner(QObject):
    _finished = Signal(int, object, object)  # token, result, exception

    def __init__(self, parent: QObject | None = None, *, threads: int = 1, name: str = "phototag-task") -> None:
        super().__init__(parent)
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=name)
        self._tokens = itertools.count(1)
        self._callbacks: dict[int, tuple[Callable[[Any], None], Callable[[BaseException], None] | None]] = {}
        self._finished.connect(self._deliver)

    def submit(self, function: Callable[[], Any], on_done: Callable[[Any], None],
               on_error: Callable[[BaseException], None] | None = None) -> int:
        token = next(self._tokens)
        self._callbacks[token] = (on_done, on_error)
        self._pool.submit(self._call, token, function)
        return token

    def _call(self, token: int, function: Callable[[], Any]) -> None:
        try:
            result = function()
        except BaseException as exc:  # noqa: BLE001 - handed to on_error on the UI thread
            self._finished.emit(token, None, exc)
        else:
            self._finished.emit(token, result, None)

    def _deliver(self, token: int, result: Any, error: BaseException | None) -> None:
        on_done, on_error = self._callbacks.pop(token, (None, None))
        if error is not None:
            if on_error is None:
                raise error
            on_error(error)
        elif on_done is not None:
            on_done(result)

    def busy(self) -> bool:
        """Whether some call has not delivered its result yet."""
        return bool(self._callbacks)

    def shutdown(self) -> None:
        self._callbacks.clear()
        self._pool.shutdown(wait=True, cancel_futures=True)
