"""Fixtures for the app's tests: a window with private settings, fake engines, and message
boxes that record instead of blocking."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, QSettings, Qt
from PySide6.QtTest import QTest

from inpaint_studio import engine as engine_api
from inpaint_studio.engine.registry import engine_info
from inpaint_studio.engine import Availability, CoreStage, Engine, EngineInfo, FillOptions

COARSE_RGB = (10, 200, 10)
REFINED_RGB = (200, 10, 200)


class BlobAttention:
    """Attention source of the fake engine: every hole pixel borrowed from the crop's
    top-left 8x8 corner (crop coordinates)."""

    def __init__(self, hole: np.ndarray) -> None:
        self.hole = hole

    def heatmap(self, y: int, x: int) -> np.ndarray | None:
        if not (0 <= y < self.hole.shape[0] and 0 <= x < self.hole.shape[1]) or not self.hole[y, x]:
            return None
        heat = np.zeros(self.hole.shape, np.float32)
        heat[:8, :8] = 1.0 / 64
        return heat


class FakeTwoStageEngine(Engine):
    """A deep-like engine: a flat green coarse stage, ``delay`` seconds, a magenta refined
    stage with an attention source. ``calls`` counts fills (to check the model is reused)."""

    name = "fake_two_stage"
    title = "Fake two-stage"
    description = "test engine"
    kind = "deep"
    stage_names = ("coarse", "refined")
    uses_sketch = True
    has_attention = True

    def __init__(self, delay: float = 0.3) -> None:
        self.delay = delay
        self.calls = 0
        self.last_sketch: np.ndarray | None = None
        self.last_options: FillOptions | None = None
        # When set, the refined stage waits for it (at most 30 s) instead of ``delay``: a test
        # can act while the fill is certainly still running, on a machine of any speed.
        self.gate: threading.Event | None = None

    def fill_core(self, image, hole, sketch, options: FillOptions) -> Iterator[CoreStage]:
        self.calls += 1
        self.last_sketch = sketch
        self.last_options = options
        coarse = image.copy()
        coarse[hole] = COARSE_RGB
        yield CoreStage("coarse", coarse)
        if self.gate is not None:
            self.gate.wait(30)
        else:
            time.sleep(self.delay)  # sleeps without the GIL, like torch
        refined = image.copy()
        refined[hole] = REFINED_RGB
        # What ran, as the deep engine reports it ("auto" resolves to fp32 on this fake).
        ran = getattr(options, "precision", "auto")
        extras = {"precision": "fp32" if ran == "auto" else ran}
        if options.attention:
            extras["attention"] = BlobAttention(hole)
        yield CoreStage("refined", refined, extras)


class BrokenEngine(Engine):
    name = "broken"
    title = "Broken"
    kind = "deep"

    def availability(self) -> Availability:
        return Availability(False, "no trained weights for this architecture")

    def fill_core(self, image, hole, sketch, options):
        raise AssertionError("an unavailable engine must never run")


@dataclass
class FakeEngines:
    """What the window sees instead of the registry: the fake engines plus the real
    classical ones."""

    fake: FakeTwoStageEngine = field(default_factory=FakeTwoStageEngine)
    broken: BrokenEngine = field(default_factory=BrokenEngine)
    constructed: list[str] = field(default_factory=list)

    def _mine(self) -> dict[str, Engine]:
        return {self.fake.name: self.fake, self.broken.name: self.broken}

    def list(self, device: str) -> list[EngineInfo]:
        infos = [engine_info(e) for e in self._mine().values()]
        return infos + [i for i in engine_api.list_engines(device) if i.kind == "classical"]

    def get(self, name: str, device: str) -> Engine:
        self.constructed.append(name)
        return self._mine().get(name) or engine_api.get_engine(name, device)


@dataclass
class Dialogs:
    """Message boxes shown during a test: (kind, title, text)."""

    shown: list[tuple[str, str, str]] = field(default_factory=list)
    answer_yes: bool = True
    unsaved_answer: str | None = None  # "save" / "discard" / "cancel"; None: from answer_yes

    def titles(self) -> list[str]:
        return [title for _, title, _ in self.shown]


@pytest.fixture
def dialogs(monkeypatch) -> Dialogs:
    """Replace every message box the app uses so that no test blocks on one."""
    from inpaint_studio.ui import dialogs as ui_dialogs

    record = Dialogs()

    def warning(parent, title, text):
        record.shown.append(("warning", title, text))

    def confirm(parent, title, text, yes_text="Yes"):
        record.shown.append(("confirm", title, text))
        return record.answer_yes

    def question(parent, title, text, *args, **kwargs):
        record.shown.append(("question", title, text))
        from PySide6.QtWidgets import QMessageBox

        return QMessageBox.StandardButton.Yes if record.answer_yes else QMessageBox.StandardButton.No

    monkeypatch.setattr(ui_dialogs.QMessageBox, "warning", staticmethod(warning))
    monkeypatch.setattr(ui_dialogs.QMessageBox, "question", staticmethod(question))
    def ask_save_changes(parent, lost, can_save):
        record.shown.append(("unsaved", "Save changes?", f"This photo has {ui_dialogs._listed(lost)}."))
        if record.unsaved_answer is not None:
            return record.unsaved_answer
        return "discard" if record.answer_yes else "cancel"

    monkeypatch.setattr(ui_dialogs, "confirm", confirm)
    from inpaint_studio.ui import main_window

    monkeypatch.setattr(main_window, "ask_save_changes", ask_save_changes)
    # files.py imported confirm by name
    from inpaint_studio.ui import files

    monkeypatch.setattr(files, "confirm", confirm)
    return record


@pytest.fixture
def settings(tmp_path) -> QSettings:
    """A private settings file. The texture stage and the edge harmonisation are off here:
    these tests check streaming, apply and undo against the fake engine's exact stage colours;
    both (the app's defaults) have tests of their own (test_deep_fill.py, test_photographer.py,
    tests/test_harmonise.py)."""
    store = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    store.setValue("prefs/texture", "none")
    store.setValue("prefs/harmonise", False)
    return store


@pytest.fixture
def engines() -> FakeEngines:
    return FakeEngines()


@pytest.fixture
def window(qtbot, settings, engines, dialogs, data_dir):
    from inpaint_studio.ui.main_window import MainWindow

    win = MainWindow(settings=settings, engine_lister=engines.list, engine_getter=engines.get)
    qtbot.addWidget(win)
    win.resize(900, 700)
    win.show()
    qtbot.waitExposed(win)
    yield win
    win.service.shutdown()
    win.autosaver.wait()


@pytest.fixture
def photo_file(tmp_path, photo):
    from inpaint_studio import imageio

    path = tmp_path / "photo.png"
    imageio.save_image(path, photo)
    return path


def view_point(window, x: float, y: float) -> QPoint:
    """Viewport position of image pixel ``(x, y)``."""
    return window.canvas.mapFromScene(QPointF(x + 0.5, y + 0.5))


def drag(window, points: list[tuple[float, float]], button=Qt.MouseButton.LeftButton) -> None:
    """Press at the first image point, move through the rest, release at the last."""
    viewport = window.canvas.viewport()
    QTest.mousePress(viewport, button, Qt.KeyboardModifier.NoModifier, view_point(window, *points[0]))
    for p in points[1:]:
        QTest.mouseMove(viewport, view_point(window, *p))
    QTest.mouseRelease(viewport, button, Qt.KeyboardModifier.NoModifier, view_point(window, *points[-1]))


def item_pixel(item, x: int, y: int):
    """The colour an image layer item shows at image pixel ``(x, y)``, or None when the
    item does not cover it."""
    lx, ly = x - int(item.x()), y - int(item.y())
    if not (0 <= lx < item.image.width() and 0 <= ly < item.image.height()):
        return None
    return item.image.pixelColor(lx, ly)
