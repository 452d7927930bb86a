"""Test-wide settings: headless Qt, a private user-data folder, deterministic small torch."""

from __future__ import annotations

import os
import tempfile

# Set before anything imports Qt or reads the user data folder.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Eager gating (layers/gating.py): a compile per test process costs ~15 s; the fused kernels
# have tests of their own that turn them on explicitly.
os.environ.setdefault("INPAINT_STUDIO_NO_COMPILE", "1")
os.environ.setdefault("INPAINT_STUDIO_DATA_DIR", tempfile.mkdtemp(prefix="inpaint-studio-test-"))

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture
def photo() -> np.ndarray:
    """A 96x128 RGB uint8 image with smooth gradients and texture (no file needed)."""
    h, w = 96, 128
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r = 128 + 100 * np.sin(xx / 9.0)
    g = 128 + 100 * np.cos(yy / 7.0)
    b = (xx + yy) * 255.0 / (h + w)
    return np.clip(np.stack([r, g, b], axis=-1), 0, 255).astype(np.uint8)


@pytest.fixture
def data_dir(tmp_path, monkeypatch) -> Path:
    """A fresh user data folder for tests that write models or autosaves."""
    monkeypatch.setenv("INPAINT_STUDIO_DATA_DIR", str(tmp_path / "userdata"))
    return tmp_path / "userdata"
