"""The edit document: a photo, the hole mask the user paints and the sketch guide lines.

Plain numpy (no Qt) so that it is tested on its own and shared by the app and autosave.

Layouts (the engine boundary's conventions):

* ``image``: RGB ``uint8`` ``(H, W, 3)``.
* ``mask``: ``uint8`` ``(H, W)``, 255 = hole, 0 = keep.
* ``sketch``: ``uint8`` ``(H, W)``, 255 = guide line (only lines inside the hole guide a fill).

Every change is one undoable :class:`Edit` made of :class:`Patch` es that hold only the
changed rectangle's before/after pixels, so undo on a 12-megapixel photo costs what the
rectangle costs. Painting reports dirty rectangles so a view redraws only those.
"""

from __future__ import annotations

import enum
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from .fileutil import atomic_write

HOLE = 255
SESSION_VERSION = 1


class Layer(str, enum.Enum):
    """The planes a stroke can paint on."""

    MASK = "mask"
    SKETCH = "sketch"


class Tool(str, enum.Enum):
    """Brush paints the hole, eraser removes from a layer, pen draws thin sketch lines."""

    BRUSH = "brush"
    ERASER = "eraser"
    PEN = "pen"


@dataclass(frozen=True)
class Rect:
    """Half-open pixel rectangle ``[x0, x1) x [y0, y1)`` in image coordinates."""

    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def empty(self) -> bool:
        return self.x1 <= self.x0 or self.y1 <= self.y0

    @property
    def width(self) -> int:
        return max(0, self.x1 - self.x0)

    @property
    def height(self) -> int:
        return max(0, self.y1 - self.y0)

    @property
    def slices(self) -> tuple[slice, slice]:
        """``(rows, cols)`` for indexing a numpy plane."""
        return slice(self.y0, self.y1), slice(self.x0, self.x1)

    def union(self, other: Rect) -> Rect:
        if self.empty:
            return other
        if other.empty:
            return self
        return Rect(min(self.x0, other.x0), min(self.y0, other.y0),
                    max(self.x1, other.x1), max(self.y1, other.y1))

    def clip(self, width: int, height: int) -> Rect:
        return Rect(max(0, self.x0), max(0, self.y0), min(width, self.x1), min(height, self.y1))

    def contains(self, other: Rect) -> bool:
        return (self.x0 <= other.x0 and self.y0 <= other.y0
                and self.x1 >= other.x1 and self.y1 >= other.y1)

    def grown(self, margin: int) -> Rect:
        return Rect(self.x0 - margin, self.y0 - margin, self.x1 + margin, self.y1 + margin)


EMPTY_RECT = Rect(0, 0, 0, 0)


def bounding_rect(plane: np.ndarray) -> Rect:
    """Smallest rectangle holding every non-zero pixel of ``plane`` (``(H, W)`` or
    ``(H, W, C)``); :data:`EMPTY_RECT` when it is all zero."""
    h = plane.shape[0]
    # Reduce whole rows first (contiguous, fast); a reduce over a length-3 channel axis of a
    # 12-megapixel photo would cost ten times more.
    rows = np.flatnonzero(plane.reshape(h, -1).any(axis=1))
    if rows.size == 0:
        return EMPTY_RECT
    band = plane[rows[0]:rows[-1] + 1].any(axis=0)
    if band.ndim == 2:
        band = band.any(axis=1)
    cols = np.flatnonzero(band)
    return Rect(int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)


@dataclass
class Patch:
    """The before/after pixels of one rectangle of one plane (``image``, ``mask``, ``sketch``)."""

    plane: str
    rect: Rect
    before: np.ndarray
    after: np.ndarray

    @property
    def nbytes(self) -> int:
        return self.before.nbytes + self.after.nbytes


@dataclass
class Edit:
    """One undo step: a named list of patches (a stroke, a clear, an applied fill)."""

    kind: str
    patches: list[Patch]

    @property
    def dirty(self) -> Rect:
        rect = EMPTY_RECT
        for patch in self.patches:
            rect = rect.union(patch.rect)
        return rect


# Marks a document that was never saved in its current form (e.g. restored from autosave).
_NEVER_SAVED = Edit("never saved", [])


def stamp_segment(plane: np.ndarray, p0: tuple[float, float], p1: tuple[float, float],
                  radius: float, value: int) -> Rect:
    """Paint a round-capped line of ``radius`` px from ``p0`` to ``p1`` (``(x, y)`` pixel
    coordinates, pixel centres at integers) into ``plane`` in place; returns the dirty rect
    (clipped to the plane, possibly empty)."""
    h, w = plane.shape
    (x0, y0), (x1, y1) = p0, p1
    reach = radius + 1
    rect = Rect(int(np.floor(min(x0, x1) - reach)), int(np.floor(min(y0, y1) - reach)),
                int(np.ceil(max(x0, x1) + reach)) + 1, int(np.ceil(max(y0, y1) + reach)) + 1)
    rect = rect.clip(w, h)
    if rect.empty:
        return EMPTY_RECT
    ys, xs = np.ogrid[rect.y0:rect.y1, rect.x0:rect.x1]
    dx, dy = x1 - x0, y1 - y0
    length_sq = dx * dx + dy * dy
    if length_sq == 0:
        dist_sq = (xs - x0) ** 2 + (ys - y0) ** 2
    else:
        # Distance to the segment: project onto it, clamp to the ends (round caps).
        t = np.clip(((xs - x0) * dx + (ys - y0) * dy) / length_sq, 0.0, 1.0)
        dist_sq = (xs - (x0 + t * dx)) ** 2 + (ys - (y0 + t * dy)) ** 2
    inside = dist_sq <= radius * radius
    region = plane[rect.slices]
    region[inside] = value
    painted = bounding_rect(inside)
    if painted.empty:
        return EMPTY_RECT
    return Rect(rect.x0 + painted.x0, rect.y0 + painted.y0, rect.x0 + painted.x1, rect.y0 + painted.y1)


class _StrokeRecorder:
    """Keeps the original pixels of the area a stroke has touched so far.

    The saved area grows in steps with a margin, so a long stroke copies each pixel of the
    layer only a few times instead of snapshotting the whole layer at press time.
    """

    GROW_MARGIN = 96

    def __init__(self, plane: np.ndarray, layer: Layer, tool: Tool, radius: float) -> None:
        self.plane = plane
        self.layer = layer
        self.tool = tool
        self.radius = radius
        self.saved_rect = EMPTY_RECT
        self.saved = np.zeros((0, 0), dtype=plane.dtype)
        self.dirty = EMPTY_RECT
        self.last_point: tuple[float, float] | None = None

    def ensure_saved(self, rect: Rect) -> None:
        if rect.empty or self.saved_rect.contains(rect):
            return
        h, w = self.plane.shape
        grown = self.saved_rect.union(rect.grown(self.GROW_MARGIN)).clip(w, h)
        # Pixels outside the old saved rect are still untouched, so the live plane holds
        # their originals; inside it the saved copy does.
        saved = self.plane[grown.slices].copy()
        old = self.saved_rect
        if not old.empty:
            saved[old.y0 - grown.y0:old.y1 - grown.y0, old.x0 - grown.x0:old.x1 - grown.x0] = self.saved
        self.saved, self.saved_rect = saved, grown

    def original(self, rect: Rect) -> np.ndarray:
        s = self.saved_rect
        return self.saved[rect.y0 - s.y0:rect.y1 - s.y0, rect.x0 - s.x0:rect.x1 - s.x0].copy()


class Document:
    """A photo being edited, with its mask and sketch layers and undo history.

    image: RGB ``uint8`` ``(H, W, 3)`` (copied). source_path: where it was loaded from, or
    None for a pasted image.
    """

    def __init__(self, image: np.ndarray, source_path: str | Path | None = None) -> None:
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 \
                or image.shape[2] != 3 or image.shape[0] < 1 or image.shape[1] < 1:
            raise ValueError(
                f"a document needs an RGB uint8 image of shape (H, W, 3), got "
                f"{getattr(image, 'dtype', type(image).__name__)} {getattr(image, 'shape', '')}"
            )
        self.image = np.ascontiguousarray(image).copy()
        h, w = image.shape[:2]
        self.mask = np.zeros((h, w), dtype=np.uint8)
        self.sketch = np.zeros((h, w), dtype=np.uint8)
        self.source_path = str(source_path) if source_path is not None else None
        self._undo: list[Edit] = []
        self._redo: list[Edit] = []
        self._stroke: _StrokeRecorder | None = None
        self._clean_top: Edit | None = None
        # Bumped on every change (strokes in progress included); autosave compares it.
        self.revision = 0

    # ----------------------------------------------------------------- properties
    @property
    def width(self) -> int:
        return self.image.shape[1]

    @property
    def height(self) -> int:
        return self.image.shape[0]

    @property
    def full_rect(self) -> Rect:
        return Rect(0, 0, self.width, self.height)

    @property
    def modified(self) -> bool:
        """True when the document differs from the last :meth:`mark_saved` (or from load)."""
        top = self._undo[-1] if self._undo else None
        return top is not self._clean_top or self._stroke is not None

    def mark_saved(self) -> None:
        self._clean_top = self._undo[-1] if self._undo else None

    @property
    def can_undo(self) -> bool:
        return bool(self._undo) and self._stroke is None

    @property
    def can_redo(self) -> bool:
        return bool(self._redo) and self._stroke is None

    @property
    def has_hole(self) -> bool:
        return bool((self.mask > 127).any())

    @property
    def next_undo_kind(self) -> str | None:
        """The kind of the step :meth:`undo` would undo (``"fill"``, ``"brush stroke"``,
        ...), or None."""
        return self._undo[-1].kind if self.can_undo else None

    @property
    def next_redo_kind(self) -> str | None:
        return self._redo[-1].kind if self.can_redo else None

    @property
    def fill_count(self) -> int:
        """Applied fills on the undo stack."""
        return sum(1 for e in self._undo if e.kind == "fill")

    def history_bytes(self) -> int:
        """Memory held by undo and redo patches (what undo costs to keep)."""
        return sum(p.nbytes for e in self._undo + self._redo for p in e.patches)

    def plane(self, name: str) -> np.ndarray:
        if name == "image":
            return self.image
        if name == Layer.MASK.value:
            return self.mask
        if name == Layer.SKETCH.value:
            return self.sketch
        raise ValueError(f"unknown plane {name!r}; expected image, mask or sketch")

    def sketch_in_hole(self) -> np.ndarray:
        """The sketch restricted to the hole (the only part that guides a fill), ``uint8
        (H, W)``; only the sketch's bounding box is compared with the mask."""
        out = np.zeros_like(self.sketch)
        box = bounding_rect(self.sketch)
        if not box.empty:
            rows, cols = box.slices
            out[rows, cols] = np.where(self.mask[rows, cols] > 127, self.sketch[rows, cols], 0)
        return out

    # ------------------------------------------------------------------- strokes
    def begin_stroke(self, layer: Layer | str, tool: Tool | str, radius: float) -> None:
        """Start a stroke on ``layer`` with ``tool`` and a brush ``radius`` in pixels."""
        if self._stroke is not None:
            raise RuntimeError("a stroke is already in progress; call end_stroke() first")
        layer, tool = Layer(layer), Tool(tool)
        if radius <= 0:
            raise ValueError(f"brush radius must be > 0 px, got {radius}")
        self._stroke = _StrokeRecorder(self.plane(layer.value), layer, tool, float(radius))

    def extend_stroke(self, points: Sequence[tuple[float, float]]) -> Rect:
        """Paint through ``points`` (``(x, y)`` image coordinates) continuing the stroke.

        Returns the dirty rectangle of this call (empty when nothing on the image changed).
        """
        stroke = self._stroke
        if stroke is None:
            raise RuntimeError("extend_stroke() called without begin_stroke()")
        value = 0 if stroke.tool is Tool.ERASER else HOLE
        dirty = EMPTY_RECT
        for point in points:
            point = (float(point[0]), float(point[1]))
            start = stroke.last_point if stroke.last_point is not None else point
            reach = int(np.ceil(stroke.radius)) + 2
            seg = Rect(int(min(start[0], point[0])) - reach, int(min(start[1], point[1])) - reach,
                       int(max(start[0], point[0])) + reach + 1, int(max(start[1], point[1])) + reach + 1)
            stroke.ensure_saved(seg.clip(self.width, self.height))
            dirty = dirty.union(stamp_segment(stroke.plane, start, point, stroke.radius, value))
            stroke.last_point = point
        stroke.dirty = stroke.dirty.union(dirty)
        if not dirty.empty:
            self.revision += 1
        return dirty

    def end_stroke(self) -> Rect:
        """Finish the stroke as one undo step; returns its whole dirty rect.

        A stroke that changed no pixel (e.g. erasing where nothing is painted) leaves no
        undo step.
        """
        stroke = self._stroke
        if stroke is None:
            raise RuntimeError("end_stroke() called without begin_stroke()")
        self._stroke = None
        rect = stroke.dirty
        if rect.empty:
            return EMPTY_RECT
        before = stroke.original(rect)
        after = stroke.plane[rect.slices].copy()
        if np.array_equal(before, after):
            return EMPTY_RECT
        self._push(Edit(f"{stroke.tool.value} stroke", [Patch(stroke.layer.value, rect, before, after)]))
        return rect

    @property
    def stroking(self) -> bool:
        return self._stroke is not None

    # ------------------------------------------------------------- whole-layer edits
    def clear_layer(self, layer: Layer | str) -> Rect:
        """Clear the mask or the sketch as one undo step; returns the dirty rect."""
        layer = Layer(layer)
        edit = self._clear_patches([layer.value], f"clear {layer.value}")
        if edit is None:
            return EMPTY_RECT
        self._push(edit)
        self._apply(edit, after=True)
        return edit.dirty

    def set_layer(self, layer: Layer | str, plane: np.ndarray, kind: str | None = None) -> Rect:
        """Replace a layer (an imported mask or sketch, or a grown / shrunk mask, ``uint8``
        ``(H, W)``, > 127 = on) as one undo step named ``kind`` (default ``import <layer>``);
        returns the dirty rect (empty, and no undo step, when nothing changes)."""
        layer = Layer(layer)
        if plane.dtype != np.uint8 or plane.shape != (self.height, self.width):
            raise ValueError(
                f"{layer.value} must be uint8 of size {self.width}x{self.height}, got "
                f"{plane.dtype} {plane.shape[1::-1] if plane.ndim >= 2 else plane.shape}"
            )
        new = np.where(plane > 127, HOLE, 0).astype(np.uint8)
        old = self.plane(layer.value)
        rect = bounding_rect(old != new)
        if rect.empty:
            return EMPTY_RECT
        edit = Edit(kind or f"import {layer.value}",
                    [Patch(layer.value, rect, old[rect.slices].copy(), new[rect.slices].copy())])
        self._push(edit)
        self._apply(edit, after=True)
        return rect

    def apply_fill(self, result: np.ndarray, changed: Rect | None = None,
                   hole: np.ndarray | None = None) -> Rect:
        """Commit a fill result (RGB ``uint8`` ``(H, W, 3)``) as one undo step.

        The image takes the result's pixels, the mask and sketch are cleared (the user paints
        a new hole on the result), earlier history stays. ``changed``: a rectangle outside of
        which the caller knows ``result`` equals the image (the fill's changed box), so only
        it is compared; default: the whole image. ``hole``: ``bool`` ``(H, W)``, the hole the
        fill was made for; when given, only mask and sketch pixels inside it are cleared, so
        strokes painted while the fill ran wait for the next fill. Returns the dirty rect.
        """
        if not isinstance(result, np.ndarray) or result.shape != self.image.shape \
                or result.dtype != np.uint8:
            raise ValueError(
                f"fill result must be uint8 {self.image.shape}, got "
                f"{getattr(result, 'dtype', type(result).__name__)} {getattr(result, 'shape', '')}"
            )
        if self._stroke is not None:
            raise RuntimeError("cannot apply a fill while a stroke is in progress")
        patches: list[Patch] = []
        box = self.full_rect if changed is None else changed.clip(self.width, self.height)
        rect = EMPTY_RECT
        if not box.empty:
            inner = bounding_rect(result[box.slices] != self.image[box.slices])
            if not inner.empty:
                rect = Rect(inner.x0 + box.x0, inner.y0 + box.y0, inner.x1 + box.x0, inner.y1 + box.y0)
        if not rect.empty:
            patches.append(Patch("image", rect, self.image[rect.slices].copy(), result[rect.slices].copy()))
        if hole is not None and hole.shape != self.mask.shape:
            raise ValueError(f"fill hole must be of shape {self.mask.shape}, got {hole.shape}")
        cleared = self._clear_patches([Layer.MASK.value, Layer.SKETCH.value], "fill", inside=hole)
        if cleared is not None:
            patches.extend(cleared.patches)
        if not patches:
            return EMPTY_RECT
        edit = Edit("fill", patches)
        self._push(edit)
        self._apply(edit, after=True)
        return edit.dirty

    def _clear_patches(self, names: Iterable[str], kind: str,
                       inside: np.ndarray | None = None) -> Edit | None:
        """Patches clearing the named planes (only where ``inside`` is True, when given)."""
        patches = []
        for name in names:
            plane = self.plane(name)
            rect = bounding_rect(plane if inside is None else (plane > 0) & inside)
            if not rect.empty:
                before = plane[rect.slices].copy()
                after = np.zeros_like(before) if inside is None else \
                    np.where(inside[rect.slices], 0, before).astype(before.dtype)
                patches.append(Patch(name, rect, before, after))
        return Edit(kind, patches) if patches else None

    # ------------------------------------------------------------------ undo / redo
    def undo(self) -> Rect:
        """Undo the last step; returns its dirty rect (empty when nothing to undo)."""
        if not self.can_undo:
            return EMPTY_RECT
        edit = self._undo.pop()
        self._redo.append(edit)
        self._apply(edit, after=False)
        return edit.dirty

    def redo(self) -> Rect:
        """Redo the last undone step; returns its dirty rect (empty when nothing to redo)."""
        if not self.can_redo:
            return EMPTY_RECT
        edit = self._redo.pop()
        self._undo.append(edit)
        self._apply(edit, after=True)
        return edit.dirty

    def _push(self, edit: Edit) -> None:
        self._undo.append(edit)
        self._redo.clear()
        self.revision += 1

    def _apply(self, edit: Edit, after: bool) -> None:
        for patch in edit.patches:
            self.plane(patch.plane)[patch.rect.slices] = patch.after if after else patch.before
        self.revision += 1

    def snapshot(self) -> Document:
        """An independent copy for a background writer: the planes are copied, the history's
        patches are shared (they are never changed in place)."""
        if self._stroke is not None:
            raise RuntimeError("cannot snapshot during a stroke")
        copy = Document.__new__(Document)
        copy.__dict__.update(self.__dict__)
        copy.image, copy.mask, copy.sketch = self.image.copy(), self.mask.copy(), self.sketch.copy()
        copy._undo, copy._redo = list(self._undo), list(self._redo)
        return copy

    # -------------------------------------------------------------- session files
    def _checked_block(self, plane: str, rect: Rect, block: np.ndarray) -> np.ndarray:
        """``block`` when it can stand for ``rect`` of ``plane`` (same dtype, the rect's
        shape, the rect inside the image); ValueError naming what does not fit otherwise."""
        target = self.plane(plane)
        if rect.empty or rect.clip(self.width, self.height) != rect:
            raise ValueError(f"{plane} rectangle {rect} lies outside the {self.width}x"
                             f"{self.height} image")
        expected = (rect.height, rect.width) + target.shape[2:]
        if block.dtype != target.dtype or block.shape != expected:
            raise ValueError(f"{plane} block is {block.dtype} {block.shape}, expected "
                             f"{target.dtype} {expected}")
        return block

    def to_session_bytes(self) -> bytes:
        """The session as compressed npz bytes: source path, image, mask, sketch and the
        applied fills on the undo stack (their patches, so fills stay undoable after a
        restore). Stroke history is not kept: the mask and sketch themselves are."""
        arrays: dict[str, np.ndarray] = {
            "version": np.array(SESSION_VERSION),
            "source_path": np.array(self.source_path or ""),
            "image": self.image,
            "mask": self.mask,
            "sketch": self.sketch,
        }
        fills = [e for e in self._undo if e.kind == "fill"]
        arrays["fill_count"] = np.array(len(fills))
        for i, edit in enumerate(fills):
            arrays[f"fill{i}_planes"] = np.array([p.plane for p in edit.patches])
            for j, patch in enumerate(edit.patches):
                r = patch.rect
                arrays[f"fill{i}_{j}_rect"] = np.array([r.x0, r.y0, r.x1, r.y1], dtype=np.int64)
                arrays[f"fill{i}_{j}_before"] = patch.before
                arrays[f"fill{i}_{j}_after"] = patch.after
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **arrays)
        return buffer.getvalue()

    def save_session(self, path: str | Path) -> None:
        """Write :meth:`to_session_bytes` to ``path`` atomically (temp file + replace)."""
        payload = self.to_session_bytes()
        atomic_write(path, lambda f: f.write(payload), make_parents=True)

    @classmethod
    def load_session(cls, path: str | Path) -> Document:
        """Rebuild a document from a session file; the applied fills are undoable again.

        Raises ValueError with the reason when the file is not a readable session.
        """
        try:
            with np.load(Path(path), allow_pickle=False) as data:
                if int(data["version"]) != SESSION_VERSION:
                    raise ValueError(f"session version {int(data['version'])} is not supported")
                source = str(data["source_path"]) or None
                doc = cls(data["image"], source)
                # Checked, not assigned blindly: numpy would broadcast a (1, W) plane or a
                # scalar into the whole layer without a word.
                for layer in (Layer.MASK, Layer.SKETCH):
                    doc.plane(layer.value)[:] = doc._checked_block(
                        layer.value, doc.full_rect, data[layer.value])
                for i in range(int(data["fill_count"])):
                    planes = [str(p) for p in data[f"fill{i}_planes"]]
                    patches = []
                    for j, plane in enumerate(planes):
                        x0, y0, x1, y1 = (int(v) for v in data[f"fill{i}_{j}_rect"])
                        rect = Rect(x0, y0, x1, y1)
                        patches.append(Patch(
                            plane, rect,
                            doc._checked_block(plane, rect, data[f"fill{i}_{j}_before"]),
                            doc._checked_block(plane, rect, data[f"fill{i}_{j}_after"]),
                        ))
                    doc._undo.append(Edit("fill", patches))
        # BadZipFile: a truncated or damaged npz (it is neither an OSError nor a ValueError).
        except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise ValueError(f"cannot read session {path}: {exc}") from exc
        # A restored session holds unsaved work by definition.
        doc._clean_top = _NEVER_SAVED
        doc.revision = 1
        return doc
