"""The texture stage: PatchMatch guided by a deep fill, at full resolution, through the HD layer;
progress reporting and cancel inside PatchMatch."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from inpaint_studio.engine import (
    CancelToken,
    CoreStage,
    Engine,
    FillCancelled,
    FillOptions,
    FillRequest,
    InvalidRequest,
    get_engine,
)
from inpaint_studio.engine import texture
from inpaint_studio.engine.hd import SEAM_PX, run_fill
from inpaint_studio.engine.request import FillProgress
from inpaint_studio.metrics import l1


def detail(image: np.ndarray, hole: np.ndarray) -> float:
    """Mean absolute Laplacian of the grey image over ``hole`` (high-frequency energy)."""
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return float(np.abs(cv2.Laplacian(grey, cv2.CV_32F))[hole].mean())


def textured(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Grey-ish fine random texture (blurred noise, std ~40 levels) on a mid-grey base."""
    rng = np.random.default_rng(seed)
    noise = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), 1.0)
    grey = np.clip(128 + 40 * noise / noise.std(), 0, 255)
    return np.repeat(grey[..., None], 3, 2).astype(np.uint8)


def with_red_step(image: np.ndarray, column: int) -> np.ndarray:
    """``image`` with its red channel 50 lower left of ``column`` and 50 higher from it on."""
    out = image.astype(np.int32)
    out[:, :, 0] += np.where(np.arange(image.shape[1]) < column, -50, 50)[None]
    return np.clip(out, 0, 255).astype(np.uint8)


def box(h: int, w: int, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    hole = np.zeros((h, w), bool)
    hole[y0:y1, x0:x1] = True
    return hole


class BlurryDeepEngine(Engine):
    """Stands in for a blurry deep model: fills its crop with a blurred copy of a known image
    (the crop is the whole image here: strategy ``full``, or ``crop`` with a margin covering
    it), at whatever size the HD layer hands it."""

    name = "blurry"
    kind = "deep"
    stage_names = ("coarse", "refined")

    def __init__(self, truth: np.ndarray, working_size: int | None = None, sigma: float = 3.0):
        self.truth = truth
        self.working_size = working_size
        self.sigma = sigma
        self.seen: list[tuple[int, int]] = []

    def fill_core(self, image, hole, sketch, options):
        h, w = hole.shape
        self.seen.append((h, w))
        small = cv2.resize(self.truth, (w, h), interpolation=cv2.INTER_AREA)
        for k, name in enumerate(self.stage_names):
            yield CoreStage(name, cv2.GaussianBlur(small, (0, 0), self.sigma * (2 - k)))


class TeleaDeepEngine(BlurryDeepEngine):
    """Stands in for a blurry deep model on any crop: Telea's smooth diffusion, twice."""

    def __init__(self):
        super().__init__(np.zeros((1, 1, 3), np.uint8))

    def fill_core(self, image, hole, sketch, options):
        smooth = cv2.inpaint(image, hole.astype(np.uint8) * 255, 5, cv2.INPAINT_TELEA)
        for name in self.stage_names:
            yield CoreStage(name, smooth)


def _fill(engine: Engine, image, hole, progress=None, cancel=None, **options) -> list:
    mask = hole.astype(np.uint8) * 255
    request = FillRequest(image, mask, options=FillOptions(**options))
    return list(run_fill(engine, request, cancel, progress))


# ------------------------------------------------------------------------------ options / stages


def test_texture_option_is_validated():
    assert FillOptions().texture == "none"
    with pytest.raises(InvalidRequest, match="unknown texture pass 'sharp'; choose one of none, patchmatch"):
        FillOptions(texture="sharp")


def test_deep_engine_stages_are_coarse_refined_texture():
    truth = with_red_step(textured(64, 80), 40)
    hole = box(64, 80, 16, 48, 24, 56)
    engine = BlurryDeepEngine(truth)
    assert engine.stages_for(FillOptions(texture="patchmatch")) == ("coarse", "refined", "texture")
    assert engine.stages_for(FillOptions()) == ("coarse", "refined")
    stages = _fill(engine, truth, hole, strategy="full", texture="patchmatch")
    assert [s.name for s in stages] == ["coarse", "refined", "texture"]
    assert [s.final for s in stages] == [False, False, True]
    assert stages[2].seconds >= stages[1].seconds
    plain = _fill(engine, truth, hole, strategy="full")
    assert [s.name for s in plain] == ["coarse", "refined"] and plain[-1].final
    # The texture stage changed the hole (sharper than the refined stage), nothing outside it.
    assert detail(stages[2].image, hole) > 2 * detail(stages[1].image, hole)


def test_classical_engines_ignore_the_texture_option():
    image = textured(40, 40)
    mask = box(40, 40, 10, 20, 10, 20).astype(np.uint8) * 255
    for name in ("patchmatch", "telea"):
        engine = get_engine(name)
        assert engine.stages_for(FillOptions(texture="patchmatch")) == ("final",)
        stages = list(engine.fill(FillRequest(image, mask, options=FillOptions(texture="patchmatch"))))
        assert [s.name for s in stages] == ["final"]


def test_guide_weights_fall_from_coarse_to_fine():
    weights = texture.guide_weights(5)  # finest first
    assert weights[0] == pytest.approx(texture.GUIDE_WEIGHT_FINEST)
    assert weights[-1] == pytest.approx(texture.GUIDE_WEIGHT_COARSEST)
    assert all(a < b for a, b in zip(weights, weights[1:]))
    assert texture.guide_weights(1) == [texture.GUIDE_WEIGHT_FINEST]


def test_final_structure_scale_is_the_searchs_at_own_size_and_finer_when_upscaled():
    """At the guide's own resolution the last step low-passes at STRUCTURE_SIGMA; an upscaled
    guide (search scale STRUCTURE_SIGMA / guide scale) gets a finer one, which never drops
    below the own-size scale and grows continuously with the upscaling."""
    own = texture.STRUCTURE_SIGMA
    assert texture.final_structure_sigma(own) == pytest.approx(own)
    for guide_scale in (0.5, 1 / 3, 0.1):
        search = own / guide_scale
        final = texture.final_structure_sigma(search)
        assert own < final < search
        assert final == pytest.approx(texture.UPSCALED_STRUCTURE_FACTOR * search)
    knee = own / texture.UPSCALED_STRUCTURE_FACTOR
    assert texture.final_structure_sigma(knee * 0.999) == pytest.approx(own, rel=1e-3)
    assert texture.final_structure_sigma(knee * 1.001) == pytest.approx(own, rel=1e-2)


# ------------------------------------------------------------------------------ guided synthesis


def test_fill_follows_the_guides_edge_not_the_photos():
    # The photo's red step is at column 60; inside the hole the guide puts it at column 48.
    # The fill must put it where the guide does: structure follows the model.
    base = textured(96, 120, seed=1)
    photo = with_red_step(base, 60)
    hole = box(96, 120, 24, 72, 36, 84)
    guide = cv2.GaussianBlur(with_red_step(base, 48), (0, 0), 3)
    out = texture.guided_inpaint(np.where(hole[..., None], 0, photo).astype(np.uint8), hole, guide)
    red = out[30:66, :, 0].astype(np.float32).mean(axis=0)
    left, right = red[38:45].mean(), red[52:82].mean()
    assert right - left > 70, (left, right)  # a step of ~100 levels, at the guide's place
    assert abs(red[52:60].mean() - red[70:82].mean()) < 20  # no second step at the photo's place


def test_fill_copies_real_texture_where_the_guide_is_blurred():
    truth = with_red_step(textured(120, 150, seed=2), 75)
    hole = box(120, 150, 30, 90, 40, 110)
    guide = cv2.GaussianBlur(truth, (0, 0), 3)
    out = texture.guided_inpaint(np.where(hole[..., None], 0, truth).astype(np.uint8), hole, guide)
    ratio = detail(out, hole) / detail(truth, hole)
    assert detail(guide, hole) / detail(truth, hole) < 0.1  # the guide has no texture
    assert 0.6 < ratio < 1.2, ratio
    # Colours follow the guide: its hole mean, not a random patch's.
    assert np.abs(out[hole].mean(0) - guide[hole].mean(0)).max() < 4


def test_follow_guide_structure_moves_the_holes_low_frequencies_by_its_strength():
    # A textured fill whose hole is 40 levels too dark against a flat guide: the full
    # strength removes the offset, 0.8 four fifths of it (the shift is the same field, scaled);
    # the shift is smooth, so the texture survives; pixels outside the hole are untouched.
    hole = box(64, 64, 16, 48, 16, 48)
    guide = np.full((64, 64, 3), 120.0, np.float32)
    pattern = textured(64, 64, seed=9).astype(np.float32) - 128
    shifts = {}
    for strength, left in ((1.0, 0.0), (0.8, 8.0)):
        fill = guide.copy()
        fill[hole] += pattern[hole] - 40
        before = fill.copy()
        texture.follow_guide_structure(fill, guide, hole, sigma=4.0, strength=strength)
        shifts[strength] = fill - before
        offset = (fill - guide)[hole].mean() - pattern[hole].mean()
        assert offset == pytest.approx(-left, abs=1.5), (strength, offset)
        assert np.array_equal(fill[~hole], before[~hole])
        assert detail(np.clip(fill, 0, 255).astype(np.uint8), hole) > 0.9 * detail(
            np.clip(before, 0, 255).astype(np.uint8), hole)
    np.testing.assert_allclose(shifts[0.8], 0.8 * shifts[1.0], atol=1e-3)


def test_match_detail_raises_a_smooth_fill_to_the_rings_detail_and_no_further():
    truth = textured(96, 96, seed=4).astype(np.float32)
    hole = box(96, 96, 32, 64, 32, 64)
    ring_detail = texture.detail_energy(truth)[texture.detail_ring(hole)].mean()
    # A fill at half the photo's contrast: only its part above sigma 1 px is scaled, so the
    # gain that brings the hole's detail to the ring's is above the energy ratio (~2).
    faint = truth.copy()
    faint[hole] = 128 + 0.5 * (truth[hole] - 128)
    before = faint.copy()
    ratio_before = texture.detail_energy(faint)[hole].mean() / ring_detail
    gain = texture.match_detail(faint, truth, hole, sigma=1.0, max_gain=4.0)
    assert ratio_before < 0.6 and 1 / ratio_before < gain < 4.0, (ratio_before, gain)
    ratio_after = texture.detail_energy(faint)[hole].mean() / ring_detail
    assert ratio_after == pytest.approx(1.0, abs=0.01), ratio_after
    assert np.array_equal(faint[~hole], before[~hole])  # the photo is not touched
    # The cap holds, and a fill as detailed as the photo is left as it is.
    flat = truth.copy()
    flat[hole] = 128 + 0.1 * (truth[hole] - 128)
    assert texture.match_detail(flat, truth, hole, sigma=1.0, max_gain=2.0) == 2.0
    rich = truth.copy()
    rich[hole] = 128 + 1.2 * (truth[hole] - 128)
    kept = rich.copy()
    assert texture.match_detail(rich, truth, hole, sigma=1.0, max_gain=4.0) == 1.0
    assert np.array_equal(rich, kept)


def test_match_detail_ramps_the_band_in_from_the_holes_edge_and_clips_its_tails():
    truth = textured(96, 96, seed=6).astype(np.float32)
    hole = box(96, 96, 24, 72, 24, 72)
    ring_detail = texture.detail_energy(truth)[texture.detail_ring(hole)].mean()
    faint = truth.copy()
    faint[hole] = 128 + 0.6 * (truth[hole] - 128)
    band = texture.detail_band(faint, hole, sigma=0.7, ramp_px=8.0, soft_clip=1.0)
    assert not band[~hole].any()
    depth = cv2.distanceTransform(hole.astype(np.uint8), cv2.DIST_L2, 3)
    plain = (faint - cv2.GaussianBlur(faint, (0, 0), 0.7)) * hole[..., None]
    scale = np.abs(plain[hole]).mean()
    # Tails clipped: nothing beyond the tanh's asymptote, and the band is smaller than the
    # plain one where that one is large, not where it is small.
    assert np.abs(band).max() < 1.0001 * scale
    inner = depth >= 8
    big, small = inner & (np.abs(plain).max(-1) > 2 * scale), inner & (np.abs(plain).max(-1) < 0.2 * scale)
    assert big.sum() > 20 and small.sum() > 20
    assert np.abs(band[big]).mean() < 0.8 * np.abs(plain[big]).mean()
    assert np.abs(band[small]).mean() == pytest.approx(np.abs(plain[small]).mean(), rel=0.05)
    # Ramp: one pixel inside the edge the band is an eighth of the interior's.
    edge = hole & (depth <= 1)
    assert np.abs(band[edge]).mean() < 0.25 * np.abs(band[inner]).mean()
    # The gain still lands the hole's detail on the ring's, and the edge moves least.
    before = faint.copy()
    gain = texture.match_detail(faint, truth, hole, sigma=0.7, max_gain=8.0, ramp_px=8.0, soft_clip=1.0)
    assert 1.0 < gain < 8.0
    assert texture.detail_energy(faint)[hole].mean() / ring_detail == pytest.approx(1.0, abs=0.01)
    moved = np.abs(faint - before).max(-1)
    assert moved[edge].mean() < 0.25 * moved[inner].mean()
    assert np.array_equal(faint[~hole], before[~hole])


def test_match_detail_needs_photo_around_the_hole():
    image = textured(40, 40, seed=5).astype(np.float32)
    hole = np.ones((40, 40), bool)
    hole[0, :8] = False  # 8 known pixels: too few to judge the photo's detail
    assert texture.match_detail(image.copy(), image, hole, sigma=1.0, max_gain=4.0) == 1.0


def test_guided_fill_keeps_pixels_outside_the_hole_and_never_reads_under_it(rng):
    truth = textured(64, 64, seed=3)
    hole = box(64, 64, 20, 44, 20, 44)
    guide = cv2.GaussianBlur(truth, (0, 0), 2)
    poisoned = truth.copy()
    poisoned[hole] = rng.integers(0, 256, (int(hole.sum()), 3), dtype=np.uint8)
    out = texture.guided_inpaint(poisoned, hole, guide, seed=1)
    np.testing.assert_array_equal(out[~hole], truth[~hole])
    np.testing.assert_array_equal(out, texture.guided_inpaint(truth, hole, guide, seed=1))


def test_guided_fill_is_repeatable_for_a_seed():
    truth = textured(64, 64, seed=4)
    hole = box(64, 64, 16, 48, 16, 48)
    guide = cv2.GaussianBlur(truth, (0, 0), 3)
    image = np.where(hole[..., None], 0, truth).astype(np.uint8)
    first = texture.guided_inpaint(image, hole, guide, seed=3)
    np.testing.assert_array_equal(first, texture.guided_inpaint(image, hole, guide, seed=3))
    assert not np.array_equal(first, texture.guided_inpaint(image, hole, guide, seed=4))


def test_no_source_patches_leaves_the_guide():
    image = np.full((10, 10, 3), 50, np.uint8)
    hole = box(10, 10, 1, 9, 1, 9)  # no 7x7 patch outside the hole
    guide = np.full((10, 10, 3), 200, np.uint8)
    out = texture.guided_inpaint(image, hole, guide)
    assert np.all(out[hole] == 200) and np.all(out[~hole] == 50)


# ------------------------------------------------------------------------------ through the HD layer


def test_texture_runs_at_full_resolution_when_the_model_fills_small():
    # The model sees the 192x240 crop at 96 px and its fill is upscaled; the texture stage
    # brings back the photo's own detail, and the hole's error stays close to the model's.
    truth = with_red_step(textured(192, 240, seed=5), 120)
    hole = box(192, 240, 56, 136, 80, 160)
    engine = BlurryDeepEngine(truth, working_size=96, sigma=1.0)
    coarse, refined, textured_stage = _fill(engine, truth, hole, texture="patchmatch", crop_margin=256)
    assert engine.seen == [(77, 96)]
    assert detail(refined.image, hole) < 0.3 * detail(truth, hole)
    assert detail(textured_stage.image, hole) > 0.6 * detail(truth, hole)
    dilated = cv2.dilate(hole.astype(np.uint8), np.ones((2 * SEAM_PX + 1,) * 2, np.uint8)) > 0
    np.testing.assert_array_equal(textured_stage.image[~dilated], truth[~dilated])
    # Noise-like texture cannot be placed right, only made as rough: the error grows by it.
    assert l1(textured_stage.image, truth, hole) < 1.7 * l1(refined.image, truth, hole)


def test_texture_stage_fills_every_region():
    truth = textured(96, 160, seed=6)
    hole = box(96, 160, 10, 40, 10, 40) | box(96, 160, 56, 86, 116, 150)
    stages = _fill(TeleaDeepEngine(), truth, hole, texture="patchmatch", crop_margin=16)
    last = stages[-1]
    for part in (box(96, 160, 10, 40, 10, 40), box(96, 160, 56, 86, 116, 150)):
        assert detail(stages[1].image, part) < 0.3 * detail(truth, part)
        assert detail(last.image, part) > 0.45 * detail(truth, part)  # small crops: fewer sources
    rows, cols = last.extras["changed"]
    assert rows.start <= 10 - SEAM_PX and rows.stop >= 86 + SEAM_PX


# ------------------------------------------------------------------------------ progress and cancel


def test_progress_is_monotone_names_each_stage_and_ends_at_one():
    truth = textured(96, 120, seed=7)
    hole = box(96, 120, 24, 72, 30, 90)
    events: list[FillProgress] = []
    stages = _fill(BlurryDeepEngine(truth), truth, hole, progress=events.append,
                   strategy="full", texture="patchmatch")
    fractions = [e.fraction for e in events]
    assert all(0.0 <= f <= 1.0 for f in fractions)
    assert all(a <= b for a, b in zip(fractions, fractions[1:]))
    assert fractions[-1] == 1.0 and fractions.count(1.0) == 1
    names = [e.stage for e in events]
    assert names.index("coarse") < names.index("refined") < names.index("texture")
    texture_events = [e for e in events if e.stage == "texture" and e.fraction < 1.0]
    assert len(texture_events) > 3  # reported inside PatchMatch, per level and iteration
    assert any("PatchMatch level" in e.text for e in texture_events)
    assert all(e.text for e in events)
    assert events[-1].seconds <= stages[-1].seconds
    assert FillProgress("texture", 0.25, "", 2.0).eta() == pytest.approx(6.0)
    assert FillProgress("coarse", 0.0, "", 0.0).eta() is None


def test_plain_patchmatch_engine_reports_progress():
    image = textured(80, 80, seed=8)
    mask = box(80, 80, 20, 60, 20, 60).astype(np.uint8) * 255
    events: list[FillProgress] = []
    stages = list(get_engine("patchmatch").fill(FillRequest(image, mask, request_id=7), None, events.append))
    fractions = [e.fraction for e in events]
    assert len(events) > 3 and fractions[-1] == 1.0 and fractions.count(1.0) == 1
    assert all(a <= b for a, b in zip(fractions, fractions[1:]))
    assert {e.request_id for e in events} == {7} and stages[-1].final


@pytest.mark.parametrize("engine_kind", ["deep_texture", "patchmatch"])
def test_cancel_from_progress_stops_inside_patchmatch(engine_kind):
    truth = textured(128, 128, seed=9)
    hole = box(128, 128, 32, 96, 32, 96)
    cancel = CancelToken()
    events: list[FillProgress] = []
    stop_at = "texture" if engine_kind == "deep_texture" else "final"

    def progress(event: FillProgress) -> None:
        events.append(event)
        if event.stage == stop_at and "PatchMatch level 1/" in event.text:
            cancel.cancel()

    if engine_kind == "deep_texture":
        engine, options = BlurryDeepEngine(truth), {"strategy": "full", "texture": "patchmatch"}
    else:
        engine, options = get_engine("patchmatch"), {}
    shown = []
    with pytest.raises(FillCancelled):
        for stage in _iter_fill(engine, truth, hole, progress, cancel, **options):
            shown.append(stage.name)
    # Cancelled at the first report inside PatchMatch: no further report, no further stage.
    first = next(i for i, e in enumerate(events) if e.stage == stop_at and "PatchMatch" in e.text)
    assert len(events) == first + 1
    assert events[-1].fraction < 1.0
    assert shown == (["coarse", "refined"] if engine_kind == "deep_texture" else [])


def _iter_fill(engine, image, hole, progress, cancel, **options):
    mask = hole.astype(np.uint8) * 255
    yield from run_fill(engine, FillRequest(image, mask, options=FillOptions(**options)), cancel, progress)
