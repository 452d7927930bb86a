"""How responsive the app stays: stroke latency on a 12-megapixel photo and the event loop's
longest stall while fills run in the worker thread.

    python bench/ui_latency.py [--quick] [--no-deep] [--threads N]

Prints figures, asserts nothing. Runs the real window offscreen (``QT_QPA_PLATFORM`` defaults
to ``offscreen``; set it to ``xcb`` under Xvfb to include real compositing). Heartbeat: a
10 ms QTimer on the UI thread; a gap is the time between two of its ticks (ideal 10 ms; the
issue's target: the longest gap under 50 ms while a fill runs). Engines: the real PatchMatch
(numba) and, when the DeepFill v2 network is importable, a DeepFill v2 engine with RANDOM
weights (timing only: its pictures mean nothing).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make ``bench`` and the package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("INPAINT_STUDIO_DATA_DIR", tempfile.mkdtemp(prefix="inpaint-bench-"))

import numpy as np  # noqa: E402
from PySide6.QtCore import QElapsedTimer, QEventLoop, QPointF, QSettings, Qt, QTimer  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from bench.common import synthetic_hole, synthetic_photo  # noqa: E402
from inpaint_studio import engine as engine_api  # noqa: E402
from inpaint_studio.document import Document  # noqa: E402
from inpaint_studio.ui.main_window import MainWindow  # noqa: E402

RANDOM_DEEP = "deepfill_v2_random"


class Heartbeat:
    """Records the gaps (ms) between ticks of a 10 ms timer on the UI thread."""

    def __init__(self) -> None:
        self.clock = QElapsedTimer()
        self.timer = QTimer()
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.setInterval(10)
        self.timer.timeout.connect(self._tick)
        self.gaps: list[float] = []
        self._last = 0

    def start(self) -> None:
        self.gaps.clear()
        self.clock.start()
        self._last = self.clock.nsecsElapsed()
        self.timer.start()

    def stop(self) -> None:
        self.timer.stop()

    def _tick(self) -> None:
        now = self.clock.nsecsElapsed()
        self.gaps.append((now - self._last) / 1e6)
        self._last = now

    def summary(self) -> str:
        if not self.gaps:
            return "no ticks"
        g = sorted(self.gaps)
        p99 = g[min(len(g) - 1, int(0.99 * len(g)))]
        return f"{len(g)} ticks, median {statistics.median(g):.1f} ms, p99 {p99:.1f} ms, longest {g[-1]:.1f} ms"


def random_deep_engine(tmp: Path):
    """A DeepFill v2 engine with random weights, or None when the network is not built."""
    try:
        from inpaint_studio.engine.deep import DeepEngine
        from inpaint_studio.networks import build
        from inpaint_studio.weights import save_model
    except ImportError as exc:
        print(f"(deep engine skipped: {exc})")
        return None
    path = tmp / f"{RANDOM_DEEP}.safetensors"
    save_model(path, build("deepfill_v2"), metadata={
        "title": "DeepFill v2 (random weights, benchmark only)",
        "provenance": {"data": "none: random initialisation"},
    })
    return DeepEngine(path)


def stroke_latency(window: MainWindow, app: QApplication, image: np.ndarray, zoom: float | None) -> str:
    """Median / max ms per mouse-move event: the stroke, the overlay update and the repaint
    of the dirty region (the pending update is processed right after each move)."""
    window.set_document(Document(image), None)
    canvas = window.canvas
    if zoom is not None:
        canvas.set_zoom(zoom)
        canvas.centerOn(QPointF(image.shape[1] / 2, image.shape[0] / 2))
    canvas.set_radius(40)
    app.processEvents()
    viewport = canvas.viewport()
    centre = viewport.rect().center()
    points = [centre + type(centre)(int(200 * np.cos(t)), int(150 * np.sin(2 * t)))
              for t in np.linspace(0, 2 * np.pi, 200)]
    times = []
    QTest.mousePress(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, points[0])
    for p in points[1:]:
        t0 = time.perf_counter()
        QTest.mouseMove(viewport, p)
        app.processEvents()  # paints the region the move made dirty
        times.append((time.perf_counter() - t0) * 1e3)
    t0 = time.perf_counter()
    QTest.mouseRelease(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, points[-1])
    release = (time.perf_counter() - t0) * 1e3
    t0 = time.perf_counter()
    window.undo()
    app.processEvents()
    undo = (time.perf_counter() - t0) * 1e3
    return (f"{len(times)} moves: median {statistics.median(times):.1f} ms, max {max(times):.1f} ms; "
            f"stroke end {release:.1f} ms; undo {undo:.1f} ms; history {window.document.history_bytes() / 1e6:.2f} MB")


def fill_heartbeat(window: MainWindow, app: QApplication, image: np.ndarray, mask: np.ndarray,
                   engine: str, strategy: str, beat: Heartbeat) -> str:
    document = Document(image)
    document.set_layer("mask", mask)
    window.set_document(document, None)
    window.prefs.strategy = strategy
    index = window.fill.engine_box.findData(engine)
    window.fill.engine_box.setCurrentIndex(index)
    loop = QEventLoop()
    window.fill.busy_changed.connect(lambda busy: None if busy else loop.quit())
    stages: list[str] = []
    window.service.worker.stage_ready.connect(lambda u: stages.append(f"{u.stage.name} {u.stage.seconds:.2f} s"))
    app.processEvents()
    beat.start()
    t0 = time.perf_counter()
    window.start_fill()
    loop.exec()
    wall = time.perf_counter() - t0
    beat.stop()
    window.service.worker.stage_ready.disconnect()
    window.fill.busy_changed.disconnect()
    window.fill.busy_changed.connect(window._on_busy)
    t0 = time.perf_counter()
    window.fill.apply(window.document)
    app.processEvents()  # paints the applied rectangle
    apply_ms = (time.perf_counter() - t0) * 1e3
    return f"fill {wall:.2f} s ({', '.join(stages)}); heartbeat: {beat.summary()}; apply {apply_ms:.0f} ms"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="skip the 12-megapixel cases")
    parser.add_argument("--no-deep", action="store_true", help="skip the random-weight deep engine")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = parser.parse_args(argv)

    app = QApplication.instance() or QApplication([])
    tmp = Path(tempfile.mkdtemp(prefix="inpaint-bench-"))
    deep = None
    if not args.no_deep:
        import torch

        torch.set_num_threads(args.threads)
        deep = random_deep_engine(tmp)

    def lister(device):
        infos = [i for i in engine_api.list_engines(device) if i.kind == "classical"]
        if deep is not None:
            infos.append(engine_api.EngineInfo(RANDOM_DEEP, deep.title, "", "deep", deep.availability()))
        return infos

    def getter(name, device):
        return deep if name == RANDOM_DEEP else engine_api.get_engine(name, device)

    settings = QSettings(str(tmp / "settings.ini"), QSettings.Format.IniFormat)
    window = MainWindow(settings=settings, engine_lister=lister, engine_getter=getter)
    window.resize(1400, 900)
    window.show()
    app.processEvents()
    beat = Heartbeat()
    print(f"platform {app.platformName()}, window 1400x900")
    viewport = window.canvas.viewport()
    big = synthetic_photo(3000, 4000)
    t0 = time.perf_counter()
    window.set_document(Document(big), None)
    viewport.repaint()
    print(f"12 MP photo shown at fit in {(time.perf_counter() - t0) * 1e3:.0f} ms; full repaint at fit: ", end="")
    repaints = []
    for _ in range(7):
        t0 = time.perf_counter()
        viewport.repaint()
        repaints.append((time.perf_counter() - t0) * 1e3)
    print(f"median {statistics.median(repaints):.1f} ms of 7")
    try:
        load = os.getloadavg()[0]
        print(f"load average {load:.1f} on {os.cpu_count()} CPUs (a busy machine stretches every gap)")
    except OSError:
        pass

    sizes = [(512, 512, "512x512")] + ([] if args.quick else [(3000, 4000, "12 MP")])
    for h, w, label in sizes:
        image = synthetic_photo(h, w)
        print(f"stroke latency {label}, fit:  {stroke_latency(window, app, image, None)}")
        print(f"stroke latency {label}, 100%: {stroke_latency(window, app, image, 1.0)}")

    # Warm-up so that numba compilation (which holds the GIL) is not in the measurement.
    small = synthetic_photo(64, 64)
    fill_heartbeat(window, app, small, synthetic_hole(64, 64, 0.1), "patchmatch", "full", beat)
    cases = [("patchmatch", 512, 512, 0.25, "full")]
    if not args.quick:
        cases.append(("patchmatch", 3000, 4000, 0.03, "crop"))
    if deep is not None:
        fill_heartbeat(window, app, small, synthetic_hole(64, 64, 0.1), RANDOM_DEEP, "full", beat)
        cases.append((RANDOM_DEEP, 512, 512, 0.25, "full"))
        if not args.quick:
            cases.append((RANDOM_DEEP, 3000, 4000, 0.03, "crop"))
    for engine, h, w, ratio, strategy in cases:
        result = fill_heartbeat(window, app, synthetic_photo(h, w), synthetic_hole(h, w, ratio),
                                engine, strategy, beat)
        print(f"{engine} {w}x{h} hole {ratio:.0%} ({strategy}): {result}")
    window.service.shutdown()
    window.autosaver.stop_and_discard()
    return 0


if __name__ == "__main__":
    sys.exit(main())
