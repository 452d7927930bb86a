"""Autosave: one file per running window, restore after a crash (the newest orphan only,
never a running copy's file), nothing left after a clean exit."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np

from inpaint_studio.document import Document
from inpaint_studio.ui.autosave import Autosaver, autosave_dir, claim_newest_orphan

from .conftest import drag

REPO = Path(__file__).resolve().parents[2]

# A second copy of the app in its own process: autosaves a document, then either dies at
# once (a crash: no clean-exit code runs) or stays alive until killed.
OTHER_COPY = textwrap.dedent("""
    import os, sys, time
    import numpy as np
    from PySide6.QtCore import QCoreApplication
    from inpaint_studio.document import Document
    from inpaint_studio.ui.autosave import Autosaver
    app = QCoreApplication([])
    doc = Document(np.full((12, 16, 3), int(sys.argv[1]), np.uint8))
    doc.set_layer("mask", np.full((12, 16), 255, np.uint8))
    saver = Autosaver(0)
    saver.watch(doc)
    saver.save_now()
    saver.wait()
    print(saver.path, flush=True)
    if sys.argv[2] == "crash":
        os._exit(3)
    time.sleep(60)
""")


def _other_copy(value: int, mode: str, data_dir: Path) -> subprocess.Popen:
    env = dict(os.environ, INPAINT_STUDIO_DATA_DIR=str(data_dir), QT_QPA_PLATFORM="offscreen",
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    return subprocess.Popen([sys.executable, "-c", OTHER_COPY, str(value), mode], env=env,
                            stdout=subprocess.PIPE, text=True)


def test_restore_offers_the_newest_crashed_session_not_a_running_copy(window, dialogs, data_dir):
    crashed_old = _other_copy(10, "crash", data_dir)
    old_path = Path(crashed_old.stdout.readline().strip())
    assert crashed_old.wait(30) == 3
    time.sleep(0.05)  # distinct modification times
    crashed_new = _other_copy(20, "crash", data_dir)
    new_path = Path(crashed_new.stdout.readline().strip())
    assert crashed_new.wait(30) == 3
    running = _other_copy(30, "live", data_dir)
    try:
        running_path = Path(running.stdout.readline().strip())
        os.utime(running_path)  # the newest file of all, but its owner is alive
        assert window.offer_restore()
        assert dialogs.shown[-1][1] == "Restore session"
        doc = window.document
        assert doc.image[0, 0].tolist() == [20, 20, 20] and doc.has_hole
        # The restored file became this window's autosave; the running copy's is untouched.
        assert not new_path.exists() and window.autosaver.path.is_file()
        assert running_path.is_file() and old_path.is_file()
        assert not window.autosaver.save_now()  # the adopted file already holds the document
    finally:
        running.kill()
        running.wait(10)
    # Its owner gone, the running copy's file is now the newest orphan; discarding it
    # leaves the older one for the next start.
    orphan = claim_newest_orphan(own=window.autosaver.path)
    assert orphan is not None and orphan.path == running_path
    orphan.discard()
    assert not running_path.exists()
    orphan = claim_newest_orphan(own=window.autosaver.path)
    assert orphan is not None and orphan.path == old_path
    orphan.discard()
    assert claim_newest_orphan(own=window.autosaver.path) is None


def test_restored_session_keeps_fills_undoable(window, photo_file, photo, qtbot, settings, engines, dialogs):
    window.files.open_path(str(photo_file))
    window.canvas.set_radius(5)
    drag(window, [(30, 30), (60, 30)])
    result = photo.copy()
    result[window.document.mask > 127] = 3
    window.document.apply_fill(result)
    drag(window, [(100, 70), (110, 70)])
    expected_mask = window.document.mask.copy()
    expected_image = window.document.image.copy()
    # A crashed window's file: written, then abandoned without the clean-exit removal.
    crashed = Autosaver(0)
    crashed.watch(window.document)
    assert crashed.save_now()
    crashed.wait()
    crashed._lock.unlock()  # what the death of its process does

    from inpaint_studio.ui.main_window import MainWindow

    second = MainWindow(settings=settings, engine_lister=engines.list, engine_getter=engines.get)
    qtbot.addWidget(second)
    try:
        assert second.offer_restore()
        doc = second.document
        np.testing.assert_array_equal(doc.image, expected_image)
        np.testing.assert_array_equal(doc.mask, expected_mask)
        assert doc.source_path == str(photo_file.resolve()) and second.loaded is not None
        assert doc.fill_count == 1
        second.actions.undo.trigger()  # the last mask stroke was not kept as history...
        second.actions.undo.trigger()  # ...but the applied fill was
        np.testing.assert_array_equal(doc.image, photo)
    finally:
        second.service.shutdown()
        second.autosaver.stop_and_discard()


def test_two_windows_write_separate_files_and_clean_exit_removes_only_its_own(window, photo_file):
    window.files.open_path(str(photo_file))
    drag(window, [(30, 30), (40, 30)])
    other = Autosaver(0)
    try:
        other.watch(Document(np.zeros((8, 8, 3), np.uint8)))
        assert window.autosaver.save_now() and other.save_now()
        window.autosaver.wait()
        other.wait()
        assert window.autosaver.path != other.path
        assert window.autosaver.path.is_file() and other.path.is_file()
        # A running window's file is never an orphan, whoever asks.
        assert claim_newest_orphan() is None
        window.autosaver.stop_and_discard()
        assert not window.autosaver.path.exists() and other.path.is_file()
    finally:
        other.stop_and_discard()
    assert not list(autosave_dir().glob("session*"))


def test_autosave_timer_writes_by_itself(window, photo_file, qtbot):
    window.files.open_path(str(photo_file))
    drag(window, [(30, 30), (40, 30)])
    window.autosaver.set_interval(1)
    qtbot.waitUntil(lambda: window.autosaver.path.is_file(), timeout=30000)  # a busy machine


# A copy of the app killed before its first autosave: its lock file stays behind.
KILLED_EARLY = textwrap.dedent("""
    import os
    from PySide6.QtCore import QCoreApplication
    from inpaint_studio.ui.autosave import Autosaver
    app = QCoreApplication([])
    saver = Autosaver(30)
    print(saver.path, flush=True)
    os._exit(9)
""")


def test_stale_locks_of_copies_killed_before_their_first_autosave_are_removed(data_dir):
    from inpaint_studio.ui.autosave import remove_stale_locks

    env = dict(os.environ, INPAINT_STUDIO_DATA_DIR=str(data_dir), QT_QPA_PLATFORM="offscreen",
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    killed = subprocess.run([sys.executable, "-c", KILLED_EARLY], env=env, capture_output=True,
                            text=True, timeout=120)
    assert killed.returncode == 9
    stale = Path(killed.stdout.strip()).with_suffix(".lock")
    assert stale.is_file()  # left behind, as issue 13 found
    # A crashed copy that did autosave keeps its lock beside its session (an orphan to offer).
    crashed = _other_copy(40, "crash", data_dir)
    orphan = Path(crashed.stdout.readline().strip())
    assert crashed.wait(30) == 3 and orphan.with_suffix(".lock").is_file()
    live = Autosaver(0)  # a running window: its lock is held
    try:
        # Starting that window already removed the stale lock; nothing else goes.
        assert not stale.exists()
        assert orphan.is_file() and orphan.with_suffix(".lock").is_file()
        assert live.path.with_suffix(".lock").is_file()
        assert remove_stale_locks() == 0
        assert live.path.with_suffix(".lock").is_file()
    finally:
        live.stop_and_discard()
