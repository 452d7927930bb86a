"""The painting canvas: a QGraphicsView over the photo, the mask / sketch overlay, the fill
result (with before/after split) and the attention heat map.

Mouse events become :class:`~inpaint_studio.document.Document` strokes; each stroke call
returns a dirty rectangle and only that part of the overlay QImage is rewritten and
repainted. Scene units are image pixels; pixel ``(x, y)`` covers ``[x, x+1) x [y, y+1)``.
"""

from __future__ import annotations

import enum

import numpy as np
from PySide6.QtCore import QEvent, QPointF, QRect, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QFont, QFontMetrics, QMouseEvent, QPainter
from PySide6.QtWidgets import QFrame, QGraphicsScene, QGraphicsView, QWidget

from ..document import EMPTY_RECT, Document, Layer, Rect, Tool, bounding_rect
from .layer_items import BrushOutline, ImageLayerItem, SplitDivider
from .qimage import MASK_RGBA, heatmap_to_qimage, new_overlay, rgb_to_qimage, write_overlay, write_rgb

MIN_ZOOM, MAX_ZOOM = 0.02, 32.0
MIN_RADIUS, MAX_RADIUS = 0.5, 1000.0
RADIUS_STEP = 0.25  # [ and ]: a quarter per press (40 -> 246 px in 9 presses, was 13)
SPLIT_AFTER, SPLIT_BEFORE = "After (filled)", "Before"


class CanvasTool(str, enum.Enum):
    """What a left click does on the canvas."""

    BRUSH = "brush"  # paint the hole
    ERASER = "eraser"  # erase the hole
    PEN = "pen"  # sketch guide lines
    PROBE = "probe"  # "where did this come from": show the attention heat map

    @property
    def paints(self) -> bool:
        return self is not CanvasTool.PROBE


class CanvasView(QGraphicsView):
    """Shows a document and turns pointer input into strokes.

    Signals: ``stroke_started()`` before the first dab of a stroke (a shown result and a
    running fill are kept: new strokes wait for the next Fill), ``stroke_finished(Rect)``
    with the stroke's dirty rect,
    ``probe_clicked(x, y)`` in image pixels, ``files_dropped(list[str])``,
    ``zoom_changed(float)`` (1.0 = 100 %), ``radius_changed(float)``.

    Shift or Ctrl + left drag with a painting tool resizes the brush (right: larger), as in
    Krita and Photoshop. The before/after divider drags with any tool.
    """

    stroke_started = Signal()
    stroke_finished = Signal(object)
    probe_clicked = Signal(int, int)
    files_dropped = Signal(list)
    zoom_changed = Signal(float)
    radius_changed = Signal(float)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setScene(QGraphicsScene(self))
        self.setBackgroundBrush(QColor(48, 48, 52))
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setResizeAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.setViewportUpdateMode(QGraphicsView.ViewportUpdateMode.MinimalViewportUpdate)
        self.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
        self.setMouseTracking(True)
        self.setAcceptDrops(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.viewport().grabGesture(Qt.GestureType.PinchGesture)

        self.document: Document | None = None
        self.tool = CanvasTool.BRUSH
        self.radii = {CanvasTool.BRUSH: 20.0, CanvasTool.ERASER: 20.0, CanvasTool.PEN: 1.0}
        self.photo_item: ImageLayerItem | None = None
        self.overlay_item: ImageLayerItem | None = None
        self.result_item: ImageLayerItem | None = None
        self.heatmap_item: ImageLayerItem | None = None
        self.divider: SplitDivider | None = None
        self.outline = BrushOutline()
        self.scene().addItem(self.outline)
        self.outline.hide()
        self._panning: QPointF | None = None
        self._space_down = False
        self._showing_original = False
        self._last_pointer = QPointF()
        self._resizing: tuple[float, float] | None = None  # (press x in the viewport, radius)
        self._dragging_divider = False
        self.mask_rgba: tuple[int, int, int, int] = MASK_RGBA
        self.result_hole: np.ndarray | None = None  # bool (H, W): the shown result's hole

    # ------------------------------------------------------------------ document
    def set_document(self, document: Document | None) -> None:
        """Show ``document`` (or nothing), dropping any result and heat map, and fit it."""
        scene = self.scene()
        for item in (self.photo_item, self.overlay_item, self.result_item, self.heatmap_item, self.divider):
            if item is not None:
                scene.removeItem(item)
        self.photo_item = self.overlay_item = self.result_item = self.heatmap_item = None
        self.divider = None
        self.result_hole = None
        self.document = document
        if document is None:
            return
        w, h = document.width, document.height
        self.photo_item = ImageLayerItem(rgb_to_qimage(document.image), z=0)
        self.overlay_item = ImageLayerItem(new_overlay(w, h), z=20)
        self._write_overlay(document.full_rect)
        for item in (self.photo_item, self.overlay_item):
            scene.addItem(item)
        margin = 0.02 * max(w, h)
        scene.setSceneRect(-margin, -margin, w + 2 * margin, h + 2 * margin)
        self.fit()

    def refresh_layers(self, rect: Rect) -> None:
        """Redraw ``rect`` of the mask / sketch overlay from the document."""
        if self.document is None or self.overlay_item is None:
            return
        rect = rect.clip(self.document.width, self.document.height)
        self._write_overlay(rect)
        self.overlay_item.refresh(rect)

    def _write_overlay(self, rect: Rect) -> None:
        write_overlay(self.overlay_item.image, self.document.mask, self.document.sketch, rect,
                      self.mask_rgba, self.result_hole)

    def set_overlay_style(self, rgb: tuple[int, int, int], opacity: float) -> None:
        """Colour (RGB 0-255) and opacity (0-1) of the painted hole; redraws the overlay."""
        alpha = int(round(255 * min(1.0, max(0.0, opacity))))
        self.mask_rgba = (int(rgb[0]), int(rgb[1]), int(rgb[2]), alpha)
        if self.document is not None:
            self.refresh_layers(self.document.full_rect)

    def refresh_image(self, rect: Rect) -> None:
        """Redraw ``rect`` of the photo from the document (after a fill was applied or undone)."""
        if self.document is None or self.photo_item is None:
            return
        rect = rect.clip(self.document.width, self.document.height)
        write_rgb(self.photo_item.image, self.document.image, rect)
        self.photo_item.refresh(rect)

    # -------------------------------------------------------------------- result
    def show_result(self, rgb: np.ndarray | None, changed: Rect | None = None,
                    hole: np.ndarray | None = None) -> None:
        """Show a fill result (RGB uint8, the document's size) over the photo, or remove it.

        changed: the rectangle where the result differs from the photo (default: all of
        it); only that part is converted and drawn, which keeps a 12-megapixel result cheap.
        hole: ``bool`` ``(H, W)``, the hole the result fills: the mask overlay leaves it
        uncovered, so the result shows while strokes painted since stay visible.
        """
        if self.result_item is not None:
            self.scene().removeItem(self.result_item)
            self.result_item = None
        old_hole, self.result_hole = self.result_hole, (hole if rgb is not None else None)
        if self.overlay_item is not None and (old_hole is not None or self.result_hole is not None):
            box = EMPTY_RECT
            for plane in (old_hole, self.result_hole):
                if plane is not None:
                    box = box.union(bounding_rect(plane))
            self.refresh_layers(box)
        if rgb is None:
            self.set_split(False)
            self.show_heatmap(None)
        else:
            h, w = rgb.shape[:2]
            rect = Rect(0, 0, w, h) if changed is None else changed.clip(w, h)
            if rect.empty:  # nothing changed: show a 1-pixel result so the state stays
                rect = Rect(0, 0, 1, 1)
            crop = np.ascontiguousarray(rgb[rect.slices])
            self.result_item = ImageLayerItem(rgb_to_qimage(crop), z=10, origin=(rect.x0, rect.y0))
            self.scene().addItem(self.result_item)
            if self.divider is not None:
                self._on_divider_moved(self.divider.pos().x())
        self._sync_visibility()

    @property
    def has_result(self) -> bool:
        return self.result_item is not None

    def set_split(self, enabled: bool) -> None:
        """Before/after view: the result left of a draggable divider, the original (without
        the hole overlay) right of it."""
        if not enabled or self.result_item is None or self.document is None:
            if self.divider is not None:
                self.scene().removeItem(self.divider)
                self.divider = None
            if self.result_item is not None:
                self.result_item.split_x = None
                self.result_item.update()
            self._sync_visibility()
            # The side labels are drawn over the whole view: without a full repaint their
            # pixels (and the divider's) stayed on screen after the split ended.
            self.viewport().update()
            return
        if self.divider is None:
            self.divider = SplitDivider(self.document.height, self.document.width)
            self.divider.signals.moved.connect(self._on_divider_moved)
            self.scene().addItem(self.divider)
            self.divider.setPos(self.document.width / 2, 0)
        self._on_divider_moved(self.divider.pos().x())
        self._sync_visibility()

    @property
    def split_enabled(self) -> bool:
        return self.divider is not None

    def _on_divider_moved(self, x: float) -> None:
        # Result left of the divider, the untouched original right of it.
        if self.result_item is not None:
            self.result_item.split_x = x
            self.result_item.update()
        self.viewport().update()  # the side labels follow the divider

    def split_labels(self) -> list[tuple[str, QRect]]:
        """The compare view's side labels and their boxes in viewport pixels: "After" just
        left of the divider, "Before" just right of it, near the top; empty without a split."""
        if self.divider is None:
            return []
        metrics = QFontMetrics(self._label_font())
        x = self.mapFromScene(QPointF(self.divider.pos().x(), 0)).x()
        top = max(8, self.mapFromScene(QPointF(0, 0)).y() + 8)
        pad, gap = 6, 10
        boxes = []
        for text, left_side in ((SPLIT_AFTER, True), (SPLIT_BEFORE, False)):
            w, h = metrics.horizontalAdvance(text) + 2 * pad, metrics.height() + pad
            x0 = x - gap - w if left_side else x + gap
            boxes.append((text, QRect(int(x0), int(top), int(w), int(h))))
        return boxes

    def _label_font(self) -> QFont:
        font = QFont(self.font())
        font.setBold(True)
        return font

    def drawForeground(self, painter: QPainter, rect: QRectF) -> None:
        super().drawForeground(painter, rect)
        labels = self.split_labels()
        if not labels or self._showing_original:
            return
        painter.save()
        painter.resetTransform()  # viewport pixels: the labels keep their size at any zoom
        painter.setFont(self._label_font())
        for text, box in labels:
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QColor(0, 0, 0, 170))
            painter.drawRoundedRect(QRectF(box), 4, 4)
            painter.setPen(QColor(255, 255, 255))
            painter.drawText(box, Qt.AlignmentFlag.AlignCenter, text)
        painter.restore()

    def show_original(self, on: bool) -> None:
        """While on (Tab held) the photo shows without result, mask or heat map."""
        self._showing_original = on
        self._sync_visibility()

    def _sync_visibility(self) -> None:
        original = self._showing_original
        if self.result_item is not None:
            self.result_item.setVisible(not original)
        if self.overlay_item is not None:
            # The result's own hole is left out of the overlay (see show_result); strokes
            # painted since it was asked for stay visible. A result shown without its hole
            # hides the whole overlay, which would cover what is being judged.
            self.overlay_item.setVisible(not original and (self.result_item is None
                                                           or self.result_hole is not None))
        if self.heatmap_item is not None:
            self.heatmap_item.setVisible(not original)

    def show_heatmap(self, heat: np.ndarray | None) -> None:
        """Overlay an attention map (``float32`` ``(H, W)``, document size) or remove it.
        Only the map's non-zero bounding box becomes an image."""
        if self.heatmap_item is not None:
            self.scene().removeItem(self.heatmap_item)
            self.heatmap_item = None
        if heat is not None:
            rect = bounding_rect(heat > 0)
            if not rect.empty:
                crop = np.ascontiguousarray(heat[rect.slices])
                self.heatmap_item = ImageLayerItem(heatmap_to_qimage(crop), z=30, origin=(rect.x0, rect.y0))
                self.scene().addItem(self.heatmap_item)
        self._sync_visibility()

    # ------------------------------------------------------------------ tools
    def set_tool(self, tool: CanvasTool) -> None:
        self.tool = CanvasTool(tool)
        self.viewport().setCursor(Qt.CursorShape.PointingHandCursor if self.tool is CanvasTool.PROBE
                                  else Qt.CursorShape.CrossCursor)
        self._update_outline(self._last_pointer)
        self.radius_changed.emit(self.radius)

    @property
    def radius(self) -> float:
        return self.radii.get(self.tool, 0.0)

    def set_radius(self, radius: float) -> None:
        if not self.tool.paints:
            return
        self.radii[self.tool] = float(min(MAX_RADIUS, max(MIN_RADIUS, radius)))
        self._update_outline(self._last_pointer)
        self.radius_changed.emit(self.radius)

    def grow_radius(self, steps: int) -> None:
        """``[`` / ``]``: :data:`RADIUS_STEP` of the radius per step, at least 1 px."""
        r = self.radius
        self.set_radius(r + steps * max(1.0, r * RADIUS_STEP))

    # ------------------------------------------------------------------ zoom
    @property
    def zoom(self) -> float:
        return self.transform().m11()

    def set_zoom(self, zoom: float) -> None:
        zoom = min(MAX_ZOOM, max(MIN_ZOOM, zoom))
        factor = zoom / self.zoom
        self.scale(factor, factor)
        self.zoom_changed.emit(self.zoom)

    def zoom_by(self, factor: float) -> None:
        self.set_zoom(self.zoom * factor)

    def fit(self) -> None:
        if self.photo_item is None:
            return
        self.fitInView(self.sceneRect(), Qt.AspectRatioMode.KeepAspectRatio)
        self.zoom_changed.emit(self.zoom)

    def actual_size(self) -> None:
        self.set_zoom(1.0)

    # ------------------------------------------------------------------ events
    def _image_point(self, event: QMouseEvent) -> tuple[float, float]:
        scene = self.mapToScene(event.position().toPoint())
        # Pixel centres sit at integer coordinates in the document, at +0.5 in the scene.
        return scene.x() - 0.5, scene.y() - 0.5

    def _update_outline(self, scene_pos: QPointF) -> None:
        show = self.document is not None and self.tool.paints and self._panning is None
        self.outline.setVisible(show)
        if show:
            self.outline.place(scene_pos, self.radius + 0.5)

    def mousePressEvent(self, event: QMouseEvent) -> None:
        button = event.button()
        if button == Qt.MouseButton.MiddleButton or (button == Qt.MouseButton.LeftButton and self._space_down):
            self._panning = event.position()
            self.viewport().setCursor(Qt.CursorShape.ClosedHandCursor)
            self.outline.hide()
            return
        if button != Qt.MouseButton.LeftButton or self.document is None:
            super().mousePressEvent(event)
            return
        # Every item under the pointer, not the topmost: the brush outline sits above the
        # divider and would otherwise turn a divider drag into a stroke.
        if self.divider is not None and self.divider in self.items(event.position().toPoint()):
            self._dragging_divider = True
            super().mousePressEvent(event)  # drag the before/after divider
            return
        resize = Qt.KeyboardModifier.ShiftModifier | Qt.KeyboardModifier.ControlModifier
        if self.tool.paints and event.modifiers() & resize:
            self._resizing = (event.position().x(), self.radius)
            return
        x, y = self._image_point(event)
        if self.tool is CanvasTool.PROBE:
            self.probe_clicked.emit(int(round(x)), int(round(y)))
            return
        self.stroke_started.emit()
        layer = Layer.SKETCH if self.tool is CanvasTool.PEN else Layer.MASK
        tool = {CanvasTool.BRUSH: Tool.BRUSH, CanvasTool.ERASER: Tool.ERASER, CanvasTool.PEN: Tool.PEN}[self.tool]
        self.document.begin_stroke(layer, tool, self.radius)
        self.refresh_layers(self.document.extend_stroke([(x, y)]))

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        if self._resizing is not None:
            x0, r0 = self._resizing
            # One screen pixel of drag moves the outline's edge by one screen pixel; the
            # outline stays where the drag started.
            self.set_radius(r0 + (event.position().x() - x0) / max(self.zoom, 1e-6))
            return
        self._last_pointer = self.mapToScene(event.position().toPoint())
        if self._panning is not None:
            delta = event.position() - self._panning
            self._panning = event.position()
            self.horizontalScrollBar().setValue(self.horizontalScrollBar().value() - int(delta.x()))
            self.verticalScrollBar().setValue(self.verticalScrollBar().value() - int(delta.y()))
            return
        self._update_outline(self._last_pointer)
        if self.document is not None and self.document.stroking:
            self.refresh_layers(self.document.extend_stroke([self._image_point(event)]))
            return
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if self._panning is not None and event.button() in (Qt.MouseButton.MiddleButton, Qt.MouseButton.LeftButton):
            self._panning = None
            self.set_tool(self.tool)  # restores the tool's cursor
            return
        if self._resizing is not None and event.button() == Qt.MouseButton.LeftButton:
            self._resizing = None
            return
        if event.button() == Qt.MouseButton.LeftButton:
            self._dragging_divider = False
        if event.button() == Qt.MouseButton.LeftButton and self.document is not None and self.document.stroking:
            rect = self.document.end_stroke()
            self.stroke_finished.emit(rect)
            return
        super().mouseReleaseEvent(event)

    def leaveEvent(self, event: QEvent) -> None:
        self.outline.hide()
        super().leaveEvent(event)

    def wheelEvent(self, event) -> None:
        if event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            self.zoom_by(1.0015 ** event.angleDelta().y())
            event.accept()
            return
        super().wheelEvent(event)

    def viewportEvent(self, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Gesture:
            pinch = event.gesture(Qt.GestureType.PinchGesture)
            if pinch is not None:
                self.zoom_by(pinch.scaleFactor())
                event.accept()
                return True
        if event.type() == QEvent.Type.NativeGesture and \
                event.gestureType() == Qt.NativeGestureType.ZoomNativeGesture:
            self.zoom_by(1.0 + event.value())  # trackpad pinch (macOS)
            return True
        return super().viewportEvent(event)

    def keyPressEvent(self, event) -> None:
        if event.key() == Qt.Key.Key_Space:
            if not event.isAutoRepeat():
                self._space_down = True
                self.viewport().setCursor(Qt.CursorShape.OpenHandCursor)
            return
        super().keyPressEvent(event)

    def keyReleaseEvent(self, event) -> None:
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space_down = False
            self.set_tool(self.tool)
            return
        super().keyReleaseEvent(event)

    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dragMoveEvent(self, event) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.files_dropped.emit(paths)
