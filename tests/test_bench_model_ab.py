"""bench/model_ab.py's pieces: the high-pass behind its "change" figure, and the sheet's zoomed
crops, which must keep a lattice of a few pixels as sharp as it is."""

from __future__ import annotations

import numpy as np

from bench.model_ab import crop_row, high_pass


def _grey(values: np.ndarray) -> np.ndarray:
    return np.repeat(np.clip(values, 0, 255).astype(np.uint8)[..., None], 3, axis=2)


def test_high_pass_removes_flat_colour_and_keeps_edges():
    flat = _grey(np.full((40, 40), 90.0))
    assert np.abs(high_pass(flat)).max() < 1e-3
    step = _grey(np.where(np.arange(40)[None, :] < 20, 60.0, 200.0).repeat(40, axis=0))
    assert np.abs(high_pass(step)[:, 18:22]).max() > 20
    assert np.abs(high_pass(step)[:, :10]).max() < 1e-3


def test_zoomed_crops_replicate_pixels_of_the_window():
    y, x = np.mgrid[:50, :60]
    checker = _grey(np.where((y + x) % 2 == 0, 0.0, 255.0))
    (label, zoomed), = crop_row([("fill", checker)], slice(10, 20), slice(5, 25), zoom=3)
    assert label == "fill" and zoomed.shape == (30, 60, 3)
    # Every 3x3 block is one source pixel: the 1 px checkerboard stays black and white.
    np.testing.assert_array_equal(zoomed[::3, ::3], checker[10:20, 5:25])
    assert set(np.unique(zoomed)) == {0, 255}
    np.testing.assert_array_equal(zoomed[1::3, 2::3], checker[10:20, 5:25])
