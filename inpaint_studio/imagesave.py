"""Save a result like the photo it came from (the saving half of :mod:`inpaint_studio.imageio`).

:func:`save_image` writes ``uint8 (H, W, 3)`` RGB in the photo's format (unless the path's
extension or ``format`` asks for another), with its alpha put back where the format holds one,
its ICC profile and EXIF (without the orientation tag: the pixels are already upright), gray
photos gray, and 16-bit PNG/TIFF photos with 16 bits, where every pixel the fill did not change
keeps its original 16-bit value. Writes are atomic and never replace an existing file (the
original included) unless ``overwrite=True``.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
from PIL import Image

from .fileutil import atomic_write
from .imageio import _FORMAT_ALIASES, _HIGH_BIT_FORMATS, LoadedImage, PathLike, _luma, _to8

_ALPHA_FORMATS = ("PNG", "TIFF", "WEBP", "BMP")
_GRAY_FORMATS = ("PNG", "TIFF", "JPEG", "BMP")

def save_image(
    path: PathLike,
    rgb: np.ndarray,
    like: LoadedImage | None = None,
    format: str | None = None,
    overwrite: bool = False,
    quality: int = 95,
) -> Path:
    """Write ``rgb`` (``uint8`` ``(H, W, 3)``) as a photo, atomically; returns the path.

    like: the photo ``rgb`` was made from: its alpha, ICC profile, EXIF, gray-ness and
        16-bit samples are written back (alpha only where the format can hold it).
    format: Pillow format name; default: the path's extension, else ``like.format``, else PNG.
    overwrite: replace an existing file; without it an existing path (such as the original
        photo) raises :class:`FileExistsError` and nothing is written.
    quality: JPEG / WebP quality (1-95).
    """
    path = Path(path)
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"image must be an RGB uint8 array (H, W, 3), got {rgb.dtype} {rgb.shape}")
    fmt = _choose_format(path, format, like)
    alpha = like.alpha if like is not None and fmt in _ALPHA_FORMATS else None
    if alpha is not None and alpha.shape != rgb.shape[:2]:
        raise ValueError(
            f"image is {rgb.shape[1]}x{rgb.shape[0]} but the alpha of {like.path.name} is "
            f"{alpha.shape[1]}x{alpha.shape[0]}"
        )
    # Gray with alpha only where the format has an LA mode; elsewhere colour keeps the alpha.
    gray = like is not None and like.gray and (
        fmt in _HIGH_BIT_FORMATS or (alpha is None and fmt in _GRAY_FORMATS)
    )
    icc = like.icc_profile if like is not None else None
    exif = like.exif if like is not None else None

    if (
        like is not None
        and like.samples16 is not None
        and fmt in _HIGH_BIT_FORMATS
        and like.samples16.shape[:2] == rgb.shape[:2]
    ):
        wide = _merge_high_bit(like.samples16, rgb, alpha)
        writer = _high_bit_writer(wide, fmt, icc, exif)
    else:
        image = _pillow_image(rgb, alpha, gray)
        params = _save_params(fmt, _matching_icc(icc, image.mode), exif, quality)
        writer = lambda f: image.save(f, format=fmt, **params)  # noqa: E731
    atomic_write(path, writer, overwrite=overwrite)
    return path


def _choose_format(path: Path, format: str | None, like: LoadedImage | None) -> str:
    """``format`` if given, else the path's extension, else the original's, else PNG."""
    Image.init()  # registers every plugin's extensions and writers
    if format:
        name = format.upper()
    else:
        name = Image.registered_extensions().get(path.suffix.lower()) or (
            like.format if like is not None else "PNG"
        )
    name = _FORMAT_ALIASES.get(name, name)
    if name not in Image.SAVE:
        raise ValueError(f"cannot save {path.name}: unknown or read-only image format {name!r}")
    return name


def _pillow_image(rgb: np.ndarray, alpha: np.ndarray | None, gray: bool) -> Image.Image:
    """L, LA, RGB or RGBA image (Pillow picks the mode from the array's channel count)."""
    color = _luma(rgb) if gray else rgb
    if alpha is None:
        return Image.fromarray(np.ascontiguousarray(color))
    return Image.fromarray(np.dstack([color, alpha]))


def _save_params(fmt: str, icc: bytes | None, exif: bytes | None, quality: int) -> dict:
    params: dict = {}
    if fmt in ("JPEG", "PNG", "WEBP", "TIFF"):
        if icc:
            params["icc_profile"] = icc
        if exif:
            params["exif"] = exif
    if fmt in ("JPEG", "WEBP"):
        params["quality"] = quality
    return params


def _matching_icc(icc: bytes | None, mode: str) -> bytes | None:
    """The profile when its colour space fits the pixels written (a gray profile on an RGB
    file, or the reverse, would make viewers show wrong colours)."""
    if not icc or len(icc) < 20:
        return None
    space = icc[16:20]
    wanted = b"GRAY" if mode in ("L", "LA", "I;16") else b"RGB "
    return icc if space == wanted else None


def _merge_high_bit(samples16: np.ndarray, rgb: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
    """16-bit samples ``(H, W, C)`` for the result, laid out like ``samples16``: pixels the
    fill left unchanged keep their original 16-bit values, changed ones are their 8-bit value
    scaled up (``v * 257``). ``alpha`` is the photo's own (present exactly when C is 2 or 4)."""
    channels = samples16.shape[2]
    color = _luma(rgb)[..., None] if channels in (1, 2) else rgb
    new8 = np.dstack([color, alpha]) if channels in (2, 4) else color
    unchanged = np.all(_to8(samples16) == new8, axis=-1, keepdims=True)
    return np.where(unchanged, samples16, new8.astype(np.uint16) * 257)


def _high_bit_writer(
    wide: np.ndarray, fmt: str, icc: bytes | None, exif: bytes | None
) -> Callable[[io.BufferedWriter], None]:
    """Encoder for ``uint16`` ``(H, W, C)`` samples. Pillow writes 16-bit gray with metadata;
    16-bit colour goes through OpenCV, and for PNG the ICC/EXIF chunks are added here."""
    if wide.shape[2] == 1:
        image = Image.fromarray(np.ascontiguousarray(wide[..., 0]))  # uint16 -> "I;16"
        params = _save_params(fmt, _matching_icc(icc, "I;16"), exif, 95)
        return lambda f: image.save(f, format=fmt, **params)
    if wide.shape[2] == 2:  # gray + alpha has no 16-bit writer: store as RGBA
        wide = np.concatenate([np.repeat(wide[..., :1], 3, axis=-1), wide[..., 1:]], axis=-1)
    order = cv2.COLOR_RGB2BGR if wide.shape[2] == 3 else cv2.COLOR_RGBA2BGRA
    ok, encoded = cv2.imencode(".png" if fmt == "PNG" else ".tiff", cv2.cvtColor(wide, order))
    if not ok:
        raise ValueError(f"OpenCV could not encode a 16-bit {fmt}")
    data = encoded.tobytes()
    if fmt == "PNG":
        data = _png_with_metadata(data, _matching_icc(icc, "RGB"), exif)
    return lambda f: f.write(data)


def _png_with_metadata(png: bytes, icc: bytes | None, exif: bytes | None) -> bytes:
    """Insert ``iCCP`` and ``eXIf`` chunks right after ``IHDR`` (both must precede IDAT)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    extra = b""
    if icc:
        extra += chunk(b"iCCP", b"ICC profile\0\0" + zlib.compress(icc))
    if exif:
        extra += chunk(b"eXIf", exif[6:] if exif.startswith(b"Exif\0\0") else exif)
    ihdr_end = 8 + 4 + 4 + 13 + 4  # signature, length, type, IHDR data, CRC
    return png[:ihdr_end] + extra + png[ihdr_end:]
