"""Hole masks for training, tests and benchmarks.

Every generator returns a ``uint8`` array of shape ``(h, w)`` with 255 = hole and 0 = known,
and draws all its randomness from the ``np.random.Generator`` it is given, so a seed fixes
the mask.

* :func:`free_form_mask`: the DeepFill v2 brush-stroke masks (Yu et al., "Free-Form Image
  Inpainting with Gated Convolution", ICCV 2019) with the reference parameters, plus the random
  flips the reference code meant to apply but dropped (it discards ``transpose``'s result).
* :func:`box_mask`: one axis-aligned rectangle, sized like the DeepFill v1/v2 reference box.
* :func:`mixed_mask`: free-form strokes united with a box, the DeepFill v2 training mask.
* :class:`FolderMasks`: masks read from a folder (NVIDIA irregular-mask style), randomly
  flipped, rotated and resized.
* :class:`MaskGenerator`: one of the above chosen by name (``free_form``, ``box``, ``mixed``,
  ``folder:<dir>``), or several separated by commas, one drawn at random per mask.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import cv2
import numpy as np

HOLE = 255

# DeepFill v2 reference parameters (inpaint_ops.brush_stroke_mask), defined for 256x256 images.
_REFERENCE_SIDE = 256
_MIN_VERTICES, _MAX_VERTICES = 4, 11
_MEAN_ANGLE = 2 * math.pi / 5
_ANGLE_RANGE = 2 * math.pi / 15
_MIN_WIDTH, _MAX_WIDTH = 12, 40
_MIN_STROKES, _MAX_STROKES = 1, 3

MASK_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def _check_size(h: int, w: int) -> None:
    if h < 1 or w < 1:
        raise ValueError(f"mask size must be positive, got {h}x{w}")


def _random_flips(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Flip left-right and up-down, each with probability 1/2."""
    if rng.random() < 0.5:
        mask = mask[:, ::-1]
    if rng.random() < 0.5:
        mask = mask[::-1, :]
    return np.ascontiguousarray(mask)


def stroke_width(h: int, w: int, rng: np.random.Generator) -> int:
    """Brush width in pixels for an ``h`` x ``w`` mask: ``U(12, 40)`` at 256x256, scaled by
    the diagonal for other sizes (so strokes cover the same share of any image)."""
    scale = math.hypot(h, w) / math.hypot(_REFERENCE_SIDE, _REFERENCE_SIDE)
    return max(1, int(round(rng.uniform(_MIN_WIDTH, _MAX_WIDTH) * scale)))


def free_form_mask(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """DeepFill v2 free-form brush strokes, ``uint8 (h, w)``, 255 = hole.

    1 to 3 strokes; each is a polyline of 4 to 11 segments starting at a uniform random
    point. Segment directions alternate between ``a`` and ``2*pi - a`` with ``a`` drawn from
    ``[2pi/5 - U(0, 2pi/15), 2pi/5 + U(0, 2pi/15)]``; lengths are ``N(r, r/2)`` clipped to
    ``[0, 2r]`` with ``r = diagonal / 8``; vertices are clipped to the image. The stroke width
    is ``U(12, 40)`` pixels at 256x256 and scales with the diagonal for other sizes; a disc
    of that width is drawn at every vertex so joints are round. The result is then flipped
    horizontally and vertically, each with probability 1/2.
    """
    _check_size(h, w)
    radius = math.hypot(h, w) / 8
    mask = np.zeros((h, w), np.uint8)
    for _ in range(rng.integers(_MIN_STROKES, _MAX_STROKES + 1)):
        n_segments = int(rng.integers(_MIN_VERTICES, _MAX_VERTICES + 1))
        angle_min = _MEAN_ANGLE - rng.uniform(0, _ANGLE_RANGE)
        angle_max = _MEAN_ANGLE + rng.uniform(0, _ANGLE_RANGE)
        x, y = float(rng.integers(0, w)), float(rng.integers(0, h))
        vertices = [(int(x), int(y))]
        for i in range(n_segments):
            angle = rng.uniform(angle_min, angle_max)
            if i % 2 == 0:
                angle = 2 * math.pi - angle
            length = float(np.clip(rng.normal(radius, radius / 2), 0, 2 * radius))
            x = float(np.clip(x + length * math.cos(angle), 0, w - 1))
            y = float(np.clip(y + length * math.sin(angle), 0, h - 1))
            vertices.append((int(round(x)), int(round(y))))
        width = stroke_width(h, w, rng)
        cv2.polylines(mask, [np.array(vertices, np.int32)], False, HOLE, thickness=width)
        for vx, vy in vertices:
            cv2.circle(mask, (vx, vy), width // 2, HOLE, thickness=-1)
    return _random_flips(mask, rng)


def box_mask(
    h: int,
    w: int,
    rng: np.random.Generator,
    box_frac: float = 0.5,
    shrink_frac: float = 0.125,
) -> np.ndarray:
    """One random rectangle, ``uint8 (h, w)``, 255 = hole.

    As in the DeepFill reference (``random_bbox`` + ``bbox2mask``): a box of
    ``box_frac * h`` by ``box_frac * w`` placed uniformly inside the image, then each side
    pulled in by ``U{0 .. shrink_frac * side / 2}`` pixels (reference at 256: box 128, max
    delta 32). Boxes are at least one pixel in each direction.
    """
    _check_size(h, w)
    if not 0 < box_frac <= 1 or not 0 <= shrink_frac < box_frac:
        raise ValueError(
            f"need 0 < box_frac <= 1 and 0 <= shrink_frac < box_frac, got {box_frac}, {shrink_frac}"
        )
    bh, bw = max(1, int(h * box_frac)), max(1, int(w * box_frac))
    top = int(rng.integers(0, h - bh + 1))
    left = int(rng.integers(0, w - bw + 1))
    dh = int(rng.integers(0, int(h * shrink_frac) // 2 + 1))
    dw = int(rng.integers(0, int(w * shrink_frac) // 2 + 1))
    mask = np.zeros((h, w), np.uint8)
    bottom, right = max(top + bh - dh, top + dh + 1), max(left + bw - dw, left + dw + 1)
    mask[top + dh : bottom, left + dw : right] = HOLE
    return mask


def mixed_mask(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """Free-form strokes united with a random box (DeepFill v2 training), ``uint8 (h, w)``."""
    return np.maximum(free_form_mask(h, w, rng), box_mask(h, w, rng))


def hole_ratio(mask: np.ndarray) -> float:
    """Fraction of hole pixels (value > 127) in an HxW mask, in ``[0, 1]``."""
    mask = np.asarray(mask)
    if mask.ndim != 2 or mask.size == 0:
        raise ValueError(f"expected a non-empty HxW mask, got shape {mask.shape}")
    return float(np.count_nonzero(mask > 127)) / mask.size


class FolderMasks:
    """Masks drawn from image files in a folder (e.g. the NVIDIA irregular-mask set).

    Files are listed once (recursively, sorted). Each call picks one at random, flips it
    left-right and up-down (each p = 1/2), rotates it by a random multiple of 90 degrees,
    resizes it to ``(h, w)`` and thresholds it at 127. ``invert=True`` is for sets that
    draw holes black on white; by default white (> 127) is the hole.
    """

    def __init__(self, folder: str | os.PathLike, invert: bool = False) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise FileNotFoundError(f"mask folder {self.folder} does not exist")
        self.invert = invert
        self.paths = sorted(
            p for p in self.folder.rglob("*") if p.suffix.lower() in MASK_EXTENSIONS and p.is_file()
        )
        if not self.paths:
            raise ValueError(
                f"mask folder {self.folder} holds no mask images ({', '.join(MASK_EXTENSIONS)})"
            )

    def __len__(self) -> int:
        return len(self.paths)

    def __call__(self, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
        _check_size(h, w)
        path = self.paths[int(rng.integers(len(self.paths)))]
        gray = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if gray is None:
            raise OSError(f"cannot read mask file {path}")
        gray = _random_flips(gray, rng)
        gray = np.ascontiguousarray(np.rot90(gray, int(rng.integers(4))))
        # Linear interpolation then a threshold keeps stroke edges smooth when scaling up.
        gray = cv2.resize(gray, (w, h), interpolation=cv2.INTER_LINEAR)
        hole = gray > 127
        if self.invert:
            hole = ~hole
        return np.where(hole, HOLE, 0).astype(np.uint8)


class _OneOf:
    """Each call draws from one of ``sources`` (mask makers), chosen uniformly by ``rng``."""

    def __init__(self, sources: list) -> None:
        self.sources = sources

    def __call__(self, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
        return self.sources[int(rng.integers(len(self.sources)))](h, w, rng)


_BUILTIN = {"free_form": free_form_mask, "box": box_mask, "mixed": mixed_mask}


class MaskGenerator:
    """A mask source chosen by name: ``free_form``, ``box``, ``mixed`` or ``folder:<dir>``;
    several names separated by commas (``mixed,folder:/data/masks``) draw each mask from one of
    them, chosen uniformly at random with the same ``rng``.

    ``gen(h, w, rng)`` returns ``uint8 (h, w)``, 255 = hole. Instances are picklable, so a
    dataset holding one works in DataLoader worker processes.
    """

    def __init__(self, spec: str) -> None:
        self.spec = spec
        if "," in spec:
            sources = [MaskGenerator(part.strip()) for part in spec.split(",")]
            self._make = _OneOf(sources)
        elif spec.startswith("folder:"):
            folder = spec[len("folder:") :]
            if not folder:
                raise ValueError("mask spec 'folder:' needs a folder, e.g. folder:/data/masks")
            self._make = FolderMasks(folder)
        elif spec in _BUILTIN:
            self._make = _BUILTIN[spec]
        else:
            raise ValueError(
                f"unknown mask kind {spec!r}; choose one of {', '.join(_BUILTIN)} or folder:<dir>"
            )

    def __call__(self, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
        return self._make(h, w, rng)

    def __repr__(self) -> str:
        return f"MaskGenerator({self.spec!r})"
