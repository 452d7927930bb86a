"""Autosave: every N seconds the document's session goes to the user's data folder, written
by a background thread so a 12-megapixel photo never stalls the UI; a clean exit removes it,
and the next start after a crash offers to restore it."""

from __future__ import annotations

import threading
from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal

from .. import paths
from ..document import Document


def autosave_path() -> Path:
    """``<user data>/autosave/session.npz``."""
    return paths.user_data_path() / "autosave" / "session.npz"


def pending_autosave() -> Path | None:
    """The autosave a previous run left behind (it crashed), if any."""
    path = autosave_path()
    return path if path.is_file() else None


def discard_autosave() -> None:
    autosave_path().unlink(missing_ok=True)


class Autosaver(QObject):
    """Saves the document handed to :meth:`watch` when it changed since the last save.

    ``saved(str)`` is emitted (in the UI thread) after each completed write.
    """

    saved = Signal(str)
    _written = Signal(str)

    def __init__(self, interval_s: int, parent: QObject | None = None) -> None:
        super().__init__(parent)
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
        target = autosave_path()

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
        """Clean exit: no autosave is left behind."""
        self._timer.stop()
        self.wait()
        self._document = None
        discard_autosave()
