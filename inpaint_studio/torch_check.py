"""Whether the installed torch loads checkpoints safely, checked without importing torch.

``torch.load(weights_only=True)`` could be made to run code before torch 2.6
(CVE-2025-32434); training checkpoints and legacy ``.pth`` files go through it. The project
requires torch >= 2.6; an older one (installed by hand, or kept by pip) gets one warning line
at start-up rather than a refusal, so the app still opens.
"""

from __future__ import annotations

import re
from importlib import metadata

MIN_SAFE_TORCH = (2, 6)


def _release(version: str) -> tuple[int, ...]:
    """Leading numeric release of a version string: ``"2.5.1+cpu"`` -> ``(2, 5, 1)``."""
    match = re.match(r"\s*v?(\d+(?:\.\d+)*)", version)
    return tuple(int(part) for part in match.group(1).split(".")) if match else ()


def installed_torch_version() -> str | None:
    """The installed torch distribution's version, or None when torch is not installed."""
    try:
        return metadata.version("torch")
    except metadata.PackageNotFoundError:
        return None


def unsafe_torch_warning(version: str | None = None) -> str:
    """One line to print when ``version`` (default: the installed torch) is older than
    :data:`MIN_SAFE_TORCH`; an empty string otherwise (also when torch is absent or its
    version cannot be read)."""
    version = installed_torch_version() if version is None else version
    if not version:
        return ""
    release = _release(version)
    if not release or release >= MIN_SAFE_TORCH:
        return ""
    need = ".".join(map(str, MIN_SAFE_TORCH))
    return (f"warning: torch {version} can be made to run code while loading a checkpoint "
            f"(CVE-2025-32434); install torch>={need}")
