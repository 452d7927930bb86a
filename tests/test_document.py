"""The edit document: strokes, dirty rects, undo/redo, fills and session files (no Qt)."""

from __future__ import annotations

import io

import numpy as np
import pytest

from inpaint_studio.document import (
    Document,
    Layer,
    Rect,
    Tool,
    bounding_rect,
    stamp_segment,
)


def test_stamp_segment_paints_a_capsule_and_reports_its_rect():
    plane = np.zeros((50, 60), np.uint8)
    rect = stamp_segment(plane, (10, 20), (40, 20), radius=3, value=255)
    assert rect == Rect(7, 17, 44, 24)
    assert bounding_rect(plane) == rect
    assert plane[20, 25] == 255 and plane[23, 25] == 255 and plane[24, 25] == 0
    # Round caps: the corner of the bounding box is outside the radius.
    assert plane[17, 7] == 0


def test_stamp_segment_outside_the_plane_changes_nothing():
    plane = np.zeros((10, 10), np.uint8)
    assert stamp_segment(plane, (-50, -50), (-40, -40), 2, 255).empty
    assert not plane.any()


def test_stroke_paints_mask_and_is_one_undo_step(photo):
    doc = Document(photo)
    doc.begin_stroke(Layer.MASK, Tool.BRUSH, 4)
    first = doc.extend_stroke([(20, 30)])
    second = doc.extend_stroke([(40, 30), (60, 35)])
    rect = doc.end_stroke()
    assert first.contains(Rect(17, 27, 24, 34))
    assert rect == first.union(second)
    assert doc.mask[30, 50] == 255 and doc.mask[30, 100] == 0
    assert doc.modified and doc.can_undo and doc.has_hole
    assert not doc.sketch.any()

    assert doc.undo() == rect
    assert not doc.mask.any() and not doc.modified
    assert doc.redo() == rect
    assert doc.mask[30, 50] == 255


def test_eraser_restores_exact_pixels_on_undo(photo):
    doc = Document(photo)
    doc.begin_stroke("mask", "brush", 10)
    doc.extend_stroke([(30, 30), (90, 60)])
    doc.end_stroke()
    painted = doc.mask.copy()
    doc.begin_stroke("mask", "eraser", 5)
    doc.extend_stroke([(30, 30), (90, 60)])
    doc.end_stroke()
    assert doc.mask.sum() < painted.sum()
    doc.undo()
    np.testing.assert_array_equal(doc.mask, painted)


def test_a_stroke_that_changes_nothing_leaves_no_undo_step(photo):
    doc = Document(photo)
    doc.begin_stroke("mask", "eraser", 6)
    doc.extend_stroke([(10, 10), (50, 50)])
    assert doc.end_stroke().empty
    assert not doc.can_undo and not doc.modified


def test_long_stroke_stores_only_its_dirty_rect():
    image = np.zeros((3000, 4000, 3), np.uint8)  # 12 MP
    doc = Document(image)
    doc.begin_stroke("mask", "brush", 8)
    # A long wiggly stroke across a corner of the photo, many small moves.
    pts = [(100 + 3 * i, 200 + 40 * np.sin(i / 10)) for i in range(300)]
    doc.extend_stroke(pts)
    rect = doc.end_stroke()
    assert rect.width < 920 and rect.height < 110
    # before + after of the dirty rect only; nowhere near a 12 MB layer copy.
    assert doc.history_bytes() == 2 * rect.width * rect.height
    doc.undo()
    assert not doc.mask.any()


def test_pen_draws_thin_sketch_lines(photo):
    doc = Document(photo)
    doc.begin_stroke(Layer.SKETCH, Tool.PEN, 1)
    doc.extend_stroke([(10, 50), (110, 50)])
    doc.end_stroke()
    assert doc.sketch[50, 60] == 255
    assert doc.sketch[:, 60].sum() // 255 == 3  # a 3 px line for radius 1
    assert not doc.mask.any()
    # Only lines inside the hole guide the fill.
    assert not doc.sketch_in_hole().any()
    doc.begin_stroke(Layer.MASK, Tool.BRUSH, 8)
    doc.extend_stroke([(60, 50)])
    doc.end_stroke()
    inside = doc.sketch_in_hole()
    assert inside[50, 60] == 255 and inside[50, 20] == 0


def test_clear_layers_are_undoable(photo):
    doc = Document(photo)
    for layer in (Layer.MASK, Layer.SKETCH):
        doc.begin_stroke(layer, Tool.BRUSH, 3)
        doc.extend_stroke([(5, 5), (20, 20)])
        doc.end_stroke()
    mask, sketch = doc.mask.copy(), doc.sketch.copy()
    assert doc.clear_layer(Layer.MASK) == bounding_rect(mask)
    assert not doc.mask.any() and doc.sketch.any()
    assert doc.clear_layer("mask").empty  # nothing left: no extra undo step
    doc.clear_layer(Layer.SKETCH)
    doc.undo()
    np.testing.assert_array_equal(doc.sketch, sketch)
    doc.undo()
    np.testing.assert_array_equal(doc.mask, mask)


def test_apply_fill_is_undoable_and_clears_layers(photo):
    doc = Document(photo)
    doc.begin_stroke("mask", "brush", 6)
    doc.extend_stroke([(40, 40), (60, 40)])
    doc.end_stroke()
    doc.begin_stroke("sketch", "pen", 1)
    doc.extend_stroke([(45, 40), (55, 40)])
    doc.end_stroke()
    result = photo.copy()
    result[doc.mask > 127] = (1, 2, 3)
    hole = doc.mask.copy()
    rect = doc.apply_fill(result)
    assert rect.contains(bounding_rect(hole))
    np.testing.assert_array_equal(doc.image, result)
    assert not doc.mask.any() and not doc.sketch.any()
    assert doc.fill_count == 1
    # The user paints a new hole on the result; undo walks back through both.
    doc.begin_stroke("mask", "brush", 3)
    doc.extend_stroke([(10, 10)])
    doc.end_stroke()
    doc.undo()
    doc.undo()
    np.testing.assert_array_equal(doc.image, photo)
    np.testing.assert_array_equal(doc.mask, hole)
    doc.redo()
    np.testing.assert_array_equal(doc.image, result)


def test_apply_fill_rejects_a_wrong_size(photo):
    doc = Document(photo)
    with pytest.raises(ValueError, match="fill result must be uint8"):
        doc.apply_fill(photo[:10])


def test_bad_calls_give_clear_errors(photo):
    doc = Document(photo)
    with pytest.raises(RuntimeError, match="without begin_stroke"):
        doc.extend_stroke([(1, 1)])
    with pytest.raises(ValueError, match="radius must be > 0"):
        doc.begin_stroke("mask", "brush", 0)
    with pytest.raises(ValueError):
        doc.begin_stroke("background", "brush", 3)
    with pytest.raises(ValueError, match="RGB uint8"):
        Document(np.zeros((4, 4), np.uint8))


def test_set_layer_imports_a_mask(photo):
    doc = Document(photo)
    plane = np.zeros(photo.shape[:2], np.uint8)
    plane[10:20, 30:40] = 200
    assert doc.set_layer("mask", plane) == Rect(30, 10, 40, 20)
    assert set(np.unique(doc.mask)) == {0, 255}
    with pytest.raises(ValueError, match="mask must be uint8 of size 128x96"):
        doc.set_layer("mask", plane[:5])
    doc.undo()
    assert not doc.mask.any()


def test_mark_saved_tracks_modified(photo):
    doc = Document(photo)
    doc.begin_stroke("mask", "brush", 3)
    doc.extend_stroke([(5, 5)])
    doc.end_stroke()
    doc.mark_saved()
    assert not doc.modified
    doc.undo()
    assert doc.modified
    doc.redo()
    assert not doc.modified


def test_session_round_trip_keeps_fills_undoable(photo, tmp_path):
    doc = Document(photo, source_path="/photos/a.jpg")
    doc.begin_stroke("mask", "brush", 5)
    doc.extend_stroke([(30, 30), (50, 50)])
    doc.end_stroke()
    result = photo.copy()
    result[doc.mask > 127] = 7
    doc.apply_fill(result)
    doc.begin_stroke("mask", "brush", 4)
    doc.extend_stroke([(90, 20)])
    doc.end_stroke()
    doc.begin_stroke("sketch", "pen", 1)
    doc.extend_stroke([(85, 20), (95, 20)])
    doc.end_stroke()

    path = tmp_path / "session.npz"
    doc.save_session(path)
    back = Document.load_session(path)
    assert back.source_path == "/photos/a.jpg"
    np.testing.assert_array_equal(back.image, doc.image)
    np.testing.assert_array_equal(back.mask, doc.mask)
    np.testing.assert_array_equal(back.sketch, doc.sketch)
    assert back.modified and back.fill_count == 1
    back.undo()
    np.testing.assert_array_equal(back.image, photo)
    assert back.mask[40, 40] == 255


def test_load_session_reports_a_bad_file(tmp_path):
    bad = tmp_path / "broken.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="cannot read session"):
        Document.load_session(bad)


def test_load_session_reports_a_truncated_file(tmp_path, photo):
    payload = Document(photo).to_session_bytes()
    bad = tmp_path / "cut.npz"
    bad.write_bytes(payload[: len(payload) // 2])
    with pytest.raises(ValueError, match="cannot read session"):
        Document.load_session(bad)


@pytest.mark.parametrize("key, value, message", [
    ("mask", np.full((1, 5), 255, np.uint8), r"mask block is uint8 \(1, 5\)"),
    ("sketch", np.zeros((4, 5), np.float32), "sketch block is float32"),
    ("fill0_0_rect", np.array([0, 0, 10_000, 10], np.int64), "lies outside"),
    ("fill0_0_after", np.zeros((1, 1, 3), np.uint8), r"image block is uint8 \(1, 1, 3\)"),
])
def test_load_session_refuses_blocks_that_do_not_fit_the_image(tmp_path, photo, key, value,
                                                               message):
    doc = Document(photo)
    result = photo.copy()
    result[10:20, 10:20] = 0
    doc.apply_fill(result)
    arrays = dict(np.load(io.BytesIO(doc.to_session_bytes())))
    assert key in arrays
    arrays[key] = value
    bad = tmp_path / "bad.npz"
    np.savez(bad, **arrays)
    with pytest.raises(ValueError, match=message):
        Document.load_session(bad)


def test_apply_fill_with_a_changed_box_compares_only_inside_it(photo):
    doc = Document(photo)
    doc.set_layer("mask", _box_mask(photo, 20, 30, 40, 50))
    result = photo.copy()
    result[25:35, 42:48] = 0
    rect = doc.apply_fill(result, changed=Rect(40, 20, 50, 40))
    # The image patch is the tight box of changed pixels inside the hint.
    image_patch = next(p for p in doc._undo[-1].patches if p.plane == "image")
    assert image_patch.rect == Rect(42, 25, 48, 35)
    assert rect.contains(Rect(42, 25, 48, 35))
    np.testing.assert_array_equal(doc.image, result)
    doc.undo()
    np.testing.assert_array_equal(doc.image, photo)


def test_sketch_in_hole_keeps_only_lines_inside_the_hole(photo):
    doc = Document(photo)
    doc.set_layer("mask", _box_mask(photo, 10, 10, 30, 30))
    sketch = np.zeros(photo.shape[:2], np.uint8)
    sketch[20, 0:60] = 255
    doc.set_layer("sketch", sketch)
    inside = doc.sketch_in_hole()
    assert inside.shape == sketch.shape and inside.dtype == np.uint8
    assert inside[20, 10:30].tolist() == [255] * 20
    assert not inside[:, :10].any() and not inside[:, 30:].any()
    assert not Document(photo).sketch_in_hole().any()


def _box_mask(photo, y0, x0, y1, x1):
    mask = np.zeros(photo.shape[:2], np.uint8)
    mask[y0:y1, x0:x1] = 255
    return mask


def test_apply_fill_for_its_own_hole_keeps_strokes_painted_meanwhile(photo):
    doc = Document(photo)
    doc.begin_stroke("mask", "brush", 5)
    doc.extend_stroke([(30, 30), (40, 30)])
    doc.end_stroke()
    fill_hole = doc.mask > 127  # what the running fill was asked for
    # Painted while the fill ran: a second hole elsewhere and a sketch line across both.
    doc.begin_stroke("mask", "brush", 5)
    doc.extend_stroke([(90, 70)])
    doc.end_stroke()
    doc.begin_stroke("sketch", "pen", 1)
    doc.extend_stroke([(30, 30), (90, 70)])
    doc.end_stroke()
    result = photo.copy()
    result[fill_hole] = (9, 9, 9)
    mask_before, sketch_before = doc.mask.copy(), doc.sketch.copy()
    doc.apply_fill(result, hole=fill_hole)
    assert not doc.mask[fill_hole].any() and not doc.sketch[fill_hole].any()
    np.testing.assert_array_equal(doc.mask[~fill_hole], mask_before[~fill_hole])
    np.testing.assert_array_equal(doc.sketch[~fill_hole], sketch_before[~fill_hole])
    assert doc.mask[70, 90] == 255 and doc.next_undo_kind == "fill"
    doc.undo()
    np.testing.assert_array_equal(doc.mask, mask_before)
    np.testing.assert_array_equal(doc.sketch, sketch_before)
    assert doc.next_redo_kind == "fill" and doc.next_undo_kind == "pen stroke"
    with pytest.raises(ValueError, match="fill hole must be of shape"):
        doc.apply_fill(result, hole=fill_hole[:5])


def test_set_layer_names_its_undo_step(photo):
    doc = Document(photo)
    plane = np.zeros(doc.mask.shape, np.uint8)
    plane[5:9, 5:9] = 255
    assert doc.set_layer("mask", plane, kind="grow mask") == Rect(5, 5, 9, 9)
    assert doc.next_undo_kind == "grow mask"
    assert doc.set_layer("mask", plane, kind="grow mask").empty  # no change, no step
    doc.undo()
    assert not doc.mask.any() and doc.next_undo_kind is None
