"""Edge sketches: binary, thin, on real edges, only inside the hole."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from inpaint_studio.sketch import edge_sketch, keep_some_lines, sketch_in_hole, thin_lines

METHODS = ["canny", "xdog"]


@pytest.fixture
def square() -> np.ndarray:
    """A 64x64 mid-gray image with a dark 24x24 square at (20..43, 20..43)."""
    img = np.full((64, 64, 3), 170, np.uint8)
    img[20:44, 20:44] = 40
    return img


@pytest.fixture
def shapes(rng) -> np.ndarray:
    """A 96x128 noisy scene: a gradient, a disc, a bar and a triangle."""
    yy, xx = np.mgrid[0:96, 0:128]
    img = np.stack([xx * 1.5 + 30, yy * 1.5 + 40, np.full_like(xx, 120)], -1).astype(np.float32)
    cv2.circle(img, (35, 40), 18, (230, 60, 40), -1)
    cv2.rectangle(img, (70, 10), (80, 85), (20, 20, 160), -1)
    cv2.fillPoly(img, [np.array([[90, 80], [125, 80], [110, 50]])], (250, 250, 90))
    img += rng.normal(0, 4, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _eroded(lines: np.ndarray) -> np.ndarray:
    return cv2.erode(lines, np.ones((3, 3), np.uint8))


@pytest.mark.parametrize("method", METHODS)
def test_sketch_is_binary_and_thin(method, shapes):
    lines = edge_sketch(shapes, method)
    assert lines.shape == shapes.shape[:2] and lines.dtype == np.uint8
    assert set(np.unique(lines)) <= {0, 255}
    assert 0.001 < (lines > 0).mean() < 0.2
    # One-pixel lines vanish under a 3x3 erosion; filled regions would not.
    assert not _eroded(lines).any()


@pytest.mark.parametrize("method", METHODS)
def test_lines_follow_the_edges(method, square):
    lines = edge_sketch(square, method, sigma=1.0) > 0
    ys, xs = np.nonzero(lines)
    assert len(ys) > 40
    # Every line pixel lies within 3 px of the square's outline, and all four sides are hit.
    near_outline = np.minimum(
        np.minimum(abs(ys - 20), abs(ys - 43)), np.minimum(abs(xs - 20), abs(xs - 43))
    )
    assert near_outline.max() <= 3
    assert lines[:, 17:24].any() and lines[:, 40:47].any()
    assert lines[17:24, :].any() and lines[40:47, :].any()


@pytest.mark.parametrize("method", METHODS)
def test_flat_image_has_no_lines(method):
    flat = np.full((32, 48, 3), 90, np.uint8)
    assert not edge_sketch(flat, method).any()


def test_line_width_thickens(square):
    thick = edge_sketch(square, "canny", sigma=1.0, line_width=3)
    thin = edge_sketch(square, "canny", sigma=1.0)
    assert _eroded(thick).any()
    assert (thick > 0).sum() > 2 * (thin > 0).sum()
    assert np.all(thick[thin > 0] == 255)  # thickening keeps every original line pixel


def test_specks_are_dropped():
    img = np.full((40, 40, 3), 200, np.uint8)
    img[10, 10] = 0  # a single dark pixel: a tiny closed contour
    img[25:35, 5:35] = 30  # a real shape
    with_specks = edge_sketch(img, "canny", sigma=0.5, min_line_pixels=1)
    without = edge_sketch(img, "canny", sigma=0.5, min_line_pixels=10)
    assert with_specks[6:15, 6:15].any() and not without[6:15, 6:15].any()
    assert without[20:40].any()


def test_thin_lines_reduces_a_bar_to_a_connected_centre_line():
    bar = np.zeros((20, 40), np.uint8)
    bar[8:13, 5:35] = 1
    line = thin_lines(bar)
    assert not _eroded(line * 255).any()
    count, _ = cv2.connectedComponents(line, connectivity=8)
    assert count == 2  # background + one line
    ys, xs = np.nonzero(line)
    assert set(ys) <= {9, 10, 11} and xs.max() - xs.min() >= 20


def test_sketch_in_hole_is_the_intersection(rng):
    sketch = np.where(rng.random((30, 40)) < 0.3, 255, 0).astype(np.uint8)
    mask = np.zeros((30, 40), np.uint8)
    mask[5:20, 10:30] = 200
    kept = sketch_in_hole(sketch, mask)
    assert kept.dtype == np.uint8 and set(np.unique(kept)) <= {0, 255}
    assert np.array_equal(kept > 0, (sketch > 127) & (mask > 127))
    assert kept[5:20, 10:30].any() and not kept[:5].any() and not kept[:, :10].any()


def test_bad_inputs_are_refused(photo):
    with pytest.raises(ValueError, match="RGB uint8"):
        edge_sketch(photo[..., 0], "canny")
    with pytest.raises(ValueError, match="RGB uint8"):
        edge_sketch(photo.astype(np.float32), "canny")
    with pytest.raises(ValueError, match="unknown sketch method 'hed'"):
        edge_sketch(photo, "hed")
    with pytest.raises(ValueError, match="equal HxW"):
        sketch_in_hole(np.zeros((4, 4), np.uint8), np.zeros((4, 5), np.uint8))


def test_keep_some_lines_keeps_or_drops_whole_pieces(rng):
    sketch = np.zeros((40, 60), np.uint8)
    for row in (5, 15, 25, 35):  # four separate horizontal lines
        sketch[row, 5:55] = 255
    assert np.array_equal(keep_some_lines(sketch, 1.0, rng), sketch)
    assert not keep_some_lines(sketch, 0.0, rng).any()
    counts = set()
    for _ in range(30):
        kept = keep_some_lines(sketch, 0.5, rng)
        assert np.all((kept == 0) | (kept == 255)) and np.all(kept <= sketch)
        rows = [row for row in (5, 15, 25, 35) if kept[row].any()]
        assert all(kept[row, 5:55].all() for row in rows)  # a piece is kept whole or not at all
        counts.add(len(rows))
    assert len(counts) >= 3  # sometimes few, sometimes many
    with pytest.raises(ValueError, match="keep must be in"):
        keep_some_lines(sketch, 1.5, rng)
