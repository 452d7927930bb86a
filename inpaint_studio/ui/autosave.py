"""Autosave: every N seconds the document's session goes to the user's data folder, written
by a background thread so a 12-megapixel photo never stalls the UI; a clean exit removes it,
and the next start after a crash offers to restore it.

Several copies of the app may run at once, so each window writes its own file,
``<user data>/autosave/session-<pid>-<n>.npz``, and holds a lock file beside it
(``.lock``, a :class:`QLockFile` naming the process) for as long as it runs. A session file
whose lock nobody holds, because its process died, is an orphan; at start the newest orphan
is offered for restore. A running copy's file is never offered to another. A lock whose
process died before its first autosave has no session file beside it; such stale locks are
removed at start (:func:`remove_stale_locks`), so they do not pile up.
"""

from __future__ import annotations

import itertools
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QLockFile, QObject, QTimer, Signal

from .. import paths
from ..document import Document

_serial = itertools.count(1)  # several windows in one process each get their own file


def autosave_dir() -> Path:
    """``<user data>/autosave`` (created on first use)."""
    folder = paths.user_data_path() / "autosave"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _lock_for(session: Path) -> QLockFile:
    lock = QLockFile(str(session.with_suffix(".lock")))
    # Never stale by age: a long editing session keeps its lock; a dead owner's lock is
    # recognised by its process id instead.
    lock.setStaleLockTime(0)
    return lock


def remove_stale_locks(folder: Path | None = None) -> int:
    """Delete ``session-*.lock`` files of dead processes that left no session file (a
    session file's lock stays: it marks an orphan to offer for restore). Returns how many
    were removed; a lock a live process holds is never touched."""
    folder = folder or autosave_dir()
    removed = 0
    for lock_path in folder.glob("session*.lock"):
        if lock_path.with_suffix(".npz").exists():
            continue
        lock = QLockFile(str(lock_path))
        lock.setStaleLockTime(0)
        # tryLock takes over a lock whose process is gone (QLockFile checks the pid on this
        # host) and fails on a live one; unlock then deletes the file.
        if lock.tryLock(0):
            lock.unlock()
            removed += 1
    return removed


@dataclass
class Orphan:
    """A session file left by a process that is gone, locked by us while we decide."""

    path: Path
    lock: QLockFile

    def discard(self) -> None:
        """Delete the file (the user declined it, or it cannot be read) and its lock."""
        self.path.unlink(missing_ok=True)
        self.lock.unlock()


def claim_newest_orphan(own: Path | None = None) -> Orphan | None:
    """The most recently written session file whose owner is gone (not ``own``), locked
    for this process, or None. Also picks up the single-file ``session.npz`` of older
    versions, which never had a lock."""
    candidates = [p for p in autosave_dir().glob("session*.npz") if p != own]
    candidates.sort(key=lambda p: p.stat().st_mtime if p.exists() else 0.0, reverse=True)
    for path in candidates:
        lock = _lock_for(path)
        if lock.tryLock(0):  # succeeds only when no live process holds it
            if path.is_file():
                return Orphan(path, lock)
            lock.unlock()  # removed meanwhile by its owner's clean exit
    return None


class Autosaver(QObject):
    """Saves the document handed to :meth:`watch` to :attr:`path` when it changed since the
    last save; holds the file's lock from construction to :meth:`stop_and_discard`.

    ``saved(str)`` is emitted (in the UI thread) after each completed write.
    """

    saved = Signal(str)
    _written = Signal(str)

    def __init__(self, interval_s: int, parent: QObject | None = None) -> None:
        super().__init__(parent)
        remove_stale_locks()
        self.path = autosave_dir() / f"session-{os.getpid()}-{next(_serial)}.npz"
        self._lock = _lock_for(self.path)
        self._lock.tryLock(0)  # a fresh name: only a dead process with our pid could hold it
        self._timer = QTimer(self)
        self._timer.timeout.connect(self.save_now)
        self._document: Document | None = None
        self._saved_revision = -1
        self._writer: threading.Thread | None = None
        self._written.connect(self.saved)
        self.set_interval(interval_s)

    def set_interval(self, seconds: int) -> None:
        """0 switches autosave off."""
        if seconds > 0:
            self._timer.start(int(seconds * 1000))
        else:
            self._timer.stop()

    def watch(self, document: Document | None) -> None:
        self._document = document
        self._saved_revision = -1

    def adopt(self, orphan: Orphan, document: Document) -> None:
        """Take over a restored orphan: its file becomes ours (it already holds
        ``document``, which :meth:`watch` must have been given), its lock goes."""
        self.wait()
        os.replace(orphan.path, self.path)
        orphan.lock.unlock()
        if document is self._document:
            self._saved_revision = document.revision

    def save_now(self) -> bool:
        """Start a background write if the document changed; False when nothing to do or a
        write is still running."""
        doc = self._document
        if doc is None or doc.stroking or doc.revision == self._saved_revision:
            return False
        if self._writer is not None and self._writer.is_alive():
            return False
        self._saved_revision = doc.revision
        snapshot = doc.snapshot()
        target = self.path

        def write() -> None:
            snapshot.save_session(target)  # npz compression releases the GIL
            self._written.emit(str(target))

        self._writer = threading.Thread(target=write, name="autosave", daemon=True)
        self._writer.start()
        return True

    def wait(self, timeout_s: float = 10.0) -> None:
        """Block until a running write finishes (tests, clean exit)."""
        if self._writer is not None:
            self._writer.join(timeout_s)

    def stop_and_discard(self) -> None:
        """Clean exit: no autosave of this window is left behind."""
        self._timer.stop()
        self.wait()
        self._document = None
        self.path.unlink(missing_ok=True)
        self._lock.unlock()
