"""The main window: canvas in the middle, tool and fill toolbars, menus and status bar;
wires actions to the canvas, the document, the fill controller, files and autosave."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from PySide6.QtCore import QEvent, QObject, QSettings, Qt, QTimer
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QApplication,
    QLabel,
    QMainWindow,
    QMenu,
    QProgressBar,
    QSpinBox,
    QToolBar,
    QWidget,
)

from ..document import Document, Layer, Rect
from ..engine import Engine
from .. import imageio, mask_ops
from ..imageio import LoadedImage
from .actions import build_actions
from .autosave import Autosaver, claim_newest_orphan
from .canvas import MAX_RADIUS, CanvasTool, CanvasView
from .dialogs import PreferencesDialog, ask_pixels, ask_restore, ask_save_changes, show_error
from .fill_controller import has_attention, uses_sketch
from .files import FileController
from .fill_controller import FillController
from .settings import Preferences, open_settings, push_recent_file, recent_files
from .train_dialog import FinetuneDialog
from .worker import FillService

PAINT_HINT = ("Fill (Ctrl+Enter) when the hole covers it all. Brush size: [ ], the Size box, or "
              "Shift+drag.")
WAITING_HINT = "New strokes wait for the next Fill; the result shown is for the earlier hole."
RUNNING_HINT = "New strokes wait for the next Fill; the running fill finishes the earlier hole."
PERSIST_DELAY_MS = 1000  # window geometry and brush size reach the settings this soon

TOOL_HINTS = {
    CanvasTool.BRUSH: "Brush: paint over what to remove",
    CanvasTool.ERASER: "Eraser: shrink the hole",
    CanvasTool.PEN: "Sketch pen: draw guide lines inside the hole (the selected model follows them)",
    CanvasTool.PROBE: "Where did this come from: click a filled pixel of a deep result",
}


class MainWindow(QMainWindow):
    """Inpaint Studio's window.

    settings: the QSettings store (tests pass one in a temporary folder).
    engine_lister / engine_getter: replace ``engine.list_engines`` / ``engine.get_engine``
        (tests use fakes); default: the registry.
    """

    def __init__(self, settings: QSettings | None = None,
                 engine_lister: Callable[[str], list] | None = None,
                 engine_getter: Callable[[str, str], Engine] | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.settings = settings or open_settings()
        self.prefs = Preferences.load(self.settings)
        self.document: Document | None = None
        self.loaded: LoadedImage | None = None

        self.canvas = CanvasView(self)
        self.setCentralWidget(self.canvas)
        self.canvas.radii[CanvasTool.BRUSH] = self.canvas.radii[CanvasTool.ERASER] = float(self.prefs.brush_radius)
        self.canvas.radii[CanvasTool.PEN] = float(self.prefs.pen_radius)
        self.canvas.set_overlay_style(self.prefs.overlay_rgb(), self.prefs.overlay_opacity / 100)
        # Kept in the settings while the app runs, not only at a clean exit, so that a crash
        # keeps the window's place and the brush size.
        self._persist_timer = QTimer(self)
        self._persist_timer.setSingleShot(True)
        self._persist_timer.setInterval(PERSIST_DELAY_MS)
        self._persist_timer.timeout.connect(self.persist_settings)
        self.actions = build_actions(self)
        self.files = FileController(self)
        self.service = FillService(engine_getter, self)
        self.fill = FillController(self.canvas, self.prefs, self.service, engine_lister, self)
        self.autosaver = Autosaver(self.prefs.autosave_seconds, self)

        self._build_status_bar()
        self._build_toolbars()
        self._build_menus()
        self._connect()
        self.fill.refresh_engines()
        self.restoreGeometry(self.settings.value("window/geometry", b""))
        self.restoreState(self.settings.value("window/state", b""))
        if self.settings.value("window/geometry") is None:
            self.resize(1280, 820)
        self._sync_actions()
        self.update_title()
        # Holding Tab shows the original wherever the focus is in this window (a shortcut
        # cannot see the key's release, and Tab would otherwise move the focus).
        QApplication.instance().installEventFilter(self)
        self.show_status("Open a photo (Ctrl+O), drop one here or paste one (Ctrl+V).")

    # ------------------------------------------------------------------ building
    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.status_label = QLabel()
        self.status_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.busy_bar = QProgressBar()
        self.busy_bar.setRange(0, 0)  # indeterminate until the engine reports progress
        self.busy_bar.setMaximumWidth(160)
        self.busy_bar.hide()
        self.progress_label = QLabel()  # e.g. "level 3 of 5, about 4 s left"
        self.progress_label.hide()
        self.size_label = QLabel()
        self.zoom_label = QLabel()
        bar.addWidget(self.status_label, 1)
        bar.addPermanentWidget(self.progress_label)
        bar.addPermanentWidget(self.busy_bar)
        bar.addPermanentWidget(self.size_label)
        bar.addPermanentWidget(self.zoom_label)

    def _build_toolbars(self) -> None:
        a = self.actions
        main = QToolBar("File and edit", self)
        main.setObjectName("file_toolbar")
        for action in (a.open, a.save, None, a.undo, a.redo):
            main.addSeparator() if action is None else main.addAction(action)
        self.addToolBar(main)

        tools = QToolBar("Tools", self)
        tools.setObjectName("tools_toolbar")
        for action in (a.brush, a.eraser, a.pen, a.probe):
            tools.addAction(action)
        # The brush's diameter in photo pixels: typed, stepped with [ ], or Shift+dragged.
        self.brush_size = QSpinBox()
        self.brush_size.setObjectName("brush_size")
        self.brush_size.setRange(1, int(2 * MAX_RADIUS))
        self.brush_size.setPrefix("Size ")
        self.brush_size.setSuffix(" px")
        self.brush_size.setKeyboardTracking(False)  # applied on Enter, not per digit
        self.brush_size.setToolTip("Brush diameter in photo pixels ([ smaller, ] larger, or "
                                   "Shift+drag on the photo)")
        self.brush_size.valueChanged.connect(lambda v: self.canvas.set_radius(v / 2))
        tools.addWidget(self.brush_size)
        self.addToolBar(tools)

        # The fill bar gets a row of its own: the engine note beside the selector says
        # which engine will run and why, in plain sight.
        self.addToolBarBreak()
        fill = QToolBar("Fill", self)
        fill.setObjectName("fill_toolbar")
        fill.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        fill.addWidget(QLabel(" Engine "))
        fill.addWidget(self.fill.engine_box)
        fill.addWidget(self.fill.engine_note)
        fill.addWidget(QLabel(" Device "))
        fill.addWidget(self.fill.device_box)
        for action in (a.fill, a.cancel, None, a.apply, a.discard, a.split):
            fill.addSeparator() if action is None else fill.addAction(action)
        # Icons only for the occasional ones (their tooltips name them), so that the tool
        # bars fit a 1000 px wide window.
        for action in (a.cancel, a.split):
            fill.widgetForAction(action).setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonIconOnly)
        self.addToolBar(fill)

    def _build_menus(self) -> None:
        a = self.actions
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        file_menu.addAction(a.open)
        self.recent_menu = QMenu("Open &recent", self)
        file_menu.addMenu(self.recent_menu)
        self._rebuild_recent_menu()
        for action in (a.paste, None, a.save, a.save_as, None, a.import_mask, a.export_mask,
                       a.import_sketch, a.export_sketch, None, a.copy_result, None,
                       a.preferences, None, a.quit):
            file_menu.addSeparator() if action is None else file_menu.addAction(action)
        edit = bar.addMenu("&Edit")
        for action in (a.undo, a.redo, None, a.grow_mask, a.shrink_mask, a.fill_gaps, None,
                       a.clear_mask, a.clear_sketch):
            edit.addSeparator() if action is None else edit.addAction(action)
        view = bar.addMenu("&View")
        for action in (a.zoom_in, a.zoom_out, a.fit, a.actual_size, None, a.split):
            view.addSeparator() if action is None else view.addAction(action)
        tools = bar.addMenu("&Tools")
        for action in (a.brush, a.eraser, a.pen, a.probe, None, a.smaller, a.larger, None,
                       a.finetune):
            tools.addSeparator() if action is None else tools.addAction(action)
        fill = bar.addMenu("F&ill")
        for action in (a.fill, a.cancel, None, a.apply, a.discard):
            fill.addSeparator() if action is None else fill.addAction(action)

    def _connect(self) -> None:
        a, c = self.actions, self.canvas
        a.open.triggered.connect(self.files.open_dialog)
        a.open_recent_clear.triggered.connect(self._clear_recent)
        a.paste.triggered.connect(self.files.paste)
        a.save.triggered.connect(self.files.save)
        a.save_as.triggered.connect(self.files.save_as)
        a.import_mask.triggered.connect(lambda: self.files.import_layer(Layer.MASK))
        a.export_mask.triggered.connect(lambda: self.files.export_layer(Layer.MASK))
        a.import_sketch.triggered.connect(lambda: self.files.import_layer(Layer.SKETCH))
        a.export_sketch.triggered.connect(lambda: self.files.export_layer(Layer.SKETCH))
        a.copy_result.triggered.connect(
            lambda: self.files.copy_image(self.fill.result.image if self.fill.result else None))
        a.preferences.triggered.connect(self.edit_preferences)
        a.finetune.triggered.connect(self.open_finetune)
        a.quit.triggered.connect(self.close)
        a.undo.triggered.connect(self.undo)
        a.redo.triggered.connect(self.redo)
        a.redo_alt.triggered.connect(self.redo)
        a.clear_mask.triggered.connect(lambda: self._clear(Layer.MASK))
        a.clear_sketch.triggered.connect(lambda: self._clear(Layer.SKETCH))
        a.grow_mask.triggered.connect(lambda: self.resize_mask(+1))
        a.shrink_mask.triggered.connect(lambda: self.resize_mask(-1))
        a.fill_gaps.triggered.connect(self.fill_mask_gaps)
        for action, tool in ((a.brush, CanvasTool.BRUSH), (a.eraser, CanvasTool.ERASER),
                             (a.pen, CanvasTool.PEN), (a.probe, CanvasTool.PROBE)):
            action.triggered.connect(lambda _=False, t=tool: self.set_tool(t))
        a.smaller.triggered.connect(lambda: c.grow_radius(-1))
        a.larger.triggered.connect(lambda: c.grow_radius(+1))
        a.zoom_in.triggered.connect(lambda: c.zoom_by(1.25))
        a.zoom_out.triggered.connect(lambda: c.zoom_by(0.8))
        a.fit.triggered.connect(c.fit)
        a.actual_size.triggered.connect(c.actual_size)
        a.split.toggled.connect(c.set_split)
        a.fill.triggered.connect(self.start_fill)
        a.cancel.triggered.connect(self.fill.cancel)
        a.apply.triggered.connect(lambda: self.fill.apply(self.document))
        a.discard.triggered.connect(self.fill.discard)

        c.stroke_finished.connect(self._on_stroke_finished)
        c.probe_clicked.connect(self.fill.probe)
        c.files_dropped.connect(self.files.open_dropped)
        c.zoom_changed.connect(lambda z: self.zoom_label.setText(f"{z * 100:.0f} %"))
        c.radius_changed.connect(self._show_radius)
        self.fill.status.connect(self.show_status)
        self.fill.busy_changed.connect(self._on_busy)
        self.fill.progress.connect(self._on_progress)
        self.fill.engine_changed.connect(self._on_engine_changed)
        self.fill.result_changed.connect(lambda shown: self._sync_actions())
        self.fill.applied.connect(lambda rect: self._after_edit())
        self.autosaver.saved.connect(lambda path: self.statusBar().showMessage("Autosaved", 1500))
        self._show_radius(c.radius)

    # ------------------------------------------------------------------ document
    def set_document(self, document: Document | None, loaded: LoadedImage | None) -> None:
        """Show a new document (the previous one's result and fill are dropped)."""
        self.fill.discard()
        self.document, self.loaded = document, loaded
        self.canvas.set_document(document)
        self.autosaver.watch(document)
        if document is not None:
            self.size_label.setText(f"{document.width} x {document.height}")
            # The brush keeps its size relative to the photo, so it looks the same on a
            # 12-megapixel photo as on a small one.
            radius = max(1.0, self.prefs.brush_fraction * max(document.width, document.height))
            self.canvas.radii[CanvasTool.BRUSH] = self.canvas.radii[CanvasTool.ERASER] = radius
            self.canvas.radius_changed.emit(self.canvas.radius)
            name = Path(document.source_path).name if document.source_path else "the pasted image"
            self.show_status(f"Opened {name}. Paint over what to remove (B), then Fill (Ctrl+Enter).")
        self._after_edit()

    def layers_changed(self, rect: Rect) -> None:
        self.canvas.refresh_layers(rect)
        self._after_edit()

    def unsaved_work(self) -> list[str]:
        """What replacing the document would lose, one phrase each (empty: nothing)."""
        doc = self.document
        if doc is None:
            return []
        lost = []
        if doc.fill_count and doc.modified:
            lost.append("applied fills that are not saved")
        if doc.has_hole:
            lost.append("the painted mask")
        if doc.sketch.any():
            lost.append("the sketch lines")
        if self.fill.has_result:
            lost.append("the fill result that is not applied")
        return lost

    def confirm_discard(self) -> bool:
        """True when the current document may be replaced: nothing would be lost, the user
        saved it, or the user confirmed losing it."""
        lost = self.unsaved_work()
        if not lost:
            return True
        can_save = bool(self.document.fill_count and self.document.modified)
        answer = ask_save_changes(self, lost, can_save)
        if answer == "save":
            return self.files.save()
        return answer == "discard"

    def remember_recent(self, path: str) -> None:
        push_recent_file(self.settings, path)
        self._rebuild_recent_menu()

    def _rebuild_recent_menu(self) -> None:
        self.recent_menu.clear()
        items = recent_files(self.settings)
        for path in items:
            action = self.recent_menu.addAction(Path(path).name)
            action.setToolTip(path)
            action.setStatusTip(path)
            action.triggered.connect(lambda _=False, p=path: self.files.open_path(p))
        self.recent_menu.addSeparator()
        self.recent_menu.addAction(self.actions.open_recent_clear)
        self.actions.open_recent_clear.setEnabled(bool(items))

    def _clear_recent(self) -> None:
        self.settings.setValue("recent/files", [])
        self._rebuild_recent_menu()

    # ------------------------------------------------------------------ editing
    def set_tool(self, tool: CanvasTool) -> None:
        self.canvas.set_tool(tool)
        {CanvasTool.BRUSH: self.actions.brush, CanvasTool.ERASER: self.actions.eraser,
         CanvasTool.PEN: self.actions.pen, CanvasTool.PROBE: self.actions.probe}[tool].setChecked(True)
        self.show_status(TOOL_HINTS[tool])

    def _show_radius(self, radius: float) -> None:
        self.brush_size.blockSignals(True)
        self.brush_size.setValue(max(1, int(round(2 * radius))))
        self.brush_size.blockSignals(False)
        self.brush_size.setEnabled(self.canvas.tool.paints)
        if self.canvas.tool in (CanvasTool.BRUSH, CanvasTool.ERASER):
            self.prefs.brush_radius = int(round(radius))
            self.canvas.radii[CanvasTool.BRUSH] = self.canvas.radii[CanvasTool.ERASER] = radius
            if self.document is not None:
                self.prefs.brush_fraction = radius / max(self.document.width, self.document.height)
        elif self.canvas.tool is CanvasTool.PEN:
            self.prefs.pen_radius = max(1, int(round(radius)))
        self._persist_timer.start()

    def _on_stroke_finished(self, rect: Rect) -> None:
        # A running fill completes for its own hole and a shown result stays: new strokes
        # wait for the next Fill. The status line says so instead of a stale message.
        if self.service.busy:
            self.show_status(RUNNING_HINT)
        else:
            self.show_status(WAITING_HINT if self.fill.has_result else PAINT_HINT)
        self._after_edit()

    def _on_engine_changed(self, info) -> None:
        """Sketch pen and attention view only where the selected engine uses them."""
        a = self.actions
        sketches = info is not None and uses_sketch(info)
        a.pen.setEnabled(sketches)
        title = info.title if info is not None else "No engine"
        a.pen.setToolTip("Sketch pen: guide lines inside the hole (S)" if sketches else
                         f"Sketch pen: {title} ignores sketch lines; choose a model that "
                         "follows them (S)")
        attention = info is not None and has_attention(info)
        a.probe.setEnabled(attention)
        a.probe.setToolTip("Click a filled pixel to see where the model borrowed it from (A)"
                           if attention else f"Where did this come from: {title} has no "
                           "attention to show (A)")
        if (self.canvas.tool is CanvasTool.PEN and not sketches) or \
                (self.canvas.tool is CanvasTool.PROBE and not attention):
            self.set_tool(CanvasTool.BRUSH)
            self.show_status(f"{title} ignores sketch lines: the brush is back." if not sketches
                             else f"{title} has no attention view: the brush is back.")

    def resize_mask(self, direction: int) -> bool:
        """Grow (+1) or shrink (-1) the hole by a number of pixels the user types, as one
        undo step."""
        doc = self.document
        if doc is None or not doc.has_hole:
            self.show_status("Paint a hole first (brush: B).")
            return False
        word = "Grow" if direction > 0 else "Shrink"
        pixels = ask_pixels(self, f"{word} mask", f"{word} the hole by (px):",
                            self.prefs.grow_before_fill or 4)
        if pixels is None:
            return False
        plane = mask_ops.grow(doc.mask, pixels) if direction > 0 else mask_ops.shrink(doc.mask, pixels)
        self.layers_changed(doc.set_layer(Layer.MASK, plane, kind=f"{word.lower()} mask"))
        self.show_status(f"{word} the hole by {pixels} px (Ctrl+Z undoes).")
        return True

    def fill_mask_gaps(self) -> bool:
        """Add the unmasked islands the hole surrounds to the hole, as one undo step."""
        doc = self.document
        if doc is None or not doc.has_hole:
            self.show_status("Paint a hole first (brush: B).")
            return False
        gaps = mask_ops.enclosed_gaps(doc.mask)
        if not gaps.any():
            self.show_status("The hole has no enclosed gaps.")
            return False
        self.layers_changed(doc.set_layer(Layer.MASK, mask_ops.fill_gaps(doc.mask), kind="fill gaps"))
        self.show_status(f"Filled {int(gaps.sum())} px of enclosed gaps (Ctrl+Z undoes).")
        return True

    def undo(self) -> None:
        self._edit_history(self.document.undo if self.document else None)

    def redo(self) -> None:
        self._edit_history(self.document.redo if self.document else None)

    def _edit_history(self, step) -> None:
        if step is None:
            return
        doc = self.document
        kind = doc.next_undo_kind if step == doc.undo else doc.next_redo_kind
        if kind == "fill" and (self.fill.has_result or self.service.busy):
            # The shown result was made on the photo as it is; undoing or redoing an applied
            # fill under it would make it wrong, and dropping it would lose it.
            self.show_status("Apply or Discard the shown result first, then undo or redo the "
                             "applied fill.")
            return
        rect = step()
        self.canvas.refresh_image(rect)
        self.canvas.refresh_layers(rect)
        self._after_edit()

    def _clear(self, layer: Layer) -> None:
        if self.document is not None:
            self.layers_changed(self.document.clear_layer(layer))

    def _after_edit(self) -> None:
        self._sync_actions()
        self.update_title()

    def _sync_actions(self) -> None:
        a, doc = self.actions, self.document
        has_doc = doc is not None
        result = self.fill.has_result
        for action in (a.save, a.save_as, a.import_mask, a.export_mask, a.import_sketch,
                       a.export_sketch, a.copy_result, a.clear_mask, a.clear_sketch, a.fill,
                       a.grow_mask, a.shrink_mask, a.fill_gaps):
            action.setEnabled(has_doc)
        a.undo.setEnabled(has_doc and doc.can_undo)
        a.redo.setEnabled(has_doc and doc.can_redo)
        a.redo_alt.setEnabled(has_doc and doc.can_redo)
        a.apply.setEnabled(result)
        a.discard.setEnabled(result)
        a.split.setEnabled(result)
        if not result and a.split.isChecked():
            a.split.setChecked(False)
        a.cancel.setEnabled(self.service.busy)

    def update_title(self) -> None:
        doc = self.document
        if doc is None:
            self.setWindowTitle("Inpaint Studio")
            return
        # After Save As the title names the file Ctrl+S now writes.
        shown = self.files.save_path or doc.source_path
        name = Path(shown).name if shown else "Pasted image"
        self.setWindowTitle(f"{name}{' *' if doc.modified else ''} — Inpaint Studio")

    def show_status(self, text: str) -> None:
        self.status_label.setText(text)

    def _on_busy(self, busy: bool) -> None:
        self.busy_bar.setVisible(busy)
        if busy:
            self.busy_bar.setRange(0, 0)
        else:
            self.progress_label.hide()
        self._sync_actions()

    def _on_progress(self, fraction: float, text: str) -> None:
        """The fill's progress: a filling bar once the engine reports a fraction (-1: none
        now), and its text with an estimate of the time left."""
        if fraction < 0 or not self.service.busy:
            self.progress_label.hide()
            return
        self.busy_bar.setRange(0, 1000)
        self.busy_bar.setValue(int(round(1000 * fraction)))
        self.progress_label.setText(text)
        self.progress_label.setVisible(bool(text))

    # ------------------------------------------------------------------ fill
    def start_fill(self) -> int | None:
        return self.fill.start(self.document, attention=True)

    # ------------------------------------------------------------------ dialogs
    def edit_preferences(self) -> None:
        dialog = PreferencesDialog(self.prefs, self)
        if dialog.exec():
            self.apply_preferences(dialog)

    def apply_preferences(self, dialog: PreferencesDialog) -> None:
        """Take the dialog's values: keep them and show their effect now."""
        dialog.apply_to(self.prefs)
        self.prefs.save(self.settings)
        self.autosaver.set_interval(self.prefs.autosave_seconds)
        self.canvas.set_overlay_style(self.prefs.overlay_rgb(), self.prefs.overlay_opacity / 100)

    def open_finetune(self) -> None:
        dialog = FinetuneDialog(self)
        dialog.finished_training.connect(self._on_training_done)
        dialog.show()

    def _on_training_done(self, exit_code: int) -> None:
        self.service.forget_engines()
        self.fill.refresh_engines()
        self.show_status("Fine-tuning finished: the engine list is refreshed." if exit_code == 0
                         else "Fine-tuning stopped; the engine list is refreshed.")

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        kind = event.type()
        if kind in (QEvent.Type.KeyPress, QEvent.Type.KeyRelease) and event.key() == Qt.Key.Key_Tab \
                and event.modifiers() == Qt.KeyboardModifier.NoModifier \
                and isinstance(watched, QWidget) and watched.window() is self:
            if not event.isAutoRepeat():
                self.canvas.show_original(kind == QEvent.Type.KeyPress)
            return True
        if kind == QEvent.Type.WindowDeactivate and watched is self:
            self.canvas.show_original(False)  # the release would go to another window
        return False

    # ------------------------------------------------------------------ session
    def offer_restore(self) -> bool:
        """At start: restore the newest autosave a crashed run left (not one of a copy of
        the app still running), if the user wants it."""
        orphan = claim_newest_orphan(own=self.autosaver.path)
        if orphan is None:
            return False
        try:
            saved_at = time.strftime("%H:%M on %d %b %Y", time.localtime(orphan.path.stat().st_mtime))
            document = Document.load_session(orphan.path)
        except (OSError, ValueError) as exc:
            show_error(self, "Cannot restore", str(exc))
            orphan.discard()
            return False
        photo = Path(document.source_path).name if document.source_path else "a pasted image"
        if not ask_restore(self, photo, saved_at):
            orphan.discard()
            return False
        loaded = None
        if document.source_path:
            try:  # the original's format, EXIF and ICC for saving, when it is still there
                loaded = imageio.load_image(document.source_path)
                if loaded.size != (document.width, document.height):
                    loaded = None
            except imageio.ImageLoadError:
                loaded = None
        self.set_document(document, loaded)
        self.autosaver.adopt(orphan, document)
        self.show_status("Restored the autosaved session.")
        return True

    def persist_settings(self) -> None:
        """Write the window's geometry and the preferences (brush size included) to the
        settings file now."""
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState())
        self.prefs.save(self.settings)
        self.settings.sync()

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if hasattr(self, "_persist_timer"):
            self._persist_timer.start()

    def moveEvent(self, event) -> None:
        super().moveEvent(event)
        if hasattr(self, "_persist_timer"):
            self._persist_timer.start()

    def closeEvent(self, event: QCloseEvent) -> None:
        if not self.confirm_discard():
            event.ignore()
            return
        self._persist_timer.stop()
        self.persist_settings()
        self.service.shutdown()
        self.autosaver.stop_and_discard()
        super().closeEvent(event)
