"""Fills from the window: stages in order, preview then result, apply/discard, cancel,
stale requests, the real PatchMatch engine, the attention probe and the event-loop heartbeat."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from PySide6.QtCore import QElapsedTimer, Qt, QTimer
from PySide6.QtTest import QTest

from inpaint_studio.ui.canvas import CanvasTool

from .conftest import COARSE_RGB, REFINED_RGB, drag, item_pixel, view_point


def _painted(window, photo_file):
    assert window.files.open_path(str(photo_file))
    window.canvas.actual_size()
    window.canvas.set_radius(6)
    drag(window, [(50, 40), (70, 45)])
    return window.document


def _wait_idle(qtbot, window, timeout=20000):
    qtbot.waitUntil(lambda: not window.service.busy, timeout=timeout)
    qtbot.wait(50)  # let queued stage signals land


def _shown_pixel(window, x, y):
    c = item_pixel(window.canvas.result_item, x, y)
    return c.red(), c.green(), c.blue()


def test_fill_streams_coarse_then_refined_and_apply_commits(window, photo_file, qtbot, engines):
    doc = _painted(window, photo_file)
    original = doc.image.copy()
    painted = doc.mask > 127
    window.fill.engine_box.setCurrentIndex(window.fill.engine_box.findData("fake_two_stage"))
    coarse_seen = []

    def record(shown):
        if shown:
            coarse_seen.append(_shown_pixel(window, 60, 42))

    window.fill.result_changed.connect(record)
    window.canvas.setFocus()
    QTest.keyClick(window.canvas, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    assert window.service.busy and window.actions.cancel.isEnabled()
    _wait_idle(qtbot, window)
    assert [name for _, name in window.fill.stages_seen] == ["coarse", "refined"]
    assert coarse_seen == [COARSE_RGB, REFINED_RGB]  # the preview was shown, then replaced
    window.fill.result_changed.disconnect(record)
    assert "coarse" in window.status_label.text() and "refined" in window.status_label.text()
    assert window.actions.apply.isEnabled()
    # The fill got the painted hole grown by the default 4 px (as content-aware fill does).
    hole = window.fill.result_hole.copy()
    left = int(np.flatnonzero(painted[40])[0])
    assert hole[painted].all() and hole[40, left - 4] and not hole[40, left - 5]
    # The document is untouched until Apply.
    np.testing.assert_array_equal(doc.image, original)
    window.actions.apply.trigger()
    assert tuple(doc.image[42, 60]) == REFINED_RGB
    np.testing.assert_array_equal(doc.image[~hole], original[~hole])
    assert not doc.mask.any() and not window.canvas.has_result
    c = window.canvas.photo_item.image.pixelColor(60, 42)
    assert (c.red(), c.green(), c.blue()) == REFINED_RGB
    # Paint again on the result and fill again; the model is constructed once.
    drag(window, [(20, 20), (25, 20)])
    window.start_fill()
    _wait_idle(qtbot, window)
    assert engines.constructed.count("fake_two_stage") == 1 and engines.fake.calls == 2
    window.actions.discard.trigger()
    assert not window.canvas.has_result
    window.actions.undo.trigger()  # the second mask
    window.actions.undo.trigger()  # the applied fill
    np.testing.assert_array_equal(doc.image, original)


def test_unavailable_engine_is_listed_disabled_with_reason(window):
    box = window.fill.engine_box
    index = box.findData("broken")
    assert index >= 0
    item = box.model().item(index)
    assert not item.isEnabled()
    assert "no trained weights" in item.toolTip()
    assert box.currentData() != "broken"


def test_escape_cancels_before_the_refined_stage(window, photo_file, qtbot, engines):
    _painted(window, photo_file)
    engines.fake.gate = threading.Event()  # the refined stage waits until Esc was pressed
    window.fill.engine_box.setCurrentIndex(window.fill.engine_box.findData("fake_two_stage"))
    window.start_fill()
    qtbot.waitUntil(lambda: bool(window.fill.stages_seen), timeout=20000)
    window.canvas.setFocus()
    QTest.keyClick(window.canvas, Qt.Key.Key_Escape)
    assert "cancelled" in window.status_label.text()
    engines.fake.gate.set()
    qtbot.waitUntil(lambda: window.fill.stale_dropped == 1, timeout=20000)
    assert [name for _, name in window.fill.stages_seen] == ["coarse"]
    assert window.fill.stale_dropped == 1  # the refined stage arrived and was dropped
    assert not window.actions.cancel.isEnabled()


def test_newer_fill_supersedes_and_stale_stages_are_dropped(window, photo_file, qtbot, engines):
    _painted(window, photo_file)
    engines.fake.gate = threading.Event()  # the first fill's refined stage waits for it
    window.fill.engine_box.setCurrentIndex(window.fill.engine_box.findData("fake_two_stage"))
    first = window.start_fill()
    qtbot.waitUntil(lambda: bool(window.fill.stages_seen), timeout=20000)
    second = window.start_fill()
    engines.fake.gate.set()
    assert second > first
    _wait_idle(qtbot, window)
    ids = [rid for rid, _ in window.fill.stages_seen]
    names = [name for rid, name in window.fill.stages_seen if rid == second]
    assert ids == [first, second, second]
    assert names == ["coarse", "refined"]
    assert window.fill.stale_dropped >= 1  # the first request's refined stage
    assert window.fill.result.request_id == second


def test_fill_without_a_hole_says_what_to_do(window, photo_file):
    assert window.files.open_path(str(photo_file))
    assert window.start_fill() is None
    assert "Paint over" in window.status_label.text()


def test_patchmatch_fill_from_the_window(window, photo_file, qtbot):
    doc = _painted(window, photo_file)
    window.fill.engine_box.setCurrentIndex(window.fill.engine_box.findData("patchmatch"))
    assert window.fill.engine_name == "patchmatch"
    window.start_fill()
    _wait_idle(qtbot, window, timeout=60000)
    assert [name for _, name in window.fill.stages_seen] == ["final"]
    result = window.fill.result.image
    hole = doc.mask > 127
    assert result.shape == doc.image.shape
    np.testing.assert_array_equal(result[~hole][:100], doc.image[~hole][:100])
    assert not np.array_equal(result[hole], doc.image[hole])


def test_hold_tab_shows_the_original_and_split_view(window, photo_file, qtbot):
    _painted(window, photo_file)
    window.fill.engine_box.setCurrentIndex(window.fill.engine_box.findData("fake_two_stage"))
    window.start_fill()
    _wait_idle(qtbot, window)
    canvas = window.canvas
    canvas.setFocus()
    QTest.keyPress(canvas, Qt.Key.Key_Tab)
    assert not canvas.result_item.isVisible()
    QTest.keyRelease(canvas, Qt.Key.Key_Tab)
    assert canvas.result_item.isVisible()
    window.actions.split.trigger()
    assert canvas.split_enabled and canvas.result_item.split_x == pytest.approx(64)
    # Drag the divider to x = 30 (image pixels).
    viewport = canvas.viewport()
    QTest.mousePress(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                     canvas.mapFromScene(canvas.divider.pos().x(), 40))
    QTest.mouseMove(viewport, canvas.mapFromScene(30, 40))
    QTest.mouseRelease(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                       canvas.mapFromScene(30, 40))
    assert canvas.result_item.split_x == pytest.approx(30, abs=1.5)
    assert window.document.mask[40, 30] == 0  # dragging the divider did not paint


def test_attention_probe_shows_where_a_pixel_came_from(window, photo_file, qtbot):
    _painted(window, photo_file)
    window.fill.engine_box.setCurrentIndex(window.fill.engine_box.findData("fake_two_stage"))
    window.start_fill()
    _wait_idle(qtbot, window)
    QTest.keyClick(window.canvas, Qt.Key.Key_A)
    assert window.canvas.tool is CanvasTool.PROBE
    viewport = window.canvas.viewport()
    QTest.mouseClick(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, view_point(window, 60, 42))
    heat = window.canvas.heatmap_item
    assert heat is not None
    # The fake borrowed from its crop's top-left corner: warm there, nothing at the hole.
    region = window.fill.result.extras["attention"]
    hot = np.argwhere(region.heatmap(42, 60) > 0)
    y, x = hot[0]
    assert item_pixel(heat, int(x), int(y)).alpha() > 0
    at_hole = item_pixel(heat, 60, 42)
    assert at_hole is None or at_hole.alpha() == 0
    # A pixel outside the hole is not a filled pixel.
    QTest.mouseClick(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, view_point(window, 5, 90))
    assert window.canvas.heatmap_item is None
    assert "not a filled pixel" in window.status_label.text()


def test_heartbeat_during_a_patchmatch_fill(window, photo_file, qtbot):
    """Prints the longest gap between 10 ms timer ticks while a fill runs in the worker."""
    doc = _painted(window, photo_file)
    window.fill.engine_box.setCurrentIndex(window.fill.engine_box.findData("patchmatch"))
    gaps: list[float] = []
    clock = QElapsedTimer()
    clock.start()
    last = [clock.nsecsElapsed()]

    def tick():
        now = clock.nsecsElapsed()
        gaps.append((now - last[0]) / 1e6)
        last[0] = now

    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(tick)
    timer.start()
    start = time.perf_counter()
    window.start_fill()
    _wait_idle(qtbot, window, timeout=60000)
    timer.stop()
    assert window.fill.result is not None and doc.has_hole
    # Only the changed part of the result became an image.
    item = window.canvas.result_item
    assert item.image.width() < doc.width and item.x() > 0
    longest = max(gaps[1:]) if len(gaps) > 1 else float("nan")
    print(f"\nheartbeat during a {time.perf_counter() - start:.2f} s PatchMatch fill: "
          f"{len(gaps)} ticks, longest gap {longest:.1f} ms")
    assert len(gaps) > 3


def test_sketch_lines_guide_the_fill_only_inside_the_hole(window, photo_file, qtbot, engines):
    _painted(window, photo_file)  # hole around (50..70, 40..45)
    window.fill.engine_box.setCurrentIndex(window.fill.engine_box.findData("fake_two_stage"))
    window.set_tool(CanvasTool.PEN)
    drag(window, [(10, 80), (100, 80)])  # outside the hole only
    window.start_fill()
    _wait_idle(qtbot, window)
    assert engines.fake.last_sketch is None
    drag(window, [(52, 42), (68, 42)])  # inside the hole; the shown result stays
    assert window.canvas.has_result
    window.start_fill()
    _wait_idle(qtbot, window)
    sketch = engines.fake.last_sketch
    assert sketch is not None and sketch.any()


def test_holding_tab_works_wherever_the_focus_is_in_the_window(window, photo_file, qtbot):
    _painted(window, photo_file)
    window.fill.engine_box.setCurrentIndex(window.fill.engine_box.findData("fake_two_stage"))
    window.start_fill()
    _wait_idle(qtbot, window)
    box = window.fill.engine_box
    box.setFocus()
    qtbot.waitUntil(box.hasFocus, timeout=2000)
    QTest.keyPress(box, Qt.Key.Key_Tab)
    assert not window.canvas.result_item.isVisible()
    assert box.hasFocus()  # Tab did not move the focus
    QTest.keyRelease(box, Qt.Key.Key_Tab)
    assert window.canvas.result_item.isVisible()
