"""numpy <-> QImage conversions and in-place sub-rectangle updates.

The canvas keeps one QImage per layer and, on a stroke, rewrites only the dirty rectangle's
pixels through a numpy view of the QImage's own buffer, so a dab on a 12-megapixel photo
costs what the dab covers.
"""

from __future__ import annotations

import cv2
import numpy as np
from PySide6.QtGui import QImage

from ..document import Rect

# Overlay colours, straight RGBA; written premultiplied into ARGB32_Premultiplied images.
MASK_RGBA = (255, 48, 48, 120)
SKETCH_RGBA = (40, 230, 255, 255)
SKETCH_OUTSIDE_RGBA = (40, 230, 255, 110)  # lines outside the hole do not guide the fill


def rgb_to_qimage(rgb: np.ndarray) -> QImage:
    """RGB ``uint8`` ``(H, W, 3)`` -> a QImage (Format_RGB32) owning its pixels."""
    h, w = rgb.shape[:2]
    image = QImage(w, h, QImage.Format.Format_RGB32)
    write_rgb(image, rgb, Rect(0, 0, w, h))
    return image


def _view(image: QImage) -> np.ndarray:
    """A writable ``(H, W, 4)`` uint8 view of a 32-bit QImage (memory order B, G, R, A)."""
    h, w, bpl = image.height(), image.width(), image.bytesPerLine()
    flat = np.frombuffer(image.bits(), dtype=np.uint8, count=h * bpl)
    return flat.reshape(h, bpl)[:, : w * 4].reshape(h, w, 4)


def write_rgb(image: QImage, rgb: np.ndarray, rect: Rect) -> None:
    """Copy ``rgb[rect]`` (full-size RGB uint8 array) into a Format_RGB32 ``image``."""
    if rect.empty:
        return
    dst = _view(image)[rect.slices]
    src = rgb[rect.slices]
    dst[..., 0] = src[..., 2]
    dst[..., 1] = src[..., 1]
    dst[..., 2] = src[..., 0]
    dst[..., 3] = 255


def write_downscaled(level: QImage, image: QImage, factor: int, rect: Rect) -> None:
    """Rewrite the part of ``level`` (``image`` reduced ``factor`` times, same 32-bit format,
    size rounded up) that covers ``rect`` of ``image``, by area averaging
    (premultiplied alpha averages correctly). ``rect`` grows to whole level pixels first."""
    w, h = image.width(), image.height()
    rect = rect.clip(w, h)
    if rect.empty:
        return
    mx0, my0 = rect.x0 // factor, rect.y0 // factor
    mx1, my1 = -(-rect.x1 // factor), -(-rect.y1 // factor)
    src = _view(image)[my0 * factor:min(h, my1 * factor), mx0 * factor:min(w, mx1 * factor)]
    dst = _view(level)[my0:my1, mx0:mx1]
    short_y, short_x = (my1 - my0) * factor - src.shape[0], (mx1 - mx0) * factor - src.shape[1]
    if short_y or short_x:  # the image's last partial block: repeat its edge, keep a whole factor
        src = cv2.copyMakeBorder(src, 0, short_y, 0, short_x, cv2.BORDER_REPLICATE)
    # OpenCV writes straight into the QImage's buffer and releases the GIL while it works.
    cv2.resize(src, (mx1 - mx0, my1 - my0), dst=dst, interpolation=cv2.INTER_AREA)


def qimage_to_rgb(image: QImage) -> np.ndarray:
    """Any QImage -> RGB ``uint8`` ``(H, W, 3)`` (alpha dropped), a fresh array."""
    converted = image.convertToFormat(QImage.Format.Format_RGB32)
    bgra = _view(converted)
    return np.ascontiguousarray(bgra[..., 2::-1])


def new_overlay(width: int, height: int) -> QImage:
    """A transparent ARGB32_Premultiplied image for the mask and sketch overlay."""
    image = QImage(width, height, QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(0)
    return image


def _premultiplied(rgba: tuple[int, int, int, int]) -> np.ndarray:
    r, g, b, a = rgba
    return np.array([b * a // 255, g * a // 255, r * a // 255, a], dtype=np.uint8)


def write_overlay(image: QImage, mask: np.ndarray, sketch: np.ndarray, rect: Rect,
                  mask_rgba: tuple[int, int, int, int] = MASK_RGBA,
                  hidden: np.ndarray | None = None) -> None:
    """Redraw ``rect`` of the overlay from the mask and sketch planes (``uint8`` ``(H, W)``):
    ``mask_rgba`` (straight RGBA, default translucent red) where the hole is, sketch lines
    above it (dimmed outside the hole). ``hidden``: ``bool`` ``(H, W)``, pixels drawn
    transparent (the hole of a shown fill result, which the overlay must not cover)."""
    if rect.empty:
        return
    dst = _view(image)[rect.slices]
    hole = mask[rect.slices] > 127
    line = sketch[rect.slices] > 127
    if hidden is not None:
        shown = ~hidden[rect.slices]
        hole &= shown
        line &= shown
    dst[...] = 0
    dst[hole] = _premultiplied(mask_rgba)
    dst[line & hole] = _premultiplied(SKETCH_RGBA)
    dst[line & ~hole] = _premultiplied(SKETCH_OUTSIDE_RGBA)


def heatmap_to_qimage(heat: np.ndarray, peak_alpha: int = 200) -> QImage:
    """A ``float32`` ``(H, W)`` non-negative map -> a translucent "inferno-like" overlay whose
    opacity and warmth grow with the value (normalised to its maximum)."""
    h, w = heat.shape
    top = float(heat.max()) if heat.size else 0.0
    level = np.sqrt(heat / top) if top > 0 else np.zeros_like(heat)  # sqrt: show faint sources
    image = QImage(w, h, QImage.Format.Format_ARGB32_Premultiplied)
    dst = _view(image)
    alpha = (level * peak_alpha).astype(np.float32)
    red = np.clip(level * 2.0, 0, 1) * 255
    green = np.clip(level * 2.0 - 0.6, 0, 1) * 255
    blue = np.clip(0.6 - level, 0, 1) * 255
    for channel, value in ((0, blue), (1, green), (2, red)):
        dst[..., channel] = (value * alpha / 255).astype(np.uint8)
    dst[..., 3] = alpha.astype(np.uint8)
    return image
