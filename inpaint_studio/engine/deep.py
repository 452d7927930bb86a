"""Deep engines: one per model file (``*.safetensors``) in the shipped and user model folders.

A :class:`DeepEngine` describes itself from the file's header (title, description,
architecture) without loading it; the weights load on the first fill, once per device, and
stay warm. Each fill picks a device (``FillOptions.device``: ``auto`` = CUDA, then MPS, then
CPU), runs the generator stage by stage under ``torch.inference_mode`` (channels_last on CUDA
and the CPU, where oneDNN's NHWC convolutions beat NCHW; in the precision that
``FillOptions.precision`` resolves to, see :mod:`inpaint_studio.precision`, named in each
stage's ``extras["precision"]``) and yields each stage as soon as it is computed, so the app
shows the coarse preview while the refinement runs.

When a GPU runs out of memory the fill is retried smaller on the same GPU, then on the CPU,
and the stage carries a note saying so. An architecture with no weights file appears as an
unavailable placeholder: random weights are never shown to a user.
"""

from __future__ import annotations

import dataclasses
import gc
import threading
from pathlib import Path
from typing import Any, Iterator

import cv2
import numpy as np
import torch

from .. import networks, paths, precision
from ..weights import TRAINING_STATE_SUFFIX, ModelCard, WeightsError, check_model_file, load_model
from .base import Availability, CoreStage, Engine, EngineUnavailable
from .hd import run_fill
from .request import CancelToken, FillOptions, FillRequest, FillStage, InvalidRequest, ProgressCallback

# Longest side (px) a deep model fills at when neither the file nor the architecture says.
DEFAULT_WORKING_SIZE = 512
# An out-of-memory retry never goes below this size: smaller fills look worse than the CPU's.
MIN_RETRY_SIZE = 128
DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")
# How many background positions per hole position the "where did this come from" view keeps.
CAPTURE_TOPK = 16


# ---------------------------------------------------------------------------------------------
# Devices


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def resolve_device(requested: str) -> tuple[torch.device, str]:
    """The device to run on for ``requested`` (``auto``, ``cpu``, ``cuda``, ``cuda:N``,
    ``mps``) and a note for the user when the requested one is missing (then the CPU)."""
    kind, _, index = requested.partition(":")
    if kind not in DEVICE_CHOICES or (index and not (kind == "cuda" and index.isdigit())):
        raise InvalidRequest(
            f"unknown device {requested!r}; choose one of {', '.join(DEVICE_CHOICES)} (or cuda:N)"
        )
    if kind == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda"), ""
        if _mps_available():
            return torch.device("mps"), ""
        return torch.device("cpu"), ""
    if kind == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count > (int(index) if index else 0):
            return torch.device(requested), ""
        found = f"{count} CUDA device(s) found" if count else "no CUDA GPU or no CUDA build of torch"
        return torch.device("cpu"), f"{requested} was requested but is not available ({found}); ran on the CPU"
    if kind == "mps":
        if _mps_available():
            return torch.device("mps"), ""
        return torch.device("cpu"), "mps was requested but is not available here; ran on the CPU"
    return torch.device("cpu"), ""


def _compute_dtype(preference: str, device: torch.device) -> torch.dtype:
    """The precision policy's dtype for ``FillOptions.precision`` on ``device``
    (:func:`inpaint_studio.precision.resolve`): bf16 on CPUs with AMX or AVX512-BF16 and on
    GPUs with bf16, fp16 on older GPUs, fp32 elsewhere (MPS always: its autocast coverage
    differs between torch releases, and a model that silently changes its output with the
    torch version is worse than a slower one)."""
    return precision.resolve(preference, device)


def _uses_channels_last(device: torch.device) -> bool:
    """Whether models and inputs on ``device`` run channels_last (NHWC): on CUDA (tensor
    cores) and the CPU (oneDNN's NHWC kernels; ~1.2-1.3x less CPU time on DeepFill v2 than
    NCHW). MPS stays NCHW: its NHWC coverage varies between torch releases."""
    return device.type in ("cuda", "cpu")


def _is_out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    # MPS and some CUDA paths raise a plain RuntimeError with this wording.
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def _free_accelerator_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    elif device.type == "mps":
        torch.mps.empty_cache()


# ---------------------------------------------------------------------------------------------
# Tensors in and out


def crop_to_tensors(
    image: np.ndarray, hole: np.ndarray, sketch: np.ndarray | None, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Network inputs for one crop.

    image: ``uint8 (h, w, 3)`` RGB -> float ``(1, 3, h, w)`` in ``[-1, 1]``.
    hole: ``bool (h, w)`` -> float ``(1, 1, h, w)``, 1 = hole.
    sketch: ``bool (h, w)`` or None -> float ``(1, 1, h, w)`` in ``{0, 1}`` or None.
    uint8 travels to the device and converts there (a quarter of the bytes over the bus).
    """
    rgb = torch.from_numpy(np.ascontiguousarray(image)).to(device).permute(2, 0, 1)[None]
    x = rgb.float().div_(127.5).sub_(1.0)
    mask = torch.from_numpy(np.ascontiguousarray(hole)).to(device)[None, None].float()
    lines = None
    if sketch is not None:
        lines = torch.from_numpy(np.ascontiguousarray(sketch)).to(device)[None, None].float()
    if _uses_channels_last(device):
        x = x.contiguous(memory_format=torch.channels_last)
    return x, mask, lines


def tensor_to_rgb(output: torch.Tensor) -> np.ndarray:
    """A raw generator output ``(1, 3, h, w)`` in ``[-1, 1]`` (any float dtype) ->
    ``uint8 (h, w, 3)`` RGB, rounded and clipped."""
    rgb = output[0].float().clamp(-1.0, 1.0).add(1.0).mul(127.5).round().to(torch.uint8)
    return rgb.permute(1, 2, 0).contiguous().cpu().numpy()


class PixelAttention:
    """An :class:`~inpaint_studio.engine.base.AttentionSource` in crop pixel coordinates,
    built from a generator's attention on its matching grid.

    DeepFill-style contextual attention matches on a grid coarser than the crop (image px ->
    feature px (/4) -> rate-downscaled grid (/2), so one grid cell covers 8x8 px); the grid
    source has ``grid_shape`` ``(gh, gw)`` and ``heatmap(gy, gx)`` returning ``float32
    (gh, gw)`` (e.g. :class:`inpaint_studio.layers.contextual.AttentionCapture`). A pixel maps
    to the cell that contains it (``gy = y * gh // h``), and each cell's weight spreads evenly
    over the pixels it covers, so the pixel map still sums to 1.

    grid_source: the generator's ``attention_source()``.
    hole: ``bool (h, w)`` crop hole; pixels outside it were not filled (None).
    """

    def __init__(self, grid_source: Any, hole: np.ndarray):
        self._grid = grid_source
        self._hole = hole

    def heatmap(self, y: int, x: int) -> np.ndarray | None:
        """``float32 (h, w)`` over the crop, or None when ``(y, x)`` is not a hole pixel."""
        h, w = self._hole.shape
        if not (0 <= y < h and 0 <= x < w) or not self._hole[y, x]:
            return None
        gh, gw = self._grid.grid_shape
        cells = self._grid.heatmap(y * gh // h, x * gw // w)
        if cells is None:
            return None
        pixels = cv2.resize(np.asarray(cells, dtype=np.float32), (w, h), interpolation=cv2.INTER_NEAREST)
        total = float(pixels.sum())
        return pixels / total if total > 0 else pixels


def _capture_modules(model: torch.nn.Module) -> list[torch.nn.Module]:
    """Layers that can record attention during a forward (``capture_topk`` attribute)."""
    return [m for m in model.modules() if hasattr(m, "capture_topk")]


# ---------------------------------------------------------------------------------------------
# Engines


def _arch_title(arch: str) -> str:
    """Human name of an architecture: the generator class's ``title`` if it has one, else the
    registry description's head (before a colon, without a parenthesised citation:
    ``"Partial-convolution U-Net (Liu et al. 2018): ..."`` -> ``"Partial-convolution U-Net"``)."""
    try:
        info = networks.arch_info(arch)
    except KeyError:
        return arch
    title = getattr(info.cls, "title", "")
    if isinstance(title, str) and title:
        return title
    head = info.description.split(":", 1)[0].split(" (", 1)[0].strip()
    return head or arch


def _working_size_of(generator: Any) -> int:
    """A generator class's or instance's ``working_size`` attribute, else the default."""
    size = getattr(generator, "working_size", None)
    return int(size) if isinstance(size, int) and size > 0 else DEFAULT_WORKING_SIZE


class DeepEngine(Engine):
    """The engine of one model file.

    name: the file's stem (``deepfill_v2`` is the shipped default); title and description from
    its metadata; ``multiple`` and ``stage_names`` from the generator as built from the file's
    arguments; ``working_size`` from the file's ``working_size`` metadata, else the
    generator's ``working_size`` attribute, else :data:`DEFAULT_WORKING_SIZE`.

    device: the default device when a request says ``auto``.
    Thread-safe: weights load once per device under a lock; stages of concurrent fills are
    computed one at a time (the attention capture lives on the model).
    """

    kind = "deep"

    def __init__(self, path: str | Path, device: str = "auto", name: str | None = None):
        self.path = Path(path)
        self.name = name or self.path.stem
        self.default_device = device
        self._models: dict[str, torch.nn.Module] = {}
        self._load_lock = threading.Lock()
        self._run_lock = threading.Lock()
        self._failure: str = ""
        self.card: ModelCard | None = None
        try:
            self.card = check_model_file(self.path)
        except WeightsError as exc:
            self._failure = str(exc)
            self.title = self.name
            self.description = f"cannot be used: {exc}"
            return
        # Built on the meta device (no memory): per-instance attributes such as ``multiple``
        # may depend on the architecture's arguments.
        with torch.device("meta"):
            probe = networks.build(self.card.arch, **self.card.arch_args)
        self.title = self.card.title or self.name
        self.description = self.card.description or networks.arch_info(self.card.arch).description
        self.stage_names = tuple(probe.stage_names)
        self.uses_sketch = bool(getattr(probe, "uses_sketch", False))
        self.has_attention = callable(getattr(probe, "capture_attention", None))
        self.multiple = int(probe.multiple)
        size = self.card.extra.get("working_size")
        self.working_size = (
            int(size) if isinstance(size, int) and size > 0 else _working_size_of(probe)
        )

    @property
    def arch(self) -> str:
        return self.card.arch if self.card else ""

    def availability(self) -> Availability:
        if self._failure:
            return Availability(False, self._failure)
        return Availability(True)

    def model(self, device: torch.device) -> torch.nn.Module:
        """The generator on ``device``, loaded on first use and kept."""
        key = str(device)
        with self._load_lock:
            if key not in self._models:
                try:
                    model, _ = load_model(self.path, device="cpu")
                except WeightsError as exc:
                    # The header checked out but the data did not: stop offering this engine.
                    self._failure = str(exc)
                    raise EngineUnavailable(f"{self.title} is not available: {exc}") from None
                if hasattr(model, "attention_scope"):
                    # The HD layer keeps only the hole and its seam band, which the "hole"
                    # scope computes exactly; attention elsewhere would be thrown away.
                    model.attention_scope = "hole"
                if _uses_channels_last(device):
                    model = model.to(memory_format=torch.channels_last)
                self._models[key] = model.to(device)
            return self._models[key]

    def release(self) -> None:
        """Drop the loaded weights (all devices); the next fill loads them again."""
        with self._load_lock:
            self._models.clear()

    def fill_core(
        self, image: np.ndarray, hole: np.ndarray, sketch: np.ndarray | None, options: FillOptions
    ) -> Iterator[CoreStage]:
        requested = options.device if options.device != "auto" else self.default_device
        device, note = resolve_device(requested)
        return self._stages_on(device, note, image, hole, sketch, options)

    def _stages_on(
        self,
        device: torch.device,
        note: str,
        image: np.ndarray,
        hole: np.ndarray,
        sketch: np.ndarray | None,
        options: FillOptions,
    ) -> Iterator[CoreStage]:
        """Yield one :class:`CoreStage` per generator stage for one crop on ``device``."""
        model = self.model(device)
        dtype = _compute_dtype(options.precision, device)
        capture = _capture_modules(model) if options.attention else []
        stages = None
        try:
            for _ in self.stage_names:
                # Locks, grad and autocast modes are held only while a stage computes, never
                # across a yield: the caller's code between stages runs in its own modes.
                with self._run_lock, torch.inference_mode(), precision.autocast(device, dtype):
                    if stages is None:
                        x, mask, lines = crop_to_tensors(image, hole, sketch, device)
                        stages = model.stages(x, mask, lines if model.uses_sketch else None)
                    before = model.attention_source() if capture else None
                    for layer in capture:
                        layer.capture_topk = CAPTURE_TOPK
                    try:
                        name, output = next(stages)
                    finally:
                        for layer in capture:
                            layer.capture_topk = 0
                    # A stage without attention (the coarse one) leaves the previous capture
                    # in place: only a new source object belongs to this stage.
                    after = model.attention_source() if capture else None
                    rgb = tensor_to_rgb(output)
                extras: dict[str, Any] = {"device": str(device), "precision": precision.name(dtype)}
                if note:
                    extras["note"] = note
                if after is not None and after is not before:
                    extras["attention"] = PixelAttention(after, hole)
                yield CoreStage(name, rgb, extras)
        finally:
            if stages is not None:
                stages.close()

    def fill(self, request: FillRequest, cancel: CancelToken | None = None,
             progress: ProgressCallback | None = None) -> Iterator[FillStage]:
        """Like :meth:`Engine.fill`, plus out-of-memory recovery on a GPU: free memory and
        retry at half the working size, then on the CPU, noting it in ``extras["note"]``.
        Stages already shown before a retry are not repeated."""
        available = self.availability()
        if not available:
            raise EngineUnavailable(f"{self.title or self.name} is not available: {available.reason}")
        return self._fill_with_retries(request, cancel, progress)

    def _fill_with_retries(self, request: FillRequest, cancel: CancelToken | None,
                           progress: ProgressCallback | None = None) -> Iterator[FillStage]:
        requested = request.options.device if request.options.device != "auto" else self.default_device
        device, device_note = resolve_device(requested)
        shown: set[str] = set()
        for attempt in _attempts(self, request, device):
            try:
                for stage in run_fill(attempt.engine, attempt.request, cancel, progress):
                    if stage.name in shown and not stage.final:
                        continue
                    shown.add(stage.name)
                    notes = [n for n in (device_note, attempt.note) if n]
                    if notes:
                        stage.extras["note"] = "; ".join(notes)
                    yield stage
                return
            except Exception as exc:  # noqa: BLE001 - only out-of-memory is retried
                if not (_is_out_of_memory(exc) and attempt.retry_allowed):
                    raise
            # Outside the except block, so the traceback's frames (and their tensors) are gone.
            _free_accelerator_memory(attempt.device)


@dataclasses.dataclass(frozen=True)
class _Attempt:
    """One try of a fill: an engine view fixed to a device and working size, the request
    (possibly re-planned smaller), the note telling the user what changed, and whether an
    out-of-memory error here may be retried by the next attempt."""

    engine: Engine
    request: FillRequest
    device: torch.device
    note: str
    retry_allowed: bool


class _PinnedEngine(Engine):
    """A :class:`DeepEngine` seen through a fixed device and working size (for retries),
    without touching the shared engine's attributes (other threads may be filling)."""

    kind = "deep"

    def __init__(self, base: DeepEngine, device: torch.device, working_size: int | None):
        self.base = base
        self.device = device
        self.name = base.name
        self.title = base.title
        self.multiple = base.multiple
        self.stage_names = base.stage_names
        self.working_size = working_size

    def fill_core(self, image, hole, sketch, options):
        return self.base._stages_on(self.device, "", image, hole, sketch, options)


def _attempts(engine: DeepEngine, request: FillRequest, device: torch.device) -> Iterator[_Attempt]:
    """The plan for one fill: as asked; on a GPU out of memory, half the size on the GPU; then
    the CPU at the asked size."""
    if device.type == "cpu":
        yield _Attempt(_PinnedEngine(engine, device, engine.working_size), request, device, "", False)
        return
    yield _Attempt(_PinnedEngine(engine, device, engine.working_size), request, device, "", True)

    h, w = request.image.shape[:2]
    options = request.options
    if options.strategy == "crop":
        size = max(MIN_RETRY_SIZE, (engine.working_size or max(h, w)) // 2)
        smaller = request
    else:
        # full/resize ignore the working size: re-plan as a resize to half the failed size.
        failed = max(h, w) if options.strategy == "full" else min(max(h, w), options.resize_limit)
        size = max(MIN_RETRY_SIZE, failed // 2)
        smaller = dataclasses.replace(
            request, options=dataclasses.replace(options, strategy="resize", resize_limit=size)
        )
    yield _Attempt(
        _PinnedEngine(engine, device, size), smaller, device,
        f"ran out of {device.type.upper()} memory; filled at {size} px and upscaled", True,
    )
    cpu = torch.device("cpu")
    yield _Attempt(
        _PinnedEngine(engine, cpu, engine.working_size), request, cpu,
        f"ran out of {device.type.upper()} memory; finished on the CPU", False,
    )


class UnavailableArchitecture(Engine):
    """Placeholder for a registered architecture that has no weights file: listed in the
    selector so users see it exists, never runnable (random weights are never shown)."""

    kind = "deep"

    def __init__(self, arch: str, search_dirs: list[Path]):
        info = networks.arch_info(arch)
        self.name = arch
        self.arch = arch
        self.title = _arch_title(arch)
        self.description = info.description
        self.stage_names = tuple(info.cls.stage_names)
        self.working_size = _working_size_of(info.cls)
        dirs = " or ".join(str(d) for d in search_dirs)
        self._reason = (
            f"no trained weights for {self.title}: put a .safetensors file in {dirs} "
            f"or train one with `inpaint-train`"
        )

    def availability(self) -> Availability:
        return Availability(False, self._reason)

    def fill_core(self, image, hole, sketch, options):
        raise EngineUnavailable(self._reason)


# ---------------------------------------------------------------------------------------------
# Discovery

_ENGINES: dict[tuple[str, int, int, str, str], DeepEngine] = {}
_ENGINES_LOCK = threading.Lock()


def _engine_for(path: Path, device: str, name: str) -> DeepEngine:
    """The cached engine for ``path`` (a changed file, by size and mtime, is a new engine)."""
    try:
        stat = path.stat()
        key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size, device, name)
    except (OSError, RuntimeError):
        # A dangling link or a symlink loop: an uncached engine whose check says why it is
        # unavailable; the other model files stay listed.
        return DeepEngine(path, device=device, name=name)
    with _ENGINES_LOCK:
        if key not in _ENGINES:
            _ENGINES[key] = DeepEngine(path, device=device, name=name)
        return _ENGINES[key]


def discover_deep_engines(device: str = "auto") -> list[Engine]:
    """One engine per ``*.safetensors`` in :func:`paths.model_search_dirs` (shipped first,
    then the user's; a stem seen before gets a ``-2``, ``-3`` suffix; training states,
    :data:`~inpaint_studio.weights.TRAINING_STATE_SUFFIX`, are not models and not listed),
    then one unavailable placeholder per registered architecture that has no weights file."""
    dirs = paths.model_search_dirs()
    engines: list[Engine] = []
    taken: set[str] = set()
    for folder in dirs:
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.safetensors")):
            if path.name.endswith(TRAINING_STATE_SUFFIX):
                continue
            name, k = path.stem, 1
            while name in taken:
                k += 1
                name = f"{path.stem}-{k}"
            taken.add(name)
            engines.append(_engine_for(path, device, name))
    with_weights = {e.arch for e in engines if isinstance(e, DeepEngine) and e.card}
    for arch in networks.generator_names():
        if arch not in with_weights and arch not in taken:
            engines.append(UnavailableArchitecture(arch, dirs))
    return engines


def clear_deep_cache() -> None:
    """Forget discovered engines and their loaded weights (after model files change)."""
    with _ENGINES_LOCK:
        for engine in _ENGINES.values():
            engine.release()
        _ENGINES.clear()


def warm_up_fused_gating(device: str = "auto", preference: str = "auto") -> float | None:
    """Compile the fused gating of gated convolutions for fills on ``device`` at precision
    ``preference`` (:mod:`inpaint_studio.precision`), and use it from then on; seconds taken, or
    None where it does not apply: fills that compute in fp32 (the eager gating is faster
    there), GPUs (never measured), no C++ compiler. Meant for a background thread of a
    long-lived process (the app, a batch): fills meanwhile run with the eager gating, and on a
    2-core AMX CPU a bf16 fill then takes ~0.68x the CPU time (see
    :func:`inpaint_studio.layers.gating.uses_fused_inference`)."""
    from ..layers import gating

    target, _ = resolve_device(device)
    if target.type != "cpu":
        return None
    dtype = precision.resolve(preference, target)
    if dtype == torch.float32:
        return None
    return gating.warm_up(dtype)
