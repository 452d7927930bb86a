"""Mask helpers a photographer reaches for before filling: grow or shrink the hole by N
pixels, and fill the enclosed gaps (unmasked islands the brush missed inside the hole).

Numpy / OpenCV only (no Qt), so the app, the CLI and tests share them. Every function takes
a hole mask ``uint8`` ``(H, W)`` (a hole where ``> 127``) and returns a new ``uint8``
``(H, W)`` mask with values 0 / 255 only; the input is never changed.
"""

from __future__ import annotations

import cv2
import numpy as np

HOLE = 255


def _check(mask: np.ndarray) -> np.ndarray:
    if not isinstance(mask, np.ndarray) or mask.dtype != np.uint8 or mask.ndim != 2:
        raise ValueError(f"a mask must be uint8 of shape (H, W), got "
                         f"{getattr(mask, 'dtype', type(mask).__name__)} {getattr(mask, 'shape', '')}")
    return (mask > 127).astype(np.uint8)


def _disc(radius: int) -> np.ndarray:
    """A round structuring element reaching ``radius`` px from its centre pixel."""
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def grow(mask: np.ndarray, pixels: int) -> np.ndarray:
    """The hole grown outwards by ``pixels`` (round: a lone pixel becomes a disc of that
    radius); 0 returns a binarised copy. Negative ``pixels`` shrinks."""
    hole = _check(mask)
    pixels = int(pixels)
    if pixels < 0:
        return shrink(mask, -pixels)
    if pixels > 0:
        hole = cv2.dilate(hole, _disc(pixels))
    return hole * np.uint8(HOLE)


def shrink(mask: np.ndarray, pixels: int) -> np.ndarray:
    """The hole shrunk inwards by ``pixels``: a pixel stays a hole only when every pixel
    within ``pixels`` of it is a hole. The image border does not erode the hole (a hole that
    touches the edge keeps touching it)."""
    hole = _check(mask)
    pixels = int(pixels)
    if pixels < 0:
        return grow(mask, -pixels)
    if pixels > 0:
        hole = cv2.erode(hole, _disc(pixels), borderType=cv2.BORDER_REPLICATE)
    return hole * np.uint8(HOLE)


def enclosed_gaps(mask: np.ndarray, max_area: int | None = None) -> np.ndarray:
    """``bool`` ``(H, W)``: the unmasked pixels that the hole surrounds completely (their
    4-connected region touches neither the image border nor the outside of the hole),
    keeping only regions of at most ``max_area`` pixels when given."""
    hole = _check(mask)
    keep = (1 - hole).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(keep, connectivity=4)
    h, w = hole.shape
    gaps = np.zeros(count, dtype=bool)
    for label in range(1, count):
        x, y, bw, bh, area = stats[label]
        touches_border = x == 0 or y == 0 or x + bw == w or y + bh == h
        if not touches_border and (max_area is None or area <= max_area):
            gaps[label] = True
    return gaps[labels]


def fill_gaps(mask: np.ndarray, max_area: int | None = None) -> np.ndarray:
    """The hole with its enclosed gaps (see :func:`enclosed_gaps`) filled in."""
    out = _check(mask) * np.uint8(HOLE)
    out[enclosed_gaps(mask, max_area)] = HOLE
    return out


def prepare_for_fill(mask: np.ndarray, grow_px: int, gap_area: int | None) -> np.ndarray:
    """What a fill receives by default, as content-aware fill does: enclosed gaps of at most
    ``gap_area`` pixels filled (None or 0: none), then the hole grown by ``grow_px`` so the
    fill starts from clean surroundings instead of a half-masked fringe."""
    out = fill_gaps(mask, gap_area) if gap_area else grow(mask, 0)
    return grow(out, grow_px) if grow_px > 0 else out
