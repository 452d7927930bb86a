"""Autosave every N seconds, restore after a crash, nothing left after a clean exit."""

from __future__ import annotations

import numpy as np

from inpaint_studio.ui.autosave import autosave_path, pending_autosave
from inpaint_studio.ui.main_window import MainWindow

from .conftest import drag


def test_autosave_then_restore_after_a_crash(window, photo_file, photo, qtbot, settings, engines, dialogs):
    window.files.open_path(str(photo_file))
    window.canvas.set_radius(5)
    drag(window, [(30, 30), (60, 30)])
    result = photo.copy()
    result[window.document.mask > 127] = 3
    window.document.apply_fill(result)
    drag(window, [(100, 70), (110, 70)])
    expected_mask = window.document.mask.copy()
    assert window.autosaver.save_now()
    window.autosaver.wait()
    assert pending_autosave() == autosave_path()
    assert not window.autosaver.save_now()  # unchanged since the last write

    # A second window starts as after a crash (the first never closed cleanly).
    second = MainWindow(settings=settings, engine_lister=engines.list, engine_getter=engines.get)
    qtbot.addWidget(second)
    try:
        assert second.offer_restore()
        assert dialogs.shown[-1][1] == "Restore session"
        doc = second.document
        np.testing.assert_array_equal(doc.image, window.document.image)
        np.testing.assert_array_equal(doc.mask, expected_mask)
        assert doc.source_path == str(photo_file.resolve()) and second.loaded is not None
        assert doc.fill_count == 1
        second.actions.undo.trigger()  # the last mask stroke was not kept as history...
        second.actions.undo.trigger()  # ...but the applied fill was
        np.testing.assert_array_equal(doc.image, photo)
    finally:
        second.service.shutdown()


def test_declining_restore_discards_it_and_clean_exit_removes_autosave(window, photo_file, dialogs):
    window.files.open_path(str(photo_file))
    drag(window, [(30, 30), (40, 30)])
    window.autosaver.save_now()
    window.autosaver.wait()
    dialogs.answer_yes = False
    assert not window.offer_restore()
    assert pending_autosave() is None
    drag(window, [(30, 50), (40, 50)])
    assert window.autosaver.save_now()
    window.autosaver.wait()
    assert pending_autosave() is not None
    window.close()
    assert pending_autosave() is None


def test_autosave_timer_writes_by_itself(window, photo_file, qtbot):
    window.files.open_path(str(photo_file))
    drag(window, [(30, 30), (40, 30)])
    window.autosaver.set_interval(1)
    qtbot.waitUntil(lambda: pending_autosave() is not None, timeout=5000)
