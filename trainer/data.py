"""Training and validation data: photos from folders, with a hole mask and a sketch each.

* :func:`find_images` walks folders once, in sorted order; :func:`list_images` stores the
  result in a :class:`PathList` (one bytes buffer plus offsets: a million paths take about
  100 MB once, and DataLoader workers forked from the main process share it without the
  per-object reference counting that copies a Python list's pages into every worker).
* :func:`validation_split` holds out a seeded subset.
* :class:`InpaintDataset` turns a photo into ``image``, ``mask`` and ``sketch`` tensors:
  EXIF orientation, random rescale, random crop and horizontal flip when training; a centre
  crop with per-index seeded masks and sketches for validation, so validation figures are
  comparable between runs. Unreadable, truncated and tiny files are skipped with a warning
  and counted; they never stop a run.
"""

from __future__ import annotations

import math
import os
import warnings
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image, ImageOps

from inpaint_studio.masks import MaskGenerator
from inpaint_studio.sketch import edge_sketch, keep_some_lines, sketch_in_hole

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".jpe", ".png", ".webp", ".tif", ".tiff", ".bmp")

# Seed streams, so training and validation never share random numbers.
_TRAIN_STREAM, _VAL_STREAM = 0, 1


# --- listing -----------------------------------------------------------------------------


def _walk(folder: Path) -> Iterator[Path]:
    """Image files under ``folder`` in sorted order; hidden entries (``.name``, e.g. macOS
    ``._IMG.jpg`` resource forks) skipped; symlinked folders not followed (no cycles)."""
    try:
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError as err:
        warnings.warn(f"cannot list folder {folder}: {err}", stacklevel=3)
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if entry.is_dir(follow_symlinks=False):
            yield from _walk(Path(entry.path))
        elif os.path.splitext(entry.name)[1].lower() in IMAGE_EXTENSIONS and entry.is_file():
            yield Path(entry.path)


def find_images(roots: Iterable[str | os.PathLike]) -> Iterator[Path]:
    """Yield every JPEG/PNG/WebP/TIFF/BMP file under the ``roots`` folders, recursively, each
    root in sorted order. A root that is not an existing folder raises ``FileNotFoundError``
    naming it (before anything is yielded)."""
    folders = [Path(r) for r in roots]
    for folder in folders:
        if not folder.is_dir():
            raise FileNotFoundError(f"photo folder {folder} does not exist or is not a folder")
    for folder in folders:
        yield from _walk(folder)


class PathList(Sequence[Path]):
    """An immutable list of paths stored as one ``uint8`` buffer plus ``int64`` offsets.

    ``paths[i]`` returns a ``Path``; :meth:`subset` selects by index array without going
    through Python strings. Names are stored with ``os.fsencode``, so undecodable file names
    survive the round trip.
    """

    def __init__(self, blob: np.ndarray, offsets: np.ndarray) -> None:
        self._blob = blob
        self._offsets = offsets

    @classmethod
    def from_paths(cls, paths: Iterable[str | os.PathLike]) -> PathList:
        buffer = bytearray()
        offsets = array("q", [0])  # 8 bytes per path while scanning, not a Python int each
        for path in paths:
            buffer += os.fsencode(path)
            offsets.append(len(buffer))
        return cls(np.frombuffer(bytes(buffer), np.uint8), np.frombuffer(offsets, np.int64).copy())

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return self.subset(np.arange(len(self))[index])
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"path index {index} out of range for {n} paths")
        index %= n
        start, end = self._offsets[index], self._offsets[index + 1]
        return Path(os.fsdecode(self._blob[start:end].tobytes()))

    def subset(self, indices: Sequence[int] | np.ndarray) -> PathList:
        """The paths at ``indices`` (in that order) as a new compact list."""
        idx = np.asarray(indices, np.int64).reshape(-1)
        starts = self._offsets[idx]
        lengths = self._offsets[idx + 1] - starts
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        blob = np.empty(int(offsets[-1]), np.uint8)
        # Byte positions of the selected paths, gathered vectorised but a chunk of paths at a
        # time so the int64 position array stays small even for millions of paths.
        chunk = 16384
        for first in range(0, len(idx), chunk):
            last = min(first + chunk, len(idx))
            lo, hi = offsets[first], offsets[last]
            shift = np.repeat(starts[first:last] - offsets[first:last], lengths[first:last])
            blob[lo:hi] = self._blob[shift + np.arange(lo, hi)]
        return PathList(blob, offsets)

    def nbytes(self) -> int:
        """Memory held by the listing, in bytes."""
        return self._blob.nbytes + self._offsets.nbytes


def list_images(roots: Iterable[str | os.PathLike]) -> PathList:
    """Scan ``roots`` once (see :func:`find_images`) into a :class:`PathList`. A folder that
    holds no image raises ``ValueError`` naming it and the accepted extensions."""
    folders = [Path(r) for r in roots]

    def every_root_nonempty() -> Iterator[Path]:
        for folder in folders:
            found = 0
            for path in find_images([folder]):
                found += 1
                yield path
            if not found:
                raise ValueError(
                    f"no photos found in {folder} (searched recursively for "
                    f"{', '.join(IMAGE_EXTENSIONS)})"
                )

    return PathList.from_paths(every_root_nonempty())


def validation_split(paths: PathList, n: int, seed: int) -> tuple[PathList, PathList]:
    """Split off ``n`` photos chosen by ``seed``: returns ``(train, validation)``, each in the
    original order. The same paths and seed always give the same split."""
    if n < 0 or n >= len(paths):
        raise ValueError(
            f"cannot hold out {n} validation photos from {len(paths)}: need at least one "
            "photo left for training"
        )
    order = np.random.default_rng([seed, _VAL_STREAM]).permutation(len(paths))
    return paths.subset(np.sort(order[n:])), paths.subset(np.sort(order[:n]))


# --- reading -----------------------------------------------------------------------------


class TinyImage(ValueError):
    """A photo whose shorter side is under the dataset's ``min_side``."""


def _to_rgb(image: Image.Image) -> np.ndarray:
    """Any Pillow mode -> ``uint8 (H, W, 3)``; 16-bit and float gray scaled, not clipped."""
    if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        gray = np.asarray(image, np.float32)
        if gray.max(initial=0) > 255:
            gray = gray / 257.0
        gray = np.clip(gray, 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    return np.asarray(image.convert("RGB"))


def read_photo(path: Path, short_side: Callable[[int], int], min_side: int) -> np.ndarray:
    """Decode ``path`` upright (EXIF orientation applied) as ``uint8 (H, W, 3)`` with its
    shorter side resized to ``short_side(original_shorter_side)``.

    JPEGs are decoded at the smallest DCT scale that is still large enough (Pillow draft
    mode), so a 24-megapixel photo cropped at 256 costs a fraction of a full decode. Raises
    :class:`TinyImage` if the shorter side is below ``min_side``, and Pillow's errors for
    unreadable or truncated files.
    """
    with Image.open(path) as image:
        width, height = image.size
        short = min(width, height)
        if short < min_side:
            raise TinyImage(f"too small ({width}x{height}, shorter side under {min_side} px)")
        target = short_side(short)
        scale = target / short
        if image.format == "JPEG" and scale < 1:
            image.draft("RGB", (math.ceil(width * scale), math.ceil(height * scale)))
        image.load()  # decode now, so truncation errors surface here
        rgb = _to_rgb(ImageOps.exif_transpose(image))
    h, w = rgb.shape[:2]
    scale = target / min(h, w)
    new_size = (max(target, round(w * scale)), max(target, round(h * scale)))
    if new_size != (w, h):
        shrink = scale < 1
        rgb = cv2.resize(rgb, new_size, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)
    return rgb


# --- dataset -----------------------------------------------------------------------------


class NoReadablePhotos(ValueError):
    """Every photo tried was unreadable or too small: a data problem, reported in one line."""


class InpaintDataset(torch.utils.data.Dataset):
    """Photos as training (or validation) samples.

    ``dataset[i]`` returns a dict of float32 tensors:

    * ``image``: ``(3, size, size)`` in ``[-1, 1]``;
    * ``mask``: ``(1, size, size)`` in ``{0, 1}``, 1 = hole;
    * ``sketch``: ``(1, size, size)`` in ``{0, 1}``, edges of the photo kept only inside the
      hole, all zeros when dropped (kept with probability ``sketch_prob``); in training with
      ``sketch_keep_min`` < 1, each line piece is then kept with a probability drawn per
      sample from ``[sketch_keep_min, 1]`` (partial guidance, like a user's few strokes);
    * ``skipped_files``: int64 scalar, how many unreadable files this process found (and
      warned about) while producing this sample; sum it over batches for a run's count (a
      file can be counted once per worker process).

    Training (``train=True``): the shorter side is rescaled to a log-uniform size between
    ``size`` and the photo's own (photos smaller than ``size`` are enlarged to it), then a
    random ``size`` square is cropped and flipped left-right with p = 1/2. Randomness comes
    from ``(seed, epoch, index)``: call :meth:`set_epoch` at every epoch (like
    ``DistributedSampler.set_epoch``; with ``persistent_workers`` the workers keep the epoch
    they were started with), and the same index in the same epoch gives the same sample on
    any number of workers. Validation (``train=False``): shorter side to ``size``, centre
    crop, no flip; mask and sketch seeded by ``(seed, index)`` only, identical every run.

    A file that cannot be decoded, is truncated, or whose shorter side is under
    ``min_side`` (default ``size // 2``) is recorded in ``bad_files`` (path -> reason), warned
    about once, and replaced by another index drawn from the same generator; after
    ``max_retries`` retries a ``RuntimeError`` says the data looks broken.
    """

    def __init__(
        self,
        paths: PathList | Sequence[str | os.PathLike],
        size: int = 256,
        mask: str | MaskGenerator = "mixed",
        sketch_prob: float = 0.5,
        seed: int = 0,
        train: bool = True,
        sketch_method: str = "canny",
        min_side: int | None = None,
        max_retries: int = 50,
        sketch_keep_min: float = 1.0,
    ) -> None:
        self.paths = paths if isinstance(paths, PathList) else PathList.from_paths(paths)
        if len(self.paths) == 0:
            raise ValueError("no photos given to the dataset")
        if size <= 0:
            raise ValueError(f"size must be positive, got {size}")
        if not 0.0 <= sketch_prob <= 1.0:
            raise ValueError(f"sketch_prob must be in [0, 1], got {sketch_prob}")
        if not 0.0 <= sketch_keep_min <= 1.0:
            raise ValueError(f"sketch_keep_min must be in [0, 1], got {sketch_keep_min}")
        self.size = size
        self.sketch_keep_min = sketch_keep_min
        self.masks = mask if isinstance(mask, MaskGenerator) else MaskGenerator(mask)
        self.sketch_prob = sketch_prob
        self.seed = seed
        self.train = train
        self.sketch_method = sketch_method
        self.min_side = size // 2 if min_side is None else min_side
        self.max_retries = max_retries
        self.epoch = 0
        self.bad_files: dict[str, str] = {}
        self._bad_indices: set[int] = set()

    def __len__(self) -> int:
        return len(self.paths)

    def set_epoch(self, epoch: int) -> None:
        """Choose the random crops, flips, masks and sketches of ``epoch`` (training only)."""
        self.epoch = epoch

    def _rng(self, index: int) -> np.random.Generator:
        if self.train:
            return np.random.default_rng([self.seed, _TRAIN_STREAM, self.epoch, index])
        return np.random.default_rng([self.seed, _VAL_STREAM, index])

    def _short_side(self, rng: np.random.Generator) -> Callable[[int], int]:
        """How long the photo's shorter side becomes, given its original length."""
        if not self.train:
            return lambda short: self.size

        def random_scale(short: int) -> int:
            # Log-uniform between the crop size and the full resolution: each scale octave is
            # seen equally often, from whole-scene context to full-resolution detail.
            low, high = math.log(self.size), math.log(max(short, self.size))
            return max(self.size, int(round(math.exp(rng.uniform(low, high)))))

        return random_scale

    def _crop(self, rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        h, w = rgb.shape[:2]
        s = self.size
        if self.train:
            top, left = int(rng.integers(0, h - s + 1)), int(rng.integers(0, w - s + 1))
        else:
            top, left = (h - s) // 2, (w - s) // 2
        crop = rgb[top : top + s, left : left + s]
        if self.train and rng.random() < 0.5:
            crop = crop[:, ::-1]
        return np.array(crop)  # a writable copy (Pillow's arrays are read-only)

    def _record_bad(self, index: int, path: Path, reason: str) -> None:
        self._bad_indices.add(index)
        self.bad_files[str(path)] = reason
        warnings.warn(f"skipping photo {path}: {reason}", stacklevel=3)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = self._rng(index)
        newly_bad = 0
        path: Path | None = None
        for _ in range(self.max_retries + 1):
            if index not in self._bad_indices:
                path = self.paths[index]
                try:
                    rgb = read_photo(path, self._short_side(rng), self.min_side)
                    break
                # Any decoder failure (Pillow raises OSError, SyntaxError, ValueError, EOFError
                # and more for damaged files) means "skip this file", never "stop the run".
                except Exception as err:  # noqa: BLE001
                    self._record_bad(index, path, str(err) or type(err).__name__)
                    newly_bad += 1
            index = int(rng.integers(len(self.paths)))
        else:
            # path is None when every pick was a photo already known to be unreadable.
            example = (f" (e.g. {path}: {self.bad_files.get(str(path))})" if path is not None
                       else f" ({len(self._bad_indices)} of {len(self.paths)} known bad)")
            raise NoReadablePhotos(
                f"no readable photo in {self.max_retries + 1} tries{example}; check the data "
                f"folders"
            )
        crop = self._crop(rgb, rng)
        mask = self.masks(self.size, self.size, rng)
        if rng.random() < self.sketch_prob:
            sketch = sketch_in_hole(edge_sketch(crop, self.sketch_method), mask)
            if self.train and self.sketch_keep_min < 1.0:
                sketch = keep_some_lines(sketch, rng.uniform(self.sketch_keep_min, 1.0), rng)
        else:
            sketch = np.zeros_like(mask)
        # Converted in numpy: torch's multi-threaded element-wise kernels on these small
        # arrays cost 10x more than numpy's single thread when the cores are busy training.
        image = crop.transpose(2, 0, 1).astype(np.float32) * np.float32(1 / 127.5) - np.float32(1)
        return {
            "image": torch.from_numpy(image),
            "mask": torch.from_numpy((mask > 127)[None].astype(np.float32)),
            "sketch": torch.from_numpy((sketch > 127)[None].astype(np.float32)),
            "skipped_files": torch.tensor(newly_bad, dtype=torch.int64),
        }
