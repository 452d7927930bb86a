"""Odd image files for the I/O and CLI tests, generated on the fly (nothing is downloaded).

The one non-obvious helper is :func:`tinted_cmyk_profile`: no CMYK ICC profile ships with
the test machine and Pillow can only create RGB/Lab ones, so we write a minimal ICC v2
printer profile by hand. It maps every CMYK value to a tinted colour on purpose, so a test
can tell "converted through the profile" from "converted by the plain formula".
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

D50 = (0.9642, 1.0, 0.8249)
SRGB_RED_D50 = (0.4361, 0.2225, 0.0139)  # XYZ of sRGB's red primary, D50-adapted


def _s15f16(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def _xyz_tag(xyz: tuple[float, float, float]) -> bytes:
    return b"XYZ " + b"\0" * 4 + b"".join(_s15f16(v) for v in xyz)


def _lut16_cmyk_to_xyz(paper_xyz: tuple[float, float, float]) -> bytes:
    """``mft2`` tag: 2-point grid over C, M, Y, K; output = paper colour * (1 - K).

    PCS XYZ in lut16 encoding: value / 32768 (so 1.0 = 32768).
    """
    identity = [1, 0, 0, 0, 1, 0, 0, 0, 1]
    body = b"mft2" + b"\0" * 4 + bytes([4, 3, 2, 0])
    body += b"".join(_s15f16(v) for v in identity)
    body += struct.pack(">HH", 2, 2)
    body += struct.pack(">HH", 0, 65535) * 4  # input curves: identity
    for c in (0, 1):  # first input channel varies slowest
        for m in (0, 1):
            for y in (0, 1):
                for k in (0, 1):
                    body += b"".join(
                        struct.pack(">H", round(v * (1 - k) * 32768)) for v in paper_xyz
                    )
    body += struct.pack(">HH", 0, 65535) * 3  # output curves: identity
    return body


def tinted_cmyk_profile(paper_xyz: tuple[float, float, float] = SRGB_RED_D50) -> bytes:
    """A valid ICC v2 CMYK -> XYZ profile whose every ink-free colour is ``paper_xyz``."""
    tags = [(b"wtpt", _xyz_tag(D50)), (b"A2B0", _lut16_cmyk_to_xyz(paper_xyz))]
    table_size = 4 + 12 * len(tags)
    offset = 128 + table_size
    table, data = struct.pack(">I", len(tags)), b""
    for signature, body in tags:
        body += b"\0" * (-len(body) % 4)
        table += signature + struct.pack(">II", offset + len(data), len(body))
        data += body
    size = offset + len(data)
    header = struct.pack(">I", size) + b"lcms" + struct.pack(">I", 0x02100000)
    header += b"prtr" + b"CMYK" + b"XYZ " + b"\0" * 12 + b"acsp" + b"\0" * 20
    header += struct.pack(">I", 0) + b"".join(_s15f16(v) for v in D50)
    header += b"\0" * (128 - len(header))
    return header + table + data


def exif_block(orientation: int | None = None, make: str = "TestCam") -> bytes:
    """EXIF bytes with a camera make, a DateTimeOriginal in the Exif sub-IFD and, if given,
    an orientation tag."""
    exif = Image.Exif()
    exif[0x010F] = make
    exif.get_ifd(0x8769)[0x9003] = "2021:06:01 12:00:00"
    if orientation is not None:
        exif[0x0112] = orientation
    return exif.tobytes()


def gradient_rgb(height: int, width: int) -> np.ndarray:
    """``uint8`` ``(H, W, 3)`` with all three channels different and position-dependent."""
    yy, xx = np.mgrid[0:height, 0:width]
    return np.stack(
        [xx * 255 // max(width - 1, 1), yy * 255 // max(height - 1, 1), (xx + yy) % 256], axis=-1
    ).astype(np.uint8)


def write_16bit(path: Path, samples: np.ndarray) -> None:
    """Write ``uint16`` ``(H, W)`` or ``(H, W, 3|4)`` RGB(A) samples as a 16-bit PNG/TIFF."""
    if samples.ndim == 3:
        code = cv2.COLOR_RGB2BGR if samples.shape[2] == 3 else cv2.COLOR_RGBA2BGRA
        samples = cv2.cvtColor(samples, code)
    ok, data = cv2.imencode(path.suffix, samples)
    assert ok
    path.write_bytes(data.tobytes())


def png_bomb(width: int, height: int) -> bytes:
    """A few-hundred-byte gray PNG whose header claims ``width`` x ``height`` pixels and whose
    data would decompress to all of them (one filter byte + zero row, repeated)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    compressor = zlib.compressobj(9)
    row = b"\0" * (1 + (width + 7) // 8)  # 1-bit gray rows
    data = b"".join(compressor.compress(row) for _ in range(min(height, 64)))
    data += compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")
