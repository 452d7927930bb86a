"""Estimate the quality setting a JPEG was saved with, so that saving the edited photo keeps
it (a fixed quality 95 made a quality-92 photo grow by a quarter). No Qt.

The estimate compares the file's luminance quantisation table with the IJG reference table
scaled for each quality 1-100 (what libjpeg, Pillow and most cameras' encoders use) and
takes the closest. Files with other tables get the nearest IJG quality.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

# The IJG (libjpeg) luminance table at quality 50, in natural (row-major) order.
_IJG_LUMA = np.array([
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
], dtype=np.int64)


def ijg_table(quality: int) -> np.ndarray:
    """The IJG luminance table libjpeg writes for ``quality`` (1-100), natural order."""
    quality = min(100, max(1, int(quality)))
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    return np.clip((_IJG_LUMA * scale + 50) // 100, 1, 255)


def estimate_jpeg_quality(path: str | Path) -> int | None:
    """The quality (1-100) ``path`` was most likely saved with, or None when it is not a
    JPEG or has no readable luminance table."""
    try:
        with Image.open(path) as im:
            if im.format != "JPEG":
                return None
            tables = getattr(im, "quantization", None) or {}
            luma = tables.get(0)
    except (OSError, ValueError):
        return None
    if luma is None or len(luma) != 64:
        return None
    # Pillow gives the table in natural order (it de-zigzags on read).
    found = np.asarray(list(luma), dtype=np.int64)
    errors = [int(np.abs(ijg_table(q) - found).sum()) for q in range(1, 101)]
    return int(np.argmin(errors)) + 1
