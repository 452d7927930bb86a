"""The one interface every fill engine implements (classical and deep alike).

An engine only implements :meth:`Engine.fill_core` on a prepared crop; the HD layer
(:mod:`inpaint_studio.engine.hd`) does everything around it once for all engines: choosing
crops or resizing, padding to ``multiple``, compositing hole pixels back with a feathered
seam, cancel checks between stages, progress, timing, and the full-resolution texture stage
of deep engines (``FillOptions.texture``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Protocol, runtime_checkable

import numpy as np

from .request import CancelToken, FillOptions, FillRequest, FillStage, ProgressCallback

# Name of the stage the HD layer adds after a deep engine's own when FillOptions.texture asks.
TEXTURE_STAGE = "texture"


@dataclass(frozen=True)
class Availability:
    """Whether an engine can run on this machine now, and if not, why (shown to the user)."""

    ok: bool
    reason: str = ""

    def __bool__(self) -> bool:
        return self.ok


class EngineUnavailable(RuntimeError):
    """Asked for an engine that cannot run here; the message says why."""


@runtime_checkable
class AttentionSource(Protocol):
    """Where a filled pixel borrowed from (contextual attention weights).

    ``heatmap(y, x)`` takes a pixel position in the coordinates of the image the source
    belongs to and returns a ``float32`` ``(H, W)`` map over that image (non-negative, summing
    to 1 over the background), or None when ``(y, x)`` is not a filled pixel.
    """

    def heatmap(self, y: int, x: int) -> np.ndarray | None: ...


@dataclass
class CoreStage:
    """One stage produced by :meth:`Engine.fill_core` on a prepared crop.

    image: RGB ``uint8`` ``(h, w, 3)``, the size of the crop handed to ``fill_core``; only its
        hole pixels are used (the HD layer composites).
    extras: e.g. ``"attention"``: an :class:`AttentionSource` in crop coordinates.
    """

    name: str
    image: np.ndarray
    extras: dict[str, Any] = field(default_factory=dict)


class CoreMonitor:
    """What a core computation sees of its caller while it runs: a cancel check and a progress
    sink for this piece of work alone (the HD layer maps it into the whole fill's fraction).

    cancel: the fill's token; :meth:`check` raises ``FillCancelled`` once it is set.
    report: called with ``(fraction, text)``, fraction in [0, 1] of this piece of work.
    """

    def __init__(self, cancel: CancelToken | None = None,
                 report: Callable[[float, str], None] | None = None):
        self._cancel = cancel or CancelToken()
        self._report = report

    def check(self) -> None:
        self._cancel.raise_if_cancelled()

    def report(self, fraction: float, text: str) -> None:
        if self._report is not None:
            self._report(min(max(float(fraction), 0.0), 1.0), text)


class Engine(ABC):
    """Base of every engine.

    Class attributes describe the engine to the registry, the app and the HD layer:

    name: registry key (``patchmatch``, ``telea``, or a model file's stem).
    title: short name shown in the engine selector.
    description: one line shown as a tooltip.
    kind: ``classical`` or ``deep``.
    working_size: longest side (px) the core handles well; a larger crop is resized down,
        filled and the result upscaled. None: any size.
    multiple: the core's input height and width must be multiples of this (the HD layer pads
        by reflection and crops the padding off again).
    stage_names: the stages ``fill_core`` yields, in order (see :meth:`stages_for` for
        what ``fill`` yields, which may add ``texture``).
    reports_progress: ``fill_core`` accepts a ``monitor`` keyword (a :class:`CoreMonitor`),
        checks it for cancellation and reports progress inside its work.
    uses_sketch: sketch lines steer the fill (the app disables its pen otherwise).
    has_attention: stages can carry an attention source ("where did this come from").
    """

    name: str = ""
    title: str = ""
    description: str = ""
    kind: str = "classical"
    working_size: int | None = None
    multiple: int = 1
    stage_names: tuple[str, ...] = ("final",)
    reports_progress: bool = False
    uses_sketch: bool = False
    has_attention: bool = False

    def stages_for(self, options: FillOptions) -> tuple[str, ...]:
        """The stage names :meth:`fill` yields for ``options``, in order: ``stage_names``,
        plus ``texture`` for a deep engine asked for a texture pass."""
        if self.kind == "deep" and options.texture != "none":
            return (*self.stage_names, TEXTURE_STAGE)
        return tuple(self.stage_names)

    def availability(self) -> Availability:
        """Whether this engine can run here; classical engines always can."""
        return Availability(True)

    @abstractmethod
    def fill_core(
        self,
        image: np.ndarray,
        hole: np.ndarray,
        sketch: np.ndarray | None,
        options: FillOptions,
    ) -> Iterator[CoreStage]:
        """Fill one prepared crop and yield its stages in ``stage_names`` order.

        image: RGB ``uint8`` ``(h, w, 3)``, h and w multiples of ``multiple``.
        hole: ``bool`` ``(h, w)``, True = fill (never empty here).
        sketch: ``bool`` ``(h, w)`` lines (already restricted to the hole) or None.
        """

    def fill(self, request: FillRequest, cancel: CancelToken | None = None,
             progress: ProgressCallback | None = None) -> Iterator[FillStage]:
        """Run the fill through the request's HD strategy, yielding composited stages
        (:meth:`stages_for` the request's options).

        Raises :class:`~inpaint_studio.engine.request.FillCancelled` between stages (and
        inside engines that check a monitor) when ``cancel`` is set, and
        :class:`EngineUnavailable` when the engine cannot run. ``progress`` receives
        :class:`~inpaint_studio.engine.request.FillProgress` updates (see ``request.py``).
        """
        from .hd import run_fill

        available = self.availability()
        if not available:
            raise EngineUnavailable(f"{self.title or self.name} is not available: {available.reason}")
        return run_fill(self, request, cancel, progress)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"
