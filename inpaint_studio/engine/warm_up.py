"""Preparing the deep engines' compiled kernels in the background, without importing torch in
the caller's thread (the app calls this at start-up, before its window has painted).

The fused gating of gated convolutions (:func:`.deep.warm_up_fused_gating`) compiles once per
process: ~8 s of CPU the first time on a machine, a few seconds once Inductor's disk cache
holds it. Fills that start meanwhile use the eager gating and switch when it is ready.
"""

from __future__ import annotations

import threading
import warnings


def start_fused_gating_warm_up(device: str = "auto", preference: str = "auto") -> threading.Thread:
    """Run :func:`.deep.warm_up_fused_gating` (``device``, precision ``preference``) in a daemon
    thread, started and returned. A failure there leaves the eager gating in use, with a
    warning; nothing else changes."""

    def work() -> None:
        try:
            from .deep import warm_up_fused_gating

            warm_up_fused_gating(device, preference)
        except Exception as exc:  # noqa: BLE001 - fills go on with the eager gating
            warnings.warn(f"fused gating not prepared ({type(exc).__name__}: {exc})", RuntimeWarning)

    thread = threading.Thread(target=work, name="fused-gating-warm-up", daemon=True)
    thread.start()
    return thread
