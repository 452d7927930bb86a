"""HD strategies, written once for every engine: which part of a photo an engine sees, at what
scale, and how its result goes back into the photo.

Strategies (``FillOptions.strategy``):

* ``crop`` (default): each 8-connected hole region's bounding box plus ``crop_margin`` px of
  context; boxes that overlap or touch are merged until none do; boxes are clamped at the
  image border. A box whose longer side exceeds ``engine.working_size`` is resized down
  (``INTER_AREA``), filled, and the result upscaled (``INTER_CUBIC``).
* ``resize``: the whole image, resized down so its longer side is at most ``resize_limit``.
* ``full``: the whole image at full resolution.

Each prepared crop is padded by reflection on its bottom/right to a multiple of
``engine.multiple``; the engine never sees the original pixels under the hole (they are zeroed,
so benchmarks stay honest). Only hole pixels go back, through the hole dilated by
:data:`SEAM_PX` px with a feathered edge: the blend weight is 1 inside the hole and ramps
linearly to 0 across the band, so every pixel farther than ``SEAM_PX`` from the hole is the
input's, bit for bit.

Deep engines' stages are harmonised before paste-back (``FillOptions.harmonise``, default on):
each region's restored fill is shifted by a smooth field that makes it meet the photo's
colours along the hole's edge (:mod:`harmonise`); the texture stage follows the harmonised fill.

Texture stage (``FillOptions.texture = "patchmatch"``, deep engines only): after the engine's
last stage, each region's fill, restored to full resolution, guides a PatchMatch synthesis of
the region's hole at the photo's own resolution (:func:`texture.guided_inpaint`), in a crop of
the hole plus ``crop_margin`` px; the result is pasted back like any stage and streamed as a
last stage named ``texture``. A 12 MP photo thus gets photo-resolution texture although the
model filled its crop at the working size.

Progress and cancel: a fill's work is split into units, one per (stage, region), weighted by
their expected cost (:data:`TEXTURE_COST`); the optional progress callback gets the fraction
of all units done at the start of each unit, and inside units whose work reports (PatchMatch,
guided or not, per pyramid level and EM iteration); the cancel token is checked before each
unit and, in those, before every EM iteration.

Cost model: the engine's work is the sum of its crops' work. Around it, the ``crop`` strategy's
work is proportional to the hole, not the photo: one GIL-free OpenCV pass finds the bounding
box of the mask (:class:`HoleWindow`); thresholding, connected components, seam weights and
compositing all run inside that box or inside each region's band around its hole. The only
full-size steps left are that pass and one output copy per stage (``memcpy``, which numpy runs
without the GIL), so a fill in a worker thread never stalls a UI thread for long.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator

import cv2
import numpy as np

from . import harmonise, texture
from .base import TEXTURE_STAGE, CoreMonitor
from .request import (
    CancelToken, FillProgress, FillRequest, FillStage, InvalidRequest, ProgressCallback, Stopwatch,
)

if TYPE_CHECKING:
    from .base import AttentionSource, CoreStage, Engine

# Width in px of the feathered band around the hole through which fills are blended in.
SEAM_PX = 3
# Expected cost of the texture pass per full-resolution hole pixel, relative to an engine stage
# per working-size crop pixel: weights the progress fraction so it tracks time. Measured with
# DeepFill v2 on the CPU (eval pairs at their own size: 5.5 s for both stages at <= 512 px,
# 9.7 s of texture for ~118k hole px); on a GPU the deep stages are relatively cheaper.
TEXTURE_COST = 8.0
# Inner progress is capped below 1 so that exactly one report says 1.0: the end of the fill.
_ALMOST_DONE = 0.999


@dataclass(frozen=True)
class Region:
    """One part of the image an engine fills: rows ``y0:y1``, columns ``x0:x1`` (full-image
    coordinates, end exclusive), handed to the engine scaled by ``scale`` (<= 1)."""

    y0: int
    x0: int
    y1: int
    x1: int
    scale: float = 1.0

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def scaled_size(self) -> tuple[int, int]:
        """``(height, width)`` of the crop the engine sees, before padding."""
        if self.scale >= 1.0:
            return self.height, self.width
        return (max(1, round(self.height * self.scale)), max(1, round(self.width * self.scale)))

    def overlaps_or_touches(self, other: Region) -> bool:
        return (
            self.y0 <= other.y1 and other.y0 <= self.y1
            and self.x0 <= other.x1 and other.x0 <= self.x1
        )

    def union(self, other: Region) -> Region:
        return Region(
            min(self.y0, other.y0), min(self.x0, other.x0),
            max(self.y1, other.y1), max(self.x1, other.x1),
        )


@dataclass(frozen=True)
class HoleWindow:
    """The request's boolean hole, kept only inside the bounding box of the hole pixels.

    hole: ``bool (y1 - y0, x1 - x0)``, True = fill; rows ``y0:y1``, columns ``x0:x1`` of an
    image of ``image_shape`` ``(H, W)``. An empty hole has a ``(0, 0)`` window.
    """

    hole: np.ndarray
    y0: int
    x0: int
    image_shape: tuple[int, int]

    @classmethod
    def of(cls, mask: np.ndarray) -> HoleWindow:
        """The window of a ``uint8 (H, W)`` mask (hole where ``> 127``).

        ``cv2.boundingRect`` of the non-zero pixels is one pass that releases the GIL; the
        threshold then runs inside that box only.
        """
        x, y, w, h = cv2.boundingRect(np.ascontiguousarray(mask))
        hole = mask[y:y + h, x:x + w] > 127
        # Faint mask values (1..127) widen the first box without being holes: tighten it.
        tx, ty, tw, th = cv2.boundingRect(hole.view(np.uint8))
        return cls(hole[ty:ty + th, tx:tx + tw], y + ty, x + tx, mask.shape[:2])

    @property
    def y1(self) -> int:
        return self.y0 + self.hole.shape[0]

    @property
    def x1(self) -> int:
        return self.x0 + self.hole.shape[1]

    @property
    def empty(self) -> bool:
        return self.hole.size == 0

    def crop(self, region: Region) -> np.ndarray:
        """``bool (region.height, region.width)``: the hole inside ``region``."""
        out = np.zeros((region.height, region.width), dtype=np.bool_)
        y0, x0 = max(self.y0, region.y0), max(self.x0, region.x0)
        y1, x1 = min(self.y1, region.y1), min(self.x1, region.x1)
        if y1 > y0 and x1 > x0:
            out[y0 - region.y0:y1 - region.y0, x0 - region.x0:x1 - region.x0] = \
                self.hole[y0 - self.y0:y1 - self.y0, x0 - self.x0:x1 - self.x0]
        return out


def _downscale_for(longer_side: int, limit: int | None) -> float:
    if limit is None or longer_side <= limit:
        return 1.0
    return limit / longer_side


def merge_boxes(boxes: list[Region]) -> list[Region]:
    """Merge boxes that overlap or touch until none do; result sorted top-left first."""
    merged = list(boxes)
    changed = True
    while changed:
        changed = False
        out: list[Region] = []
        for box in merged:
            for i, kept in enumerate(out):
                if kept.overlaps_or_touches(box):
                    out[i] = kept.union(box)
                    changed = True
                    break
            else:
                out.append(box)
        merged = out
    return sorted(merged, key=lambda r: (r.y0, r.x0))


def crop_regions(hole: np.ndarray, margin: int, working_size: int | None,
                 origin: tuple[int, int] = (0, 0), image_shape: tuple[int, int] | None = None) -> list[Region]:
    """The ``crop`` strategy's regions for a boolean hole.

    hole: ``bool (h, w)``, the part of the image whose top-left pixel is ``origin``
    ``(y, x)``; ``image_shape`` ``(H, W)`` (default: ``hole.shape``) clamps the boxes.
    Each 8-connected component's bounding box grows by ``max(margin, SEAM_PX)`` (the seam band
    must lie inside the crop), is clamped to the image and merged with any box it overlaps or
    touches; a merged box longer than ``working_size`` gets a downscale factor. Regions are in
    full-image coordinates.
    """
    h, w = image_shape if image_shape is not None else hole.shape
    oy, ox = origin
    grow = max(margin, SEAM_PX)
    count, _, stats, _ = cv2.connectedComponentsWithStats(
        hole.view(np.uint8), connectivity=8, ltype=cv2.CV_32S
    )
    boxes = []
    for label in range(1, count):  # label 0 is the background
        x, y, bw, bh = (int(v) for v in stats[label, :4])
        x, y = x + ox, y + oy
        boxes.append(
            Region(max(0, y - grow), max(0, x - grow), min(h, y + bh + grow), min(w, x + bw + grow))
        )
    regions = merge_boxes(boxes)
    return [
        Region(r.y0, r.x0, r.y1, r.x1, _downscale_for(max(r.height, r.width), working_size))
        for r in regions
    ]


def plan_regions(window: HoleWindow, request: FillRequest, engine: Engine) -> list[Region]:
    """Regions for the request's strategy (``window``: the request's hole)."""
    options = request.options
    h, w = window.image_shape
    if options.strategy == "crop":
        return crop_regions(window.hole, options.crop_margin, engine.working_size,
                            (window.y0, window.x0), window.image_shape)
    if options.strategy == "resize":
        return [Region(0, 0, h, w, _downscale_for(max(h, w), options.resize_limit))]
    return [Region(0, 0, h, w)]


def pad_to_multiple(array: np.ndarray, multiple: int) -> np.ndarray:
    """Pad a ``uint8``/``bool`` ``(h, w)`` or ``(h, w, C)`` array on its bottom/right by
    reflection (``BORDER_REFLECT_101``, repeated for pads longer than the array) so that
    height and width are multiples of ``multiple``."""
    h, w = array.shape[:2]
    pad_h, pad_w = (-h) % multiple, (-w) % multiple
    if pad_h == 0 and pad_w == 0:
        return array
    as_uint8 = array.view(np.uint8) if array.dtype == np.bool_ else array
    padded = cv2.copyMakeBorder(as_uint8, 0, pad_h, 0, pad_w, cv2.BORDER_REFLECT_101)
    if padded.ndim < array.ndim:  # OpenCV drops a trailing channel axis of length 1
        padded = padded[..., None]
    return padded.astype(np.bool_) if array.dtype == np.bool_ else padded


def seam_weight(hole: np.ndarray) -> np.ndarray:
    """Blend weight ``float32 (h, w)`` for a boolean hole: 1 in the hole, ``1 - d/(SEAM_PX+1)``
    at L2 distance ``d <= SEAM_PX`` px from it, 0 beyond."""
    distance = cv2.distanceTransform((~hole).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    weight = np.clip(1.0 - distance / (SEAM_PX + 1), 0.0, 1.0).astype(np.float32)
    weight[distance > SEAM_PX] = 0.0
    return weight


@dataclass
class PreparedCrop:
    """What the engine gets for one region and what paste-back needs.

    band: the part of the region that paste-back may change (the hole's bounding box grown
        by the seam), full-image coordinates, scale 1; ``weight`` covers exactly this box.
    """

    region: Region
    image: np.ndarray  # uint8 (ph, pw, 3), padded, hole pixels zeroed
    hole: np.ndarray  # bool (ph, pw)
    sketch: np.ndarray | None  # bool (ph, pw), inside the hole only
    band: Region
    weight: np.ndarray  # float32 (band.height, band.width), the feathered paste-back weight

    def __post_init__(self) -> None:
        # Split once, used by every stage: weight 1 is a plain copy, only the thin seam ring
        # (0 < weight < 1) needs per-pixel blending.
        self.inner = (self.weight >= 1.0)[..., None]
        self.ring = np.nonzero((self.weight > 0) & (self.weight < 1.0))
        self.ring_weight = self.weight[self.ring][:, None]


def seam_band(crop_hole: np.ndarray, region: Region) -> Region:
    """The box of ``region`` (full-image coordinates) that holds its hole ``crop_hole``
    (``bool (region.height, region.width)``) and the seam band around it."""
    x, y, w, h = cv2.boundingRect(crop_hole.view(np.uint8))
    reach = SEAM_PX + 1
    return Region(
        region.y0 + max(0, y - reach), region.x0 + max(0, x - reach),
        region.y0 + min(region.height, y + h + reach), region.x0 + min(region.width, x + w + reach),
    )


def prepare_crop(request: FillRequest, window: HoleWindow, region: Region, multiple: int) -> PreparedCrop:
    """Cut, scale, erase and pad one region of the request for ``Engine.fill_core``."""
    rows, cols = slice(region.y0, region.y1), slice(region.x0, region.x1)
    image = request.image[rows, cols]
    crop_hole = window.crop(region)
    sketch = None if request.sketch is None else (request.sketch[rows, cols] > 127) & crop_hole
    band = seam_band(crop_hole, region)
    weight = seam_weight(crop_hole[band.y0 - region.y0:band.y1 - region.y0,
                                   band.x0 - region.x0:band.x1 - region.x0])
    if region.scale < 1.0:
        sh, sw = region.scaled_size
        image = cv2.resize(image, (sw, sh), interpolation=cv2.INTER_AREA)
        # Any hole coverage makes a scaled pixel a hole: the scaled hole covers the original.
        crop_hole = cv2.resize(crop_hole.astype(np.float32), (sw, sh), interpolation=cv2.INTER_AREA) > 0
        if sketch is not None:
            sketch = cv2.resize(sketch.astype(np.float32), (sw, sh), interpolation=cv2.INTER_AREA) > 0
            sketch &= crop_hole
    else:
        image = image.copy()
    image[crop_hole] = 0
    return PreparedCrop(
        region=region,
        image=np.ascontiguousarray(pad_to_multiple(image, multiple)),
        hole=np.ascontiguousarray(pad_to_multiple(crop_hole, multiple)),
        sketch=None if sketch is None else np.ascontiguousarray(pad_to_multiple(sketch, multiple)),
        band=band,
        weight=weight,
    )


def restore_crop(core_image: np.ndarray, region: Region) -> np.ndarray:
    """Undo padding and scaling of an engine's output: ``uint8 (region.height, region.width, 3)``."""
    sh, sw = region.scaled_size
    # ndim first: a 1-D or 2-D result must get this message, not an IndexError on shape[1].
    if (
        core_image.ndim != 3 or core_image.shape[2] != 3 or core_image.dtype != np.uint8
        or core_image.shape[0] < sh or core_image.shape[1] < sw
    ):
        raise RuntimeError(
            f"engine returned a {core_image.dtype} image of shape {core_image.shape}, expected "
            f"uint8 of at least ({sh}, {sw}, 3)"
        )
    image = core_image[:sh, :sw]
    if region.scale < 1.0:
        image = cv2.resize(image, (region.width, region.height), interpolation=cv2.INTER_CUBIC)
    return image


def paste_back(canvas: np.ndarray, filled: np.ndarray, crop: PreparedCrop) -> None:
    """Blend ``filled`` (the region's restored fill, ``uint8 (region.height, region.width,
    3)``) into ``canvas`` in place inside the crop's band with its feathered weight; pixels
    of weight 0 are not touched."""
    r, b = crop.region, crop.band
    target = canvas[b.y0:b.y1, b.x0:b.x1]
    source = filled[b.y0 - r.y0:b.y1 - r.y0, b.x0 - r.x0:b.x1 - r.x0]
    w = crop.ring_weight
    blended = w * source[crop.ring].astype(np.float32) + (1.0 - w) * target[crop.ring].astype(np.float32)
    np.copyto(target, source, where=crop.inner)
    target[crop.ring] = np.clip(np.rint(blended), 0, 255).astype(np.uint8)


class CropAttention:
    """An :class:`AttentionSource` in full-image coordinates built from the crop-coordinate
    sources of one stage's regions."""

    def __init__(self, image_shape: tuple[int, int], parts: list[tuple[Region, AttentionSource]]):
        self._shape = image_shape
        self._parts = parts

    def heatmap(self, y: int, x: int) -> np.ndarray | None:
        """``float32 (H, W)`` map over the full image (sums to 1) or None outside any fill."""
        for region, source in self._parts:
            if not (region.y0 <= y < region.y1 and region.x0 <= x < region.x1):
                continue
            sh, sw = region.scaled_size
            # Pixel centres map through the scale; padding is bottom/right so it shifts nothing.
            cy = min(sh - 1, max(0, int((y - region.y0 + 0.5) * sh / region.height)))
            cx = min(sw - 1, max(0, int((x - region.x0 + 0.5) * sw / region.width)))
            local = source.heatmap(cy, cx)
            if local is None:
                return None
            local = np.asarray(local, dtype=np.float32)[:sh, :sw]
            if region.scale < 1.0:
                local = cv2.resize(local, (region.width, region.height), interpolation=cv2.INTER_LINEAR)
                local = np.maximum(local, 0.0)
            total = float(local.sum())
            full = np.zeros(self._shape, dtype=np.float32)  # calloc: untouched pages cost nothing
            full[region.y0:region.y1, region.x0:region.x1] = local / total if total > 0 else local
            return full
        return None


class _ProgressTracker:
    """Maps per-unit progress onto the whole fill's fraction for a :data:`ProgressCallback`.

    weights: expected cost of each unit, in the order the units run.
    """

    def __init__(self, callback: ProgressCallback | None, clock: Stopwatch, request_id: int,
                 weights: list[float]):
        self._callback = callback
        self._clock = clock
        self._request_id = request_id
        self._weights = weights
        self._total = max(sum(weights), 1e-9)
        self._unit = -1
        self._before = 0.0  # weight of the units finished before the current one
        self._stage = ""
        self._label = ""
        self._last = 0.0

    def _emit(self, fraction: float, text: str) -> None:
        if self._callback is None:
            return
        self._last = max(self._last, fraction)
        self._callback(FillProgress(self._stage, self._last, text, self._clock(), self._request_id))

    def begin(self, stage: str, label: str) -> None:
        """The next unit starts: ``stage`` name, ``label`` e.g. ``"region 2/3"``."""
        if self._unit >= 0:
            self._before += self._weights[self._unit]
        self._unit += 1
        self._stage, self._label = stage, label
        self._emit(min(self._before / self._total, _ALMOST_DONE), f"{stage}: {label}")

    def inside(self, fraction: float, text: str) -> None:
        """Progress ``fraction`` in [0, 1] of the current unit, with the core's own text."""
        done = self._before + fraction * self._weights[self._unit]
        self._emit(min(done / self._total, _ALMOST_DONE), f"{self._stage}: {text}")

    def finish(self, stage: str) -> None:
        self._stage = stage
        self._emit(1.0, "done")


def harmonise_region(request: FillRequest, window: HoleWindow, region: Region,
                     restored: np.ndarray) -> np.ndarray:
    """A deep engine's restored fill of ``region`` (``uint8 (region.height, region.width, 3)``)
    with its hole shifted to meet the photo's colours along the hole's edge
    (:func:`harmonise.harmonise_fill`; the photo's known pixels of the region are read)."""
    photo = request.image[region.y0:region.y1, region.x0:region.x1]
    return harmonise.harmonise_fill(restored, photo, window.crop(region))


def texture_pass(request: FillRequest, window: HoleWindow, region: Region, guide: np.ndarray,
                 monitor: CoreMonitor) -> np.ndarray:
    """The texture stage for one region: ``uint8 (region.height, region.width, 3)``.

    guide: the engine's restored fill of the region (same shape). Each hole component of the
    region (plus ``crop_margin`` px, merged as the ``crop`` strategy does) is re-synthesised at
    full resolution by :func:`texture.guided_inpaint`; the image's hole pixels are zeroed
    first, so nothing under the hole is read.
    """
    region_hole = window.crop(region)
    out = request.image[region.y0:region.y1, region.x0:region.x1].copy()
    out[region_hole] = 0
    parts = crop_regions(region_hole, request.options.crop_margin, None)
    for k, part in enumerate(parts):
        rows, cols = slice(part.y0, part.y1), slice(part.x0, part.x1)
        out[rows, cols] = texture.guided_inpaint(
            out[rows, cols], region_hole[rows, cols], guide[rows, cols],
            seed=request.options.seed, guide_scale=region.scale, monitor=_ShareOf(monitor, k, len(parts)),
        )
    return out


class _ShareOf:
    """A monitor for the ``k``-th of ``n`` equal shares of another monitor's work."""

    def __init__(self, monitor: CoreMonitor, k: int, n: int):
        self._monitor, self._base, self._share = monitor, k / n, 1.0 / n

    def check(self) -> None:
        self._monitor.check()

    def report(self, fraction: float, text: str) -> None:
        self._monitor.report(self._base + fraction * self._share, text)


# Why a mask that covers every pixel is refused (the same for every engine, CLI and app).
WHOLE_IMAGE_HOLE = ("the mask covers the whole image: there are no known pixels to fill it "
                    "from (leave part of the photo unmasked)")


def run_fill(engine: Engine, request: FillRequest, cancel: CancelToken | None = None,
             progress: ProgressCallback | None = None) -> Iterator[FillStage]:
    """Fill ``request`` with ``engine`` through the request's HD strategy.

    Yields one composited :class:`FillStage` per name in ``engine.stages_for(options)`` (all
    regions' "coarse" before any region's "refined", then "texture" when asked), or a single
    "final" copy of the input for an empty mask. Each stage's ``extras["changed"]`` is
    ``(rows, cols)``, a pair of slices outside of which the stage's image is the input's, bit
    for bit (empty slices for an empty mask), so a receiver redraws or compares only that box.
    Raises :class:`FillCancelled` before each region's stage when ``cancel`` is set (and inside
    PatchMatch, guided or not, before every EM iteration). ``progress``: see ``request.py``.
    Raises :class:`InvalidRequest` (:data:`WHOLE_IMAGE_HOLE`) when the mask covers every pixel.
    """
    cancel = cancel or CancelToken()
    clock = Stopwatch()
    cancel.raise_if_cancelled()
    window = HoleWindow.of(request.mask)
    if window.empty:
        if progress is not None:
            progress(FillProgress("final", 1.0, "done", clock(), request.request_id))
        yield FillStage("final", request.image.copy(), clock(), request.request_id, final=True,
                        extras={"changed": (slice(0, 0), slice(0, 0))})
        return
    if window.hole.shape == window.image_shape and window.hole.all():
        # Every engine fills from known pixels; with none, each would invent a flat colour.
        raise InvalidRequest(WHOLE_IMAGE_HOLE)

    regions = plan_regions(window, request, engine)
    stage_count = len(engine.stage_names)
    with_texture = TEXTURE_STAGE in engine.stages_for(request.options)[stage_count:]
    harmonised = engine.kind == "deep" and request.options.harmonise
    total_stages = stage_count + int(with_texture)
    weights = [float(r.scaled_size[0] * r.scaled_size[1]) for r in regions] * stage_count
    if with_texture:
        weights += [TEXTURE_COST * float(window.crop(r).sum()) for r in regions]
    tracker = _ProgressTracker(progress, clock, request.request_id, weights)
    monitor = CoreMonitor(cancel, tracker.inside)
    crops: list[PreparedCrop] = []
    runs: list[Iterator[CoreStage]] = []
    try:
        for region in regions:
            cancel.raise_if_cancelled()
            crop = prepare_crop(request, window, region, engine.multiple)
            crops.append(crop)
            args = (crop.image, crop.hole, crop.sketch, request.options)
            # Only engines that declare it take a monitor: fill_core's signature stays as it was.
            runs.append(iter(engine.fill_core(*args, monitor=monitor) if engine.reports_progress
                             else engine.fill_core(*args)))
        changed = crops[0].band
        for crop in crops[1:]:
            changed = changed.union(crop.band)
        changed_slices = (slice(changed.y0, changed.y1), slice(changed.x0, changed.x1))
        guides: list[np.ndarray] = []  # each region's last engine stage, restored (texture guides)
        last_extras: dict = {}
        for index in range(stage_count):
            # Each stage is its own full-size array (a receiver may keep an earlier one);
            # the copy is a memcpy numpy runs without the GIL.
            canvas = request.image.copy()
            attention: list[tuple[Region, AttentionSource]] = []
            extras: dict = {"changed": changed_slices}
            name = engine.stage_names[index]
            for k, (crop, run) in enumerate(zip(crops, runs)):
                cancel.raise_if_cancelled()
                tracker.begin(name, f"region {k + 1}/{len(crops)}")
                core = next(run, None)
                if core is None:
                    raise RuntimeError(
                        f"engine {engine.name!r} yielded {index} stages, its stage_names "
                        f"promise {stage_count}"
                    )
                name = core.name
                restored = restore_crop(core.image, crop.region)
                if harmonised:
                    restored = harmonise_region(request, window, crop.region, restored)
                paste_back(canvas, restored, crop)
                if with_texture and index == stage_count - 1:
                    guides.append(restored)
                for key, value in core.extras.items():
                    if key == "attention":
                        attention.append((crop.region, value))
                    else:
                        extras[key] = value
            if attention:
                extras["attention"] = CropAttention(window.image_shape, attention)
            last_extras = extras
            final = index == total_stages - 1
            if final:
                tracker.finish(name)
            yield FillStage(name, canvas, clock(), request.request_id, final=final, extras=extras)
        if any(next(run, None) is not None for run in runs):
            raise RuntimeError(
                f"engine {engine.name!r} yielded more stages than its stage_names {engine.stage_names}"
            )
        if with_texture:
            canvas = request.image.copy()
            for k, (crop, guide) in enumerate(zip(crops, guides)):
                cancel.raise_if_cancelled()
                tracker.begin(TEXTURE_STAGE, f"region {k + 1}/{len(crops)}")
                paste_back(canvas, texture_pass(request, window, crop.region, guide, monitor), crop)
            tracker.finish(TEXTURE_STAGE)
            # The model's extras (device, note, attention) still describe where the fill came from.
            yield FillStage(TEXTURE_STAGE, canvas, clock(), request.request_id, final=True,
                            extras=dict(last_extras))
    finally:
        for run in runs:
            close = getattr(run, "close", None)
            if close is not None:
                close()
