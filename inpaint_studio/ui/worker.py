"""One persistent worker thread that owns the engines and streams fill stages as signals.

The window builds a :class:`FillJob` per Fill; :class:`FillService` cancels the job before it
(so a newer Fill supersedes an older one) and queues the new one to the worker thread.
Engines are constructed once per (name, device) inside the worker thread and reused, so a
model loads once. The engines' heavy work runs in torch / numpy / numba code that releases
the GIL, which keeps the UI thread's event loop free while a fill runs.
"""

from __future__ import annotations

import inspect
import itertools
import traceback
from dataclasses import dataclass, field
from typing import Callable

from PySide6.QtCore import QObject, QThread, Signal, Slot

from .. import engine as engine_api
from ..document import Rect, bounding_rect
from ..engine import CancelToken, Engine, FillCancelled, FillRequest, FillStage


@dataclass
class FillJob:
    """A fill to run: the request (its ``request_id`` identifies the job), the engine's
    registry name and device (``auto`` / ``cpu`` / ``cuda`` / ``mps``)."""

    request: FillRequest
    engine_name: str
    device: str = "auto"
    cancel: CancelToken = field(default_factory=CancelToken)

    @property
    def request_id(self) -> int:
        return self.request.request_id


@dataclass
class StageUpdate:
    """A stage as the window receives it: the engine's stage plus ``changed``, the
    rectangle where its image differs from the request's (computed in the worker so that
    the UI thread converts and draws only that part)."""

    stage: FillStage
    changed: Rect

    @property
    def request_id(self) -> int:
        return self.stage.request_id


def _changed_rect(stage: FillStage, request: FillRequest) -> Rect:
    """Where ``stage.image`` may differ from the request's image: the HD layer's box
    (``extras["changed"]``, no pass over the photo) tightened to the differing pixels inside
    it, or a full comparison for an engine that does not say."""
    box = stage.extras.get("changed")
    if box is None:
        return bounding_rect(stage.image != request.image)
    rows, cols = box
    inner = bounding_rect(stage.image[rows, cols] != request.image[rows, cols])
    if inner.empty:
        return inner
    return Rect(inner.x0 + cols.start, inner.y0 + rows.start, inner.x1 + cols.start, inner.y1 + rows.start)


class FillWorker(QObject):
    """Lives in the worker thread; runs one job at a time in arrival order.

    Signals carry the request id so the window can drop anything from a superseded job.
    """

    started = Signal(int, str)  # request id, engine title
    stage_ready = Signal(object)  # StageUpdate
    failed = Signal(int, str)  # request id, message for the user
    cancelled = Signal(int)
    finished = Signal(int)  # after the last signal of a job, whatever its outcome
    progressed = Signal(int, object)  # request id, engine.FillProgress
    warmed = Signal(float)  # seconds the PatchMatch kernels took to compile or load

    def __init__(self, engine_getter: Callable[[str, str], Engine] | None = None) -> None:
        super().__init__()
        self._get = engine_getter or engine_api.get_engine
        self._engines: dict[tuple[str, str], Engine] = {}

    def _engine(self, name: str, device: str) -> Engine:
        key = (name, device)
        if key not in self._engines:
            self._engines[key] = self._get(name, device)
        return self._engines[key]

    @Slot(object)
    def run(self, job: FillJob) -> None:
        rid = job.request_id
        try:
            if job.cancel.cancelled:  # superseded while it waited in the queue
                self.cancelled.emit(rid)
                return
            engine = self._engine(job.engine_name, job.device)
            self.started.emit(rid, engine.title or engine.name)
            for stage in self._stages(engine, job):
                stage.request_id = rid
                changed = _changed_rect(stage, job.request)
                self.stage_ready.emit(StageUpdate(stage, changed))
                job.cancel.raise_if_cancelled()
        except FillCancelled:
            self.cancelled.emit(rid)
        except (engine_api.EngineUnavailable, ValueError) as exc:
            # Expected failures (a model file that does not load, a request the engine
            # refuses) already say what is wrong in words: show the words, no traceback.
            self.failed.emit(rid, str(exc) or type(exc).__name__)
        except Exception as exc:  # a bug in an engine must never take the app down
            traceback.print_exc()
            self.failed.emit(rid, f"{type(exc).__name__}: {exc}")
        finally:
            self.finished.emit(rid)

    def _stages(self, engine: Engine, job: FillJob):
        """``engine.fill``, with a progress callback when the engine takes one (the HD
        layer calls it from this thread with a :class:`~inpaint_studio.engine.FillProgress`:
        stage, fraction of the whole fill in [0, 1], text, seconds so far)."""
        rid = job.request_id

        def report(progress) -> None:
            self.progressed.emit(rid, progress)

        try:
            takes_progress = "progress" in inspect.signature(engine.fill).parameters
        except (TypeError, ValueError):
            takes_progress = False
        if takes_progress:
            return engine.fill(job.request, job.cancel, progress=report)
        return engine.fill(job.request, job.cancel)

    @Slot()
    def warm_up(self) -> None:
        """Compile or load PatchMatch's kernels now, in this thread, so that the first fill
        is as fast as the next (numba compiles on first use; it took 9 s of an 11.7 s first
        fill). A failure here is left for the first fill to report."""
        try:
            from ..engine import patchmatch

            seconds = patchmatch.warm_up()
        except Exception:  # the fill itself will say what is wrong
            traceback.print_exc()
            seconds = -1.0
        self.warmed.emit(seconds)

    @Slot()
    def forget_engines(self) -> None:
        """Drop constructed engines (new model files appeared); the next job reloads."""
        self._engines.clear()
        engine_api.clear_cache()


class FillService(QObject):
    """The window's handle on the worker thread: submit, cancel, shut down.

    ``submit`` returns the job's request id; stages of older ids are stale by construction
    (ids only grow), which :meth:`is_current` tells the receiver.
    """

    _queue = Signal(object)
    _forget = Signal()
    _warm = Signal()

    def __init__(self, engine_getter: Callable[[str, str], Engine] | None = None,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._ids = itertools.count(1)
        self.current: FillJob | None = None
        self.thread = QThread()
        self.thread.setObjectName("fill-worker")
        self.worker = FillWorker(engine_getter)
        self.worker.moveToThread(self.thread)
        self._queue.connect(self.worker.run)
        self._forget.connect(self.worker.forget_engines)
        self._warm.connect(self.worker.warm_up)
        self.worker.finished.connect(self._on_finished)
        self.thread.start()

    def next_request_id(self) -> int:
        return next(self._ids)

    def submit(self, job: FillJob) -> int:
        """Cancel the running job (if any) and queue ``job``."""
        self.cancel()
        self.current = job
        self._queue.emit(job)
        return job.request_id

    def cancel(self) -> bool:
        """Cancel the current job; True when there was one to cancel."""
        if self.current is None:
            return False
        self.current.cancel.cancel()
        self.current = None
        return True

    @property
    def busy(self) -> bool:
        return self.current is not None

    def is_current(self, request_id: int) -> bool:
        return self.current is not None and self.current.request_id == request_id

    def forget_engines(self) -> None:
        self._forget.emit()

    def warm_up(self) -> None:
        """Queue the PatchMatch warm-up in the worker thread (ahead of any fill; a fill
        submitted meanwhile runs after it). ``worker.warmed`` tells when it is done. The deep
        models' fused gating compiles meanwhile in a thread of its own (fills use it once it
        is ready: ~0.7x the CPU time of a bf16 fill)."""
        self._warm.emit()
        from ..engine.warm_up import start_fused_gating_warm_up

        start_fused_gating_warm_up()

    def _on_finished(self, request_id: int) -> None:
        if self.is_current(request_id):
            self.current = None

    def shutdown(self, wait_ms: int = 5000) -> None:
        """Cancel, stop the thread and wait for it (a running engine stage finishes first)."""
        self.cancel()
        self.thread.quit()
        self.thread.wait(wait_ms)
