"""HD strategies: region planning, padding, scaling, feathered paste-back, stage streaming."""

from __future__ import annotations

import threading
import time
from typing import Iterator

import cv2
import numpy as np
import pytest

from inpaint_studio.engine import (
    CancelToken, CoreStage, Engine, FillCancelled, FillOptions, FillRequest, InvalidRequest,
)
from inpaint_studio.engine.hd import (
    SEAM_PX,
    HoleWindow,
    Region,
    crop_regions,
    merge_boxes,
    pad_to_multiple,
    run_fill,
    seam_weight,
)

FILL_COLOUR = np.array([10, 200, 30], np.uint8)


class RecordingEngine(Engine):
    """Fills every hole pixel with a constant per stage and records what it was handed."""

    name = "recording"
    stage_names = ("coarse", "refined")

    def __init__(self, multiple: int = 1, working_size: int | None = None, log: list | None = None):
        self.multiple = multiple
        self.working_size = working_size
        self.calls: list[tuple[np.ndarray, np.ndarray, np.ndarray | None]] = []
        self.log = log if log is not None else []

    def fill_core(self, image, hole, sketch, options) -> Iterator[CoreStage]:
        self.calls.append((image.copy(), hole.copy(), None if sketch is None else sketch.copy()))
        region = len(self.calls) - 1
        for index, name in enumerate(self.stage_names):
            self.log.append((name, region))
            out = image.copy()
            out[hole] = FILL_COLOUR + index
            yield CoreStage(name, out)


class BlanketEngine(RecordingEngine):
    """Paints its whole crop (as deep networks do), so the seam band shows the blend."""

    def fill_core(self, image, hole, sketch, options):
        self.calls.append((image.copy(), hole.copy(), sketch))
        for index, name in enumerate(self.stage_names):
            yield CoreStage(name, np.broadcast_to(FILL_COLOUR + index, image.shape).copy())


def _dilated(hole: np.ndarray, px: int = SEAM_PX) -> np.ndarray:
    distance = cv2.distanceTransform((~hole).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    return distance <= px


def _request(image, mask, **options) -> FillRequest:
    return FillRequest(image, mask, options=FillOptions(**options))


def _two_hole_mask(h=96, w=128) -> np.ndarray:
    mask = np.zeros((h, w), np.uint8)
    mask[10:20, 10:20] = 255
    mask[70:80, 110:125] = 255
    return mask


def test_merge_boxes_merges_overlapping_and_touching_until_stable():
    boxes = [Region(0, 0, 10, 10), Region(10, 10, 20, 20), Region(50, 50, 60, 60), Region(19, 0, 30, 5)]
    merged = merge_boxes(boxes)
    # (0,0)-(10,10) touches (10,10)-(20,20), which overlaps (19,0)-(30,5): one chain of three.
    assert merged == [Region(0, 0, 30, 20), Region(50, 50, 60, 60)]


def test_crop_regions_margin_clamp_and_merge():
    hole = np.zeros((100, 200), bool)
    hole[2:6, 3:8] = True  # near the top-left corner: clamps
    hole[50:52, 150:152] = True
    regions = crop_regions(hole, margin=10, working_size=None)
    assert regions == [Region(0, 0, 16, 18), Region(40, 140, 62, 162)]
    merged = crop_regions(hole, margin=100, working_size=None)
    assert merged == [Region(0, 0, 100, 200)]


def test_crop_regions_8_connected_diagonal_is_one_region():
    hole = np.zeros((50, 50), bool)
    hole[10, 10] = hole[11, 11] = True
    assert len(crop_regions(hole, margin=0, working_size=None)) == 1


def test_crop_regions_scale_when_larger_than_working_size():
    hole = np.zeros((300, 300), bool)
    hole[100:200, 50:250] = True
    (region,) = crop_regions(hole, margin=20, working_size=120)
    assert (region.height, region.width) == (140, 240)
    assert region.scale == pytest.approx(0.5)
    assert region.scaled_size == (70, 120)


def test_pad_to_multiple_reflects_and_handles_tiny_inputs():
    a = np.arange(12, dtype=np.uint8).reshape(3, 4)
    padded = pad_to_multiple(a, 8)
    assert padded.shape == (8, 8)
    np.testing.assert_array_equal(padded[:3, :4], a)
    np.testing.assert_array_equal(padded[3, :4], a[1])  # reflection without repeating the edge
    assert pad_to_multiple(np.zeros((1, 1, 3), np.uint8), 8).shape == (8, 8, 3)
    hole = pad_to_multiple(np.array([[True, False]]), 4)
    assert hole.dtype == np.bool_ and hole.shape == (4, 4)


def test_seam_weight_ramps_across_the_band():
    hole = np.zeros((1, 12), bool)
    hole[0, :4] = True
    w = seam_weight(hole)
    np.testing.assert_allclose(w[0, :8], [1, 1, 1, 1, 0.75, 0.5, 0.25, 0])
    assert np.all(w[0, 8:] == 0)


@pytest.mark.parametrize("strategy", ["crop", "resize", "full"])
def test_output_shape_and_identical_outside_dilated_hole(photo, strategy):
    mask = _two_hole_mask()
    engine = BlanketEngine(multiple=8)  # paints its whole crop: the strictest case
    stages = list(run_fill(engine, _request(photo, mask, strategy=strategy, crop_margin=6, resize_limit=64)))
    assert [s.name for s in stages] == ["coarse", "refined"]
    assert [s.final for s in stages] == [False, True]
    hole = mask > 127
    outside = ~_dilated(hole)
    for stage in stages:
        assert stage.image.shape == photo.shape and stage.image.dtype == np.uint8
        np.testing.assert_array_equal(stage.image[outside], photo[outside])
    # Full-resolution strategies put the engine's fill exactly into the hole.
    if strategy != "resize":
        assert np.all(stages[-1].image[hole] == FILL_COLOUR + 1)
    for image, core_hole, _ in engine.calls:
        assert image.shape[0] % 8 == 0 and image.shape[1] % 8 == 0
        assert core_hole.shape == image.shape[:2]
        assert np.all(image[core_hole] == 0), "the engine must not see pixels under the hole"


def test_crop_strategy_calls_engine_per_region_with_margin(photo):
    engine = RecordingEngine()
    list(run_fill(engine, _request(photo, _two_hole_mask(), crop_margin=5)))
    shapes = [image.shape[:2] for image, _, _ in engine.calls]
    assert shapes == [(20, 20), (20, 23)]  # 10x10 + 2*5 and 10x15 + 2*5 clamped at x=128


def test_resize_strategy_scales_whole_image(photo):
    engine = RecordingEngine()
    list(run_fill(engine, _request(photo, _two_hole_mask(), strategy="resize", resize_limit=64)))
    assert [image.shape[:2] for image, _, _ in engine.calls] == [(48, 64)]


def test_working_size_downscale_path_upscales_the_fill():
    h, w = 200, 300
    image = np.full((h, w, 3), 90, np.uint8)
    mask = np.zeros((h, w), np.uint8)
    mask[40:160, 40:260] = 255
    engine = RecordingEngine(working_size=64)
    stages = list(run_fill(engine, _request(image, mask, crop_margin=10)))
    (core_image, core_hole, _), = engine.calls
    assert max(core_image.shape[:2]) == 64
    hole = mask > 127
    # Inside the hole (away from its edge, where cubic upscaling mixes in context) the fill.
    inner = cv2.erode(hole.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
    assert np.all(stages[-1].image[inner] == FILL_COLOUR + 1)
    np.testing.assert_array_equal(stages[-1].image[~_dilated(hole)], image[~_dilated(hole)])


def test_feathered_seam_blends_across_the_band():
    image = np.full((20, 40, 3), 200, np.uint8)
    mask = np.zeros((20, 40), np.uint8)
    mask[:, :10] = 255
    stage = list(run_fill(BlanketEngine(), _request(image, mask, crop_margin=0)))[-1]
    row = stage.image[5, :, 0].astype(int)
    fill = int(FILL_COLOUR[0]) + 1
    expected = [fill] * 10 + [round(w * fill + (1 - w) * 200) for w in (0.75, 0.5, 0.25)] + [200] * 27
    assert row.tolist() == expected


def test_multi_region_stages_advance_in_lock_step(photo):
    log: list = []
    stages = []
    for stage in run_fill(RecordingEngine(log=log), _request(photo, _two_hole_mask(), crop_margin=4)):
        stages.append(stage.name)
        log.append(("yield", stage.name))
    assert log == [
        ("coarse", 0), ("coarse", 1), ("yield", "coarse"),
        ("refined", 0), ("refined", 1), ("yield", "refined"),
    ]
    assert stages == ["coarse", "refined"]


def test_coarse_stage_composites_every_region(photo):
    mask = _two_hole_mask()
    coarse = next(iter(run_fill(RecordingEngine(), _request(photo, mask, crop_margin=4))))
    assert np.all(coarse.image[mask > 127] == FILL_COLOUR)


def test_cancel_raises_before_work_and_between_stages(photo):
    token = CancelToken()
    token.cancel()
    engine = RecordingEngine()
    with pytest.raises(FillCancelled):
        list(run_fill(engine, _request(photo, _two_hole_mask()), token))
    assert engine.calls == []

    token = CancelToken()
    stream = run_fill(RecordingEngine(), _request(photo, _two_hole_mask()), token)
    assert next(stream).name == "coarse"
    token.cancel()
    with pytest.raises(FillCancelled):
        next(stream)


def test_empty_mask_yields_one_final_copy(photo):
    engine = RecordingEngine()
    stages = list(run_fill(engine, FillRequest(photo, np.zeros(photo.shape[:2], np.uint8), request_id=7)))
    assert len(stages) == 1
    (stage,) = stages
    assert (stage.name, stage.final, stage.request_id) == ("final", True, 7)
    np.testing.assert_array_equal(stage.image, photo)
    assert stage.image is not photo
    assert engine.calls == []


def test_all_hole_mask_and_one_pixel_image_are_refused_before_any_work(photo):
    full = np.full(photo.shape[:2], 255, np.uint8)
    engine = RecordingEngine(multiple=8)
    with pytest.raises(InvalidRequest, match="the mask covers the whole image"):
        list(run_fill(engine, _request(photo, full)))
    pixel = np.array([[[5, 6, 7]]], np.uint8)
    with pytest.raises(InvalidRequest, match="the mask covers the whole image"):
        list(run_fill(engine, _request(pixel, np.full((1, 1), 255, np.uint8))))
    assert engine.calls == []


def test_sketch_is_restricted_to_the_hole(photo):
    mask = np.zeros(photo.shape[:2], np.uint8)
    mask[30:60, 30:60] = 255
    sketch = np.zeros_like(mask)
    sketch[45, :] = 255  # a line crossing the hole and running outside it
    engine = RecordingEngine()
    list(run_fill(engine, FillRequest(photo, mask, sketch, FillOptions(crop_margin=8))))
    (_, core_hole, core_sketch), = engine.calls
    assert core_sketch.dtype == np.bool_ and core_sketch.any()
    assert not np.any(core_sketch & ~core_hole)


def test_stage_metadata_is_filled(photo):
    stages = list(run_fill(RecordingEngine(), FillRequest(photo, _two_hole_mask(), request_id=42)))
    assert all(s.request_id == 42 for s in stages)
    assert 0 <= stages[0].seconds <= stages[1].seconds


class _GridAttention:
    """Crop-coordinate source: all weight on crop pixel (0, 0), only for hole pixels."""

    def __init__(self, hole):
        self.hole = hole

    def heatmap(self, y, x):
        if not self.hole[y, x]:
            return None
        m = np.zeros(self.hole.shape, np.float32)
        m[0, 0] = 1.0
        return m


class AttentionEngine(Engine):
    name = "attention"
    multiple = 8

    def fill_core(self, image, hole, sketch, options):
        yield CoreStage("final", image, extras={"attention": _GridAttention(hole), "device": "cpu"})


def test_attention_is_mapped_to_full_image_coordinates(photo):
    mask = np.zeros(photo.shape[:2], np.uint8)
    mask[40:50, 60:70] = 255
    (stage,) = run_fill(AttentionEngine(), _request(photo, mask, crop_margin=5))
    source = stage.extras["attention"]
    assert stage.extras["device"] == "cpu"
    heat = source.heatmap(45, 65)
    assert heat.shape == photo.shape[:2] and heat.dtype == np.float32
    assert heat.sum() == pytest.approx(1.0)
    assert np.unravel_index(heat.argmax(), heat.shape) == (35, 55)  # the crop's top-left corner
    assert source.heatmap(5, 5) is None  # outside every crop
    assert source.heatmap(36, 56) is None  # inside the crop, not a hole pixel


def test_engine_with_wrong_stage_count_is_reported(photo):
    class Short(RecordingEngine):
        def fill_core(self, image, hole, sketch, options):
            yield from list(super().fill_core(image, hole, sketch, options))[:1]

    with pytest.raises(RuntimeError, match="yielded 1 stages, its stage_names promise 2"):
        list(run_fill(Short(), _request(photo, _two_hole_mask())))


@pytest.mark.parametrize("bad", [
    lambda image: image.astype(np.float32),  # float: would fail deep inside numpy
    lambda image: image[..., 0],  # (h, w): no channel axis
    lambda image: np.dstack([image, image[..., :1]]),  # RGBA
    lambda image: image[:-1],  # smaller than the crop
])
def test_engine_returning_a_malformed_image_is_reported(photo, bad):
    class Malformed(RecordingEngine):
        def fill_core(self, image, hole, sketch, options):
            for stage in super().fill_core(image, hole, sketch, options):
                yield CoreStage(stage.name, bad(stage.image))

    with pytest.raises(RuntimeError, match=r"engine returned a .* image of shape .* expected uint8"):
        list(run_fill(Malformed(), _request(photo, _two_hole_mask())))


def test_hole_window_is_the_tight_box_of_hole_pixels_only():
    mask = np.zeros((60, 80), np.uint8)
    mask[5, 70] = 100  # faint: not a hole, must not widen the window
    mask[20:30, 10:25] = 255
    mask[40, 30] = 200
    window = HoleWindow.of(mask)
    assert (window.y0, window.x0, window.y1, window.x1) == (20, 10, 41, 31)
    np.testing.assert_array_equal(window.hole, mask[20:41, 10:31] > 127)
    region = Region(15, 5, 45, 60)
    np.testing.assert_array_equal(window.crop(region), (mask > 127)[15:45, 5:60])
    assert HoleWindow.of(np.full((9, 9), 50, np.uint8)).empty


def test_crop_regions_of_a_window_match_the_full_size_plan():
    hole = np.zeros((300, 400), bool)
    hole[100:120, 150:180] = True
    hole[200:205, 380:400] = True
    window = HoleWindow.of(hole.astype(np.uint8) * 255)
    assert window.hole.shape == (105, 250)
    windowed = crop_regions(window.hole, 40, 64, (window.y0, window.x0), hole.shape)
    assert windowed == crop_regions(hole, 40, 64)


def test_changed_box_bounds_every_changed_pixel_and_hugs_the_seam(photo):
    mask = _two_hole_mask()
    for stage in run_fill(BlanketEngine(), _request(photo, mask, crop_margin=20)):
        rows, cols = stage.extras["changed"]
        outside = np.ones(photo.shape[:2], bool)
        outside[rows, cols] = False
        np.testing.assert_array_equal(stage.image[outside], photo[outside])
        # The box is the holes' box grown by the seam band, not the 20 px crop margin.
        assert (rows.start, rows.stop, cols.start, cols.stop) == (
            10 - SEAM_PX - 1, 80 + SEAM_PX + 1, 10 - SEAM_PX - 1, 128)
    (stage,) = run_fill(BlanketEngine(), _request(photo, np.zeros_like(mask)))
    rows, cols = stage.extras["changed"]
    assert stage.image[rows, cols].size == 0


class SleepingEngine(Engine):
    """Stands for a GIL-free core (torch, numba nogil): sleeps, then fills the hole."""

    name = "sleeping"
    multiple = 8
    working_size = 1024
    stage_names = ("coarse", "refined")

    def fill_core(self, image, hole, sketch, options):
        for name in self.stage_names:
            time.sleep(0.05)
            out = image.copy()
            out[hole] = 90
            yield CoreStage(name, out)


def test_heartbeat_thread_stays_responsive_during_a_large_fill():
    """Prints the longest gap of a 2 ms heartbeat thread while the HD layer fills a 6 MP photo
    (the GIL is all they share: the engine sleeps without it)."""
    h, w = 2000, 3000
    image = np.full((h, w, 3), 120, np.uint8)
    mask = np.zeros((h, w), np.uint8)
    cv2.ellipse(mask, (w // 2, h // 2), (330, 250), 0, 0, 360, 255, -1)  # about 4 % of the photo
    gaps: list[float] = []
    done = threading.Event()

    def beat():
        last = time.perf_counter()
        while not done.is_set():
            time.sleep(0.002)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    thread = threading.Thread(target=beat)
    thread.start()
    started = time.perf_counter()
    try:
        stages = list(run_fill(SleepingEngine(), _request(image, mask)))
    finally:
        done.set()
        thread.join()
    assert stages[-1].image[h // 2, w // 2].tolist() == [90, 90, 90]
    longest = max(gaps) * 1e3
    print(f"\nHD fill of a 6 MP photo in {time.perf_counter() - started:.2f} s: heartbeat thread "
          f"{len(gaps)} ticks, longest gap {longest:.1f} ms")
    # A generous bound for a loaded CI machine; the printed figure is what to watch.
    assert longest < 250
