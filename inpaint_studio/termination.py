"""SIGTERM handled like Ctrl+C: the command-line tools unwind, so atomic writes remove their
temporary files and the trainer logs its stop, instead of dying mid-write.

Only the main thread can install a signal handler; elsewhere :func:`terminate_like_interrupt`
does nothing (the app's worker threads never call it).
"""

from __future__ import annotations

import signal
import threading
from types import FrameType


class Terminated(KeyboardInterrupt):
    """Raised in the main thread when the process receives SIGTERM (exit status 143)."""


EXIT_TERMINATED = 128 + signal.SIGTERM
EXIT_INTERRUPTED = 128 + signal.SIGINT


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated(f"terminated by signal {signum}")


def terminate_like_interrupt() -> bool:
    """Make SIGTERM raise :class:`Terminated` (a ``KeyboardInterrupt``) in the main thread.

    Returns whether the handler was installed (False off the main thread or where the
    platform has no SIGTERM handler to set).
    """
    if threading.current_thread() is not threading.main_thread():
        return False
    try:
        signal.signal(signal.SIGTERM, _raise_terminated)
    except (ValueError, OSError, AttributeError):
        return False
    return True


def exit_status(exc: KeyboardInterrupt) -> int:
    """The conventional exit status for an interrupt: 143 after SIGTERM, 130 after Ctrl+C."""
    return EXIT_TERMINATED if isinstance(exc, Terminated) else EXIT_INTERRUPTED
