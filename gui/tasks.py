"""Running library calls off the UI thread and getting their results back on it.

``TaskRunner.submit(function, on_done, on_error)`` runs ``function()`` on the runner's worker thread;
``on_done(result)`` or ``on_error(exception)`` then run on the UI thread (a queued signal). One
worker means calls run in the order given.

The stale-result rule: calls submitted on a ``channel`` (the search, the photo pane, a panel) answer only
while they are the latest of their channel. A newer call makes an older one that has not started yet never
run, and one that is running deliver nothing, so a slow old answer never overwrites a newer one.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from PySide6.QtCore import QObject, Signal

_SKIPPED = object()  # a call whose channel moved on before it started: nothing to deliver


class TaskRunner(QObject):
    _finished = Signal(int, object, object)  # token, result, exception

    def __init__(self, parent: QObject | None = None, *, threads: int = 1, name: str = "phototag-task") -> None:
        super().__init__(parent)
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=name)
        self._tokens = itertools.count(1)
        self._callbacks: dict[int, tuple[Callable[[Any], object], Callable[[BaseException], None] | None]] = {}
        self._channel_of: dict[int, str] = {}
        self._latest: dict[str, int] = {}  # channel -> the token that may answer on it
        self._finished.connect(self._deliver)

    def submit(self, function: Callable[[], Any], on_done: Callable[[Any], object],
               on_error: Callable[[BaseException], None] | None = None, *, channel: str | None = None) -> int:
        """Run ``function`` off the UI thread; returns a token. With a ``channel``, this call supersedes the
        channel's earlier ones (see the module's docstring)."""
        token = next(self._tokens)
        self._callbacks[token] = (on_done, on_error)
        if channel is not None:
            self._channel_of[token] = channel
            self._latest[channel] = token
        self._pool.submit(self._call, token, function)
        return token

    def drop(self, channel: str) -> None:
        """Let no call submitted on ``channel`` so far answer (what they would show no longer applies)."""
        self._latest[channel] = 0

    def current(self, token: int) -> bool:
        """Whether the call ``token`` may still answer (it has no channel, or is its channel's latest)."""
        channel = self._channel_of.get(token)
        return channel is None or self._latest.get(channel) == token

    def _call(self, token: int, function: Callable[[], Any]) -> None:
        if not self.current(token):  # read from this thread: a dict lookup, atomic under the GIL
            self._finished.emit(token, _SKIPPED, None)
            return
        try:
            result = function()
        except BaseException as exc:  # noqa: BLE001 - handed to on_error on the UI thread
            self._finished.emit(token, None, exc)
        else:
            self._finished.emit(token, result, None)

    def _deliver(self, token: int, result: Any, error: BaseException | None) -> None:
        on_done, on_error = self._callbacks.pop(token, (None, None))
        current = self.current(token)
        self._channel_of.pop(token, None)
        if not current or result is _SKIPPED:
            return
        if error is not None:
            if on_error is None:
                raise error
            on_error(error)
        elif on_done is not None:
            on_done(result)

    def busy(self) -> bool:
        """Whether some call has not delivered its result (or been dropped) yet."""
        return bool(self._callbacks)

    def shutdown(self, *, cancel: bool = True) -> None:
        """Deliver nothing more; wait for the call running (with ``cancel``, the calls not started never run; without,
        they run first)."""
        self._callbacks.clear()
        self._pool.shutdown(wait=True, cancel_futures=cancel)
