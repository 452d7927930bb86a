"""Fill from the window: engine and device selectors, submitting jobs to the worker,
showing stages as they arrive (coarse preview, then refined), Apply / Discard, cancel, and
the "where did this come from" attention probe."""

from __future__ import annotations

import importlib.util
import textwrap
import time
from typing import Callable

import numpy as np
from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QStandardItemModel
from PySide6.QtWidgets import QComboBox, QLabel

from .. import engine as engine_api
from .. import mask_ops
from ..engine import registry
from ..document import Document, Rect
from ..engine import AttentionSource, FillOptions, FillRequest, FillStage
from .canvas import CanvasView
from .settings import AUTO_GAP_FRACTION, Preferences
from .worker import FillJob, FillService, StageUpdate

DEVICE_CHOICES = (("auto", "Auto"), ("cpu", "CPU"), ("gpu", "GPU"))


def wrapped(text: str, width: int = 60) -> str:
    """A tooltip broken into lines of at most ``width`` characters (a long reason in one
    line runs off the screen's edge)."""
    return "\n".join(textwrap.fill(part, width) for part in text.split("\n"))


def uses_sketch(info) -> bool:
    """Whether the engine row's engine follows sketch lines (``EngineInfo.uses_sketch``)."""
    return bool(info.uses_sketch)


def has_attention(info) -> bool:
    """Whether the engine can show where a pixel came from (``EngineInfo.has_attention``)."""
    return bool(info.has_attention)


def explain_engine(selected, infos: list, default_name: str, chosen: bool) -> str:
    """One line for the label beside the engine selector: which engine will run and why.

    selected: the selected row (None: none can run); infos: every row; default_name: the
    registry's default among them; chosen: the user picked ``selected`` themselves.
    """
    if selected is None:
        return "No engine can run here."
    if chosen and selected.name != default_name:
        why = "your choice"
    elif selected.kind == "deep":
        why = "the default deep model"
    else:
        why = "the default"
    deep = [i for i in infos if i.kind == "deep" and i.name != selected.name]
    # The shipped model first (why it is not running is what the user wants to know), else
    # the first deep engine that cannot run.
    shipped = registry.DEFAULT_DEEP_ENGINE
    deep.sort(key=lambda i: (i.name != shipped, bool(i.availability)))
    notes = []
    if selected.kind != "deep" and deep:
        first = deep[0]
        if not first.availability:
            reason = first.availability.reason.split(":")[0].split(";")[0].strip()
            reason = reason.removesuffix(f" for {first.title}")  # the name is said already
            notes.append(f"{first.title} cannot run: {reason}")
        elif first.in_training:  # the registry's flag, which also keeps it off the default
            notes.append(f"{first.title} can be chosen; not the default yet")
    line = f"Runs {selected.title} ({why})"
    return line + (" — " + "; ".join(notes) if notes else "")


def gpu_device() -> str | None:
    """``cuda`` or ``mps`` when torch sees a GPU here, else None."""
    if importlib.util.find_spec("torch") is None:
        return None
    import torch

    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return None


def stage_precision(stage: FillStage) -> str:
    """The precision a stage ran in (``fp32``, ``bf16``...) when the engine reports it
    (``FillStage.precision`` or ``extras["precision"]``), else ""."""
    value = getattr(stage, "precision", None) or stage.extras.get("precision")
    return str(value) if value else ""


class FillController(QObject):
    """Owns the fill state of the window.

    Signals: ``status(str)`` a line for the status bar; ``result_changed(bool)`` whether an
    unapplied result is shown (the window enables Apply / Discard); ``busy_changed(bool)``;
    ``applied(object)`` the dirty Rect of an applied fill.
    """

    status = Signal(str)
    result_changed = Signal(bool)
    busy_changed = Signal(bool)
    applied = Signal(object)
    engine_changed = Signal(object)  # the selected EngineInfo row, or None
    progress = Signal(float, str)  # fraction in [0, 1] (or -1: unknown), text with an estimate

    def __init__(self, canvas: CanvasView, prefs: Preferences, service: FillService,
                 engine_lister: Callable[[str], list] | None = None,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.canvas = canvas
        self.prefs = prefs
        self.service = service
        self._list = engine_lister or engine_api.list_engines
        self.engine_box = QComboBox()
        # Narrow in the toolbar (which must fit a 1000 px window); the list opens wide enough
        # for long model names.
        self.engine_box.setMinimumContentsLength(14)
        self.engine_box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.engine_box.view().setMinimumWidth(280)
        self.engine_box.setToolTip("Fill engine: deep models and classical methods")
        self.engine_note = QLabel()  # which engine will run and why, in plain sight
        self.engine_note.setObjectName("engine_note")
        # Two short lines at most beside the selector, so the fill bar keeps its buttons.
        self.engine_note.setWordWrap(True)
        self.engine_note.setMaximumWidth(380)
        self.engine_note.setContentsMargins(6, 0, 6, 0)
        font = self.engine_note.font()
        font.setPointSizeF(font.pointSizeF() * 0.9)
        self.engine_note.setFont(font)
        self._infos: list = []
        self._chosen = False  # the user picked the engine (not the default)
        self.device_box = QComboBox()
        self.device_box.setToolTip("Where deep models run")
        self._gpu = gpu_device()
        for key, text in DEVICE_CHOICES:
            self.device_box.addItem(text, key)
        gpu_item = self.device_box.model().item(2)
        if self._gpu is None:
            gpu_item.setEnabled(False)
            gpu_item.setToolTip("No CUDA or MPS GPU is visible to PyTorch here")
        self.device_box.setCurrentIndex(max(0, self.device_box.findData(prefs.device)))
        self.device_box.currentIndexChanged.connect(self._device_changed)
        self.engine_box.currentIndexChanged.connect(self._engine_changed)

        self.result: FillStage | None = None
        self.result_rect: Rect | None = None  # where the shown result differs from the photo
        self.result_hole: np.ndarray | None = None  # bool (H, W): the hole the result fills
        self._holes: dict[int, np.ndarray] = {}  # request id -> the hole it was asked for
        self.stages_seen: list[tuple[int, str]] = []  # (request id, stage name) shown
        self.stale_dropped = 0
        self._timings: list[str] = []
        self._engine_title = ""  # of the running fill, for the status line
        self._t0 = 0.0
        service.worker.started.connect(self._on_started)
        service.worker.stage_ready.connect(self._on_stage)
        service.worker.failed.connect(self._on_failed)
        service.worker.finished.connect(self._on_finished)
        if hasattr(service.worker, "progressed"):
            service.worker.progressed.connect(self._on_progress)

    # ---------------------------------------------------------------- selectors
    @property
    def device(self) -> str:
        """The engine device for the selector: ``auto``, ``cpu`` or the GPU's name."""
        choice = self.device_box.currentData() or "auto"
        return (self._gpu or "auto") if choice == "gpu" else choice

    @property
    def engine_name(self) -> str:
        return self.engine_box.currentData() or ""

    def refresh_engines(self) -> None:
        """Fill the engine selector from the registry; unavailable engines are listed,
        disabled, with the reason as tooltip."""
        keep = self.engine_name or self.prefs.engine
        try:
            infos = self._list(self.device)
        except Exception as exc:  # a broken model folder must not hide the classical engines
            self.status.emit(f"Could not list engines: {exc}")
            infos = []
        self.engine_box.blockSignals(True)
        self.engine_box.clear()
        model: QStandardItemModel = self.engine_box.model()
        for info in infos:
            self.engine_box.addItem(info.title, info.name)
            item = model.item(self.engine_box.count() - 1)
            if info.availability:
                item.setToolTip(f"{info.description} ({info.kind})")
            else:
                item.setEnabled(False)
                item.setToolTip(f"Unavailable: {info.availability.reason}")
        index = self.engine_box.findData(keep)
        if index < 0 or not model.item(index).isEnabled():
            index = self._default_index(infos)
        self._infos = infos
        self.engine_box.setCurrentIndex(index)
        self.engine_box.blockSignals(False)
        self._chosen = bool(self.prefs.engine) and self.engine_name == self.prefs.engine \
            and self.engine_name != engine_api.default_engine_among(infos)
        self._describe_engine()

    @property
    def engine_info(self):
        """The selected engine's row (``EngineInfo``), or None."""
        for info in self._infos:
            if info.name == self.engine_name:
                return info
        return None

    def _describe_engine(self) -> None:
        info = self.engine_info
        default = engine_api.default_engine_among(self._infos)
        self.engine_note.setText(explain_engine(info, self._infos, default, self._chosen))
        reasons = [f"{i.title}: {i.availability.reason if not i.availability else i.description}"
                   for i in self._infos if i.kind == "deep"]
        self.engine_note.setToolTip(wrapped("\n".join(reasons)) if reasons else "")
        self.engine_changed.emit(info)

    def _default_index(self, infos: list) -> int:
        # From the rows just listed: no second model discovery, nothing to swallow.
        wanted = engine_api.default_engine_among(infos)
        usable = [i for i, info in enumerate(infos) if info.availability]
        for i in usable:
            if infos[i].name == wanted:
                return i
        return usable[0] if usable else -1

    def _engine_changed(self) -> None:
        self.prefs.engine = self.engine_name
        self._chosen = True
        self._describe_engine()

    def _device_changed(self) -> None:
        self.prefs.device = self.device_box.currentData()
        self.refresh_engines()  # availability can depend on the device

    # ---------------------------------------------------------------- fill
    def start(self, document: Document | None, attention: bool = False) -> int | None:
        """Submit a fill of the document's hole; returns the request id, or None (with a
        status message) when there is nothing to fill or no engine."""
        if document is None:
            self.status.emit("Open a photo first.")
            return None
        if not document.has_hole:
            self.status.emit("Paint over what to remove first (brush: B).")
            return None
        if not self.engine_name:
            self.status.emit("No fill engine is available.")
            return None
        options = FillOptions(**self._option_values(attention))
        # Copies: the worker reads them while the user may keep painting or undoing.
        mask, prepared = self.prepared_mask(document)
        sketch = None
        if document.sketch.any():
            sketch = np.where(mask > 127, document.sketch, 0).astype(np.uint8)
            if not sketch.any():
                sketch = None  # every line is outside the hole: no guidance
        request = FillRequest(document.image.copy(), mask, sketch, options,
                              request_id=self.service.next_request_id())
        self._holes = {request.request_id: mask > 127}
        self._timings = []
        self._t0 = time.perf_counter()
        self.service.submit(FillJob(request, self.engine_name, self.device))
        self.busy_changed.emit(True)
        self.status.emit(f"Filling with {self.engine_box.currentText()}{prepared}…  (Esc cancels)")
        return request.request_id

    def _option_values(self, attention: bool) -> dict:
        prefs = self.prefs
        return dict(strategy=prefs.strategy, crop_margin=prefs.crop_margin, resize_limit=prefs.resize_limit,
                    device=self.device, attention=attention, precision=prefs.precision,
                    texture=prefs.texture, harmonise=prefs.harmonise)

    def prepared_mask(self, document: Document) -> tuple[np.ndarray, str]:
        """The hole a fill receives (``uint8`` ``(H, W)``, a new array): the document's mask
        with small enclosed gaps filled and grown by the preference's pixels; and a note for
        the status line saying what was added (empty when nothing)."""
        gap_area = int(AUTO_GAP_FRACTION * document.width * document.height) \
            if self.prefs.fill_gaps_before_fill else None
        mask = mask_ops.prepare_for_fill(document.mask, self.prefs.grow_before_fill, gap_area)
        notes = []
        if gap_area:
            gaps = mask_ops.enclosed_gaps(document.mask, gap_area)
            if gaps.any():
                notes.append("gaps in the hole filled")
        if self.prefs.grow_before_fill:
            notes.append(f"hole grown {self.prefs.grow_before_fill} px")
        return mask, (" (" + ", ".join(notes) + ")" if notes else "")

    def cancel(self) -> bool:
        if self.service.cancel():
            self.busy_changed.emit(False)
            self.progress.emit(-1.0, "")
            self.status.emit("Fill cancelled.")
            return True
        return False

    def _on_progress(self, request_id: int, report) -> None:
        """A progress report of the running fill (an ``engine.FillProgress``): the bar, and
        its text with an estimate of the time left."""
        if not self.service.is_current(request_id):
            return
        fraction = min(1.0, max(0.0, float(report.fraction)))
        eta = report.eta() if hasattr(report, "eta") else None
        left = f"about {eta:.0f} s left" if eta is not None and fraction >= 0.05 \
            and report.seconds > 0.5 and fraction < 1.0 else ""
        text = ", ".join(part for part in (report.text, left) if part)
        self.progress.emit(fraction, text)

    def _on_started(self, request_id: int, title: str) -> None:
        if self.service.is_current(request_id):
            self._engine_title = title
            self.status.emit(f"Filling with {title}…  (Esc cancels)")

    def _on_stage(self, update: StageUpdate) -> None:
        stage = update.stage
        if not self.service.is_current(stage.request_id):
            self.stale_dropped += 1  # a superseded or cancelled request
            return
        self.result = stage
        self.result_rect = update.changed
        self.result_hole = self._holes.get(stage.request_id)
        self.stages_seen.append((stage.request_id, stage.name))
        self.canvas.show_heatmap(None)
        self.canvas.show_result(stage.image, update.changed, self.result_hole)
        ran = stage_precision(stage)
        self._timings.append(f"{stage.name} {stage.seconds:.2f} s" + (f" ({ran})" if ran else ""))
        note = stage.extras.get("note")
        tail = "  —  Apply (Enter) or Discard (Backspace); hold Tab for the original" if stage.final \
            else "  (preview; refining…)"
        self.status.emit(f"{self._engine_title}: " + " · ".join(self._timings) + tail
                         + (f"  [{note}]" if note else ""))
        self.result_changed.emit(True)

    def _on_failed(self, request_id: int, message: str) -> None:
        if self.service.is_current(request_id):
            self.status.emit(f"Fill failed: {message}")

    def _on_finished(self, request_id: int) -> None:
        if not self.service.busy:
            self.busy_changed.emit(False)
            self.progress.emit(-1.0, "")

    # ---------------------------------------------------------------- result
    @property
    def has_result(self) -> bool:
        return self.result is not None

    def apply(self, document: Document | None) -> bool:
        """Commit the shown result as an undoable document step."""
        if document is None or self.result is None:
            return False
        if document.stroking:  # Enter with the mouse button still down: finish the stroke first
            self.status.emit("Finish the stroke, then Apply.")
            return False
        self.service.cancel()  # a refining stage must not replace what was just applied
        # Only the fill's own hole is cleared: strokes painted since wait for the next fill.
        rect = document.apply_fill(self.result.image, self.result_rect, hole=self.result_hole)
        self._drop_result()
        self.canvas.refresh_image(rect)
        self.canvas.refresh_layers(rect)
        self.applied.emit(rect)
        self.status.emit("Fill applied. Paint a new hole to continue (Ctrl+Z undoes).")
        return True

    def discard(self) -> bool:
        if self.result is None and not self.service.busy:
            return False
        self.cancel()
        self._drop_result()
        self.status.emit("Result discarded.")
        return True

    def _drop_result(self) -> None:
        self.result = None
        self.result_rect = None
        self.result_hole = None
        self.canvas.show_result(None)
        self.result_changed.emit(False)

    # ---------------------------------------------------------------- attention
    def probe(self, x: int, y: int) -> bool:
        """Show where the pixel ``(x, y)`` of the shown deep result borrowed from."""
        source = self.result.extras.get("attention") if self.result is not None else None
        if not isinstance(source, AttentionSource):
            self.status.emit("The attention view needs a deep-model result (fill with a deep "
                             "engine first).")
            return False
        heat = source.heatmap(y, x)
        if heat is None:
            self.canvas.show_heatmap(None)
            self.status.emit(f"({x}, {y}) is not a filled pixel: click inside the filled hole.")
            return False
        self.canvas.show_heatmap(heat)
        self.status.emit(f"Where ({x}, {y}) came from: warm = background it borrowed from.")
        return True
