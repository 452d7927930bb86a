"""Every menu / toolbar / shortcut action of the main window, built in one place.

Actions carry no behaviour here; :mod:`.main_window` connects them. Icons are drawn with
QPainter (nothing downloaded) or taken from the style's standard icons.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QAction, QActionGroup, QColor, QIcon, QKeySequence, QPainter, QPen, QPixmap
from PySide6.QtWidgets import QStyle, QWidget


def _drawn_icon(kind: str) -> QIcon:
    """Small tool icons drawn with QPainter: brush, eraser, pen, probe, compare, fill, and
    undo / redo as curved arrows (the style's straight arrows read as back and forward)."""
    pix = QPixmap(32, 32)
    pix.fill(Qt.GlobalColor.transparent)
    p = QPainter(pix)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    if kind == "brush":
        p.setBrush(QColor(230, 60, 60))
        p.setPen(Qt.PenStyle.NoPen)
        p.drawEllipse(QRectF(6, 6, 20, 20))
    elif kind == "eraser":
        p.setPen(QPen(QColor(220, 220, 220), 2))
        p.setBrush(QColor(250, 170, 190))
        p.translate(16, 16)
        p.rotate(-35)
        p.drawRoundedRect(QRectF(-12, -7, 24, 14), 3, 3)
    elif kind == "pen":
        p.setPen(QPen(QColor(40, 210, 255), 3, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap))
        p.drawLine(QPointF(6, 26), QPointF(26, 6))
        p.drawPoint(QPointF(6, 26))
    elif kind == "probe":
        p.setPen(QPen(QColor(255, 200, 60), 3))
        p.drawEllipse(QRectF(5, 5, 16, 16))
        p.drawLine(QPointF(19, 19), QPointF(28, 28))
    elif kind == "compare":  # a photo split by a divider: left filled, right original
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(QColor(90, 200, 120))
        p.drawRect(QRectF(4, 7, 12, 18))
        p.setBrush(QColor(200, 200, 205))
        p.drawRect(QRectF(16, 7, 12, 18))
        p.setPen(QPen(QColor(250, 250, 250), 2))
        p.drawLine(QPointF(16, 3), QPointF(16, 29))
    elif kind in ("undo", "redo"):
        # An arc over the top with an arrow head at its end: turning back (undo, heading
        # left) or forward again (redo, mirrored).
        if kind == "redo":
            p.translate(32, 0)
            p.scale(-1, 1)
        # A mid blue reads on light and dark toolbars alike (a light grey looked disabled).
        colour = QColor(40, 120, 215)
        pen = QPen(colour, 3, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap)
        p.setPen(pen)
        p.drawArc(QRectF(7, 8, 20, 18), 0 * 16, 200 * 16)
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(colour)
        p.drawPolygon([QPointF(2, 17), QPointF(14, 17), QPointF(8, 26)])
    elif kind == "fill":
        p.setBrush(QColor(90, 200, 120))
        p.setPen(Qt.PenStyle.NoPen)
        p.drawPolygon([QPointF(8, 6), QPointF(28, 16), QPointF(8, 26)])
    p.end()
    return QIcon(pix)


@dataclass
class Actions:
    """The window's actions, typed and named after what they do."""

    open: QAction
    open_recent_clear: QAction
    paste: QAction
    save: QAction
    save_as: QAction
    import_mask: QAction
    export_mask: QAction
    import_sketch: QAction
    export_sketch: QAction
    copy_result: QAction
    preferences: QAction
    finetune: QAction
    quit: QAction
    undo: QAction
    redo: QAction
    redo_alt: QAction
    clear_mask: QAction
    clear_sketch: QAction
    grow_mask: QAction
    shrink_mask: QAction
    fill_gaps: QAction
    brush: QAction
    eraser: QAction
    pen: QAction
    probe: QAction
    smaller: QAction
    larger: QAction
    zoom_in: QAction
    zoom_out: QAction
    fit: QAction
    actual_size: QAction
    split: QAction
    fill: QAction
    cancel: QAction
    apply: QAction
    discard: QAction
    tools: QActionGroup


def build_actions(owner: QWidget) -> Actions:
    """Create every action with its text, shortcut, icon and tooltip, parented to ``owner``."""
    style = owner.style()

    def act(text: str, shortcut=None, icon: QIcon | None = None, tip: str = "",
            checkable: bool = False) -> QAction:
        action = QAction(text, owner)
        if shortcut is not None:
            if isinstance(shortcut, (list, tuple)):
                action.setShortcuts([QKeySequence(s) for s in shortcut])
            else:
                action.setShortcut(QKeySequence(shortcut))
        if icon is not None:
            action.setIcon(icon)
        if tip:
            keys = action.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
            action.setToolTip(f"{tip} ({keys})" if keys else tip)
        action.setCheckable(checkable)
        owner.addAction(action)  # shortcuts work even when the action is in no toolbar
        return action

    sp = QStyle.StandardPixmap
    actions = Actions(
        open=act("&Open…", QKeySequence.StandardKey.Open, style.standardIcon(sp.SP_DialogOpenButton), "Open a photo"),
        open_recent_clear=act("Clear recent files"),
        paste=act("&Paste image", QKeySequence.StandardKey.Paste, tip="Open the image on the clipboard"),
        save=act("&Save", QKeySequence.StandardKey.Save, style.standardIcon(sp.SP_DialogSaveButton), "Save the photo"),
        save_as=act("Save &as…", QKeySequence.StandardKey.SaveAs),
        import_mask=act("Import mask…"),
        export_mask=act("Export mask…"),
        import_sketch=act("Import sketch…"),
        export_sketch=act("Export sketch…"),
        copy_result=act("&Copy image", QKeySequence.StandardKey.Copy, tip="Copy the shown result to the clipboard"),
        preferences=act("Pre&ferences…", QKeySequence.StandardKey.Preferences),
        finetune=act("Fine-tune a model…", tip="Train a model on your own photos"),
        quit=act("&Quit", QKeySequence.StandardKey.Quit),
        undo=act("&Undo", "Ctrl+Z", _drawn_icon("undo"), "Undo"),
        redo=act("&Redo", "Ctrl+Shift+Z", _drawn_icon("redo"), "Redo"),
        redo_alt=act("Redo", "Ctrl+Y"),
        clear_mask=act("Clear &mask", "Ctrl+Backspace", tip="Clear the hole mask"),
        clear_sketch=act("Clear s&ketch", "Ctrl+Shift+Backspace", tip="Clear the sketch lines"),
        grow_mask=act("&Grow mask…", "Ctrl+Alt+]", tip="Grow the hole by a number of pixels"),
        shrink_mask=act("S&hrink mask…", "Ctrl+Alt+[", tip="Shrink the hole by a number of pixels"),
        fill_gaps=act("Fill &enclosed gaps", "Ctrl+Alt+G",
                      tip="Add the unmasked islands the hole surrounds to the hole"),
        brush=act("&Brush", "B", _drawn_icon("brush"), "Brush: paint what to remove", True),
        eraser=act("&Eraser", "E", _drawn_icon("eraser"), "Eraser: shrink the hole", True),
        pen=act("&Sketch pen", "S", _drawn_icon("pen"), "Sketch pen: guide lines inside the hole", True),
        probe=act("&Where did this come from?", "A", _drawn_icon("probe"),
                  "Click a filled pixel to see where a deep model borrowed it from", True),
        smaller=act("Smaller brush", "["),
        larger=act("Larger brush", "]"),
        # Ctrl+= as in Photoshop, GIMP and Krita (the standard key is Ctrl++, which needs Shift).
        zoom_in=act("Zoom &in", [*QKeySequence.keyBindings(QKeySequence.StandardKey.ZoomIn), "Ctrl+="]),
        zoom_out=act("Zoom &out", QKeySequence.StandardKey.ZoomOut),
        fit=act("&Fit to window", "Ctrl+0"),
        actual_size=act("&100 %", "Ctrl+1"),
        split=act("&Compare", "C", _drawn_icon("compare"), tip="Before / after: split view with a draggable divider", checkable=True),
        fill=act("&Fill", ["Ctrl+Return", "Ctrl+Enter"], _drawn_icon("fill"), "Fill the hole"),
        cancel=act("&Cancel", "Esc", style.standardIcon(sp.SP_BrowserStop), "Cancel the running fill"),
        apply=act("&Apply", "Return", style.standardIcon(sp.SP_DialogApplyButton), "Keep the result"),
        discard=act("&Discard", "Backspace", style.standardIcon(sp.SP_DialogDiscardButton), "Drop the result"),
        tools=QActionGroup(owner),
    )
    for tool in (actions.brush, actions.eraser, actions.pen, actions.probe):
        actions.tools.addAction(tool)
    actions.brush.setChecked(True)
    return actions

