"""bench/texture.py's detail ratio, at full and at half resolution (issue 12): the half-resolution
figure must see a fill that is grainy at the finest scale but smooth a few pixels across."""

from __future__ import annotations

import math

import cv2
import numpy as np

from bench.texture import detail_ratio


def _photo(seed: int = 0) -> np.ndarray:
    """Texture at several scales: noise blurred by 1 px plus noise blurred by 3 px."""
    rng = np.random.default_rng(seed)
    fine = cv2.GaussianBlur(rng.normal(0, 40, (96, 96)).astype(np.float32), (0, 0), 1.0)
    coarse = cv2.GaussianBlur(rng.normal(0, 120, (96, 96)).astype(np.float32), (0, 0), 3.0)
    grey = np.clip(128 + fine + coarse, 0, 255).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=2)


def _hole() -> np.ndarray:
    hole = np.zeros((96, 96), bool)
    hole[24:72, 24:72] = True
    return hole


def test_the_photo_itself_has_ratio_one_at_both_scales():
    photo, hole = _photo(), _hole()
    assert detail_ratio(photo, photo, hole) == 1.0
    assert detail_ratio(photo, photo, hole, scale=2) == 1.0


def test_grain_over_a_smooth_fill_passes_at_full_resolution_but_not_at_half():
    photo, hole = _photo(), _hole()
    smooth = cv2.GaussianBlur(photo, (0, 0), 4.0)
    # Per-pixel grain about as strong as the photo's finest detail: the full-resolution
    # ratio is fooled, the half-resolution one is not (area averaging removes most grain).
    grain = np.random.default_rng(1).normal(0, 3, photo.shape[:2]).astype(np.float32)
    grainy = np.clip(smooth.astype(np.float32) + grain[..., None], 0, 255).astype(np.uint8)
    full, half = detail_ratio(grainy, photo, hole), detail_ratio(grainy, photo, hole, scale=2)
    assert 0.7 < full < 1.4
    assert half < 0.5
    # The photo's own texture shifted by a few pixels is as detailed at both scales.
    shifted = np.roll(photo, 5, axis=1)
    assert 0.8 < detail_ratio(shifted, photo, hole, scale=2) < 1.25


def test_a_hole_that_vanishes_when_shrunk_gives_nan():
    photo = _photo()
    speck = np.zeros((96, 96), bool)
    speck[10, 10] = True
    assert detail_ratio(photo, photo, speck) == 1.0
    assert math.isnan(detail_ratio(photo, photo, speck, scale=2))
