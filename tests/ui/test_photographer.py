"""The app as a photographer uses it (issue 14): results that are never lost, painting while
a fill runs, mask helpers, overlay style, brush size, honest engine states, keys, saving,
restore, settings that survive a crash, progress. Real mouse and keyboard events throughout."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from PySide6.QtCore import QSettings, Qt, QTimer
from PySide6.QtGui import QImage
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QMessageBox, QSpinBox, QStyle

from inpaint_studio import imageio, mask_ops
from inpaint_studio.engine import CoreStage, Engine
from inpaint_studio.ui.canvas import SPLIT_AFTER, SPLIT_BEFORE, CanvasTool

from .conftest import COARSE_RGB, REFINED_RGB, drag, item_pixel, view_point

CTRL = Qt.KeyboardModifier.ControlModifier
CTRL_ALT = Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.AltModifier
LEFT = Qt.MouseButton.LeftButton


def _open(window, photo_file, radius=6):
    assert window.files.open_path(str(photo_file))
    window.canvas.actual_size()
    window.canvas.set_radius(radius)
    return window.document


def _use(window, name):
    box = window.fill.engine_box
    box.setCurrentIndex(box.findData(name))
    assert window.fill.engine_name == name


def _wait_idle(qtbot, window, timeout=20000):
    qtbot.waitUntil(lambda: not window.service.busy, timeout=timeout)
    qtbot.wait(50)  # queued stage signals land


def _filled(window, photo_file, qtbot):
    doc = _open(window, photo_file)
    drag(window, [(50, 40), (70, 45)])
    _use(window, "fake_two_stage")
    window.canvas.setFocus()
    QTest.keyClick(window.canvas, Qt.Key.Key_Return, CTRL)
    _wait_idle(qtbot, window)
    assert window.canvas.has_result
    return doc


def _shown(window, x, y):
    c = item_pixel(window.canvas.result_item, x, y)
    return None if c is None else (c.red(), c.green(), c.blue())


def _overlay_alpha(window, x, y):
    return window.canvas.overlay_item.image.pixelColor(x, y).alpha()


def _when_modal(action, tries=200):
    """Run ``action(dialog)`` on the next modal dialog, from the nested event loop that
    ``exec()`` starts (schedule it before the key that opens the dialog)."""

    def attempt(left=tries):
        dialog = QApplication.activeModalWidget()
        if dialog is None:
            if left:
                QTimer.singleShot(10, lambda: attempt(left - 1))
            return
        action(dialog)

    QTimer.singleShot(0, attempt)


def _back_to(window, qtbot) -> None:
    """After a modal dialog: the window is active again (its shortcuts work) with the focus
    on the canvas, as after a user's click."""
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=3000)
    window.canvas.setFocus()


def _type_into_spin(spin: QSpinBox, text: str) -> None:
    spin.setFocus()
    QTest.keyClick(spin, Qt.Key.Key_A, CTRL)
    QTest.keyClicks(spin, text)


# ---------------------------------------------------------------- 1. results are kept
def test_divider_drags_with_the_brush_and_the_result_stays(window, photo_file, qtbot):
    doc = _filled(window, photo_file, qtbot)
    canvas = window.canvas
    assert canvas.tool is CanvasTool.BRUSH
    QTest.keyClick(canvas, Qt.Key.Key_C)  # compare
    assert canvas.split_enabled
    mask_before, undo_before = doc.mask.copy(), doc.next_undo_kind
    viewport = canvas.viewport()
    x = canvas.divider.pos().x()
    # The brush outline follows the pointer onto the divider before the press.
    QTest.mouseMove(viewport, canvas.mapFromScene(x, 40))
    assert canvas.outline.isVisible()
    QTest.mousePress(viewport, LEFT, Qt.KeyboardModifier.NoModifier, canvas.mapFromScene(x, 40))
    QTest.mouseMove(viewport, canvas.mapFromScene(30, 40))
    QTest.mouseRelease(viewport, LEFT, Qt.KeyboardModifier.NoModifier, canvas.mapFromScene(30, 40))
    assert canvas.result_item.split_x == pytest.approx(30, abs=1.5)
    np.testing.assert_array_equal(doc.mask, mask_before)  # no stroke
    assert doc.next_undo_kind == undo_before
    assert window.fill.has_result and "discarded" not in window.status_label.text()


def test_a_stroke_over_a_result_keeps_it_and_undo_removes_only_the_stroke(window, photo_file, qtbot):
    doc = _filled(window, photo_file, qtbot)
    drag(window, [(100, 80), (110, 80)])  # the next object to remove
    assert window.fill.has_result and _shown(window, 60, 42) == REFINED_RGB
    assert doc.mask[80, 105] == 255
    assert "wait for the next Fill" in window.status_label.text()
    # The new stroke shows over the photo; the result's own hole is not covered.
    assert _overlay_alpha(window, 105, 80) > 0 and _overlay_alpha(window, 60, 42) == 0
    QTest.keyClick(window.canvas, Qt.Key.Key_Z, CTRL)
    assert doc.mask[80, 105] == 0
    assert window.fill.has_result and _shown(window, 60, 42) == REFINED_RGB
    # Undoing past an applied fill while a result is shown is refused, not destructive.
    QTest.keyClick(window.canvas, Qt.Key.Key_Return)  # Apply
    assert tuple(doc.image[42, 60]) == REFINED_RGB
    drag(window, [(100, 20), (110, 20)])
    window.start_fill()
    _wait_idle(qtbot, window)
    QTest.keyClick(window.canvas, Qt.Key.Key_Z, CTRL)  # the stroke
    QTest.keyClick(window.canvas, Qt.Key.Key_Z, CTRL)  # the applied fill: refused
    assert tuple(doc.image[42, 60]) == REFINED_RGB and window.fill.has_result
    assert "Apply or Discard" in window.status_label.text()


# ------------------------------------------------------- 2. painting while a fill runs
def test_painting_while_a_fill_runs_lets_it_finish_for_its_own_hole(window, photo_file, qtbot, engines):
    doc = _open(window, photo_file)
    drag(window, [(50, 40), (70, 45)])
    _use(window, "fake_two_stage")
    engines.fake.gate = threading.Event()  # the refined stage waits for it
    request = window.start_fill()
    qtbot.waitUntil(lambda: bool(window.fill.stages_seen), timeout=20000)
    assert window.service.busy
    drag(window, [(100, 80), (110, 80)])  # masking the next object meanwhile
    assert window.service.busy and "discarded" not in window.status_label.text()
    assert "running fill finishes the earlier hole" in window.status_label.text()
    engines.fake.gate.set()
    _wait_idle(qtbot, window)
    assert window.fill.stages_seen == [(request, "coarse"), (request, "refined")]
    assert _shown(window, 60, 42) == REFINED_RGB
    assert _shown(window, 105, 80) in (None, tuple(doc.image[80, 105]))  # not filled
    QTest.keyClick(window.canvas, Qt.Key.Key_Return)  # Apply
    assert tuple(doc.image[42, 60]) == REFINED_RGB
    assert doc.mask[42, 60] == 0 and doc.mask[80, 105] == 255  # the new strokes wait
    assert _overlay_alpha(window, 105, 80) > 0


# --------------------------------------------------------------------- 3. mask helpers
def test_grow_and_shrink_the_mask_by_typed_pixels_each_one_undo_step(window, photo_file, qtbot):
    doc = _open(window, photo_file)
    drag(window, [(50, 40), (70, 45)])
    painted = doc.mask.copy()

    def type_three(dialog):
        _type_into_spin(dialog.findChild(QSpinBox), "3")
        QTest.keyClick(dialog.findChild(QSpinBox), Qt.Key.Key_Return)

    window.canvas.setFocus()
    _when_modal(type_three)
    QTest.keyClick(window.canvas, Qt.Key.Key_BracketRight, CTRL_ALT)
    np.testing.assert_array_equal(doc.mask, mask_ops.grow(painted, 3))
    assert doc.next_undo_kind == "grow mask"
    _back_to(window, qtbot)
    _when_modal(type_three)
    QTest.keyClick(window.canvas, Qt.Key.Key_BracketLeft, CTRL_ALT)
    np.testing.assert_array_equal(doc.mask, mask_ops.shrink(mask_ops.grow(painted, 3), 3))
    assert doc.next_undo_kind == "shrink mask"
    _back_to(window, qtbot)
    QTest.keyClick(window.canvas, Qt.Key.Key_Z, CTRL)
    QTest.keyClick(window.canvas, Qt.Key.Key_Z, CTRL)
    np.testing.assert_array_equal(doc.mask, painted)
    # Cancelling the dialog changes nothing.
    _when_modal(lambda dialog: QTest.keyClick(dialog.findChild(QSpinBox), Qt.Key.Key_Escape))
    QTest.keyClick(window.canvas, Qt.Key.Key_BracketRight, CTRL_ALT)
    np.testing.assert_array_equal(doc.mask, painted)


def _ring(window, half):
    """A square ring of strokes around (60, 50) leaving an unmasked island inside."""
    x0, x1, y0, y1 = 60 - half, 60 + half, 50 - half, 50 + half
    drag(window, [(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)])


def test_fill_enclosed_gaps_from_the_keyboard_and_before_every_fill(window, photo_file, qtbot):
    doc = _open(window, photo_file, radius=3)
    window.prefs.grow_before_fill = 0  # gaps alone (the default 4 px grow would close it too)
    _ring(window, 6)
    island = mask_ops.enclosed_gaps(doc.mask)
    assert island[50, 60] and island.sum() <= 0.005 * doc.width * doc.height  # the auto limit
    # A fill gets the small island filled without being asked...
    _use(window, "fake_two_stage")
    said = []
    window.fill.status.connect(said.append)
    window.canvas.setFocus()
    QTest.keyClick(window.canvas, Qt.Key.Key_Return, CTRL)
    _wait_idle(qtbot, window)
    assert window.fill.result_hole[50, 60] and _shown(window, 60, 50) == REFINED_RGB
    assert any("gaps in the hole filled" in line for line in said)
    QTest.keyClick(window.canvas, Qt.Key.Key_Backspace)  # Discard
    assert doc.mask[50, 60] == 0  # the document's mask is changed only when asked
    # A larger island is left to the user, who fills it with one undoable command.
    QTest.keyClick(window.canvas, Qt.Key.Key_Z, CTRL)
    _ring(window, 20)
    window.start_fill()
    _wait_idle(qtbot, window)
    assert not window.fill.result_hole[50, 60]
    QTest.keyClick(window.canvas, Qt.Key.Key_Backspace)
    QTest.keyClick(window.canvas, Qt.Key.Key_G, CTRL_ALT)
    assert doc.mask[50, 60] == 255 and doc.next_undo_kind == "fill gaps"
    assert "enclosed gaps" in window.status_label.text()
    QTest.keyClick(window.canvas, Qt.Key.Key_Z, CTRL)
    assert doc.mask[50, 60] == 0


def test_overlay_colour_and_opacity_from_preferences(window, photo_file, settings):
    _open(window, photo_file)
    drag(window, [(50, 40), (70, 45)])
    before = window.canvas.overlay_item.image.pixelColor(60, 42)
    assert before.red() > before.blue()  # red by default

    def choose(dialog):
        colour = dialog.overlay_color
        colour.setFocus()
        QTest.keyClick(colour, Qt.Key.Key_Down)  # Red -> Cyan
        _type_into_spin(dialog.overlay_opacity, "80")
        QTest.keyClick(dialog.overlay_opacity, Qt.Key.Key_Return)  # OK

    _when_modal(choose)
    window.actions.preferences.trigger()
    after = window.canvas.overlay_item.image.pixelColor(60, 42)
    assert after.blue() > after.red() and after.alpha() == round(0.8 * 255)
    assert window.prefs.overlay_color == "#30d0ff" and window.prefs.overlay_opacity == 80
    assert settings.value("prefs/overlay_opacity") in (80, "80")


def test_brush_size_typed_dragged_and_relative_to_the_photo(window, photo_file, tmp_path, photo):
    doc = _open(window, photo_file)
    size = window.brush_size
    _type_into_spin(size, "30")
    QTest.keyClick(size, Qt.Key.Key_Return)
    assert window.canvas.radius == pytest.approx(15)
    # Shift+drag to the right: the outline's edge follows the pointer, nothing is painted.
    viewport = window.canvas.viewport()
    start = view_point(window, 60, 50)
    QTest.mousePress(viewport, LEFT, Qt.KeyboardModifier.ShiftModifier, start)
    QTest.mouseMove(viewport, start + type(start)(20, 0))
    QTest.mouseRelease(viewport, LEFT, Qt.KeyboardModifier.ShiftModifier, start + type(start)(20, 0))
    assert window.canvas.radius == pytest.approx(15 + 20 / window.canvas.zoom, abs=0.6)
    assert not doc.mask.any()
    assert size.value() == round(2 * window.canvas.radius)
    # Ctrl+drag to the left makes it smaller.
    QTest.mousePress(viewport, LEFT, CTRL, start)
    QTest.mouseMove(viewport, start - type(start)(30, 0))
    QTest.mouseRelease(viewport, LEFT, CTRL, start - type(start)(30, 0))
    assert window.canvas.radius == pytest.approx(5 + 20 / window.canvas.zoom - 10, abs=0.6) \
        or window.canvas.radius < 15
    assert not doc.mask.any()
    # A photo twice the size opens with a brush twice the size (same look at fit zoom).
    radius_small = window.canvas.radius
    big = tmp_path / "big.png"
    imageio.save_image(big, np.repeat(np.repeat(photo, 2, axis=0), 2, axis=1))
    assert window.files.open_path(str(big))
    assert window.canvas.radius == pytest.approx(2 * radius_small, rel=0.02)
    # ] steps a quarter: from 40 px to 246 px in 9 presses, not 13.
    window.canvas.set_radius(20)
    window.canvas.setFocus()
    for _ in range(9):
        QTest.keyClick(window.canvas, Qt.Key.Key_BracketRight)
    assert 2 * window.canvas.radius >= 246


# ----------------------------------------------------------- 4. and 5. honest engine states
def test_sketch_pen_and_attention_view_only_for_engines_that_use_them(window, photo_file):
    _open(window, photo_file)
    a = window.actions
    _use(window, "patchmatch")
    assert not a.pen.isEnabled() and "ignores sketch lines" in a.pen.toolTip()
    assert not a.probe.isEnabled()
    window.canvas.setFocus()
    QTest.keyClick(window.canvas, Qt.Key.Key_S)
    assert window.canvas.tool is CanvasTool.BRUSH
    _use(window, "fake_two_stage")
    assert a.pen.isEnabled() and a.probe.isEnabled()
    QTest.keyClick(window.canvas, Qt.Key.Key_S)
    assert window.canvas.tool is CanvasTool.PEN
    _use(window, "telea")  # switching to an engine without sketches puts the brush back
    assert window.canvas.tool is CanvasTool.BRUSH
    assert "ignores sketch lines" in window.status_label.text()


def test_engine_note_says_which_engine_runs_and_why_in_plain_sight(window):
    note = window.fill.engine_note
    assert note.isVisible()
    assert note.text().startswith("Runs PatchMatch (the default)")
    assert "Broken cannot run: no trained weights" in note.text()
    # Inside the window, not only a tooltip.
    assert note.mapTo(window, note.rect().topRight()).x() <= window.width()
    assert max(len(line) for line in note.toolTip().splitlines()) <= 60
    _use(window, "fake_two_stage")
    assert note.text() == "Runs Fake two-stage (your choice)"


# ----------------------------------------------------------------------- 6. zoom keys
def test_ctrl_equals_zooms_in(window, photo_file):
    _open(window, photo_file)
    window.canvas.setFocus()
    before = window.canvas.zoom
    QTest.keyClick(window.canvas, Qt.Key.Key_Equal, CTRL)
    assert window.canvas.zoom == pytest.approx(before * 1.25)
    QTest.keyClick(window.canvas, Qt.Key.Key_Minus, CTRL)
    assert window.canvas.zoom == pytest.approx(before)


# ------------------------------------------------------------------------- 9. saving
def test_title_follows_save_as_and_ctrl_s_writes_the_new_file(window, photo_file, photo, qtbot,
                                                              tmp_path, monkeypatch):
    from inpaint_studio.ui import files

    doc = _filled(window, photo_file, qtbot)
    QTest.keyClick(window.canvas, Qt.Key.Key_Return)  # Apply
    target = tmp_path / "renamed.png"
    monkeypatch.setattr(files.QFileDialog, "getSaveFileName",
                        staticmethod(lambda *a, **k: (str(target), "")))
    QTest.keyClick(window.canvas, Qt.Key.Key_S, CTRL | Qt.KeyboardModifier.ShiftModifier)
    assert target.is_file() and window.windowTitle().startswith("renamed.png")
    drag(window, [(20, 20), (25, 20)])
    doc.apply_fill(np.zeros_like(doc.image), None)  # a second applied change
    window.update_title()
    assert window.windowTitle().startswith("renamed.png *")
    QTest.keyClick(window.canvas, Qt.Key.Key_S, CTRL)
    assert not imageio.load_image(target).rgb.any()  # Ctrl+S wrote the new file...
    np.testing.assert_array_equal(imageio.load_image(photo_file).rgb, photo)  # ...not the old


def test_unsaved_changes_prompt_has_a_save_button(window, photo_file, qtbot, tmp_path, monkeypatch):
    from inpaint_studio.ui import dialogs as ui_dialogs
    from inpaint_studio.ui import main_window

    monkeypatch.setattr(main_window, "ask_save_changes", ui_dialogs.ask_save_changes)
    doc = _filled(window, photo_file, qtbot)
    QTest.keyClick(window.canvas, Qt.Key.Key_Return)  # Apply: unsaved work
    window.files.save_path = str(tmp_path / "kept.png")
    buttons = []

    def press_save(box):
        buttons.extend(b.text().replace("&", "") for b in box.buttons())
        save = box.button(QMessageBox.StandardButton.Save)
        QTest.mouseClick(save, LEFT)

    other = tmp_path / "other.png"
    imageio.save_image(other, doc.image[::-1].copy())
    _when_modal(press_save)
    assert window.files.open_path(str(other))
    assert {"Save", "Discard", "Cancel"} <= set(buttons)
    saved = imageio.load_image(tmp_path / "kept.png").rgb
    assert tuple(saved[42, 60]) == REFINED_RGB
    assert window.document.source_path == str(other.resolve())


# ------------------------------------------------------------------------- 10. polish
def test_compare_view_labels_its_sides(window, photo_file, qtbot):
    _filled(window, photo_file, qtbot)
    canvas = window.canvas
    assert canvas.split_labels() == []
    QTest.keyClick(canvas, Qt.Key.Key_C)
    labels = dict(canvas.split_labels())
    x = canvas.mapFromScene(canvas.divider.pos().x(), 0).x()
    assert labels[SPLIT_AFTER].right() < x < labels[SPLIT_BEFORE].left()
    # Drawn on screen: the label's box is dark where there is photo under it.
    shot = canvas.viewport().grab().toImage()
    box = labels[SPLIT_BEFORE]
    c = shot.pixelColor(box.left() + 2, box.center().y())
    assert max(c.red(), c.green(), c.blue()) < 90


def test_restore_prompt_names_the_photo_and_the_time(window, photo_file, dialogs, qtbot):
    from inpaint_studio.ui.autosave import Autosaver

    _open(window, photo_file)
    drag(window, [(30, 30), (40, 30)])
    crashed = Autosaver(0)
    crashed.watch(window.document)
    assert crashed.save_now()
    crashed.wait()
    crashed._lock.unlock()  # what the death of its process does
    assert window.offer_restore()
    kind, title, text = dialogs.shown[-1]
    assert title == "Restore session" and "photo.png" in text
    assert " on " in text and ":" in text.split("autosaved at", 1)[1]


def test_window_geometry_and_brush_size_are_kept_without_a_clean_exit(window, photo_file, settings, qtbot):
    _open(window, photo_file)
    window.resize(1000, 760)
    _type_into_spin(window.brush_size, "24")
    QTest.keyClick(window.brush_size, Qt.Key.Key_Return)
    qtbot.wait(1300)  # the settings are written a second after the last change
    stored = QSettings(settings.fileName(), QSettings.Format.IniFormat)  # as a new process reads it
    assert stored.value("window/geometry") is not None
    assert int(stored.value("prefs/brush_radius")) == 12
    assert float(stored.value("prefs/brush_fraction")) == pytest.approx(12 / 128)


def test_undo_and_redo_icons_are_not_back_and_forward_arrows(window):
    style = window.style()
    for action, arrow in ((window.actions.undo, QStyle.StandardPixmap.SP_ArrowBack),
                          (window.actions.redo, QStyle.StandardPixmap.SP_ArrowForward)):
        mine = action.icon().pixmap(32, 32).toImage().convertToFormat(QImage.Format.Format_ARGB32)
        theirs = style.standardIcon(arrow).pixmap(32, 32).toImage().convertToFormat(QImage.Format.Format_ARGB32)
        assert not mine.isNull() and mine != theirs
    # The arrow head sits low on the left for undo (turning back), on the right for redo.
    def head_side(action):
        image = action.icon().pixmap(32, 32).toImage()
        left = sum(image.pixelColor(x, y).alpha() for x in range(0, 12) for y in range(18, 28))
        right = sum(image.pixelColor(x, y).alpha() for x in range(20, 32) for y in range(18, 28))
        return "left" if left > 2 * right else "right" if right > 2 * left else "unclear"

    assert head_side(window.actions.undo) == "left" and head_side(window.actions.redo) == "right"


def test_status_bar_drops_the_opened_message_after_painting(window, photo_file):
    _open(window, photo_file)
    assert window.status_label.text().startswith("Opened")
    drag(window, [(30, 30), (40, 30)])
    assert not window.status_label.text().startswith("Opened")
    assert "Fill (Ctrl+Enter)" in window.status_label.text()


# ------------------------------------------------------------------- 8. long fills
class SlowCountingEngine(Engine):
    """Reports progress through its monitor in ``steps`` steps of ``pause`` seconds and
    records how far it got (to see that Esc stops it inside its work)."""

    name = "slow_counting"
    title = "Slow counting"
    kind = "classical"
    reports_progress = True

    def __init__(self, steps=40, pause=0.08, hold_at=10):
        self.steps, self.pause, self.hold_at, self.done = steps, pause, hold_at, 0
        self.hold = threading.Event()  # after ``hold_at`` steps it works on until this is set

    def fill_core(self, image, hole, sketch, options, monitor=None):
        import time

        self.done = 0
        for i in range(self.steps):
            monitor.check()
            time.sleep(self.pause)
            while i + 1 == self.hold_at and not self.hold.wait(0.01):
                monitor.check()  # busy like PatchMatch inside a level, until cancelled
            self.done = i + 1
            monitor.report((i + 1) / self.steps, f"step {i + 1}/{self.steps}")
        out = image.copy()
        out[hole] = COARSE_RGB
        yield CoreStage("final", out)


def test_progress_bar_fills_with_an_estimate_and_esc_stops_the_work(window, photo_file, qtbot, engines):
    slow = SlowCountingEngine()
    mine = engines._mine
    engines._mine = lambda: {**mine(), slow.name: slow}
    window.fill.refresh_engines()
    _open(window, photo_file)
    drag(window, [(50, 40), (70, 45)])
    _use(window, "slow_counting")
    window.start_fill()
    qtbot.waitUntil(lambda: window.busy_bar.maximum() == 1000 and window.busy_bar.value() >= 100
                    and "left" in window.progress_label.text(), timeout=30000)
    assert window.busy_bar.isVisible() and window.progress_label.isVisible()
    assert "step" in window.progress_label.text() and "left" in window.progress_label.text()
    window.canvas.setFocus()
    QTest.keyClick(window.canvas, Qt.Key.Key_Escape)
    assert "cancelled" in window.status_label.text()
    qtbot.waitUntil(lambda: not window.service.busy, timeout=20000)
    qtbot.wait(300)
    stopped_at = slow.done
    assert stopped_at < slow.steps  # it stopped inside its work, not at the end
    slow.hold.set()
    qtbot.wait(300)
    assert slow.done == stopped_at  # and does nothing more
    assert not window.busy_bar.isVisible() and not window.progress_label.isVisible()
    assert not window.fill.has_result


def test_precision_and_texture_preferences_reach_the_engine_and_the_status_bar(window, photo_file, qtbot, engines):
    from inpaint_studio.engine import FillOptions

    names = {f for f in FillOptions.__dataclass_fields__}
    if not {"precision", "texture"} <= names:
        pytest.skip("this engine API has no precision / texture options yet")

    def choose(dialog):
        dialog.precision.setFocus()
        QTest.keyClick(dialog.precision, Qt.Key.Key_End)  # bf16
        dialog.texture.setFocus()
        QTest.keyClick(dialog.texture, Qt.Key.Key_End)  # PatchMatch texture
        assert not dialog.harmonise.isChecked()  # the fixture's settings turn it off
        dialog.harmonise.setFocus()
        QTest.keyClick(dialog.harmonise, Qt.Key.Key_Space)  # on
        QTest.keyClick(dialog.texture, Qt.Key.Key_Return)  # OK

    _when_modal(choose)
    window.actions.preferences.trigger()
    assert (window.prefs.precision, window.prefs.texture) == ("bf16", "patchmatch")
    assert window.prefs.harmonise is True
    _open(window, photo_file)
    drag(window, [(50, 40), (70, 45)])
    _use(window, "fake_two_stage")
    window.start_fill()
    _wait_idle(qtbot, window, timeout=120000)
    options = engines.fake.last_options
    assert (options.precision, options.texture, options.harmonise) == ("bf16", "patchmatch", True)
    # The texture stage follows the refined one, and the status bar says what ran.
    assert [name for _, name in window.fill.stages_seen] == ["coarse", "refined", "texture"]
    status = window.status_label.text()
    assert "refined" in status and "(bf16)" in status and "texture" in status
