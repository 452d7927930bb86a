"""Preferences, recent files and window state, kept in QSettings.

The settings live in an INI file under the organisation / application names below; tests
redirect them with ``QSettings.setPath(IniFormat, UserScope, tmp_dir)``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from PySide6.QtCore import QSettings

from ..engine import STRATEGIES

ORGANIZATION = "InpaintStudio"
APPLICATION = "Inpaint Studio"
MAX_RECENT = 10


def open_settings() -> QSettings:
    """The app's settings store (INI format, user scope)."""
    return QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope, ORGANIZATION, APPLICATION)


@dataclass
class Preferences:
    """What the user can change in the Preferences dialog and the toolbars.

    strategy: HD strategy handed to the engine (``crop``, ``resize`` or ``full``).
    crop_margin / resize_limit: its parameters in pixels.
    autosave_seconds: autosave interval; 0 switches autosave off.
    brush_radius / pen_radius: tool sizes in image pixels.
    engine / device: last engine name and ``auto`` / ``cpu`` / ``gpu``.
    """

    strategy: str = "crop"
    crop_margin: int = 128
    resize_limit: int = 1024
    autosave_seconds: int = 30
    brush_radius: int = 20
    pen_radius: int = 1
    engine: str = ""
    device: str = "auto"

    @classmethod
    def load(cls, settings: QSettings) -> Preferences:
        prefs = cls()
        for f in fields(cls):
            raw = settings.value(f"prefs/{f.name}")
            if raw is None:
                continue
            try:
                setattr(prefs, f.name, type(getattr(prefs, f.name))(raw))
            except (TypeError, ValueError):
                pass  # a hand-edited or stale value: keep the default
        if prefs.strategy not in STRATEGIES:
            prefs.strategy = "crop"
        if prefs.device not in ("auto", "cpu", "gpu"):
            prefs.device = "auto"
        return prefs

    def save(self, settings: QSettings) -> None:
        for f in fields(self):
            settings.setValue(f"prefs/{f.name}", getattr(self, f.name))


def recent_files(settings: QSettings) -> list[str]:
    value = settings.value("recent/files", [])
    if isinstance(value, str):  # QSettings returns a lone string for a one-item list
        value = [value]
    return [str(v) for v in value or []]


def push_recent_file(settings: QSettings, path: str) -> list[str]:
    """Put ``path`` first in the recent list (no duplicates, at most MAX_RECENT)."""
    items = [path] + [p for p in recent_files(settings) if p != path]
    items = items[:MAX_RECENT]
    settings.setValue("recent/files", items)
    return items
