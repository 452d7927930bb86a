"""Edge sketches that stand in for a user's guide strokes during training.

DeepFill v2 trains its sketch channel on binary edge maps (its reference uses HED > 0.6) shown
only inside the hole. Here the edges come from OpenCV, so training needs no extra model:

* ``canny``: Canny on a Gaussian-smoothed gray image, thresholds set from the median gray
  level (so dark and bright photos give similar edge densities).
* ``xdog``: the dark side of an extended difference of Gaussians (Winnemoeller et al.,
  "XDoG: an eXtended difference-of-Gaussians compendium", 2012), thinned to one-pixel
  centre lines, which look more like pen strokes than Canny's contour pairs.

Arrays: RGB images are ``uint8 (H, W, 3)``; sketches and masks are ``uint8 (H, W)`` with
255 = line / hole and 0 elsewhere.
"""

from __future__ import annotations

import cv2
import numpy as np

LINE = 255


def _gray(rgb: np.ndarray) -> np.ndarray:
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an RGB uint8 HxWx3 image, got {rgb.dtype} {rgb.shape}")
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def _canny(gray: np.ndarray, sigma: float) -> np.ndarray:
    smooth = cv2.GaussianBlur(gray, (0, 0), sigma)
    median = float(np.median(smooth))
    # +-33 % around the median; the floors keep sensor noise in dark photos from becoming edges.
    low = max(8.0, 0.67 * median)
    high = min(255.0, max(2.0 * low, 1.33 * median))
    return cv2.Canny(smooth, low, high, L2gradient=True)


def _xdog(gray: np.ndarray, sigma: float, k: float, p: float, threshold: float) -> np.ndarray:
    img = gray.astype(np.float32) / 255.0
    narrow = cv2.GaussianBlur(img, (0, 0), sigma)
    wide = cv2.GaussianBlur(img, (0, 0), sigma * k)
    # XDoG's sharpened image (1 + p) G_s - p G_ks, minus the image itself: only the DoG term
    # is thresholded, so flat areas of any brightness give 0 and dark regions do not fill in;
    # what crosses the threshold is the dark side of edges.
    response = p * (narrow - wide)
    lines = (response < -threshold).astype(np.uint8)
    return thin_lines(lines) * LINE


def _drop_specks(lines: np.ndarray, min_pixels: int) -> np.ndarray:
    """Remove 8-connected line pieces of fewer than ``min_pixels`` pixels (texture noise)."""
    if min_pixels <= 1:
        return lines
    count, labels, stats, _ = cv2.connectedComponentsWithStats(lines, connectivity=8)
    keep = stats[:, cv2.CC_STAT_AREA] >= min_pixels
    keep[0] = False  # label 0 is the background
    return np.where(keep[labels], LINE, 0).astype(np.uint8)


def _neighbours(img: np.ndarray) -> list[np.ndarray]:
    """The 8 neighbours P2..P9 of every pixel (N, NE, E, SE, S, SW, W, NW), zero outside."""
    p = np.pad(img, 1)
    h, w = img.shape
    offsets = ((0, 1), (0, 2), (1, 2), (2, 2), (2, 1), (2, 0), (1, 0), (0, 0))
    return [p[dy : dy + h, dx : dx + w] for dy, dx in offsets]


def thin_lines(binary: np.ndarray, max_iterations: int = 50) -> np.ndarray:
    """Zhang-Suen thinning of a ``{0, 1}`` uint8 image to one-pixel-wide centre lines.

    Each pass removes boundary pixels that have 2-6 set neighbours, exactly one 0->1
    transition around them (so removing them keeps lines connected) and, alternately, no set
    pixel pair across the south-east / north-west corner. Stops when nothing changes.
    """
    img = (np.asarray(binary) > 0).astype(np.uint8)
    for _ in range(max_iterations):
        changed = False
        for step in (0, 1):
            n = _neighbours(img)
            count = sum(x.astype(np.int32) for x in n)
            ring = n + n[:1]
            transitions = sum(
                ((ring[i] == 0) & (ring[i + 1] == 1)).astype(np.int32) for i in range(8)
            )
            p2, p4, p6, p8 = n[0], n[2], n[4], n[6]
            if step == 0:
                corner = (p2 * p4 * p6 == 0) & (p4 * p6 * p8 == 0)
            else:
                corner = (p2 * p4 * p8 == 0) & (p2 * p6 * p8 == 0)
            remove = (img == 1) & (count >= 2) & (count <= 6) & (transitions == 1) & corner
            if remove.any():
                img[remove] = 0
                changed = True
        if not changed:
            break
    return img


def edge_sketch(
    rgb: np.ndarray,
    method: str = "canny",
    sigma: float = 1.5,
    line_width: int = 1,
    xdog_k: float = 1.6,
    xdog_p: float = 20.0,
    xdog_threshold: float = 0.4,
    min_line_pixels: int = 10,
) -> np.ndarray:
    """Binary edge map of an RGB ``uint8 (H, W, 3)`` image -> ``uint8 (H, W)``, 255 = line.

    method: ``canny`` or ``xdog`` (see the module docstring); sigma: Gaussian smoothing in
    pixels (larger keeps only coarser structure); line_width: lines are thickened to this
    many pixels (1 = as detected, one pixel wide) to match the pen width users sketch with;
    min_line_pixels: connected line pieces shorter than this are dropped (users draw strokes,
    not dust). xdog_k, xdog_p, xdog_threshold: the wide/narrow Gaussian ratio, the DoG gain
    and the threshold on the gained DoG (gray in [0, 1]).
    """
    gray = _gray(rgb)
    if method == "canny":
        lines = _canny(gray, sigma)
    elif method == "xdog":
        lines = _xdog(gray, sigma, xdog_k, xdog_p, xdog_threshold)
    else:
        raise ValueError(f"unknown sketch method {method!r}; choose canny or xdog")
    lines = _drop_specks(lines, min_line_pixels)
    if line_width > 1:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (line_width, line_width))
        lines = cv2.dilate(lines, kernel)
    return np.where(lines > 0, LINE, 0).astype(np.uint8)


def sketch_in_hole(sketch: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Keep only the lines inside the hole: ``uint8 (H, W)``, 255 where both the sketch and
    the mask are > 127 (the generator is only ever given guidance where it has to invent)."""
    sketch, mask = np.asarray(sketch), np.asarray(mask)
    if sketch.shape != mask.shape or sketch.ndim != 2:
        raise ValueError(f"sketch {sketch.shape} and mask {mask.shape} must be equal HxW arrays")
    return np.where((sketch > 127) & (mask > 127), LINE, 0).astype(np.uint8)


def keep_some_lines(sketch: np.ndarray, keep: float, rng: np.random.Generator) -> np.ndarray:
    """Each line piece (8-connected) of ``sketch`` (``uint8 (H, W)``, > 127 = line) kept with
    probability ``keep`` in [0, 1]: ``uint8 (H, W)``, 255 on the kept pieces. Training uses it to
    show the generator partial guidance, as a user who draws a few strokes gives it."""
    if not 0.0 <= keep <= 1.0:
        raise ValueError(f"keep must be in [0, 1], got {keep}")
    count, labels = cv2.connectedComponents((np.asarray(sketch) > 127).astype(np.uint8), connectivity=8)
    kept = rng.random(count) < keep
    kept[0] = False  # the background
    return np.where(kept[labels], LINE, 0).astype(np.uint8)
