"""Load and save photos, masks and sketches the way a user's files really are.

What crosses this boundary (see ``shared/DESIGN.md``):

* A photo becomes a :class:`LoadedImage`: ``rgb`` is ``uint8`` ``(H, W, 3)`` in RGB order with
  the EXIF orientation already applied (once), ``alpha`` is ``uint8`` ``(H, W)`` or None.
  Every Pillow mode is accepted: 1, L, LA, P (with or without transparency), RGB, RGBA, CMYK
  (through its embedded ICC profile to sRGB when there is one), I;16 / I and 16-bit RGB(A)
  PNG/TIFF (reduced to 8 bits for the engines; the 16-bit samples are kept for saving).
* :func:`save_image` writes a result like the photo it came from: same format (unless the
  path's extension or ``format`` asks for another), alpha put back, ICC profile and EXIF
  (without the orientation tag, the pixels are already upright) written, gray photos saved
  gray and 16-bit PNG/TIFF photos saved with 16 bits, where every pixel the fill did not
  change keeps its original 16-bit value. Writes are atomic and never replace an existing
  file (the original included) unless ``overwrite=True``.
* Masks are ``uint8`` ``(H, W)``, 255 = hole, 0 = keep, thresholded at 127; sketches alike
  with 255 = line.
* A pixel limit (:data:`DEFAULT_MAX_PIXELS`) and a decoded-bytes limit
  (:data:`DEFAULT_MAX_DECODE_BYTES`), both configurable per call, refuse decompression bombs
  from the header, before anything is decoded; a mask of the wrong size is refused from its
  header too.
* A file with several pages or frames (multi-page TIFF, animated GIF/WebP) loads its first;
  :attr:`LoadedImage.notes` says so.
"""

from __future__ import annotations

import io
import os
import struct
import threading
import warnings
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Union

import cv2
import numpy as np
from PIL import Image, ImageCms

from .fileutil import atomic_write

PathLike = Union[str, os.PathLike]

DEFAULT_MAX_PIXELS = 120_000_000
"""Largest photo (width x height) loaded by default: a 100-megapixel camera fits."""

DEFAULT_MAX_DECODE_BYTES = 4 * DEFAULT_MAX_PIXELS
"""Largest decoded size (width x height x samples per pixel x bytes per sample) loaded by
default: an 8-bit RGBA photo at the pixel limit; a 16-bit RGBA one may have half as many
pixels. Memory is what a decode costs, and a small file can ask for a lot of it."""

# Rows converted at a time when a mask or 16-bit samples are reduced: bounds the temporaries
# to a strip instead of several full-size copies.
_STRIP_ROWS = 512

_ORIENTATION_TAG = 0x0112
_GRAY_WEIGHTS = np.array([299, 587, 114], dtype=np.uint32)  # ITU-R 601-2, as Pillow's "L"
_HIGH_BIT_FORMATS = ("PNG", "TIFF")
_FORMAT_ALIASES = {"MPO": "JPEG", "JPG": "JPEG", "TIF": "TIFF"}
_PIXEL_LIMIT_LOCK = threading.Lock()


class ImageLoadError(ValueError):
    """A file that cannot be loaded; the one-line message names the file and the reason."""


class MaskSizeError(ValueError):
    """A mask or sketch whose size differs from its photo; the message names both as WxH."""


@dataclass
class LoadedImage:
    """A photo ready for the engines, plus what :func:`save_image` needs to write it back.

    rgb: ``uint8`` ``(H, W, 3)``, RGB order, upright (EXIF orientation applied).
    alpha: ``uint8`` ``(H, W)`` transparency kept aside (255 = opaque), or None.
    format: Pillow format name of the file (``JPEG``, ``PNG``, ``WEBP``, ``TIFF``, ``BMP``...).
    mode: the file's Pillow mode (``L``, ``P``, ``CMYK``, ``I;16``...), for information.
    gray: the photo has no colour (saved back as gray).
    bit_depth: 8 or 16 bits per sample in the file.
    icc_profile: ICC profile matching ``rgb`` (a CMYK photo's becomes sRGB), or None.
    exif: EXIF block (``Exif\\0\\0`` + TIFF structure) without the orientation tag, or None.
    samples16: for 16-bit photos, the original samples, upright, ``uint16`` ``(H, W, C)``
        with C = 1 (gray), 2 (gray + alpha), 3 (RGB) or 4 (RGBA); otherwise None.
    notes: what the user should know about the load (e.g. pages of a multi-page file that
        are not edited), one line each.
    """

    path: Path
    rgb: np.ndarray
    alpha: np.ndarray | None
    format: str
    mode: str
    gray: bool = False
    bit_depth: int = 8
    icc_profile: bytes | None = None
    exif: bytes | None = None
    samples16: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` in pixels, upright."""
        return self.rgb.shape[1], self.rgb.shape[0]


# ----------------------------------------------------------------------------- loading


def load_image(
    path: PathLike,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int = DEFAULT_MAX_DECODE_BYTES,
) -> LoadedImage:
    """Load a photo of any common format and mode; see the module docstring for the result.

    Raises :class:`ImageLoadError` (one line: file and reason) for a missing, unreadable,
    truncated or unsupported file, for something that is not a regular file (a FIFO is
    refused, not waited on), for one over ``max_pixels`` (width x height) and for one whose
    decoded samples would take more than ``max_bytes``.
    """
    path = Path(path)
    with _load_errors(path):
        with _open_within_limit(path, max_pixels, max_bytes) as im:
            return _decode(path, im)


@contextmanager
def _load_errors(path: Path) -> Iterator[None]:
    """Turn every decoder failure into one :class:`ImageLoadError` line naming ``path``."""
    try:
        yield
    except (ImageLoadError, MaskSizeError):
        raise
    except MemoryError:
        raise ImageLoadError(f"cannot load {path}: not enough memory to decode it") from None
    except Exception as exc:  # noqa: BLE001 - every decoder failure becomes one clear line
        raise ImageLoadError(f"cannot load {path}: {_reason(exc)}") from exc


@contextmanager
def _open_within_limit(path: Path, max_pixels: int, max_bytes: int) -> Iterator[Image.Image]:
    """``Image.open`` whose decompression-bomb limit is ``max_pixels`` for this call only,
    and whose decoded size (from the header) is at most ``max_bytes``.

    Pillow reads its limit from a module global at open time; holding a lock while it is
    swapped keeps concurrent loads (app worker, batch CLI) from seeing each other's limit.
    The size check itself is ours, so the message names both numbers. Opening reads only
    the header, so nothing is decoded before the check. Anything but a regular file or a
    folder is refused before it is opened (opening a FIFO would wait for a writer).
    """
    if path.exists() and not path.is_file() and not path.is_dir():
        raise ImageLoadError(f"cannot load {path}: not a regular file (a pipe, socket or device)")
    with _PIXEL_LIMIT_LOCK:
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = max_pixels
        try:
            with warnings.catch_warnings():
                # Pillow warns between 1x and 2x its limit; our own check below refuses those.
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                image = Image.open(path)
        except Image.DecompressionBombError:
            raise ImageLoadError(_over_limit(path, *_header_size(path), max_pixels)) from None
        finally:
            Image.MAX_IMAGE_PIXELS = saved
    with image:
        if image.width * image.height > max_pixels:
            raise ImageLoadError(_over_limit(path, image.width, image.height, max_pixels))
        needed = _decoded_bytes(path, image)
        if needed > max_bytes:
            raise ImageLoadError(
                f"cannot load {path}: {image.width}x{image.height} {image.mode} at "
                f"{_bits(path, image)} bits per sample decodes to {needed:,} bytes, over the "
                f"limit of {max_bytes:,} bytes"
            )
        yield image


def _bits(path: Path, im: Image.Image) -> int:
    """Bits per sample the decode holds (16-bit PNG/TIFF are read at 16 bits)."""
    fmt = _FORMAT_ALIASES.get(im.format or "", im.format or "")
    if im.mode in ("I", "F"):
        return 32
    if im.mode.startswith("I;16") or (fmt in _HIGH_BIT_FORMATS and _is_16_bit(path, im, fmt)):
        return 16
    return 8


def _decoded_bytes(path: Path, im: Image.Image) -> int:
    """Bytes of the decoded samples, from the header: width x height x bands x bytes per
    sample (palette and bilevel images count as the RGBA they become for the engines)."""
    bands = 4 if im.mode in ("P", "PA", "1") else len(im.getbands())
    return im.width * im.height * bands * _bits(path, im) // 8


def _over_limit(path: Path, w: int, h: int, max_pixels: int) -> str:
    return (
        f"cannot load {path}: {w}x{h} = {w * h:,} pixels is over the limit of "
        f"{max_pixels:,} pixels (a decompression bomb or a photo too large to edit)"
    )


def _header_size(path: Path) -> tuple[int, int]:
    """Width and height from the header, read with Pillow's own limit switched off
    (called with ``_PIXEL_LIMIT_LOCK`` held)."""
    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        with Image.open(path) as im:
            return im.size
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def _reason(exc: BaseException) -> str:
    if isinstance(exc, FileNotFoundError):
        return "no such file"
    if isinstance(exc, IsADirectoryError):
        return "it is a folder, not an image"
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, Image.UnidentifiedImageError):
        return "not an image, or a format this app cannot read"
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if isinstance(exc, (EOFError, SyntaxError, struct.error, zlib.error)) or "truncated" in text:
        return f"truncated or corrupt file ({text})"
    return f"cannot decode it ({text})"


def _decode(path: Path, im: Image.Image) -> LoadedImage:
    exif = im.getexif()
    orientation = exif.get(_ORIENTATION_TAG, 1)
    if _ORIENTATION_TAG in exif:
        del exif[_ORIENTATION_TAG]
    exif_bytes = exif.tobytes() if len(exif) else None
    fmt = _FORMAT_ALIASES.get(im.format or "", im.format or "PNG")
    icc = im.info.get("icc_profile") or None

    samples16 = _read_high_bit(path, im, fmt)
    if samples16 is not None:
        rgb, alpha, gray = _split_high_bit(samples16)
        bit_depth = 16
    else:
        rgb, alpha, gray, icc = _split_8bit(im, icc)
        bit_depth = 8

    return LoadedImage(
        notes=_page_notes(path, im, fmt),
        path=path,
        rgb=_upright(rgb, orientation),
        alpha=None if alpha is None else _upright(alpha, orientation),
        format=fmt,
        mode=im.mode,
        gray=gray,
        bit_depth=bit_depth,
        icc_profile=icc,
        exif=exif_bytes,
        samples16=None if samples16 is None else _upright(samples16, orientation),
    )


def _page_notes(path: Path, im: Image.Image, fmt: str) -> list[str]:
    """A note when the file holds more pages or frames than the one loaded. (A camera's
    MPO JPEG carries a preview as its second frame: that is not a page of the photo.)"""
    pages = getattr(im, "n_frames", 1)
    if fmt == "JPEG" or not isinstance(pages, int) or pages <= 1:
        return []
    return [f"{path.name} has {pages} pages; only the first is edited and saved"]


def _upright(array: np.ndarray, orientation: object) -> np.ndarray:
    """Apply an EXIF orientation (1-8) to an ``(H, W, ...)`` array, as ``exif_transpose``."""
    turn: dict[object, Callable[[np.ndarray], np.ndarray]] = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.swapaxes(0, 1),
        6: lambda a: np.rot90(a, -1),
        7: lambda a: a[::-1, ::-1].swapaxes(0, 1),
        8: lambda a: np.rot90(a, 1),
    }
    return np.ascontiguousarray(turn.get(orientation, lambda a: a)(array))


def _split_8bit(
    im: Image.Image, icc: bytes | None
) -> tuple[np.ndarray, np.ndarray | None, bool, bytes | None]:
    """RGB, alpha, gray flag and the ICC profile that matches the returned RGB."""
    mode = im.mode
    if mode == "F":
        raise ImageLoadError(f"cannot load {im.filename}: 32-bit float images are not supported")
    if mode.startswith("I"):  # I;16, I;16B, I;16L, I: gray beyond 8 bits not caught by cv2
        wide = np.clip(np.asarray(im, dtype=np.int64), 0, 65535).astype(np.uint16)
        return _to8(np.repeat(wide[..., None], 3, axis=-1)), None, True, icc
    if mode == "CMYK":
        return np.asarray(_cmyk_to_srgb(im)), None, False, (_srgb_profile() if icc else None)
    has_alpha = mode in ("LA", "La", "PA", "RGBA", "RGBa") or (
        mode == "P" and "transparency" in im.info
    )
    gray = mode in ("1", "L", "LA", "La")
    rgba = np.asarray(im.convert("RGBA" if has_alpha else "RGB"))
    alpha = np.ascontiguousarray(rgba[..., 3]) if has_alpha else None
    return np.ascontiguousarray(rgba[..., :3]), alpha, gray, icc


def _cmyk_to_srgb(im: Image.Image) -> Image.Image:
    icc = im.info.get("icc_profile")
    if icc:
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            return ImageCms.profileToProfile(im, source, _srgb_cms(), outputMode="RGB")
        except ImageCms.PyCMSError:
            pass  # a broken profile: the plain conversion below is still a usable photo
    return im.convert("RGB")


def _srgb_cms() -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def _srgb_profile() -> bytes:
    return _srgb_cms().tobytes()


def _read_high_bit(path: Path, im: Image.Image, fmt: str) -> np.ndarray | None:
    """Original 16-bit samples ``(H, W, C)`` in RGB(A) order, or None for 8-bit files.

    Pillow reduces 16-bit RGB PNG/TIFF to 8 bits on open, so those go through OpenCV,
    which keeps every bit; its channel order is BGR(A).
    """
    if fmt not in _HIGH_BIT_FORMATS or not _is_16_bit(path, im, fmt):
        return None
    data = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if data is None or data.dtype != np.uint16:
        return None
    if data.ndim == 2:
        return data[..., None]
    # In place: a second full-size copy of 16-bit samples is what a large photo cannot afford.
    if data.shape[2] == 3:
        return cv2.cvtColor(data, cv2.COLOR_BGR2RGB, dst=data)
    if data.shape[2] == 4:
        return cv2.cvtColor(data, cv2.COLOR_BGRA2RGBA, dst=data)
    return None


def _is_16_bit(path: Path, im: Image.Image, fmt: str) -> bool:
    if fmt == "TIFF":
        bits = im.tag_v2.get(258, ())  # BitsPerSample: one entry per sample, or a single int
        return 16 in (bits if isinstance(bits, tuple) else (bits,))
    with open(path, "rb") as f:
        header = f.read(26)  # signature, IHDR length/type, width, height, bit depth
    return len(header) == 26 and header[24] == 16


def _split_high_bit(samples16: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, bool]:
    eight = _to8(samples16)
    channels = eight.shape[2]
    gray = channels in (1, 2)
    rgb = np.repeat(eight[..., :1], 3, axis=-1) if gray else eight[..., :3]
    alpha = eight[..., -1] if channels in (2, 4) else None
    return np.ascontiguousarray(rgb), None if alpha is None else np.ascontiguousarray(alpha), gray


def _to8(wide: np.ndarray) -> np.ndarray:
    """16-bit samples to the nearest 8-bit value; exact inverse of ``v * 257``.

    Converted a strip of rows at a time: the 32-bit temporaries stay small."""
    out = np.empty(wide.shape, np.uint8)
    for y in range(0, wide.shape[0], _STRIP_ROWS):
        strip = wide[y : y + _STRIP_ROWS].astype(np.uint32)
        out[y : y + _STRIP_ROWS] = (strip * 255 + 32767) // 65535
    return out


# ----------------------------------------------------------------------------- masks


def load_mask(
    path: PathLike,
    size: tuple[int, int] | None = None,
    resize: bool = False,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    resize_hint: str = "allow resizing",
) -> np.ndarray:
    """Load a hole mask: ``uint8`` ``(H, W)``, 255 = hole, 0 = keep.

    Any image works. A pixel is a hole where its gray value is over 127; when the file has
    an alpha channel that is not uniform, the alpha decides instead (a painted overlay with
    transparent background). ``size`` is the photo's ``(width, height)``: a mask of another
    size raises :class:`MaskSizeError` naming both, unless ``resize`` scales it
    (nearest-neighbour, so the mask stays binary). ``resize_hint`` ends that message: how the
    caller's user allows resizing (the CLI says ``pass --resize-mask``).
    """
    return _load_binary_plane(path, size, resize, max_pixels, "mask", resize_hint)


def load_sketch(
    path: PathLike,
    size: tuple[int, int] | None = None,
    resize: bool = False,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    resize_hint: str = "allow resizing",
) -> np.ndarray:
    """Load sketch guidance: ``uint8`` ``(H, W)``, 255 = line; read like :func:`load_mask`."""
    return _load_binary_plane(path, size, resize, max_pixels, "sketch", resize_hint)


def _load_binary_plane(
    path: PathLike,
    size: tuple[int, int] | None,
    resize: bool,
    max_pixels: int,
    what: str,
    resize_hint: str,
) -> np.ndarray:
    path = Path(path)
    with _load_errors(path):
        with _open_within_limit(path, max_pixels, DEFAULT_MAX_DECODE_BYTES) as im:
            orientation = _header_orientation(im)
            upright = im.size[::-1] if orientation in (5, 6, 7, 8) else im.size
            # Checked from the header: a huge mask for a small photo is refused undecoded.
            if size is not None and upright != tuple(size) and not resize:
                width, height = size
                raise MaskSizeError(
                    f"{what} {path} is {upright[0]}x{upright[1]} but the image is "
                    f"{width}x{height}; use a {what} of the same size or {resize_hint}"
                )
            plane = _binary_plane(path, im, orientation)
    if size is None or plane.shape[::-1] == tuple(size):
        return plane
    return cv2.resize(plane, tuple(size), interpolation=cv2.INTER_NEAREST)


def _header_orientation(im: Image.Image) -> object:
    """The EXIF orientation, read without decoding pixels (Pillow's ``getexif`` on a PNG
    decodes the whole image to look for an ``eXIf`` chunk after the pixel data; one before
    it is already in ``info``)."""
    if im.format == "PNG":
        raw = im.info.get("exif")
        if not raw:
            return 1
        exif = Image.Exif()
        exif.load(raw)
        return exif.get(_ORIENTATION_TAG, 1)
    return im.getexif().get(_ORIENTATION_TAG, 1)


def _binary_plane(path: Path, im: Image.Image, orientation: object) -> np.ndarray:
    """Upright 0/255 plane of a mask file: the alpha decides where it is not uniform, else
    the gray value; threshold 127.

    8-bit files are converted a strip of rows at a time (no full-size RGB or 32-bit copy);
    16-bit and 32-bit ones go through :func:`_decode` (their size is bounded by the bytes
    limit)."""
    if im.mode.startswith("I") or im.mode == "F" or _bits(path, im) != 8:
        loaded = _decode(path, im)
        alpha = loaded.alpha
        uniform = alpha is None or alpha.min() == alpha.max()
        return _threshold(_luma(loaded.rgb) if uniform else alpha)
    im.load()
    has_alpha = im.mode in ("LA", "La", "PA", "RGBA", "RGBa") or (
        im.mode == "P" and "transparency" in im.info
    )
    target = "RGBA" if has_alpha else ("L" if im.mode in ("1", "L") else "RGB")
    gray = np.empty((im.height, im.width), np.uint8)
    alpha = np.empty((im.height, im.width), np.uint8) if has_alpha else None
    alpha_range = [255, 0]
    for y in range(0, im.height, _STRIP_ROWS):
        box = (0, y, im.width, min(y + _STRIP_ROWS, im.height))
        strip = np.asarray(im.crop(box).convert(target))
        if target == "L":
            gray[y : y + _STRIP_ROWS] = _threshold(strip)
            continue
        gray[y : y + _STRIP_ROWS] = _threshold(_luma(strip[..., :3]))
        if alpha is not None:
            a = strip[..., 3]
            alpha[y : y + _STRIP_ROWS] = _threshold(a)
            alpha_range = [min(alpha_range[0], int(a.min())), max(alpha_range[1], int(a.max()))]
    uniform = alpha is None or alpha_range[0] == alpha_range[1]
    return _upright(gray if uniform else alpha, orientation)


def _threshold(level: np.ndarray) -> np.ndarray:
    """0/255 ``uint8``: 255 where ``level`` is over 127."""
    return np.where(level > 127, np.uint8(255), np.uint8(0))


def _luma(rgb: np.ndarray) -> np.ndarray:
    """Gray value of an RGB ``uint8`` image, rounded like Pillow's ``convert("L")``."""
    return ((rgb.astype(np.uint32) @ _GRAY_WEIGHTS + 500) // 1000).astype(np.uint8)


def save_mask(path: PathLike, mask: np.ndarray, overwrite: bool = False) -> Path:
    """Save a mask (or sketch) as a 0/255 gray PNG, atomically; returns the path.

    mask: ``uint8`` or ``bool`` ``(H, W)``; values over 127 (or True) become 255.
    """
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"masks are saved as PNG (lossless); got {path.name}")
    mask = np.asarray(mask)
    if mask.ndim != 2 or mask.dtype not in (np.uint8, np.bool_):
        raise ValueError(f"mask must be a uint8 or bool array (H, W), got {mask.dtype} {mask.shape}")
    binary = np.where(mask.astype(np.uint8) > (0 if mask.dtype == np.bool_ else 127), 255, 0)
    image = Image.fromarray(binary.astype(np.uint8))
    atomic_write(path, lambda f: image.save(f, format="PNG"), overwrite=overwrite)
    return path


# Saving lives in its own module; it is part of this boundary, so callers import it from here.
from .imagesave import save_image  # noqa: E402  (imagesave reads this module's helpers)

__all__ = ["DEFAULT_MAX_DECODE_BYTES", "DEFAULT_MAX_PIXELS", "ImageLoadError", "LoadedImage",
           "MaskSizeError", "load_image", "load_mask", "load_sketch", "save_image", "save_mask"]
