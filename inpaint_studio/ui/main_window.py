"""The main window: canvas in the middle, tool and fill toolbars, menus and status bar;
wires actions to the canvas, the document, the fill controller, files and autosave."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from PySide6.QtCore import QEvent, QObject, QSettings, Qt
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import QApplication, QLabel, QMainWindow, QMenu, QProgressBar, QToolBar, QWidget

from ..document import Document, Layer, Rect
from ..engine import Engine
from .. import imageio
from ..imageio import LoadedImage
from .actions import build_actions
from .autosave import Autosaver, claim_newest_orphan
from .canvas import CanvasTool, CanvasView
from .dialogs import PreferencesDialog, ask_discard_changes, ask_restore, show_error
from .files import FileController
from .fill_controller import FillController
from .settings import Preferences, open_settings, push_recent_file, recent_files
from .train_dialog import FinetuneDialog
from .worker import FillService

TOOL_HINTS = {
    CanvasTool.BRUSH: "Brush: paint over what to remove",
    CanvasTool.ERASER: "Eraser: shrink the hole",
    CanvasTool.PEN: "Sketch pen: draw guide lines inside the hole",
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
        self.busy_bar.setRange(0, 0)  # indeterminate while a fill runs
        self.busy_bar.setMaximumWidth(120)
        self.busy_bar.hide()
        self.size_label = QLabel()
        self.zoom_label = QLabel()
        bar.addWidget(self.status_label, 1)
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
        self.radius_label = QLabel()
        self.radius_label.setToolTip("Brush size ([ smaller, ] larger)")
        self.radius_label.setMinimumWidth(70)
        tools.addWidget(self.radius_label)
        self.addToolBar(tools)

        fill = QToolBar("Fill", self)
        fill.setObjectName("fill_toolbar")
        fill.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        fill.addWidget(QLabel(" Engine "))
        fill.addWidget(self.fill.engine_box)
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
                       a.import_sketch, a.export_sketch, None, a.copy_result, None, a.finetune,
                       a.preferences, None, a.quit):
            file_menu.addSeparator() if action is None else file_menu.addAction(action)
        edit = bar.addMenu("&Edit")
        for action in (a.undo, a.redo, None, a.clear_mask, a.clear_sketch):
            edit.addSeparator() if action is None else edit.addAction(action)
        view = bar.addMenu("&View")
        for action in (a.zoom_in, a.zoom_out, a.fit, a.actual_size, None, a.split):
            view.addSeparator() if action is None else view.addAction(action)
        tools = bar.addMenu("&Tools")
        for action in (a.brush, a.eraser, a.pen, a.probe, None, a.smaller, a.larger):
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

        c.stroke_started.connect(self._on_stroke_started)
        c.stroke_finished.connect(lambda rect: self._after_edit())
        c.probe_clicked.connect(self.fill.probe)
        c.files_dropped.connect(self.files.open_dropped)
        c.zoom_changed.connect(lambda z: self.zoom_label.setText(f"{z * 100:.0f} %"))
        c.radius_changed.connect(self._show_radius)
        self.fill.status.connect(self.show_status)
        self.fill.busy_changed.connect(self._on_busy)
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
        """True when the current document may be replaced: nothing would be lost, or the
        user confirmed losing it."""
        lost = self.unsaved_work()
        return not lost or ask_discard_changes(self, lost)

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
        self.radius_label.setText(f" Size {2 * radius:.0f} px" if self.canvas.tool.paints else "")
        if self.canvas.tool in (CanvasTool.BRUSH, CanvasTool.ERASER):
            self.prefs.brush_radius = int(round(radius))
            self.canvas.radii[CanvasTool.BRUSH] = self.canvas.radii[CanvasTool.ERASER] = radius
        elif self.canvas.tool is CanvasTool.PEN:
            self.prefs.pen_radius = max(1, int(round(radius)))

    def _on_stroke_started(self) -> None:
        # New paint changes the request: an unapplied or pending result no longer matches.
        if self.fill.has_result or self.service.busy:
            self.fill.discard()

    def undo(self) -> None:
        self._edit_history(self.document.undo if self.document else None)

    def redo(self) -> None:
        self._edit_history(self.document.redo if self.document else None)

    def _edit_history(self, step) -> None:
        if step is None:
            return
        if self.fill.has_result:
            self.fill.discard()
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
                       a.export_sketch, a.copy_result, a.clear_mask, a.clear_sketch, a.fill):
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
        name = Path(doc.source_path).name if doc.source_path else "Pasted image"
        self.setWindowTitle(f"{name}{' *' if doc.modified else ''} — Inpaint Studio")

    def show_status(self, text: str) -> None:
        self.status_label.setText(text)

    def _on_busy(self, busy: bool) -> None:
        self.busy_bar.setVisible(busy)
        self._sync_actions()

    # ------------------------------------------------------------------ fill
    def start_fill(self) -> int | None:
        return self.fill.start(self.document, attention=True)

    # ------------------------------------------------------------------ dialogs
    def edit_preferences(self) -> None:
        dialog = PreferencesDialog(self.prefs, self)
        if dialog.exec():
            dialog.apply_to(self.prefs)
            self.prefs.save(self.settings)
            self.autosaver.set_interval(self.prefs.autosave_seconds)

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
        if not ask_restore(self):
            orphan.discard()
            return False
        try:
            document = Document.load_session(orphan.path)
        except ValueError as exc:
            show_error(self, "Cannot restore", str(exc))
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

    def closeEvent(self, event: QCloseEvent) -> None:
        if not self.confirm_discard():
            event.ignore()
            return
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState())
        self.prefs.save(self.settings)
        self.settings.sync()
        self.service.shutdown()
        self.autosaver.stop_and_discard()
        super().closeEvent(event)
