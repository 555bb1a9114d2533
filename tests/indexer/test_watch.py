"""Following changes: native and polling watchers report settled batches of changed and deleted photos."""

from __future__ import annotations

import errno
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import indexer.watch
from indexer.errors import WatchError
from indexer.watch import Watcher, needs_polling

SETTLE = 0.5
POLL = 0.2
MODES = {"native": None, "polling": POLL}


class Recorder:
    """The ``on_changes`` callback: keeps every batch, with each changed file's size when reported."""

    def __init__(self) -> None:
        self.batches: list[tuple[float, set[str], set[str], dict[str, int]]] = []
        self.threads: set[int] = set()
        self._condition = threading.Condition()

    def __call__(self, changed: set[str], deleted: set[str]) -> None:
        sizes = {path: os.path.getsize(path) for path in changed if os.path.exists(path)}
        with self._condition:
            self.batches.append((time.monotonic(), set(changed), set(deleted), sizes))
            self.threads.add(threading.get_ident())
            self._condition.notify_all()

    @property
    def changed(self) -> set[str]:
        return set().union(*(batch[1] for batch in self.batches))

    @property
    def deleted(self) -> set[str]:
        return set().union(*(batch[2] for batch in self.batches))

    def reports_of(self, path: Path) -> list[tuple[float, int]]:
        return [(when, sizes[str(path)]) for when, changed, _, sizes in self.batches if str(path) in changed]

    def wait_for(self, predicate: Callable[[Recorder], bool], timeout: float = 4.0) -> None:
        with self._condition:
            assert self._condition.wait_for(lambda: predicate(self), timeout), f"timed out; got {self.batches}"


def write(path: Path, data: bytes = b"photo") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("mode", MODES)
def test_new_modified_renamed_and_deleted_files(tmp_path, mode) -> None:  # noqa: ANN001
    modified, old, gone = write(tmp_path / "a" / "mod.jpg"), write(tmp_path / "old.heic"), write(tmp_path / "gone.png")
    recorder = Recorder()
    with Watcher([tmp_path], recorder, poll_interval=MODES[mode], settle_seconds=SETTLE):
        new = write(tmp_path / "b" / "new.jpg")
        with modified.open("ab") as file:
            file.write(b" more")
        renamed = old.rename(tmp_path / "a" / "renamed.heic")
        gone.unlink()
        write(tmp_path / "notes.txt")  # not a photo
        write(tmp_path / ".cache" / "x.jpg")  # hidden folder
        write(tmp_path / "@eaDir" / "new.jpg" / "SYNOPHOTO_THUMB.jpg")  # Synology thumbnails
        write(tmp_path / "new.jpg.xmp")  # sidecar
        wanted_changed = {str(new), str(modified), str(renamed)}
        wanted_deleted = {str(old), str(gone)}
        recorder.wait_for(lambda r: r.changed >= wanted_changed and r.deleted >= wanted_deleted)
        time.sleep(SETTLE)  # anything else would have come by now
    assert recorder.changed == wanted_changed
    assert recorder.deleted == wanted_deleted
    assert recorder.reports_of(modified)[0][1] == len(b"photo more")
    assert len(recorder.threads) == 1
    assert not any(thread.name == "phototag-watch" for thread in threading.enumerate())  # stop() joined


@pytest.mark.parametrize("mode", MODES)
def test_file_written_in_pieces_is_reported_once_when_complete(tmp_path, mode) -> None:  # noqa: ANN001
    recorder = Recorder()
    path = tmp_path / "copying.jpg"
    settle = 0.8  # appends come every 0.3 s: leave room for a busy machine
    with Watcher([tmp_path], recorder, poll_interval=MODES[mode], settle_seconds=settle):
        with path.open("wb") as file:
            for _ in range(6):  # 1.5 s of writing
                file.write(b"x" * 1000)
                file.flush()
                time.sleep(0.3)
        finished = time.monotonic()
        recorder.wait_for(lambda r: r.reports_of(path))
        time.sleep(settle / 2)
    reports = recorder.reports_of(path)
    assert [size for _, size in reports] == [6000]
    assert reports[0][0] - finished >= settle - 0.3  # not before it had stopped growing


@pytest.mark.parametrize("mode", MODES)
def test_folders_moved_in_moved_away_and_deleted(tmp_path, mode) -> None:  # noqa: ANN001
    root, outside = tmp_path / "library", tmp_path / "outside"
    write(root / "trip" / "1.jpg")
    write(root / "trip" / "2.jpg")
    write(root / "old" / "3.jpg")
    write(outside / "import" / "4.jpg")
    write(outside / "import" / "day2" / "5.jpg")
    write(outside / "import" / ".hidden" / "6.jpg")
    recorder = Recorder()
    with Watcher([root], recorder, poll_interval=MODES[mode], settle_seconds=SETTLE):
        (outside / "import").rename(root / "import")
        (root / "trip").rename(root / "2024 trip")
        shutil.rmtree(root / "old")
        wanted_changed = {
            str(root / p) for p in ("import/4.jpg", "import/day2/5.jpg", "2024 trip/1.jpg", "2024 trip/2.jpg")
        }
        # Folders come as paths to treat as prefixes (their files may come one by one as well).
        wanted_deleted = {str(root / "trip"), str(root / "old")}
        recorder.wait_for(lambda r: r.changed >= wanted_changed and r.deleted >= wanted_deleted)
        time.sleep(SETTLE)
    assert recorder.changed == wanted_changed
    assert all(path in wanted_deleted or os.path.dirname(path) in wanted_deleted for path in recorder.deleted)


def test_handler_errors_are_logged_and_watching_goes_on(tmp_path, caplog) -> None:  # noqa: ANN001
    calls: list[set[str]] = []
    first, second = threading.Event(), threading.Event()

    def on_changes(changed: set[str], deleted: set[str]) -> None:
        calls.append(changed)
        if not first.is_set():
            first.set()
            raise RuntimeError("catalog is busy")
        second.set()

    with Watcher([tmp_path], on_changes, settle_seconds=0.2):
        write(tmp_path / "1.jpg")
        assert first.wait(4.0)
        write(tmp_path / "2.jpg")
        assert second.wait(4.0)
    assert calls == [{str(tmp_path / "1.jpg")}, {str(tmp_path / "2.jpg")}]
    assert "the change handler failed on 1 changed, 0 deleted paths" in caplog.text
    assert "catalog is busy" in caplog.text


def test_falls_back_to_polling_when_notifications_fail(tmp_path, monkeypatch, caplog) -> None:  # noqa: ANN001
    class FullInotify(indexer.watch.Observer):  # type: ignore[misc, valid-type]
        def start(self) -> None:
            raise OSError(errno.ENOSPC, "inotify watch limit reached")

    monkeypatch.setattr(indexer.watch, "Observer", FullInotify)
    monkeypatch.setattr(indexer.watch, "DEFAULT_POLL_INTERVAL", POLL)
    recorder = Recorder()
    with Watcher([tmp_path], recorder, settle_seconds=SETTLE):
        new = write(tmp_path / "new.jpg")
        recorder.wait_for(lambda r: str(new) in r.changed)
    assert "polling it every 0.2 s instead" in caplog.text


def test_a_missing_root_is_refused(tmp_path) -> None:  # noqa: ANN001
    with pytest.raises(WatchError, match="nowhere: it is not a folder or does not exist"):
        Watcher([tmp_path / "nowhere"], lambda changed, deleted: None)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/mounts")
def test_needs_polling_reads_the_longest_mount_point(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    mounts = tmp_path / "mounts"
    mounts.write_text(
        "/dev/sda1 / ext4 rw,relatime 0 0\n"
        "nas:/volume1/photo /srv/nas nfs4 rw,relatime 0 0\n"
        "/dev/sdb1 /srv/nas/local ext4 rw 0 0\n"
        "//nas/photo /srv/smb\\040share cifs rw 0 0\n"
        "sshfs#me@host: /srv/remote fuse.sshfs rw 0 0\n"
    )
    monkeypatch.setattr(indexer.watch, "PROC_MOUNTS", str(mounts))
    assert needs_polling("/srv/nas/2020/IMG_1.jpg")
    assert not needs_polling("/srv/nas/local/IMG_1.jpg")
    assert not needs_polling("/srv/nasty")
    assert needs_polling("/srv/smb share/x.jpg")
    assert needs_polling("/srv/remote")
    assert not needs_polling("/home")
    monkeypatch.setattr(indexer.watch, "PROC_MOUNTS", str(tmp_path / "absent"))
    assert not needs_polling("/srv/nas")
