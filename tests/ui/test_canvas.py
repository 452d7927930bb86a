"""Painting through real mouse events, tools, sizes, undo/redo, zoom and partial repaints."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from inpaint_studio.document import Rect
from inpaint_studio.ui.canvas import CanvasTool

from .conftest import drag, view_point


def _open(window, photo_file):
    assert window.files.open_path(str(photo_file))
    window.canvas.actual_size()
    window.canvas.centerOn(QPointF(64, 48))
    return window.document


def test_brush_stroke_paints_the_mask_where_dragged(window, photo_file):
    doc = _open(window, photo_file)
    drag(window, [(20, 40), (40, 40), (60, 42)])
    r = window.canvas.radius
    assert doc.mask[40, 30] == 255 and doc.mask[41, 55] == 255
    assert doc.mask[40, 60 + int(r) + 3] == 0 and doc.mask[5, 100] == 0
    assert doc.mask[40, 20 - int(r) - 2] == 0
    assert not doc.sketch.any()
    # The overlay QImage shows the hole translucent red where the mask is.
    color = window.canvas.overlay_item.image.pixelColor(30, 40)
    assert color.alpha() > 0 and color.red() > color.green()
    assert window.canvas.overlay_item.image.pixelColor(100, 5).alpha() == 0


def test_undo_redo_by_keyboard(window, photo_file, qtbot):
    doc = _open(window, photo_file)
    drag(window, [(30, 30), (50, 30)])
    painted = doc.mask.copy()
    assert painted.any()
    window.canvas.setFocus()
    QTest.keyClick(window.canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert not doc.mask.any()
    assert window.canvas.overlay_item.image.pixelColor(40, 30).alpha() == 0
    QTest.keyClick(window.canvas, Qt.Key.Key_Z,
                   Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    np.testing.assert_array_equal(doc.mask, painted)
    QTest.keyClick(window.canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    QTest.keyClick(window.canvas, Qt.Key.Key_Y, Qt.KeyboardModifier.ControlModifier)
    np.testing.assert_array_equal(doc.mask, painted)


def test_tool_keys_sizes_eraser_and_pen(window, photo_file):
    doc = _open(window, photo_file)
    window.canvas.setFocus()
    QTest.keyClick(window.canvas, Qt.Key.Key_B)
    assert window.canvas.tool is CanvasTool.BRUSH
    before = window.canvas.radius
    QTest.keyClick(window.canvas, Qt.Key.Key_BracketRight)
    assert window.canvas.radius > before
    QTest.keyClick(window.canvas, Qt.Key.Key_BracketLeft)
    QTest.keyClick(window.canvas, Qt.Key.Key_BracketLeft)
    assert window.canvas.radius < before
    drag(window, [(20, 50), (100, 50)])
    QTest.keyClick(window.canvas, Qt.Key.Key_E)
    assert window.canvas.tool is CanvasTool.ERASER
    drag(window, [(60, 50), (61, 50)])
    assert doc.mask[50, 60] == 0 and doc.mask[50, 25] == 255
    # The sketch pen works with an engine that follows sketches (the fake deep one).
    window.fill.engine_box.setCurrentIndex(window.fill.engine_box.findData("fake_two_stage"))
    QTest.keyClick(window.canvas, Qt.Key.Key_S)
    assert window.canvas.tool is CanvasTool.PEN
    drag(window, [(20, 50), (100, 50)])
    assert doc.sketch[50, 30] == 255 and doc.sketch[45, 30] == 0  # thin line
    # The outline cursor follows the pointer with the tool's size.
    QTest.mouseMove(window.canvas.viewport(), view_point(window, 70, 30))
    assert window.canvas.outline.isVisible()
    assert abs(window.canvas.outline.rect().width() - 2 * (window.canvas.radius + 0.5)) < 1e-6


def test_strokes_repaint_only_their_dirty_rect(window, photo_file, monkeypatch):
    _open(window, photo_file)
    refreshed: list[Rect] = []
    monkeypatch.setattr(window.canvas.overlay_item, "refresh", refreshed.append)
    window.canvas.set_radius(3)
    drag(window, [(10, 10), (14, 12)])
    assert refreshed and all(not r.empty for r in refreshed)
    union = refreshed[0]
    for r in refreshed:
        union = union.union(r)
    assert union.width <= 4 + 2 * 3 + 2 and union.height <= 2 + 2 * 3 + 2


def test_ctrl_wheel_zooms_and_fit_and_actual_size(window, photo_file):
    _open(window, photo_file)
    canvas = window.canvas
    assert abs(canvas.zoom - 1.0) < 1e-6
    centre = QPointF(canvas.viewport().rect().center())
    event = QWheelEvent(centre, canvas.viewport().mapToGlobal(centre), QPoint(), QPoint(0, 240),
                        Qt.MouseButton.NoButton, Qt.KeyboardModifier.ControlModifier,
                        Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(canvas.viewport(), event)
    assert canvas.zoom > 1.3
    window.actions.fit.trigger()
    assert canvas.mapFromScene(QPointF(0, 0)).x() >= 0  # the whole photo is in view
    window.actions.actual_size.trigger()
    assert abs(canvas.zoom - 1.0) < 1e-6


def test_middle_button_pans_without_painting(window, photo_file):
    doc = _open(window, photo_file)
    window.canvas.set_zoom(8.0)
    h0 = window.canvas.horizontalScrollBar().value()
    viewport = window.canvas.viewport()
    QTest.mousePress(viewport, Qt.MouseButton.MiddleButton, Qt.KeyboardModifier.NoModifier, QPoint(200, 200))
    QTest.mouseMove(viewport, QPoint(150, 200))
    QTest.mouseRelease(viewport, Qt.MouseButton.MiddleButton, Qt.KeyboardModifier.NoModifier, QPoint(150, 200))
    assert window.canvas.horizontalScrollBar().value() == h0 + 50
    assert not doc.mask.any()


def test_clear_mask_is_undoable(window, photo_file):
    doc = _open(window, photo_file)
    drag(window, [(30, 30), (50, 30)])
    window.actions.clear_mask.trigger()
    assert not doc.mask.any()
    window.actions.undo.trigger()
    assert doc.mask.any()


def test_space_drag_pans_and_does_not_paint(window, photo_file):
    doc = _open(window, photo_file)
    canvas = window.canvas
    canvas.set_zoom(8.0)
    canvas.setFocus()
    v0 = canvas.verticalScrollBar().value()
    QTest.keyPress(canvas, Qt.Key.Key_Space)
    viewport = canvas.viewport()
    QTest.mousePress(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, QPoint(200, 200))
    QTest.mouseMove(viewport, QPoint(200, 160))
    QTest.mouseRelease(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, QPoint(200, 160))
    QTest.keyRelease(canvas, Qt.Key.Key_Space)
    assert canvas.verticalScrollBar().value() == v0 + 40
    assert not doc.mask.any()
    drag(window, [(60, 45), (62, 45)])  # without Space the left button paints again
    assert doc.mask.any()


def test_zoomed_out_layers_draw_from_a_downscaled_copy_kept_in_step(window, photo_file, photo):
    doc = _open(window, photo_file)
    canvas = window.canvas
    canvas.set_zoom(0.25)
    canvas.centerOn(QPointF(64, 48))
    canvas.viewport().repaint()
    assert canvas.photo_item.mip_factors == (4,) and canvas.overlay_item.mip_factors == (4,)
    # A level pixel is the mean of its 4x4 block.
    level = canvas.photo_item.level(4).pixelColor(5, 3)
    block = photo[12:16, 20:24].reshape(-1, 3).mean(axis=0)
    assert abs(level.red() - block[0]) <= 1 and abs(level.blue() - block[2]) <= 1
    before = canvas.viewport().grab().toImage().pixelColor(view_point(window, 64, 48))
    canvas.set_radius(8)
    drag(window, [(56, 48), (72, 48)])
    assert canvas.overlay_item.level(4).pixelColor(16, 12).alpha() > 0  # refreshed with the stroke
    after = canvas.viewport().grab().toImage().pixelColor(view_point(window, 64, 48))
    assert after.red() - after.green() > before.red() - before.green()  # the red hole shows
    window.undo()
    assert canvas.overlay_item.level(4).pixelColor(16, 12).alpha() == 0
    assert not doc.mask.any()
