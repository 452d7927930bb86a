"""What crosses the engine boundary: a fill request in, a stream of fill stages out.

Conventions (shared by every engine, the CLI, the app and the benchmarks):

* ``image``: RGB ``uint8`` array, shape ``(H, W, 3)``, C-contiguous.
* ``mask``: ``uint8`` array, shape ``(H, W)``; a pixel is a hole where ``mask > 127``
  (255 = hole, 0 = keep).
* ``sketch``: optional ``uint8`` array, shape ``(H, W)``; a line where ``sketch > 127``.
  Only lines inside the hole guide the fill.
* Every :class:`FillStage` image has exactly the input's shape and dtype; pixels outside the
  slightly dilated hole are the input's, bit for bit.

Progress: ``Engine.fill(request, cancel, progress)`` takes an optional ``progress`` callback
(:data:`ProgressCallback`). It is called in the filling thread with a :class:`FillProgress`
whose ``fraction`` covers the whole fill (every region and stage, the texture pass included),
never decreases, and is exactly 1.0 once, just before the final stage is yielded. Calls come
at the start of each region's stage and, from engines that report inside their work
(PatchMatch: per pyramid level and EM iteration), in between. The callback must return
quickly; it may set the fill's :class:`CancelToken`, which then stops the fill with
:class:`FillCancelled` at the next check (within one PatchMatch iteration).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

import numpy as np

Strategy = Literal["crop", "resize", "full"]
STRATEGIES: tuple[str, ...] = ("crop", "resize", "full")
#: ``inpaint_studio.precision.PRECISIONS``, repeated so that this module needs no torch
#: (tests/test_precision.py checks they agree).
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16")
Texture = Literal["none", "patchmatch"]
TEXTURES: tuple[str, ...] = ("none", "patchmatch")
#: The texture pass the CLI and the app default to (``FillOptions`` itself stays ``none``: a
#: request says what it wants). Measured with the shipped DeepFill v2 (leg 2) on 24 eval pairs
#: at their own size: detail ratio 0.35 -> 0.89, hole L1 +0.6 % (at most +2.8 % in a bin),
#: PSNR +0.04 dB; it runs after the refined stage, so the app shows the model's result as early.
RECOMMENDED_TEXTURE: Texture = "patchmatch"


class InvalidRequest(ValueError):
    """A request whose arrays do not follow the boundary conventions (message says which)."""


class FillCancelled(Exception):
    """Raised inside an engine when the caller cancelled the fill (checked between stages,
    and inside PatchMatch before every EM iteration)."""


@dataclass(frozen=True)
class FillOptions:
    """How to run a fill. Engines ignore options that do not apply to them.

    strategy: ``crop`` (default: each hole region plus ``crop_margin`` px), ``resize``
        (whole image down to ``resize_limit`` px on its longer side) or ``full``.
    crop_margin: context in pixels kept around each hole region by ``crop``.
    resize_limit: longer side in pixels for ``resize``.
    device: ``auto`` (CUDA, then MPS, then CPU), ``cpu``, ``cuda`` or ``mps``.
    seed: seeds any randomness (PatchMatch initialisation), so fills are repeatable.
    attention: ask a deep engine to attach an attention source to its stages
        (``FillStage.extras["attention"]``) for the "where did this come from" view.
    precision: what a deep engine computes in (``inpaint_studio.precision``): ``auto`` (bf16
        where the CPU or GPU computes it natively, else fp32), ``fp32`` or ``bf16``. The one
        that ran is ``FillStage.extras["precision"]`` (``fp32``, ``bf16`` or ``fp16``).
    texture: ``patchmatch`` makes a deep engine add a last stage named ``texture``: the hole
        re-synthesised at the photo's full resolution by PatchMatch guided by the deep fill
        (:mod:`inpaint_studio.engine.texture`); ``none`` stops at the model's own result.
        Classical engines ignore it.
    harmonise: a deep engine's fill is shifted by a smooth field so that it meets the photo's
        colours along the hole's edge (:mod:`inpaint_studio.engine.harmonise`); False keeps
        the model's fill as it came. Classical engines ignore it.
    """

    strategy: Strategy = "crop"
    crop_margin: int = 128
    resize_limit: int = 1024
    device: str = "auto"
    seed: int = 0
    attention: bool = False
    precision: str = "auto"
    texture: Texture = "none"
    harmonise: bool = True

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise InvalidRequest(
                f"unknown HD strategy {self.strategy!r}; choose one of {', '.join(STRATEGIES)}"
            )
        if self.texture not in TEXTURES:
            raise InvalidRequest(
                f"unknown texture pass {self.texture!r}; choose one of {', '.join(TEXTURES)}"
            )
        if self.crop_margin < 0:
            raise InvalidRequest(f"crop_margin must be >= 0, got {self.crop_margin}")
        if self.precision not in PRECISIONS:
            raise InvalidRequest(
                f"unknown precision {self.precision!r}; choose one of {', '.join(PRECISIONS)}"
            )
        if self.resize_limit < 16:
            raise InvalidRequest(f"resize_limit must be >= 16 px, got {self.resize_limit}")


def _check_plane(name: str, plane: np.ndarray, shape: tuple[int, int]) -> None:
    if not isinstance(plane, np.ndarray):
        raise InvalidRequest(f"{name} must be a numpy array, got {type(plane).__name__}")
    if plane.dtype != np.uint8 or plane.ndim != 2:
        raise InvalidRequest(
            f"{name} must be a uint8 array of shape (H, W), got {plane.dtype} {plane.shape}"
        )
    if plane.shape != shape:
        raise InvalidRequest(
            f"{name} size {plane.shape[1]}x{plane.shape[0]} differs from the image size "
            f"{shape[1]}x{shape[0]}"
        )


@dataclass(frozen=True)
class FillRequest:
    """One fill: the photo, its hole mask, optional sketch guidance and options.

    ``request_id`` lets the app drop stages of a request a newer one superseded.
    Validation happens at construction, so an engine never sees a malformed request.
    """

    image: np.ndarray
    mask: np.ndarray
    sketch: np.ndarray | None = None
    options: FillOptions = field(default_factory=FillOptions)
    request_id: int = 0

    def __post_init__(self) -> None:
        img = self.image
        if not isinstance(img, np.ndarray):
            raise InvalidRequest(f"image must be a numpy array, got {type(img).__name__}")
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            raise InvalidRequest(
                f"image must be an RGB uint8 array of shape (H, W, 3), got {img.dtype} {img.shape}"
            )
        if img.shape[0] < 1 or img.shape[1] < 1:
            raise InvalidRequest(f"image is empty: {img.shape}")
        _check_plane("mask", self.mask, img.shape[:2])
        if self.sketch is not None:
            _check_plane("sketch", self.sketch, img.shape[:2])

    @property
    def hole(self) -> np.ndarray:
        """Boolean ``(H, W)`` array, True where the mask marks a hole."""
        return self.mask > 127

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` of the image."""
        return self.image.shape[1], self.image.shape[0]


@dataclass
class FillStage:
    """One result of a fill, streamed as soon as it is ready.

    name: ``coarse`` / ``refined`` for two-stage deep models, ``final`` for one-stage ones,
        then ``texture`` when ``FillOptions.texture`` asks a deep engine for it.
    image: RGB ``uint8`` ``(H, W, 3)``, the full input size, composited (outside the hole =
        input pixels, bit for bit).
    seconds: wall time from the start of the fill to this stage.
    final: True for the last stage of the fill.
    extras: optional additions, e.g. ``"attention"`` (an :class:`AttentionSource` in the
        full image's coordinates) or ``"device"`` (where it ran), ``"note"`` (a message for the
        user such as "ran out of GPU memory, finished on the CPU").
    """

    name: str
    image: np.ndarray
    seconds: float
    request_id: int = 0
    final: bool = False
    extras: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class FillProgress:
    """How far a fill has got (see "Progress" in this module's docstring).

    stage: name of the stage being computed (``coarse``, ``refined``, ``texture``, ``final``).
    fraction: of the whole fill done, in [0, 1], non-decreasing; 1.0 only when all is done.
    text: short human text, e.g. ``"texture: PatchMatch level 3/5"``.
    seconds: wall time since the fill started.
    request_id: the request's id, so a receiver can drop progress of a stale request.
    """

    stage: str
    fraction: float
    text: str
    seconds: float
    request_id: int = 0

    def eta(self) -> float | None:
        """Seconds left, extrapolated linearly from ``seconds`` and ``fraction``; None before
        there is anything to extrapolate from."""
        if self.fraction <= 0.0 or self.seconds <= 0.0:
            return None
        return self.seconds * (1.0 - self.fraction) / self.fraction


ProgressCallback = Callable[[FillProgress], None]


class CancelToken:
    """Thread-safe cancel flag that the caller sets and the engine checks between stages."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise FillCancelled("fill cancelled")


class Stopwatch:
    """Seconds since construction (``time.perf_counter``), for ``FillStage.seconds``."""

    def __init__(self) -> None:
        self._t0 = time.perf_counter()

    def __call__(self) -> float:
        return time.perf_counter() - self._t0
