"""Preferences, recent files and window state, kept in QSettings.

The settings live in an INI file under the organisation / application names below; tests
redirect them with ``QSettings.setPath(IniFormat, UserScope, tmp_dir)``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from PySide6.QtCore import QSettings
from PySide6.QtGui import QColor

from ..engine import STRATEGIES
from ..engine.request import PRECISIONS, RECOMMENDED_TEXTURE, TEXTURES

ORGANIZATION = "InpaintStudio"
APPLICATION = "Inpaint Studio"
MAX_RECENT = 10
AUTO_GAP_FRACTION = 0.005  # of the photo's pixels: larger enclosed regions are deliberate


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
    brush_fraction: the brush radius as a fraction of the photo's longer side; a photo opens
        with this brush, so the brush looks the same on a 12-megapixel photo as on a small one.
    engine / device: last engine name and ``auto`` / ``cpu`` / ``gpu``.
    grow_before_fill: the hole a fill receives is grown by this many pixels (0: off), as
        content-aware fill does, so no half-masked fringe is copied into it.
    fill_gaps_before_fill: unmasked islands inside the hole (up to
        :data:`AUTO_GAP_FRACTION` of the photo) are filled too before a fill.
    overlay_color: the painted hole's colour (``#rrggbb``); overlay_opacity: 0-100 %.
    precision: ``auto`` / ``fp32`` / ``bf16`` for deep engines; texture: ``none`` /
        ``patchmatch`` (a texture stage after a deep engine's refined one); harmonise: a
        deep engine's fill meets the photo's colours along the hole's edge (as the CLI
        unless ``--no-harmonise``).
    """

    strategy: str = "crop"
    crop_margin: int = 128
    resize_limit: int = 1024
    autosave_seconds: int = 30
    brush_radius: int = 20
    pen_radius: int = 1
    engine: str = ""
    device: str = "auto"
    brush_fraction: float = 0.015
    grow_before_fill: int = 4
    fill_gaps_before_fill: bool = True
    overlay_color: str = "#ff3030"
    overlay_opacity: int = 47
    precision: str = "auto"
    texture: str = RECOMMENDED_TEXTURE  # the CLI's default too (measured: engine/request.py)
    harmonise: bool = True

    @classmethod
    def load(cls, settings: QSettings) -> Preferences:
        prefs = cls()
        for f in fields(cls):
            raw = settings.value(f"prefs/{f.name}")
            if raw is None:
                continue
            try:
                kind = type(getattr(prefs, f.name))
                if kind is bool:  # INI files give "true" / "false" back as strings
                    value = raw if isinstance(raw, bool) else str(raw).lower() in ("true", "1")
                else:
                    value = kind(raw)
                setattr(prefs, f.name, value)
            except (TypeError, ValueError):
                pass  # a hand-edited or stale value: keep the default
        if prefs.strategy not in STRATEGIES:
            prefs.strategy = "crop"
        if prefs.device not in ("auto", "cpu", "gpu"):
            prefs.device = "auto"
        if prefs.precision not in PRECISIONS:
            prefs.precision = "auto"
        if prefs.texture not in TEXTURES:
            prefs.texture = RECOMMENDED_TEXTURE
        if not QColor(prefs.overlay_color).isValid():
            prefs.overlay_color = "#ff3030"
        prefs.overlay_opacity = min(100, max(5, prefs.overlay_opacity))
        prefs.brush_fraction = min(0.5, max(1e-4, prefs.brush_fraction))
        prefs.grow_before_fill = min(64, max(0, prefs.grow_before_fill))
        return prefs

    def overlay_rgb(self) -> tuple[int, int, int]:
        color = QColor(self.overlay_color)
        return color.red(), color.green(), color.blue()

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
