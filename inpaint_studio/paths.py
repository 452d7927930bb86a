"""Where Inpaint Studio finds its shipped resources and keeps the user's data.

* Shipped resources: ``<repo>/resources`` (override: ``INPAINT_STUDIO_RESOURCES``).
* User data (fine-tuned models, autosave): the platform's user data directory,
  e.g. ``~/.local/share/inpaint-studio`` (override: ``INPAINT_STUDIO_DATA_DIR``;
  tests point it at a temporary folder).
"""

from __future__ import annotations

import os
from pathlib import Path

from platformdirs import user_data_dir

APP_NAME = "inpaint-studio"


def resources_dir() -> Path:
    """Folder holding ``models/`` and ``icons/`` shipped with the app."""
    override = os.environ.get("INPAINT_STUDIO_RESOURCES")
    if override:
        return Path(override)
    return Path(__file__).resolve().parent.parent / "resources"


def shipped_models_dir() -> Path:
    """Folder of the weights this project trained and ships (``*.safetensors``)."""
    return resources_dir() / "models"


def user_data_path() -> Path:
    """The user's data folder (created on first use)."""
    override = os.environ.get("INPAINT_STUDIO_DATA_DIR")
    path = Path(override) if override else Path(user_data_dir(APP_NAME, appauthor=False))
    path.mkdir(parents=True, exist_ok=True)
    return path


def user_models_dir() -> Path:
    """Folder where the trainer exports fine-tuned models and the app finds them."""
    path = user_data_path() / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path


def model_search_dirs() -> list[Path]:
    """Folders scanned for ``*.safetensors`` models, shipped first."""
    return [shipped_models_dir(), user_models_dir()]
