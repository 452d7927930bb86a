"""Classical engines: need no weights, run everywhere, and are the fallback and the baselines.

* ``patchmatch``: our multi-scale PatchMatch (:mod:`.patchmatch`): copies texture from the
  rest of the photo; best on larger holes in textured areas.
* ``telea``: OpenCV's fast marching method (Telea 2004): smooth, fast, good for thin scratches.
* ``ns``: OpenCV's Navier-Stokes method (Bertalmio et al. 2001): like Telea, continues
  isophotes a little further.

All yield a single ``final`` stage of the crop's size (``uint8 (h, w, 3)``).
"""

from __future__ import annotations

from typing import Iterator

import cv2
import numpy as np

from . import patchmatch
from .base import CoreMonitor, CoreStage, Engine
from .registry import register
from .request import FillOptions

# Neighbourhood radius (px) of OpenCV's diffusion methods.
DIFFUSION_RADIUS = 5


class PatchMatchEngine(Engine):
    """Multi-scale PatchMatch; crops longer than 1024 px are filled at 1024 and upscaled, which
    keeps the cost (about linear in hole area) bounded on large photos."""

    name = "patchmatch"
    title = "PatchMatch"
    description = "Copies matching texture from the rest of the photo; no model needed (CPU)."
    kind = "classical"
    working_size = 1024
    multiple = 1
    stage_names = ("final",)
    reports_progress = True

    def fill_core(
        self, image: np.ndarray, hole: np.ndarray, sketch: np.ndarray | None, options: FillOptions,
        monitor: CoreMonitor | None = None,
    ) -> Iterator[CoreStage]:
        """Ignores the sketch: PatchMatch has no notion of guidance lines. ``monitor`` is
        checked before every EM iteration (a cancel stops it within one) and told the
        progress per pyramid level and iteration."""
        yield CoreStage("final", patchmatch.inpaint(image, hole, seed=options.seed, monitor=monitor))


class OpenCVDiffusionEngine(Engine):
    """``cv2.inpaint`` with one of its two methods; cost grows with the hole, not the photo, so
    no working size is imposed."""

    kind = "classical"
    working_size = None
    multiple = 1
    stage_names = ("final",)
    method: int = cv2.INPAINT_TELEA

    def fill_core(
        self, image: np.ndarray, hole: np.ndarray, sketch: np.ndarray | None, options: FillOptions
    ) -> Iterator[CoreStage]:
        """Ignores sketch and seed (deterministic diffusion)."""
        mask = hole.astype(np.uint8) * 255
        yield CoreStage("final", cv2.inpaint(image, mask, DIFFUSION_RADIUS, self.method))


class TeleaEngine(OpenCVDiffusionEngine):
    name = "telea"
    title = "Telea (fast marching)"
    description = "Smoothly diffuses the surrounding colours inward; fast, best for thin scratches."
    method = cv2.INPAINT_TELEA


class NavierStokesEngine(OpenCVDiffusionEngine):
    name = "ns"
    title = "Navier-Stokes"
    description = "Continues edges and colours into the hole by fluid-flow diffusion; for small holes."
    method = cv2.INPAINT_NS


@register("patchmatch")
def _patchmatch() -> Engine:
    return PatchMatchEngine()


@register("telea")
def _telea() -> Engine:
    return TeleaEngine()


@register("ns")
def _navier_stokes() -> Engine:
    return NavierStokesEngine()
