"""Multi-scale PatchMatch inpainting (after Wexler et al. 2007 and Barnes et al. 2009), our own.

Outline: build an image pyramid of the known pixels (masked averaging, so the hole never bleeds
into its context; a coarse pixel is a hole only when none of its fine pixels is known) until
the hole is at most :data:`COARSEST_HOLE_DEPTH` px deep or the image :data:`COARSEST_SIDE` px
small; fill the coarsest hole by onion-peel (outer layers first, each pixel copied from the
best-matching source patch); then, coarse to fine, alternate

1. a nearest-neighbour field (NNF) search: for every patch overlapping the hole, find a
   source patch lying entirely in known pixels (random initialisation, propagation from the
   left/upper or right/lower neighbour, random search in shrinking windows), and
2. patch voting: every hole pixel becomes the weighted mean of the source pixels the
   overlapping patches propose; a patch's weight falls with its match distance and with its
   distance from the hole border (outer patches are more trustworthy).

Between scales the NNF is upsampled (x2 plus the sub-pixel offset) and voted into the finer
image, which keeps coarse-level structure without blurring it through image interpolation.
After the last vote a border correction shifts the hole's colours by how far the voted patches
miss the known pixels around it (carried inward by fast marching, faded with depth).

Kernels are numba ``@njit(cache=True)``; when the package folder is read-only numba caches
under its user-wide folder, and if it cannot cache at all the kernels compile per process.
Randomness comes from numba's generator seeded per kernel call from ``seed``, so the same
input and seed give the same fill. First call in a process without a cache compiles the
kernels (a few seconds, see :func:`warm_up`).

Arrays: ``image`` float32 ``(H, W, 3)`` in [0, 255]; ``hole`` bool ``(H, W)``; NNF int32
``(H, W)`` planes holding source patch centres; distances float32 mean squared error per
channel value.
"""

from __future__ import annotations

import warnings
from typing import NamedTuple, Protocol

import cv2
import numpy as np

PATCH_RADIUS = 3  # 7x7 patches
COARSEST_SIDE = 16  # never build a level whose shorter side is below this
# Stop coarsening once the hole is at most this deep (px to the nearest known pixel): thin
# strokes then keep two or three levels, wide holes get more.
COARSEST_HOLE_DEPTH = 16.0
ONION_PAIR_BUDGET = 3_000_000  # onion-peel (hole pixel, source) comparisons at most
SIMILARITY_PERCENTILE = 75.0  # voting weight exp(-d / 2 sigma^2), sigma^2 = this percentile of d
BORDER_CORRECTION_DEPTH = 15.0  # px over which the border colour correction fades
EM_COARSE = 6  # EM iterations at the coarsest level, one fewer per finer level ...
EM_FINE = 2  # ... but never fewer than this
# Voting weight base ** -distance_into_the_hole (Wexler's 1.3 trusted deep patches more).
BORDER_CONFIDENCE_BASE = 2.0


def _njit(fn):
    """``numba.njit(cache=True)``, without the cache where numba finds nowhere to write it."""
    from numba import njit

    try:
        return njit(cache=True, nogil=True)(fn)
    except RuntimeError:  # "cannot cache function ...: no locator available"
        warnings.warn("numba cannot cache PatchMatch kernels here; compiling them per process")
        return njit(nogil=True)(fn)


@_njit
def _cross_distance(tgt_img, src_img, ty, tx, sy, sx, r, limit):
    """Mean squared difference between the patch of ``tgt_img`` at (ty, tx) (clipped to the
    image) and the patch of ``src_img`` at (sy, sx) (always inside); stops early above
    ``limit`` (the value returned is then above ``limit`` too)."""
    h, w = tgt_img.shape[0], tgt_img.shape[1]
    y0, y1 = max(ty - r, 0), min(ty + r, h - 1)
    x0, x1 = max(tx - r, 0), min(tx + r, w - 1)
    count = (y1 - y0 + 1) * (x1 - x0 + 1) * 3
    budget = limit * count
    total = 0.0
    for y in range(y0, y1 + 1):
        syy = sy + y - ty
        for x in range(x0, x1 + 1):
            sxx = sx + x - tx
            for c in range(3):
                d = tgt_img[y, x, c] - src_img[syy, sxx, c]
                total += d * d
        if total > budget:
            return total / count
    return total / count


@_njit
def _patch_distance(img, ty, tx, sy, sx, r, limit):
    """:func:`_cross_distance` of ``img`` with itself: target patch vs source patch."""
    return _cross_distance(img, img, ty, tx, sy, sx, r, limit)


@_njit
def _match_distance(img, guide, guide_src, guide_weight, ty, tx, sy, sx, r, limit):
    """The search's distance: the patch distance on the current estimate plus, when
    ``guide_weight > 0``, ``guide_weight`` times the distance of the guide's patch at the
    target's place (``guide``) to the source's patch in ``guide_src`` (both float32
    ``(H, W, 3)`` on the level's grid; ``guide_src`` is the image seen as the guide sees it,
    e.g. low-passed like a blurred guide, so that texture is not penalised for being sharp)."""
    d = _patch_distance(img, ty, tx, sy, sx, r, limit)
    if guide_weight <= 0.0 or d >= limit:
        return d
    return d + guide_weight * _cross_distance(guide, guide_src, ty, tx, sy, sx, r, (limit - d) / guide_weight)


@_njit
def _search(img, guide, guide_src, guide_weight, src_ok, src_y, src_x, tgt_y, tgt_x, is_tgt,
            nnf_y, nnf_x, nnf_d, r, iters, seed):
    """Improve the NNF of every target centre in place (``iters`` PatchMatch sweeps) under
    :func:`_match_distance` (``guide_weight`` 0: plain PatchMatch, guides unused)."""
    np.random.seed(seed)
    h, w = img.shape[0], img.shape[1]
    n = tgt_y.shape[0]
    inf = np.float32(1e30)
    for i in range(n):
        y, x = tgt_y[i], tgt_x[i]
        nnf_d[y, x] = _match_distance(img, guide, guide_src, guide_weight, y, x, nnf_y[y, x], nnf_x[y, x], r, inf)
    for it in range(iters):
        step = 1 if it % 2 == 0 else -1
        for k in range(n):
            i = k if step == 1 else n - 1 - k
            y, x = tgt_y[i], tgt_x[i]
            best_y, best_x, best_d = nnf_y[y, x], nnf_x[y, x], nnf_d[y, x]
            # Propagation: the already-visited neighbour's match, shifted by one pixel.
            for dy, dx in ((-step, 0), (0, -step)):
                ny, nx = y + dy, x + dx
                if 0 <= ny < h and 0 <= nx < w and is_tgt[ny, nx]:
                    cy, cx = nnf_y[ny, nx] - dy, nnf_x[ny, nx] - dx
                    if 0 <= cy < h and 0 <= cx < w and src_ok[cy, cx]:
                        d = _match_distance(img, guide, guide_src, guide_weight, y, x, cy, cx, r, best_d)
                        if d < best_d:
                            best_y, best_x, best_d = cy, cx, d
            # Random search around the best match in windows halving from the image size.
            radius = max(h, w)
            while radius >= 1:
                cy = best_y + np.random.randint(-radius, radius + 1)
                cx = best_x + np.random.randint(-radius, radius + 1)
                if 0 <= cy < h and 0 <= cx < w and src_ok[cy, cx]:
                    d = _match_distance(img, guide, guide_src, guide_weight, y, x, cy, cx, r, best_d)
                    if d < best_d:
                        best_y, best_x, best_d = cy, cx, d
                radius //= 2
            # One uniform draw keeps a target from being stuck in a poor basin.
            j = np.random.randint(0, src_y.shape[0])
            d = _match_distance(img, guide, guide_src, guide_weight, y, x, src_y[j], src_x[j], r, best_d)
            if d < best_d:
                best_y, best_x, best_d = src_y[j], src_x[j], d
            nnf_y[y, x], nnf_x[y, x], nnf_d[y, x] = best_y, best_x, best_d


@_njit
def _distances(img, guide, guide_src, guide_weight, tgt_y, tgt_x, nnf_y, nnf_x, nnf_d, r):
    """Recompute the match distance of every target for the current image estimate."""
    for i in range(tgt_y.shape[0]):
        y, x = tgt_y[i], tgt_x[i]
        nnf_d[y, x] = _match_distance(img, guide, guide_src, guide_weight, y, x, nnf_y[y, x], nnf_x[y, x], r,
                                      np.float32(1e30))


@_njit
def _vote(img, hole, tgt_y, tgt_x, nnf_y, nnf_x, nnf_d, confidence, sigma2, r, residual):
    """Replace every hole pixel of ``img`` by the weighted mean of the source pixels the
    patches covering it propose. Known pixels those patches cover get, in ``residual``
    (float32 ``(H, W, 3)``, zero elsewhere), their value minus that mean: how far the
    copied patches miss the known colours around the hole."""
    h, w = img.shape[0], img.shape[1]
    acc = np.zeros((h, w, 3), dtype=np.float32)
    weight_sum = np.zeros((h, w), dtype=np.float32)
    for i in range(tgt_y.shape[0]):
        ty, tx = tgt_y[i], tgt_x[i]
        sy, sx = nnf_y[ty, tx], nnf_x[ty, tx]
        wgt = confidence[ty, tx] * np.exp(-nnf_d[ty, tx] / (2.0 * sigma2))
        for dy in range(-r, r + 1):
            y = ty + dy
            if y < 0 or y >= h:
                continue
            for dx in range(-r, r + 1):
                x = tx + dx
                if x < 0 or x >= w:
                    continue
                for c in range(3):
                    acc[y, x, c] += wgt * img[sy + dy, sx + dx, c]
                weight_sum[y, x] += wgt
    for y in range(h):
        for x in range(w):
            if weight_sum[y, x] <= 1e-12:
                continue
            for c in range(3):
                mean = acc[y, x, c] / weight_sum[y, x]
                if hole[y, x]:
                    img[y, x, c] = mean
                else:
                    residual[y, x, c] = img[y, x, c] - mean


@_njit
def _onion_peel(img, hole, src_y, src_x, order_y, order_x, r, max_sources, seed):
    """Fill ``hole`` of ``img`` in place one pixel at a time in ``order`` (outer layers
    first): each pixel takes the centre of the source patch that best matches its already
    known or filled neighbours (exhaustive over at most ``max_sources`` sources, a seeded
    random subset when there are more)."""
    np.random.seed(seed)
    h, w = img.shape[0], img.shape[1]
    filled = ~hole
    n_src = src_y.shape[0]
    for i in range(order_y.shape[0]):
        y, x = order_y[i], order_x[i]
        best_d, best_j = np.float32(1e30), 0
        for k in range(min(n_src, max_sources)):
            j = k if n_src <= max_sources else np.random.randint(0, n_src)
            total, count = 0.0, 0
            for dy in range(-r, r + 1):
                yy = y + dy
                if yy < 0 or yy >= h:
                    continue
                for dx in range(-r, r + 1):
                    xx = x + dx
                    if xx < 0 or xx >= w or not filled[yy, xx]:
                        continue
                    for c in range(3):
                        d = img[yy, xx, c] - img[src_y[j] + dy, src_x[j] + dx, c]
                        total += d * d
                    count += 3
            if count > 0 and total / count < best_d:
                best_d, best_j = total / count, j
        for c in range(3):
            img[y, x, c] = img[src_y[best_j], src_x[best_j], c]
        filled[y, x] = True


@_njit
def _random_init(tgt_y, tgt_x, src_y, src_x, nnf_y, nnf_x, seed):
    np.random.seed(seed)
    for i in range(tgt_y.shape[0]):
        j = np.random.randint(0, src_y.shape[0])
        nnf_y[tgt_y[i], tgt_x[i]] = src_y[j]
        nnf_x[tgt_y[i], tgt_x[i]] = src_x[j]


@_njit
def _upsample_nnf(coarse_y, coarse_x, tgt_y, tgt_x, src_ok, src_y, src_x, nnf_y, nnf_x, seed):
    """Fine NNF from the coarse one: twice the coarse match plus the sub-pixel offset; a
    target whose proposal is not a valid source gets a random one."""
    np.random.seed(seed)
    ch, cw = coarse_y.shape
    h, w = src_ok.shape
    for i in range(tgt_y.shape[0]):
        y, x = tgt_y[i], tgt_x[i]
        py, px = min(y // 2, ch - 1), min(x // 2, cw - 1)
        cy = 2 * coarse_y[py, px] + (y - 2 * py)
        cx = 2 * coarse_x[py, px] + (x - 2 * px)
        if 0 <= cy < h and 0 <= cx < w and src_ok[cy, cx]:
            nnf_y[y, x], nnf_x[y, x] = cy, cx
        else:
            j = np.random.randint(0, src_y.shape[0])
            nnf_y[y, x], nnf_x[y, x] = src_y[j], src_x[j]


class _Level:
    """One pyramid level: image estimate, hole, valid sources, targets and confidence."""

    def __init__(self, image: np.ndarray, hole: np.ndarray, r: int):
        self.image = image
        self.hole = hole
        h, w = hole.shape
        size = 2 * r + 1
        kernel = np.ones((size, size), np.uint8)
        known = (~hole).astype(np.uint8)
        # A source centre needs its whole patch inside the image and outside the hole.
        src_ok = cv2.erode(known, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0) > 0
        self.src_ok = src_ok
        self.src_y, self.src_x = (a.astype(np.int32) for a in np.nonzero(src_ok))
        is_tgt = cv2.dilate(hole.astype(np.uint8), kernel) > 0
        self.is_tgt = is_tgt
        self.tgt_y, self.tgt_x = (a.astype(np.int32) for a in np.nonzero(is_tgt))
        depth = cv2.distanceTransform(hole.astype(np.uint8), cv2.DIST_L2, 3)
        self.confidence = np.power(BORDER_CONFIDENCE_BASE, -depth).astype(np.float32)
        self.nnf_y = np.zeros((h, w), np.int32)
        self.nnf_x = np.zeros((h, w), np.int32)
        self.nnf_d = np.zeros((h, w), np.float32)

    @property
    def has_sources(self) -> bool:
        return self.src_y.size > 0

    def sigma2(self) -> float:
        """Similarity scale: the 75th percentile of the current match distances."""
        d = self.nnf_d[self.tgt_y, self.tgt_x]
        return max(float(np.percentile(d, SIMILARITY_PERCENTILE)), 1e-3)

    def vote(self, r: int) -> np.ndarray:
        """Vote the hole; returns the known pixels' residual (see :func:`_vote`)."""
        residual = np.zeros_like(self.image)
        _vote(self.image, self.hole, self.tgt_y, self.tgt_x, self.nnf_y, self.nnf_x,
              self.nnf_d, self.confidence, self.sigma2(), r, residual)
        return residual

    def correct_border(self, residual: np.ndarray) -> None:
        """Shift the hole's colours by the residual around it, carried inward by fast
        marching and faded with depth, so copied texture meets its surroundings without a
        colour step."""
        if BORDER_CORRECTION_DEPTH <= 0:
            return
        mask = self.hole.astype(np.uint8)
        depth = cv2.distanceTransform(mask, cv2.DIST_L2, 3)
        fade = np.exp(-depth / BORDER_CORRECTION_DEPTH)[self.hole]
        for c in range(3):
            carried = cv2.inpaint(np.ascontiguousarray(residual[..., c]), mask, 3, cv2.INPAINT_TELEA)
            self.image[..., c][self.hole] += fade * carried[self.hole]


def _downsample(image: np.ndarray, hole: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Half-size image (known pixels averaged, hole ignored) and hole (no known pixel)."""
    h, w = hole.shape
    size = ((w + 1) // 2, (h + 1) // 2)
    known = (~hole).astype(np.float32)
    weight = cv2.resize(known, size, interpolation=cv2.INTER_AREA)
    summed = cv2.resize(image * known[..., None], size, interpolation=cv2.INTER_AREA)
    # A coarse pixel is a hole only when none of its fine pixels is known: marking every
    # partly covered pixel grew thin strokes into blobs at each level, so coarse levels lost
    # the objects the strokes cross and the fill erased them (hole L1 0.123 -> 0.086, 32 pairs).
    small_hole = weight < 1e-3
    small = summed / np.maximum(weight, 1e-6)[..., None]
    small[small_hole] = 0.0
    return small.astype(np.float32), small_hole


def _hole_depth(hole: np.ndarray) -> float:
    """Largest L2 distance (px) from a hole pixel to the nearest known pixel."""
    return float(cv2.distanceTransform(hole.astype(np.uint8), cv2.DIST_L2, 3).max())


def _pyramid(image: np.ndarray, hole: np.ndarray, r: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Levels finest first; stops before a level would be all hole or have no hole left."""
    levels = [(image, hole)]
    while min(levels[-1][1].shape) // 2 >= COARSEST_SIDE and _hole_depth(levels[-1][1]) > COARSEST_HOLE_DEPTH:
        smaller = _downsample(*levels[-1])
        if smaller[1].all() or not smaller[1].any():
            break
        levels.append(smaller)
    return levels


def _initial_fill(image: np.ndarray, hole: np.ndarray, r: int, seed: int) -> np.ndarray:
    """The coarsest level's first estimate (float32 ``(h, w, 3)``) by onion-peel: copied
    texture, where Telea's smooth start left blurred blobs that EM voting kept."""
    filled = image.copy()
    level = _Level(filled, hole, r)
    depth = cv2.distanceTransform(hole.astype(np.uint8), cv2.DIST_L2, 3)
    ys, xs = np.nonzero(hole)
    order = np.argsort(depth[ys, xs], kind="stable")
    _onion_peel(filled, hole, level.src_y, level.src_x, ys[order].astype(np.int32),
                xs[order].astype(np.int32), r, max(64, ONION_PAIR_BUDGET // ys.size), seed)
    return filled


def _em_schedule(n_levels: int) -> list[int]:
    """EM iterations per level, coarsest first: more where it is cheap."""
    return [max(EM_FINE, EM_COARSE - i) for i in range(n_levels)]


class LevelGuide(NamedTuple):
    """Guidance for one pyramid level (float32 ``(h, w, 3)`` arrays on the level's grid).

    target: the guide, read at the target patch's place.
    source: the level's image as the guide would show it, read at the source patch's place.
    weight: of the guide distance relative to the patch distance (0 = unguided).
    """

    target: np.ndarray
    source: np.ndarray
    weight: float


class Monitor(Protocol):
    """What the synthesis loop sees of its caller (e.g. :class:`~.base.CoreMonitor`).

    check(): raises (e.g. ``FillCancelled``) when the caller wants the work stopped; called
        before every EM iteration, so a cancel takes effect within one search sweep pair.
    report(fraction, text): progress of this call, ``fraction`` in [0, 1], non-decreasing.
    """

    def check(self) -> None: ...

    def report(self, fraction: float, text: str) -> None: ...


class _Quiet:
    """A monitor that never cancels and reports nowhere."""

    def check(self) -> None:
        pass

    def report(self, fraction: float, text: str) -> None:
        pass


def synthesise(
    levels: list[tuple[np.ndarray, np.ndarray]],
    initial: np.ndarray,
    seed: int,
    guides: list[LevelGuide] | None = None,
    monitor: Monitor | None = None,
) -> tuple[_Level | None, np.ndarray | None]:
    """Coarse-to-fine EM synthesis over a pyramid from :func:`_pyramid` (finest first).

    initial: float32 ``(h, w, 3)``, the coarsest level's first estimate (hole filled).
    guides: optional, one :class:`LevelGuide` per level, finest first: what the search also
        matches against there (see :func:`_match_distance`).
    Returns the finest level reached (its ``image`` is the filled estimate, float32) and the
    last vote's border residual; ``(None, None)`` when even the coarsest level has no source.
    """
    monitor = monitor or _Quiet()
    r = PATCH_RADIUS
    schedule = _em_schedule(len(levels))
    # Work per level ~ hole pixels x (EM iterations + the initial vote): the progress unit.
    work = [float(h.sum()) * (em + 1) for em, (_, h) in zip(schedule, reversed(levels))]
    total, done = max(sum(work), 1.0), 0.0
    no_guide = np.zeros((1, 1, 3), np.float32)
    previous: _Level | None = None
    residual: np.ndarray | None = None
    for depth, (em_iters, (level_image, level_hole)) in enumerate(zip(schedule, reversed(levels))):
        monitor.check()
        index = len(levels) - 1 - depth  # position in the finest-first lists
        if guides is None:
            guide, guide_src, weight = no_guide, no_guide, 0.0
        else:
            guide, guide_src = (np.ascontiguousarray(a, dtype=np.float32) for a in guides[index][:2])
            weight = float(guides[index].weight)
        level_seed = seed * 1_000_003 + depth * 7919
        if previous is None:
            estimate = initial.astype(np.float32)
        else:
            h, w = level_hole.shape
            upsampled = cv2.resize(previous.image, (w, h), interpolation=cv2.INTER_LINEAR)
            estimate = level_image.copy()
            estimate[level_hole] = upsampled[level_hole]
        level = _Level(np.ascontiguousarray(estimate), level_hole, r)
        if not level.has_sources:  # the pyramid guarantees it for the coarsest only
            break
        if previous is None:
            _random_init(level.tgt_y, level.tgt_x, level.src_y, level.src_x, level.nnf_y, level.nnf_x,
                         level_seed)
        else:
            _upsample_nnf(previous.nnf_y, previous.nnf_x, level.tgt_y, level.tgt_x, level.src_ok,
                          level.src_y, level.src_x, level.nnf_y, level.nnf_x, level_seed)
            _distances(level.image, guide, guide_src, weight, level.tgt_y, level.tgt_x, level.nnf_y,
                       level.nnf_x, level.nnf_d, r)
            residual = level.vote(r)
        step = work[depth] / (em_iters + 1)
        done += step
        label = f"PatchMatch level {depth + 1}/{len(levels)}"
        monitor.report(done / total, label)
        for em in range(em_iters):
            monitor.check()
            _search(level.image, guide, guide_src, weight, level.src_ok, level.src_y, level.src_x,
                    level.tgt_y, level.tgt_x, level.is_tgt, level.nnf_y, level.nnf_x, level.nnf_d, r, 2,
                    level_seed + em + 1)
            residual = level.vote(r)
            done += step
            monitor.report(min(done / total, 1.0), label)
        previous = level
    return previous, residual


def inpaint(image: np.ndarray, hole: np.ndarray, seed: int = 0, monitor: Monitor | None = None) -> np.ndarray:
    """Fill ``hole`` (bool ``(H, W)``) of ``image`` (RGB ``uint8`` ``(H, W, 3)``).

    Returns a new ``uint8 (H, W, 3)`` image equal to ``image`` outside the hole. Images too
    small for a 7x7 patch outside the hole fall back to OpenCV Telea (and to the mean colour,
    or mid-grey, when there are no known pixels at all). ``monitor`` (optional) is checked
    for cancellation before every EM iteration and told the progress (see :class:`Monitor`).
    """
    hole = hole.astype(bool)
    out = image.copy()
    if not hole.any():
        return out
    if hole.all():
        out[:] = 128
        return out
    r = PATCH_RADIUS
    monitor = monitor or _Quiet()

    def telea() -> np.ndarray:  # the fallback, computed only when needed
        return cv2.inpaint(image, hole.astype(np.uint8) * 255, 3, cv2.INPAINT_TELEA)

    levels = _pyramid(image.astype(np.float32), hole, r)
    coarse_image, coarse_hole = levels[-1]
    if not _Level(coarse_image, coarse_hole, r).has_sources:
        return telea()
    monitor.check()
    coarse_filled = _initial_fill(coarse_image, coarse_hole, r, seed)
    finest, residual = synthesise(levels, coarse_filled, seed, monitor=monitor)
    if finest is None or finest.image.shape[:2] != hole.shape:
        return telea()
    finest.correct_border(residual)
    filled = np.clip(np.rint(finest.image), 0, 255).astype(np.uint8)
    out[hole] = filled[hole]
    return out


def warm_up() -> float:
    """Compile (or load from cache) the kernels on a tiny image; returns the seconds spent."""
    import time

    t0 = time.perf_counter()
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    hole = np.zeros((40, 40), bool)
    hole[15:25, 15:25] = True
    inpaint(image, hole)
    return time.perf_counter() - t0
