"""Deep structure, real texture: PatchMatch re-synthesises a hole at full resolution, guided by
a deep model's (blurred, often upscaled) fill.

A deep model trained on little compute gets colours and structure right but fills blurred, and
any photo larger than its working size is filled small and upscaled. PatchMatch copies real
texture from the photo but may break structure. The guided synthesis takes each one's strength:

1. The pyramid of the known pixels is :func:`patchmatch._pyramid`'s (same depth rule); the
   guide (the deep fill composited into the photo) is halved alongside by area averaging.
2. The coarsest level starts from an onion-peel fill (texture) carrying the guide's low
   frequencies (:data:`INITIAL_SIGMA`), so the hole's layout is the model's from the start;
   starting from the guide itself kept the EM voting blurred.
3. At every level the search's patch distance adds ``weight * |guide patch at the target's
   place - source patch|^2`` (:func:`patchmatch._match_distance`), both low-passed at the
   structure scale (:func:`level_guides`), so sharp sources are not penalised for the detail
   the guide lacks: a copied patch must fit its neighbours *and* the model's structure there.
   The weight falls geometrically from :data:`GUIDE_WEIGHT_COARSEST` to
   :data:`GUIDE_WEIGHT_FINEST`: coarse levels settle structure, fine levels pick texture.
4. At the finest level each hole pixel takes the centre pixel of its own best match (the
   vote's mean of overlapping patches blurs); then the fill's low frequencies are replaced
   by the guide's (a Gaussian of :data:`STRUCTURE_SIGMA` px at the guide's own resolution,
   averaged over hole pixels only, a little finer for an upscaled guide:
   :func:`final_structure_sigma`; :data:`STRUCTURE_STRENGTH` of them, the rest stays the
   copy's own, a second estimate): structure and colour follow the model, what lies above
   that frequency comes from the photo.
5. The fill's finest detail is scaled up to the detail of the photo around the hole
   (:func:`match_detail`): searches made on blurred estimates prefer smooth sources, so the
   copy alone is less detailed than the photo. The scaled band is soft-clipped and ramped in
   from the hole's edge, where the model's fill is already close to the photo.

Sketch lines guide the deep model, and through its fill this synthesis: nothing here reads them.

Why a PatchMatch search and not the model's own contextual attention (HiFill's contextual
residual aggregation: the photo's high-frequency residuals carried into the hole by the
attention's scores, then the detail matching of step 5): measured on 32 eval pairs with leg
8's model, the attention's copies cost 2-3x the hole L1 at less detail (own size: +6.5 / +3.3
/ +3.6 / +3.9 % vs deep at detail 0.92 / 0.66 / 0.76 / 0.80, against this module's +2.8 / +2.0
/ +2.2 / +2.8 % at 0.99 / 0.76 / 0.88 / 0.96; working size 256: +14.3 / +7.5 / +8.0 / +8.5 %
against +4.3 / +2.8 / +3.4 / +4.1 %) and look blocky: it matches 8-px cells of the working
size, so its copies are neither aligned nor shaped to the hole (README, texture section).

Arrays: ``image`` and ``guide`` RGB ``uint8 (H, W, 3)``; ``hole`` bool ``(H, W)``. The
image's hole pixels are never read (only the guide's are).
"""

from __future__ import annotations

import cv2
import numpy as np

from . import patchmatch

# Guidance weight (relative to the patch's own distance) at the coarsest and finest levels,
# geometric in between.
GUIDE_WEIGHT_COARSEST = 4.0
GUIDE_WEIGHT_FINEST = 0.5
# Low frequencies below this scale (Gaussian sigma, px at the guide's own resolution) follow
# the guide exactly; finer detail is the copied texture's. Measured with leg 3's model (24 eval
# pairs at their own size, working size 512, detail matched as below; hole L1 vs the deep fill
# and detail ratio, bins 10-20/20-30/30-40/40-50 %): sigma 2: +4.7/+3.1/+4.3/+4.5 %,
# 1.00/0.71/0.87/0.96, with copies visibly pasted in; 1: +3.3/+2.3/+3.4/+3.1 %, 0.94/0.70/0.87/
# 0.90; 0.7 (detail sigma 0.7, gain 3): +3.4/+2.2/+3.1/+2.9 %, 0.96/0.72/0.89/0.95; 0.5: the
# guide term of the search then reads the guide's blur as structure, +4.6 % at 0.83. Texture at
# the finest scale is what a detail measure (and the eye, at 100 %) sees, at the least L1 cost
# per unit: structure follows the model down to ~1 px. (The 20-30 % bin's 0.7 is the ring's
# own detail on these 6 photos: over all 332 pairs the ring has 1.00/0.95/0.98/0.96 of the
# hole's own detail per bin, measured on the originals; a ring twice as wide or all known
# pixels: no closer.)
# The scale is the guide's: an upscaled guide has no detail below 0.7 px / guide_scale, so that
# is where the copy takes over. Holding the last step at 0.7 px of the photo instead (leg 7's
# model, first 32 pairs at working size 256, i.e. the guide upscaled x1.9, replayed from the
# copies recorded before that step; hole L1 vs deep, detail at full / half resolution per bin):
# as now +4.4/+3.0/+3.4/+4.1 %, 1.10/0.59, 0.80/0.37, 0.91/0.44, 1.06/0.45; at 0.7 px
# +2.4/+1.8/+2.0/+2.6 %, 1.05/0.43, 0.80/0.28, 0.91/0.32, 1.00/0.33 (halfway, x0.7: +3.4/+2.4/
# +2.7/+3.3 %, half-resolution detail 0.50/0.32/0.38/0.39). The lower L1 is bought with the
# texture a few pixels across, which the blurred guide then replaces: at 200 % zoom the grass,
# the hawk's breast and the crowd go smooth and only grain is left. Not taken.
# **2 px since the sitting after A/B 16 (was 0.7), for the look.** Every figure above was tuned
# on hole L1, which charges real texture for being a few pixels off and rewards the model's blur:
# at 0.7 px the search's guide term, comparing sources with a guide that is smooth at every
# scale, picks smooth sources, and where the photo is textured (sand ripples, grass, fur, bark)
# the fill is a smooth smudge with only amplified grain on it (the README's screenshot before:
# the removed woman left a flat patch in rippled sand). Leg 12's model, first 8 photos x 4 bins
# at their own size (hole L1 vs the deep fill / detail / det/2 per bin): 0.7 px +2.9/+1.9/+2.0/
# +2.7 %, 0.99/0.76/0.88/0.97, det/2 0.52/0.34/0.37/0.36; **2 px +6.6/+4.4/+4.4/+5.5 %,
# 1.08/0.78/0.90/1.06, det/2 0.68/0.47/0.53/0.54**; 3 px +8.7/+6.3/+5.7/+7.0 %, det/2 0.72/0.51/
# 0.59/0.60; 4 px +9.7/+7.5/+7.0/+8.1 %, det/2 0.74/0.52/0.61/0.63 (PatchMatch alone ~0.55). At
# 200 % (docs/texture_scale.jpg) 2 px brings the ripples, the deer's grass, the dog's fur, the
# bark and the skier's trees back where 0.7 px left smudges; pasted-in pieces are no more
# frequent than at 0.7 px, and structure still follows the model. The L1 cost keeps the issue's
# bar (README, 332 pairs). A final step at 4 px after a 0.7 px search stays smooth: the search's
# scale decides which sources are copied.
STRUCTURE_SIGMA = 2.0
# An upscaled guide (working size below the photo's): the last step's low-pass is this factor of the
# search's structure scale (:func:`final_structure_sigma`), so the model's structure reaches a
# little finer, in place of some of the copy's texture a few pixels across, whose misplaced copies
# cost L1 most where the guide is most blurred. Measured on 128 eval pairs (first 32 photos x 4
# bins, shipped model after leg 9, working size 256, replayed from the copies recorded before this
# step, which reproduces `bench/texture.py` to the printed digit; hole L1 vs deep / detail / det/2
# per bin): factor 1 (as before): +3.6/+2.5/+2.5/+2.6 % at 1.06/0.92/0.96/0.95, det/2
# 0.56/0.48/0.48/0.47; 0.85: +3.2/+2.2/+2.2/+2.3 %; 0.7: +2.9/+2.0/+2.1/+2.2 %, det/2
# 0.50/0.43/0.44/0.42; **0.6: +2.6/+1.8/+1.9/+2.0 % at 1.05/0.91/0.96/0.94, det/2 0.48/0.41/
# 0.41/0.40**; 0.5 without the floor below: +1.8/+1.3/+1.3/+1.4 % at 0.98/0.85/0.88/0.87. 0.6 keeps
# the 10-20 % bin under the issue's 3 % with a margin (0.7 left 0.1 point); at 200 % the copies'
# grass and bricks are a little softer than factor 1's, walls a little cleaner (fewer light
# contours). On the 32-pair subset the 20-30 % bin read 0.73-0.80 whatever the setting: its few
# holes cover more detail than their rings (see the note on the ring above).
UPSCALED_STRUCTURE_FACTOR = 0.6
# How much of the guide's low frequencies replace the copy's own (:func:`follow_guide_structure`):
# 1 = all. The copy's own low frequencies are a second estimate of the hole, made by a search
# that was already guided by the model, with errors partly independent of the model's, so a
# little of them averages errors out. Leg 6's model, the first 32 eval pairs at their own size,
# replayed from the copies recorded before this step, hole L1 vs deep per bin at the
# detail-matching settings of the time: 1.0: +3.9/+2.6/+2.9/+3.5 %; 0.9: +3.6/+2.4/+2.7/+3.4 %;
# 0.8: +3.5/+2.3/+2.6/+3.5 %; 0.7: +3.5/+2.4/+2.6/+3.6 %; 0.5: +4.0/+2.8/+3.0/+4.2 %; detail
# unchanged (1.04/0.79/0.91/1.08). At 200 % zoom 0.8 and 1.0 look alike.
STRUCTURE_STRENGTH = 0.8
# The last reconstruction averages the matches of targets at most this far (px): 0 copies each
# pixel's own match, 3 is the full vote of 7x7 patches. Eval pairs at working size 256 (Telea
# guide), detail ratio / hole L1 vs the guide: 0: 0.76 / +1.2 %, 1: 0.55 / +0.3 %, 2: 0.49 / 0.0 %;
# at 200 % zoom 0 and 1 look alike (no pixel noise), 0 keeps thin twigs crisper.
NEAR_VOTE_RADIUS = 0
# Detail matching (:func:`match_detail`): the fill's detail above a Gaussian of DETAIL_SIGMA px is
# scaled up until its energy is the known ring's, by at most DETAIL_MAX_GAIN (1 = off). The
# copied sources alone reach a detail ratio of 0.69 (16 eval pairs, working size 512): the
# searches at blurred estimates favour smooth sources. With structure sigma 2 (see above),
# gain at most 2.0: 0.87, hole L1 +0.7/+1.0/+1.7/+2.2 % vs a GAN-trained deep fill per bin;
# 3.0: 0.91, up to +3.6 %. Scaling only the finest band (sigma 0.7, not 1) costs less L1 for
# the same detail (structure 0.7, with the gain then still the plain energy ratio: sigma 0.7,
# gain 3: +2.7/+1.8/+2.5/+2.5 % vs sigma 1, gain 2.5: +3.3/+2.2/+3.2/+2.9 %, detail ~0.9 both);
# that ratio undershoots, so the gain is now solved for (0.89 -> 0.96 detail, ~+0.5 % L1;
# leg 4's model, 32 pairs: README). Did not help: two further searches against the sharp
# copy (0.68), a low-pass floor for the coarse levels' guide term (0.69), blending the copies
# over 3x3 at seams between sources (0.72, +2.5 % L1) or everywhere (0.79, +3.3 %), and
# gradient-domain copying (the sources' gradients integrated by a Poisson solve, which removes
# seams: 0.83-0.85 instead of 0.94 at equal L1, structure sigma 1).
# Shaping the scaled detail (leg 3's model, 24 pairs at their own size, replayed on the recorded
# pre-matching fills, hole L1 vs deep / detail ratio per bin): the plain band, gain <= 3:
# +3.4/+2.2/+3.1/+2.9 %, 0.94/0.71/0.88/0.95. (a) Near the hole's edge the deep fill is close to
# the photo and copied detail there is mostly error (and a speckled edge): ramping the band in
# over DETAIL_RAMP_PX px from the edge, the interior gain making up for it, gives +2.9/+1.9/
# +2.6/+2.7 % at 0.95/0.71/0.89/1.04 (2 px: +3.0 % in the first bin, 12 px: as 8). (b) L1 grows
# about linearly with a copied value far above the photo's, quadratically with a small one,
# so the band's tails are soft-clipped (tanh at DETAIL_SOFT_CLIP x its mean magnitude) and the
# gain spreads the same detail over more pixels: +2.7/+1.5/+2.3/+2.4 % at 0.95/0.71/0.89/1.02
# (clip 2: +2.7/+1.6/+2.4/+2.4 %; 0.5 flattens the band towards a sign pattern). A lower
# detail target does less for L1 per unit of detail lost (0.9 of the ring's, plain band:
# +2.6/+1.8/+2.5/+2.5 % at 0.85/0.64/0.80/0.89); weighting the band down at the guide's
# edges did nothing, adding the guide's own band back made it worse (+5.1 % in the first bin).
# The gain cap only stops runaway gains on fills without texture to scale.
# The band's scale: with leg 6's model and STRUCTURE_STRENGTH 0.8 (replayed as above, hole L1
# vs deep / detail per bin), DETAIL_SIGMA 0.7: +3.5/+2.3/+2.6/+3.5 % at 1.04/0.79/0.91/1.08; 0.5:
# +2.8/+2.0/+2.2/+2.8 % at 0.99/0.77/0.89/0.97 (the cap binds on more fills: with the cap at 16,
# +3.2/+2.2/+2.4/+3.2 % at 1.04/0.79/0.91/1.09, still below 0.7's at equal detail); 0.45:
# +2.3/+1.6/+1.8/+2.1 % at 0.93/0.72/0.83/0.86; 0.55: +3.2/+2.2/+2.4/+3.1 % at 1.03/0.79/0.90/
# 1.04. The finer the band, the more Laplacian energy per grey level it adds. (Weighting the band
# down across the guide's edges, 1 / (1 + (|gradient| / s)^2): s = 4 costs +0.5 point at equal
# detail and does not remove the contours a copy traces along a blurred edge.) Checked with leg
# 7's model on 64 pairs (`bench/texture.py --limit 16`, half of them new photos): +2.8/+1.8/+1.6/
# +1.9 % at 0.99/0.79/0.86/0.89; with leg 8's model on 128 pairs (`--limit 32`): +2.4/+1.8/+1.7/
# +1.7 % at 0.97/0.87/0.91/0.90; with leg 9's model and UPSCALED_STRUCTURE_FACTOR 0.6 on the
# same 128 pairs: own size +2.3/+1.6/+1.6/+1.5 % at 0.96/0.86/0.89/0.88, working size 256
# +2.6/+1.8/+1.9/+2.0 % at 1.02/0.89/0.94/0.93. The gain runs high: with leg 12's model on 32
# pairs (own size) its median is 7.1 and 37.5 % of fills reach the cap, and at 200 % a smooth
# surface filled beside a textured one shows the amplified copies as a fine stipple; a cap of 3
# halves the L1 cost (+1.2/+0.9/+0.9/+1.0 % against +2.9/+1.9/+2.0/+2.7 %) at detail 0.77/0.59/
# 0.67/0.66 instead of 0.99/0.76/0.88/0.97, and weighting the band by the photo's detail near
# each hole pixel (a 16 px Gaussian over the ring) left that stipple as it was. Weighting it by
# the copies' coherence (the share of a pixel's 4 neighbours copying from the same offset, a
# 1 px Gaussian of it) costs +1.7/+1.2/+1.4/+1.5 % at detail 0.83/0.63/0.75/0.72 (the same
# trade as a lower cap) and thins the stipple without removing it: much of it is the grain of
# smooth sources (snow, the jacket's own cloth) amplified ~7x, coherent copies included.
DETAIL_MAX_GAIN = 8.0
DETAIL_SIGMA = 0.5
DETAIL_RAMP_PX = 8.0
DETAIL_SOFT_CLIP = 1.0
# The coarsest level's start takes the guide's low frequencies below this (px at that level).
INITIAL_SIGMA = 2.0


def final_structure_sigma(search_sigma: float) -> float:
    """Gaussian sigma (px of the photo) of the last step's low-pass, given the search's
    structure scale ``search_sigma`` (:data:`STRUCTURE_SIGMA` / guide scale): the search's own
    at the guide's resolution, a little finer (:data:`UPSCALED_STRUCTURE_FACTOR`) for an
    upscaled guide, never below :data:`STRUCTURE_SIGMA` (continuous in the guide scale)."""
    return max(STRUCTURE_SIGMA, UPSCALED_STRUCTURE_FACTOR * search_sigma)


def guide_weights(n_levels: int) -> list[float]:
    """Guidance weight per pyramid level, finest first (``n_levels >= 1``)."""
    if n_levels == 1:
        return [GUIDE_WEIGHT_FINEST]
    ratio = (GUIDE_WEIGHT_COARSEST / GUIDE_WEIGHT_FINEST) ** (1.0 / (n_levels - 1))
    return [GUIDE_WEIGHT_FINEST * ratio ** k for k in range(n_levels)]


def low_pass(image: np.ndarray, sigma: float, known: np.ndarray | None = None) -> np.ndarray:
    """Gaussian low-pass (``sigma`` px) of float32 ``(h, w, 3)``; with ``known`` (bool
    ``(h, w)``) only known pixels are averaged (normalised convolution), so a zeroed hole
    does not darken its surroundings. ``sigma < 0.3``: the image itself."""
    if sigma < 0.3:
        return image
    blur = lambda a: cv2.GaussianBlur(a, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)  # noqa: E731
    if known is None:
        return blur(image)
    weight = known.astype(np.float32)
    return blur(image * weight[..., None]) / np.maximum(blur(weight), 1e-6)[..., None]


def level_guides(composite: np.ndarray, levels: list[tuple[np.ndarray, np.ndarray]],
                 structure_sigma: float) -> list[patchmatch.LevelGuide]:
    """One :class:`patchmatch.LevelGuide` per pyramid level, finest first.

    composite: float32 ``(H, W, 3)``, the photo with the guide in its hole. It is halved by
    area averaging like the pyramid; at each level both it and the level's known pixels are
    low-passed at the structure scale (``structure_sigma`` px at full resolution, halved per
    level), so the guide term compares structure with structure and sharp texture is not
    penalised for the detail the guide lacks.
    """
    out = []
    target = composite
    weights = guide_weights(len(levels))
    for k, (image, hole) in enumerate(levels):
        h, w = hole.shape
        if target.shape[:2] != (h, w):
            target = cv2.resize(target, (w, h), interpolation=cv2.INTER_AREA)
        sigma = structure_sigma / 2 ** k
        out.append(patchmatch.LevelGuide(low_pass(target, sigma), low_pass(image, sigma, ~hole), weights[k]))
    return out


def hole_box(hole: np.ndarray, reach: int) -> tuple[int, int, int, int]:
    """Rows ``[y0, y1)`` and columns ``[x0, x1)`` of the bounding box of ``hole`` (bool
    ``(H, W)``, at least one pixel) grown by ``reach`` px, clipped to the image."""
    ys, xs = np.nonzero(hole)
    h, w = hole.shape
    return (max(0, ys.min() - reach), min(h, ys.max() + 1 + reach),
            max(0, xs.min() - reach), min(w, xs.max() + 1 + reach))


def follow_guide_structure(fill: np.ndarray, guide: np.ndarray, hole: np.ndarray, sigma: float,
                           strength: float = 1.0) -> None:
    """Shift ``fill`` (float32 ``(H, W, 3)``) in place inside ``hole`` by ``strength`` times the
    low-pass (Gaussian ``sigma`` px) of ``guide - fill``, averaged over hole pixels only (the
    known pixels, where the two agree, would pull the average toward zero near the border).
    ``strength`` 1: the fill's low frequencies become the guide's; 0.8: a fifth of the fill's
    own stay."""
    if sigma <= 0:
        return
    # Work inside the hole's box plus the kernel's reach: the cost follows the hole.
    y0, y1, x0, x1 = hole_box(hole, int(np.ceil(3 * sigma)) + 1)
    box = hole[y0:y1, x0:x1]
    weight = box.astype(np.float32)
    diff = (guide[y0:y1, x0:x1] - fill[y0:y1, x0:x1]) * weight[..., None]
    blur = lambda a: cv2.GaussianBlur(a, (0, 0), sigma, borderType=cv2.BORDER_CONSTANT)  # noqa: E731
    shift = blur(diff) / np.maximum(blur(weight), 1e-6)[..., None]
    fill[y0:y1, x0:x1][box] += strength * shift[box]


def copy_nearest_matches(fill: np.ndarray, hole: np.ndarray, level: patchmatch._Level, radius: int) -> None:
    """Set each hole pixel of ``fill`` (float32 ``(H, W, 3)``, in place) to the mean of what
    the matches of the targets within ``radius`` px (Chebyshev) propose for it, weighted by
    match quality: where neighbouring matches agree (coherent copies) the texture stays as
    sharp as its source, and where they disagree the seam is spread over ``2 radius + 1`` px
    (radius 0: each pixel copies its own match's centre)."""
    ys, xs = np.nonzero(hole)
    h, w = hole.shape
    sigma2 = level.sigma2()
    acc = np.zeros((ys.size, 3), np.float64)
    total = np.zeros(ys.size, np.float64)
    source = fill.copy()  # every proposal reads the pre-copy image (sources are known pixels)
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            ty, tx = ys + dy, xs + dx
            ok = (ty >= 0) & (ty < h) & (tx >= 0) & (tx < w)
            ok[ok] = level.is_tgt[ty[ok], tx[ok]]
            sy = level.nnf_y[ty[ok], tx[ok]] - dy
            sx = level.nnf_x[ty[ok], tx[ok]] - dx
            weight = np.exp(-level.nnf_d[ty[ok], tx[ok]] / (2.0 * sigma2))
            acc[ok] += weight[:, None] * source[sy, sx]
            total[ok] += weight
    fill[ys, xs] = (acc / np.maximum(total, 1e-12)[:, None]).astype(np.float32)


def _signed_detail(image: np.ndarray) -> np.ndarray:
    """Laplacian of the grey image of float32 RGB ``(H, W, 3)``: ``(H, W)`` float32."""
    grey = image @ np.array([0.299, 0.587, 0.114], np.float32)
    return cv2.Laplacian(grey, cv2.CV_32F)


def detail_energy(image: np.ndarray) -> np.ndarray:
    """Per-pixel detail: ``|Laplacian|`` of the grey image of float32 RGB ``(H, W, 3)``,
    ``(H, W)`` float32 (the measure of ``bench/texture.py``'s detail ratio)."""
    return np.abs(_signed_detail(image))


def detail_ring(hole: np.ndarray) -> np.ndarray:
    """Known pixels around ``hole`` (bool ``(H, W)``) whose detail stands for the hole's: within
    the hole's depth (at least 16 px) of it, and not within 2 px (a Laplacian there would read
    the hole)."""
    mask = hole.astype(np.uint8)
    reach = max(16, int(cv2.distanceTransform(mask, cv2.DIST_L2, 3).max()))
    near = cv2.dilate(mask, np.ones((5, 5), np.uint8)) > 0
    return (cv2.dilate(mask, np.ones((2 * reach + 1,) * 2, np.uint8)) > 0) & ~near


def detail_band(fill: np.ndarray, hole: np.ndarray, sigma: float, ramp_px: float,
                soft_clip: float) -> np.ndarray:
    """The part of ``fill`` (float32 ``(H, W, 3)``) that :func:`match_detail` scales: what lies
    above a Gaussian of ``sigma`` px, zero outside ``hole``, soft-clipped (``tanh`` at
    ``soft_clip`` x its mean magnitude over the hole; 0 = no clip) and ramped in linearly over
    ``ramp_px`` px from the hole's edge (0 = no ramp). float32 ``(H, W, 3)``."""
    band = (fill - cv2.GaussianBlur(fill, (0, 0), sigma)) * hole[..., None]
    if soft_clip > 0:
        scale = soft_clip * float(np.abs(band[hole]).mean()) + 1e-6
        band = scale * np.tanh(band / scale)
    if ramp_px > 0:
        depth = cv2.distanceTransform(hole.astype(np.uint8), cv2.DIST_L2, 3)
        band *= np.minimum(1.0, depth / ramp_px)[..., None]
    return band.astype(np.float32)


def match_detail(fill: np.ndarray, composite: np.ndarray, hole: np.ndarray, sigma: float,
                 max_gain: float, ramp_px: float = 0.0, soft_clip: float = 0.0) -> float:
    """Raise the detail of the hole of ``fill`` (float32 ``(H, W, 3)``, in place) to that of the
    photo around it: ``fill += (gain - 1) * detail_band(...)`` with the gain in
    ``[1, max_gain]`` that makes the hole's mean :func:`detail_energy` equal the ring's
    (``composite``, the photo, float32), found by bisection since only part of the fill is
    scaled; a fill as detailed as its surroundings is left alone. ``ramp_px``, ``soft_clip``:
    see :func:`detail_band`. Returns the gain (the hole interior's, with a ramp)."""
    ring = detail_ring(hole)
    if ring.sum() < 64:  # too little photo around the hole to judge its detail by
        return 1.0
    ring_energy = float(detail_energy(composite)[ring].mean())
    lap_fill = _signed_detail(fill)[hole]
    if float(np.abs(lap_fill).mean()) >= ring_energy:
        return 1.0
    band = detail_band(fill, hole, sigma, ramp_px, soft_clip)
    lap_band = _signed_detail(band)[hole]  # the Laplacian is linear: energy(gain) is cheap

    def energy(gain: float) -> float:
        return float(np.abs(lap_fill + (gain - 1.0) * lap_band).mean())

    low, high = 1.0, float(max_gain)
    if energy(high) > ring_energy:
        for _ in range(24):  # energy grows with the gain (the band is the detail)
            middle = 0.5 * (low + high)
            low, high = (middle, high) if energy(middle) < ring_energy else (low, middle)
    gain = high
    fill[hole] += (gain - 1.0) * band[hole]
    return gain


def guided_inpaint(
    image: np.ndarray,
    hole: np.ndarray,
    guide: np.ndarray,
    seed: int = 0,
    guide_scale: float = 1.0,
    monitor: patchmatch.Monitor | None = None,
) -> np.ndarray:
    """Fill ``hole`` of ``image`` with texture copied from its known pixels, following ``guide``.

    image: RGB ``uint8 (H, W, 3)`` (hole pixels ignored); hole: bool ``(H, W)``;
    guide: RGB ``uint8 (H, W, 3)``, the deep fill (only its hole pixels are used).
    guide_scale: the resolution the guide was really computed at, relative to ``image`` (a
        deep fill made at 512 px and upscaled to 2048 px: 0.25); sets the structure scale.
    monitor: checked before every EM iteration, told the progress (``patchmatch.Monitor``).
    Returns a new ``uint8 (H, W, 3)``, ``image`` outside the hole bit for bit; the guide
    itself where the photo has no patch to copy from.
    """
    hole = np.asarray(hole, dtype=bool)
    out = image.copy()
    if not hole.any():
        return out
    composite = image.astype(np.float32)
    composite[hole] = guide[hole]
    r = patchmatch.PATCH_RADIUS
    levels = patchmatch._pyramid(image.astype(np.float32), hole, r)
    structure_sigma = STRUCTURE_SIGMA / max(min(guide_scale, 1.0), 1e-3)
    guides = level_guides(composite, levels, structure_sigma)
    coarse_image, coarse_hole = levels[-1]
    if not patchmatch._Level(coarse_image, coarse_hole, r).has_sources:
        out[hole] = guide[hole]  # nothing to copy texture from: the model's fill stands
        return out
    coarse_guide = composite
    for _, level_hole in levels[1:]:
        coarse_guide = cv2.resize(coarse_guide, level_hole.shape[::-1], interpolation=cv2.INTER_AREA)
    # Start from texture, not from the guide's blur (EM voting keeps a blurred start blurred):
    # the onion-peel fill's detail over the guide's low frequencies.
    initial = patchmatch._initial_fill(coarse_image, coarse_hole, r, seed)
    follow_guide_structure(initial, coarse_guide, coarse_hole, INITIAL_SIGMA)
    finest, _ = patchmatch.synthesise(levels, initial, seed, guides=guides, monitor=monitor)
    if finest is None or finest.image.shape[:2] != hole.shape:
        out[hole] = guide[hole]  # nothing to copy texture from: the model's fill stands
        return out
    fill = finest.image
    # Not the EM vote's mean of 49 overlapping patches, which blurs what it copies (detail
    # ratio 0.51 with it, see NEAR_VOTE_RADIUS for the rest).
    copy_nearest_matches(fill, hole, finest, NEAR_VOTE_RADIUS)
    follow_guide_structure(fill, composite, hole, final_structure_sigma(structure_sigma),
                           STRUCTURE_STRENGTH)
    if DETAIL_MAX_GAIN > 1.0:
        match_detail(fill, composite, hole, DETAIL_SIGMA, DETAIL_MAX_GAIN, DETAIL_RAMP_PX, DETAIL_SOFT_CLIP)
    out[hole] = np.clip(np.rint(fill[hole]), 0, 255).astype(np.uint8)
    return out
