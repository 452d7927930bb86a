"""The deep engine: streaming stages, compositing, cancel, devices, out-of-memory retries,
attention in pixel coordinates, discovery of model files and placeholders.

Uses a tiny two-stage generator registered for each test only (random weights are fine in
tests; users never see them)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from inpaint_studio import paths, precision
from inpaint_studio.engine import (
    CancelToken,
    EngineUnavailable,
    FillCancelled,
    FillOptions,
    FillRequest,
    InvalidRequest,
    clear_cache,
    get_engine,
    list_engines,
)
from inpaint_studio.engine import deep
from inpaint_studio.engine.hd import SEAM_PX
from inpaint_studio.networks import InpaintGenerator, build, registry
from inpaint_studio.weights import save_model

from .lively import lively

ARCH = "test_deep_tiny"
GRID = 8  # the tiny generator's attention grid is 1/8 of the image, like DeepFill v2's
TARGET_CELLS = {(1, 2): 0.75, (2, 2): 0.25}  # where every hole cell "borrows" from


class GridAttention:
    """A fake matching-grid attention source: every hole cell attends to TARGET_CELLS."""

    def __init__(self, hole_cells: np.ndarray):
        self.hole_cells = hole_cells
        self.grid_shape = hole_cells.shape

    def heatmap(self, gy: int, gx: int):
        if not self.hole_cells[gy, gx]:
            return None
        out = np.zeros(self.grid_shape, np.float32)
        for (cy, cx), w in TARGET_CELLS.items():
            out[cy, cx] = w
        return out


class CaptureLayer(nn.Module):
    """Stands in for contextual attention: records a GridAttention when capture is on."""

    def __init__(self):
        super().__init__()
        self.capture_topk = 0
        self.captured = None

    def forward(self, x, mask):
        if self.capture_topk:
            cells = nn.functional.max_pool2d(mask, GRID)[0, 0] > 0
            self.captured = GridAttention(cells.cpu().numpy())
        return x


class TinyTwoStage(InpaintGenerator):
    """coarse = tanh(conv(masked image, mask)); refined = tanh(conv(coarse composite)).

    ``events`` records when each stage is computed; ``oom_above`` (px) raises an
    out-of-memory error for larger inputs, ``oom_in`` picks the stage that raises."""

    stage_names = ("coarse", "refined")
    uses_sketch = True

    def __init__(self, width: int = 4):
        super().__init__()
        self.coarse = nn.Conv2d(5, 3, 3, padding=1)
        self.refine = nn.Conv2d(4, 3, 3, padding=1)
        self.attention = CaptureLayer()
        self.events: list[str] = []
        self.oom_above: int | None = None
        self.oom_in = "coarse"
        self.seen_shapes: list[tuple[int, int]] = []
        self.seen_sketch: list[bool] = []

    def _maybe_oom(self, stage, x):
        if self.oom_above is not None and self.oom_in == stage and x.shape[-2] * x.shape[-1] > self.oom_above:
            raise torch.OutOfMemoryError(f"fake: {x.shape[-2]}x{x.shape[-1]} does not fit")

    def stages(self, image, mask, sketch=None):
        self.seen_shapes.append(tuple(image.shape[-2:]))
        self.seen_sketch.append(sketch is not None and bool(sketch.any()))
        sketch = torch.zeros_like(mask) if sketch is None else sketch
        self._maybe_oom("coarse", image)
        x = image * (1 - mask)
        coarse = torch.tanh(self.coarse(torch.cat([x, mask, sketch * mask], 1)))
        self.events.append("coarse")
        yield "coarse", coarse
        self._maybe_oom("refined", image)
        composite = coarse * mask + x
        refined = torch.tanh(self.refine(torch.cat([self.attention(composite, mask), mask], 1)))
        self.events.append("refined")
        yield "refined", refined

    def forward(self, image, mask, sketch=None):
        return tuple(out for _, out in self.stages(image, mask, sketch))

    def attention_source(self):
        return self.attention.captured


@pytest.fixture
def tiny_arch(monkeypatch):
    monkeypatch.setitem(registry._GENERATORS, ARCH, registry.ArchInfo(ARCH, TinyTwoStage, "Tiny two-stage: test"))
    yield ARCH
    clear_cache()


@pytest.fixture
def model_file(tiny_arch, tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "tiny_model.safetensors"
    save_model(path, build(tiny_arch), metadata={
        "title": "Tiny", "description": "a test model", "working_size": 64,
    })
    return path


@pytest.fixture
def engine(model_file):
    return deep.DeepEngine(model_file, device="cpu")


def box_mask(h=96, w=128, y0=30, y1=60, x0=40, x1=90):
    mask = np.zeros((h, w), np.uint8)
    mask[y0:y1, x0:x1] = 255
    return mask


def outside_dilated(mask):
    import cv2

    hole = (mask > 127).astype(np.uint8)
    grown = cv2.dilate(hole, np.ones((2 * SEAM_PX + 3, 2 * SEAM_PX + 3), np.uint8))
    return grown == 0


# --- tensors ----------------------------------------------------------------------------------


def test_uint8_round_trips_through_the_network_range():
    values = np.arange(256, dtype=np.uint8)
    image = np.stack([values, values[::-1], values], -1).reshape(16, 16, 3)
    x, mask, sketch = deep.crop_to_tensors(image, np.eye(16, dtype=bool), None, torch.device("cpu"))
    assert x.shape == (1, 3, 16, 16) and float(x.min()) == -1.0 and float(x.max()) == 1.0
    assert mask.shape == (1, 1, 16, 16) and float(mask.sum()) == 16 and sketch is None
    assert np.array_equal(deep.tensor_to_rgb(x), image)
    assert np.array_equal(deep.tensor_to_rgb(torch.full((1, 3, 2, 2), 7.0))[..., 0], np.full((2, 2), 255))


# --- metadata and description ----------------------------------------------------------------


def test_engine_describes_itself_from_the_file_without_loading(engine):
    assert engine.name == "tiny_model" and engine.kind == "deep"
    assert engine.title == "Tiny" and engine.description == "a test model"
    assert engine.stage_names == ("coarse", "refined") and engine.multiple == 8
    assert engine.working_size == 64  # from the file's metadata
    assert engine.availability().ok and engine._models == {}


def test_working_size_defaults_per_architecture(tiny_arch, tmp_path, monkeypatch):
    path = tmp_path / "plain.safetensors"
    save_model(path, build(tiny_arch), metadata={})
    assert deep.DeepEngine(path).working_size == deep.DEFAULT_WORKING_SIZE
    monkeypatch.setattr(TinyTwoStage, "working_size", 384, raising=False)
    assert deep.DeepEngine(path).working_size == 384


# --- filling -----------------------------------------------------------------------------------


def test_fill_streams_coarse_then_refined_and_keeps_outside_pixels(engine, photo):
    mask = box_mask()
    request = FillRequest(photo, mask, options=FillOptions(strategy="full", device="cpu"))
    stages = engine.fill(request)
    first = next(stages)
    model = engine.model(torch.device("cpu"))
    assert first.name == "coarse" and model.events == ["coarse"], "refined computed before coarse was shown"
    second = next(stages)
    assert second.name == "refined" and second.final and not first.final
    assert next(stages, None) is None
    keep = outside_dilated(mask)
    for stage in (first, second):
        assert stage.image.shape == photo.shape and stage.image.dtype == np.uint8
        assert np.array_equal(stage.image[keep], photo[keep])
        assert stage.extras["device"] == "cpu" and "note" not in stage.extras
    hole = mask > 127
    assert not np.array_equal(first.image[hole], second.image[hole])
    assert not np.array_equal(second.image[hole], photo[hole])


def test_fill_matches_the_generator_run_directly(engine, photo):
    mask = box_mask()
    # fp32: bit-exact plumbing (auto would pick bf16 on AMX CPUs; the precision tests cover it),
    # and the model's fill as it came (harmonisation is tested in test_harmonise.py).
    options = FillOptions(strategy="full", precision="fp32", harmonise=False)
    stage = list(engine.fill(FillRequest(photo, mask, options=options)))[-1]
    model = engine.model(torch.device("cpu"))
    x, m, _ = deep.crop_to_tensors(photo, mask > 127, None, torch.device("cpu"))
    with torch.no_grad():
        expected = deep.tensor_to_rgb(model(x, m)[1])
    hole = mask > 127
    assert np.array_equal(stage.image[hole], expected[hole])


def test_crop_strategy_pads_to_the_multiple_and_returns_exact_size(engine, rng):
    image = rng.integers(0, 256, (101, 77, 3), dtype=np.uint8)
    mask = box_mask(101, 77, 40, 50, 30, 41)
    stages = list(engine.fill(FillRequest(image, mask, options=FillOptions(crop_margin=8))))
    model = engine.model(torch.device("cpu"))
    assert all(h % 8 == 0 and w % 8 == 0 for h, w in model.seen_shapes)
    assert [s.image.shape for s in stages] == [image.shape, image.shape]
    keep = outside_dilated(mask)
    assert np.array_equal(stages[-1].image[keep], image[keep])


def test_sketch_reaches_the_generator_and_changes_the_fill(engine, photo):
    mask = box_mask()
    sketch = np.zeros_like(mask)
    sketch[45, 40:90] = 255
    plain = list(engine.fill(FillRequest(photo, mask, options=FillOptions(strategy="full"))))[-1]
    guided = list(engine.fill(FillRequest(photo, mask, sketch, options=FillOptions(strategy="full"))))[-1]
    assert engine.model(torch.device("cpu")).seen_sketch == [False, True]
    assert not np.array_equal(plain.image, guided.image)


def test_cancel_between_stages_raises(engine, photo):
    cancel = CancelToken()
    stages = engine.fill(FillRequest(photo, box_mask(), options=FillOptions(strategy="full")), cancel)
    assert next(stages).name == "coarse"
    cancel.cancel()
    with pytest.raises(FillCancelled):
        next(stages)
    assert engine.model(torch.device("cpu")).events == ["coarse"]


def test_weights_load_once_and_stay_warm(engine, photo, monkeypatch):
    calls = []
    real = deep.load_model
    monkeypatch.setattr(deep, "load_model", lambda *a, **k: calls.append(a) or real(*a, **k))
    for _ in range(3):
        list(engine.fill(FillRequest(photo, box_mask())))
    assert len(calls) == 1


def test_concurrent_fills_load_once_and_agree(engine, photo, monkeypatch):
    import threading

    calls = []
    real = deep.load_model
    monkeypatch.setattr(deep, "load_model", lambda *a, **k: calls.append(a) or real(*a, **k))
    results = [None] * 4

    def work(i):
        results[i] = list(engine.fill(FillRequest(photo, box_mask())))[-1].image

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert all(np.array_equal(r, results[0]) for r in results)


# --- devices ----------------------------------------------------------------------------------


def test_missing_device_falls_back_to_cpu_with_a_note(engine, photo, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    stages = list(engine.fill(FillRequest(photo, box_mask(), options=FillOptions(device="cuda"))))
    for stage in stages:
        assert stage.extras["device"] == "cpu"
        assert "cuda was requested but is not available" in stage.extras["note"]
        assert stage.extras["note"].endswith("ran on the CPU")


def test_precision_option_is_applied_and_named_on_every_stage(engine, photo):
    """Precision: fp32 vs bf16 (8 significant bits). The tiny model's fills in the two
    precisions differ (bf16 ran), yet stay within a few grey levels of each other."""
    fills = {}
    for pref in ("fp32", "bf16"):
        request = FillRequest(photo, box_mask(), options=FillOptions(strategy="full", device="cpu",
                                                                      precision=pref))
        stages = list(engine.fill(request))
        assert [s.extras["precision"] for s in stages] == [pref] * len(stages)
        fills[pref] = stages[-1].image.astype(np.int16)
    hole = box_mask() > 127
    diff = np.abs(fills["fp32"] - fills["bf16"])[hole]
    assert diff.max() > 0 and diff.mean() < 4
    auto = list(engine.fill(FillRequest(photo, box_mask(), options=FillOptions(device="cpu"))))
    expected = "bf16" if precision.resolve("auto", "cpu") == torch.bfloat16 else "fp32"
    assert auto[-1].extras["precision"] == expected
    with pytest.raises(InvalidRequest, match="unknown precision 'fp8'; choose one of auto, fp32, bf16"):
        FillOptions(precision="fp8")


def test_device_resolution(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(deep, "_mps_available", lambda: False)
    assert deep.resolve_device("auto") == (torch.device("cpu"), "")
    assert deep.resolve_device("cpu") == (torch.device("cpu"), "")
    device, note = deep.resolve_device("mps")
    assert device.type == "cpu" and "mps was requested" in note
    monkeypatch.setattr(deep, "_mps_available", lambda: True)
    assert deep.resolve_device("auto") == (torch.device("mps"), "")
    with pytest.raises(InvalidRequest, match="unknown device 'tpu'; choose one of auto, cpu, cuda, mps"):
        deep.resolve_device("tpu")


# --- out of memory --------------------------------------------------------------------------


@pytest.fixture
def fake_gpu(engine, monkeypatch):
    """Pretend CUDA exists: the "GPU" model is a second CPU copy that raises out-of-memory
    above a pixel budget; the CPU model never does."""
    models = {}

    def model(self, device):
        key = "gpu" if device.type == "cuda" else "cpu"
        if key not in models:
            models[key] = deep.load_model(self.path)[0]
        return models[key]

    freed = []
    monkeypatch.setattr(deep, "resolve_device", lambda requested: (torch.device("cuda"), ""))
    monkeypatch.setattr(deep.DeepEngine, "model", model)
    monkeypatch.setattr(deep, "crop_to_tensors", lambda i, h, s, d: _cpu_tensors(i, h, s))
    monkeypatch.setattr(deep, "_compute_dtype", lambda preference, device: torch.float32)
    monkeypatch.setattr(deep, "_free_accelerator_memory", lambda device: freed.append(device.type))
    monkeypatch.setattr(deep, "MIN_RETRY_SIZE", 32)
    gpu = model(engine, torch.device("cuda"))
    return gpu, models, freed


def _cpu_tensors(image, hole, sketch):
    return _REAL_CROP_TO_TENSORS(image, hole, sketch, torch.device("cpu"))


_REAL_CROP_TO_TENSORS = deep.crop_to_tensors


def test_out_of_memory_retries_smaller_on_the_gpu(engine, photo, fake_gpu):
    gpu, models, freed = fake_gpu
    gpu.oom_above = 64 * 64  # the 96x128 full image does not fit; half of it does
    mask = box_mask()
    stages = list(engine.fill(FillRequest(photo, mask, options=FillOptions(strategy="full"))))
    assert [s.name for s in stages] == ["coarse", "refined"]
    assert gpu.seen_shapes == [(96, 128), (48, 64)]
    assert "cpu" not in models and freed == ["cuda"]
    for stage in stages:
        assert stage.extras["note"] == "ran out of CUDA memory; filled at 64 px and upscaled"
        assert stage.image.shape == photo.shape
        keep = outside_dilated(mask)
        assert np.array_equal(stage.image[keep], photo[keep])


def test_out_of_memory_with_crop_strategy_halves_the_working_size(engine, photo, fake_gpu):
    gpu, models, freed = fake_gpu
    gpu.oom_above = 40 * 40  # the 64 px working size does not fit; 32 px does
    stages = list(engine.fill(FillRequest(photo, box_mask(), options=FillOptions(crop_margin=8))))
    assert max(gpu.seen_shapes[0]) == 64 and max(gpu.seen_shapes[1]) == 32
    assert stages[-1].extras["note"] == "ran out of CUDA memory; filled at 32 px and upscaled"
    assert stages[-1].image.shape == photo.shape


def test_out_of_memory_twice_finishes_on_the_cpu_without_repeating_stages(engine, photo, fake_gpu):
    gpu, models, freed = fake_gpu
    gpu.oom_above, gpu.oom_in = 0, "refined"  # coarse always fits, refine never does
    names, notes = [], []
    for stage in engine.fill(FillRequest(photo, box_mask(), options=FillOptions(strategy="full"))):
        names.append(stage.name)
        notes.append(stage.extras.get("note"))
    assert names == ["coarse", "refined"], "the coarse preview must not be shown again"
    assert notes == [None, "ran out of CUDA memory; finished on the CPU"]
    assert freed == ["cuda", "cuda"] and models["cpu"].events == ["coarse", "refined"]


def test_other_errors_are_not_retried(engine, photo, fake_gpu, monkeypatch):
    gpu, models, freed = fake_gpu

    def broken(*a, **k):
        raise ValueError("a real bug")

    monkeypatch.setattr(gpu, "stages", broken)
    with pytest.raises(ValueError, match="a real bug"):
        list(engine.fill(FillRequest(photo, box_mask())))
    assert freed == [] and "cpu" not in models


# --- attention --------------------------------------------------------------------------------


def test_attention_heatmap_is_in_image_pixels(engine, photo):
    mask = box_mask()
    request = FillRequest(photo, mask, options=FillOptions(strategy="full", attention=True))
    coarse, refined = engine.fill(request)
    assert "attention" not in coarse.extras
    source = refined.extras["attention"]
    heat = source.heatmap(40, 50)
    assert heat.shape == mask.shape and heat.dtype == np.float32
    assert heat.sum() == pytest.approx(1.0, abs=1e-5) and heat.min() >= 0
    # grid cell (1, 2) covers pixel rows 8:16, cols 16:24; cell (2, 2) rows 16:24.
    assert heat[8:16, 16:24].sum() == pytest.approx(0.75, abs=1e-5)
    assert heat[16:24, 16:24].sum() == pytest.approx(0.25, abs=1e-5)
    assert np.allclose(heat[8:16, 16:24], 0.75 / 64)
    assert source.heatmap(5, 5) is None  # not a filled pixel
    assert all(layer.capture_topk == 0 for layer in deep._capture_modules(engine.model(torch.device("cpu"))))


def test_no_attention_unless_asked(engine, photo):
    stages = list(engine.fill(FillRequest(photo, box_mask(), options=FillOptions(strategy="full"))))
    assert all("attention" not in s.extras for s in stages)
    assert engine.model(torch.device("cpu")).attention.captured is None


def test_pixel_attention_maps_a_query_pixel_to_its_grid_cell():
    hole = np.zeros((16, 24), bool)
    hole[8:16, 8:16] = True
    asked = []

    class Source:
        grid_shape = (2, 3)

        def heatmap(self, gy, gx):
            asked.append((gy, gx))
            out = np.zeros((2, 3), np.float32)
            out[0, 2] = 1.0
            return out

    heat = deep.PixelAttention(Source(), hole).heatmap(15, 8)
    assert asked == [(1, 1)]
    assert heat[0:8, 16:24].sum() == pytest.approx(1.0) and heat.sum() == pytest.approx(1.0)


# --- discovery ----------------------------------------------------------------------------------


def test_discovery_finds_user_models_and_fills_through_get_engine(tiny_arch, data_dir, photo):
    clear_cache()
    save_model(paths.user_models_dir() / "my_portraits.safetensors", build(tiny_arch),
               metadata={"title": "My portraits"})
    infos = {e.name: e for e in list_engines(device="cpu")}
    assert infos["my_portraits"].title == "My portraits" and infos["my_portraits"].kind == "deep"
    assert infos["my_portraits"].availability.ok
    assert ARCH not in infos, "an architecture with weights needs no placeholder"
    engine = get_engine("my_portraits", device="cpu")
    assert engine is get_engine("my_portraits", device="cpu"), "engines (and warm weights) are cached"
    stages = list(engine.fill(FillRequest(photo, box_mask())))
    assert [s.name for s in stages] == ["coarse", "refined"]


def test_architecture_without_weights_is_an_unavailable_placeholder(tiny_arch, data_dir):
    clear_cache()
    infos = {e.name: e for e in list_engines(device="cpu")}
    reason = infos[ARCH].availability.reason
    assert not infos[ARCH].availability.ok and infos[ARCH].kind == "deep"
    assert reason.startswith("no trained weights for Tiny two-stage: put a .safetensors file in ")
    assert str(paths.user_models_dir()) in reason and "inpaint-train" in reason
    with pytest.raises(EngineUnavailable, match="no trained weights for Tiny two-stage"):
        get_engine(ARCH)


def test_unreadable_model_file_is_listed_unavailable_with_its_reason(tiny_arch, data_dir):
    clear_cache()
    (paths.user_models_dir() / "broken.safetensors").write_bytes(b"\x00" * 4)
    infos = {e.name: e for e in list_engines(device="cpu")}
    assert not infos["broken"].availability.ok
    assert "broken.safetensors is not a safetensors file" in infos["broken"].availability.reason
    with pytest.raises(EngineUnavailable, match="not a safetensors file"):
        get_engine("broken")


def test_same_stem_in_shipped_and_user_folders_gets_distinct_names(tiny_arch, data_dir, tmp_path, monkeypatch):
    shipped = tmp_path / "resources"
    (shipped / "models").mkdir(parents=True)
    monkeypatch.setenv("INPAINT_STUDIO_RESOURCES", str(shipped))
    clear_cache()
    save_model(shipped / "models" / "deepfill_v2.safetensors", build(tiny_arch), metadata={"title": "shipped"})
    save_model(paths.user_models_dir() / "deepfill_v2.safetensors", build(tiny_arch), metadata={"title": "mine"})
    engines = [e for e in deep.discover_deep_engines("cpu") if isinstance(e, deep.DeepEngine)]
    assert [(e.name, e.title) for e in engines] == [("deepfill_v2", "shipped"), ("deepfill_v2-2", "mine")]
    from inpaint_studio.engine import default_engine_name

    assert default_engine_name("cpu") == "deepfill_v2"


def test_training_state_beside_a_model_is_not_listed_as_an_engine(tiny_arch, data_dir):
    # The shipped folder holds deepfill_v2.train-state.safetensors (the relay's resume state):
    # it was listed as a broken model ("not written by Inpaint Studio") until discovery skipped it.
    clear_cache()
    folder = paths.user_models_dir()
    save_model(folder / "mine.safetensors", build(tiny_arch), metadata={"title": "mine"})
    (folder / "mine.train-state.safetensors").write_bytes(b"\x00" * 16)
    names = [e.name for e in deep.discover_deep_engines("cpu")]
    assert "mine" in names
    assert not [n for n in names if "train-state" in n]


def test_changed_model_file_is_picked_up_after_clear_cache(tiny_arch, data_dir):
    clear_cache()
    path = paths.user_models_dir() / "m.safetensors"
    save_model(path, build(tiny_arch), metadata={"title": "first"})
    assert get_engine("m", device="cpu").title == "first"
    save_model(path, build(tiny_arch), metadata={"title": "second version"})
    clear_cache()
    assert get_engine("m", device="cpu").title == "second version"


# --- the real DeepFill v2 -------------------------------------------------------------------


def test_deepfill_v2_file_fills_through_get_engine_with_attention(data_dir, rng):
    clear_cache()
    torch.manual_seed(0)
    save_model(paths.user_models_dir() / "deepfill_v2_small.safetensors", build("deepfill_v2", cnum=8),
               metadata={"title": "DeepFill v2 (test, random weights)"})
    engine = get_engine("deepfill_v2_small", device="cpu")
    assert engine.stage_names == ("coarse", "refined") and engine.working_size == deep.DEFAULT_WORKING_SIZE
    image = rng.integers(0, 256, (64, 72, 3), dtype=np.uint8)
    mask = box_mask(64, 72, 20, 44, 24, 48)
    sketch = np.zeros_like(mask)
    sketch[30, 24:48] = 255
    request = FillRequest(image, mask, sketch, options=FillOptions(strategy="full", attention=True))
    coarse, refined = engine.fill(request)
    assert (coarse.name, refined.name) == ("coarse", "refined")
    keep = outside_dilated(mask)
    for stage in (coarse, refined):
        assert stage.image.shape == image.shape
        assert np.array_equal(stage.image[keep], image[keep])
    heat = refined.extras["attention"].heatmap(32, 36)
    assert heat.shape == mask.shape and heat.sum() == pytest.approx(1.0, abs=1e-4)
    # A key whose 3x3 grid neighbourhood touches a hole cell is invalid: the hole covers grid
    # cells rows 2..5, cols 3..5 (8 px each), so cells rows 1..6, cols 2..6 get no weight.
    assert heat[8:56, 16:56].sum() == pytest.approx(0.0, abs=1e-6)
    assert heat[:8].sum() + heat[56:].sum() + heat[:, :16].sum() + heat[:, 56:].sum() > 0.99
    assert refined.extras["attention"].heatmap(2, 2) is None
    assert [n.name for n in list_engines("cpu") if n.name == "deepfill_v2_small"
            and n.availability.ok] == ["deepfill_v2_small"]
    # the engine computes attention only where the HD layer keeps the output
    assert engine.model(torch.device("cpu")).attention_scope == "hole"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_fill_matches_cpu_within_autocast_tolerance(data_dir, rng):
    clear_cache()
    torch.manual_seed(0)
    # Lively weights: a fresh DeepFill v2 outputs ~0 whatever its input (refined std 2e-7),
    # which would make the CPU and CUDA fills agree whatever either device computed.
    model = lively(build("deepfill_v2", cnum=16))
    save_model(paths.user_models_dir() / "dfv2.safetensors", model, metadata={})
    engine = get_engine("dfv2")
    image = rng.integers(0, 256, (128, 128, 3), dtype=np.uint8)
    other = rng.integers(0, 256, (128, 128, 3), dtype=np.uint8)
    mask = box_mask(128, 128, 40, 90, 30, 100)
    hole = mask > 127

    def fill(photo, device):
        request = FillRequest(photo, mask, options=FillOptions(strategy="full", device=device))
        stages = list(engine.fill(request))
        assert stages[-1].extras["device"].startswith(device) and "note" not in stages[-1].extras
        return stages[-1].image.astype(np.int16)

    cpu, cuda = fill(image, "cpu"), fill(image, "cuda")
    # The model answers its input: another photo gives a clearly different fill...
    spread = np.abs(cpu - fill(other, "cpu"))[hole].mean()
    assert spread > 10.0
    # ...while the devices agree within bf16 autocast's 8 significant bits.
    assert np.abs(cpu - cuda)[hole].mean() < min(3.0, spread / 5)


def test_fused_gating_warm_up_applies_to_reduced_precision_cpu_fills_only(monkeypatch):
    # fp32 fills keep the eager gating (faster there): nothing to compile.
    from inpaint_studio.engine.deep import warm_up_fused_gating
    from inpaint_studio.engine.warm_up import start_fused_gating_warm_up

    assert warm_up_fused_gating("cpu", "fp32") is None
    # Where compiling is off (this suite, or no C++ compiler) the warm-up declines, in its
    # thread as well, and fills keep the eager gating.
    monkeypatch.setenv("INPAINT_STUDIO_NO_COMPILE", "1")
    assert warm_up_fused_gating("cpu", "bf16") is None
    thread = start_fused_gating_warm_up("cpu", "bf16")
    thread.join(timeout=60)
    assert not thread.is_alive() and thread.daemon
    from inpaint_studio.layers import gating

    assert not gating.uses_fused_inference(torch.bfloat16)
