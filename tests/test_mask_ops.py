"""Mask helpers: grow, shrink, enclosed gaps, the default preparation before a fill."""

from __future__ import annotations

import numpy as np
import pytest

from inpaint_studio import mask_ops


def _square(h=40, w=50, box=(10, 10, 30, 30)):
    mask = np.zeros((h, w), np.uint8)
    x0, y0, x1, y1 = box
    mask[y0:y1, x0:x1] = 255
    return mask


def _distance_to_hole(mask):
    """Brute-force Euclidean distance from every pixel to the nearest hole pixel."""
    ys, xs = np.nonzero(mask > 127)
    gy, gx = np.mgrid[:mask.shape[0], :mask.shape[1]]
    d = np.sqrt((gy[..., None] - ys) ** 2 + (gx[..., None] - xs) ** 2)
    return d.min(axis=-1)


def test_grow_adds_every_pixel_within_n_and_nothing_further():
    mask = np.zeros((41, 41), np.uint8)
    mask[20, 20] = 255
    grown = mask_ops.grow(mask, 5)
    dist = _distance_to_hole(mask)
    assert set(np.unique(grown)) == {0, 255}
    assert (grown[dist <= 4.5] == 255).all()  # the disc of radius 5 (OpenCV's ellipse)
    assert not grown[dist > 5.5].any()
    assert grown[20, 25] == 255 and grown[20, 26] == 0


def test_grow_square_by_three_and_shrink_undoes_it_inside_the_image():
    mask = _square()
    grown = mask_ops.grow(mask, 3)
    assert grown[10, 7] == 255 and grown[10, 6] == 0  # left edge moved 3 px out
    assert grown[29, 32] == 255 and grown[29, 33] == 0
    np.testing.assert_array_equal(mask_ops.shrink(grown, 3)[5:35, 5:45] > 0, mask[5:35, 5:45] > 0)
    assert mask[10, 7] == 0  # the input is untouched


def test_shrink_removes_thin_parts_and_keeps_a_hole_that_touches_the_border():
    mask = _square(box=(0, 0, 20, 20))
    mask[30, 5:45] = 255  # a 1-pixel line
    shrunk = mask_ops.shrink(mask, 2)
    assert not shrunk[30].any()
    assert shrunk[0, 0] == 255  # the border does not erode
    assert shrunk[17, 5] == 255 and shrunk[18, 5] == 0


def test_negative_amounts_swap_grow_and_shrink():
    mask = _square()
    np.testing.assert_array_equal(mask_ops.grow(mask, -2), mask_ops.shrink(mask, 2))
    np.testing.assert_array_equal(mask_ops.shrink(mask, -2), mask_ops.grow(mask, 2))


def test_fill_gaps_fills_islands_inside_the_hole_only():
    mask = _square(h=60, w=80, box=(10, 10, 50, 50))
    mask[20:23, 20:24] = 0  # a 12-pixel island the brush missed
    mask[30:40, 30:40] = 0  # a 100-pixel island
    mask[10:50, 49] = 0  # a gap along the hole's edge: open to the outside, not enclosed
    filled = mask_ops.fill_gaps(mask)
    assert (filled[20:23, 20:24] == 255).all() and (filled[30:40, 30:40] == 255).all()
    assert not filled[10:50, 49].any()
    assert not filled[:, 55:].any()
    only_small = mask_ops.fill_gaps(mask, max_area=50)
    assert (only_small[20:23, 20:24] == 255).all()
    assert not only_small[30:40, 30:40].any()


def test_a_region_touching_the_image_border_is_not_a_gap():
    mask = np.full((20, 20), 255, np.uint8)
    mask[0:5, 0:5] = 0  # unmasked corner
    assert not mask_ops.enclosed_gaps(mask).any()


def test_gaps_are_four_connected():
    # A diagonal leak does not open an island to the outside.
    mask = _square(h=20, w=20, box=(2, 2, 12, 12))
    mask[6, 6] = 0
    mask[5, 5] = 255
    assert mask_ops.enclosed_gaps(mask)[6, 6]


def test_prepare_for_fill_fills_small_gaps_then_grows():
    mask = _square(h=60, w=80, box=(10, 10, 50, 50))
    mask[25:28, 25:28] = 0
    out = mask_ops.prepare_for_fill(mask, grow_px=2, gap_area=100)
    assert (out[25:28, 25:28] == 255).all()
    assert out[10, 8] == 255 and out[10, 7] == 0
    same = mask_ops.prepare_for_fill(mask, grow_px=0, gap_area=None)
    np.testing.assert_array_equal(same, mask)


def test_bad_masks_get_a_clear_error():
    with pytest.raises(ValueError, match=r"uint8 of shape \(H, W\)"):
        mask_ops.grow(np.zeros((4, 4, 3), np.uint8), 1)
    with pytest.raises(ValueError, match="uint8"):
        mask_ops.fill_gaps(np.zeros((4, 4), np.float32))
