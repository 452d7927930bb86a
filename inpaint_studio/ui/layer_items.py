"""Scene items of the canvas: image layers that repaint only exposed parts, the brush
outline and the before/after divider."""

from __future__ import annotations

import math

from PySide6.QtCore import QObject, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPainterPath, QPen
from PySide6.QtWidgets import (
    QGraphicsEllipseItem,
    QGraphicsItem,
    QGraphicsLineItem,
    QStyleOptionGraphicsItem,
    QWidget,
)

from ..document import Rect
from .qimage import write_downscaled

MAX_MIP_FACTOR = 8


class ImageLayerItem(QGraphicsItem):
    """Draws a QImage at its position (image pixel ``(x0, y0)`` of the photo), one scene
    unit per pixel, repainting only the exposed rectangle; optionally clipped at ``split_x``
    (scene x of the before/after divider) to the part left of it.

    Zoomed out to half size or less, it draws from a cached downscaled copy (a mip level of
    1/2, 1/4 or 1/8 made with area averaging) instead of smoothing the full image on every
    repaint: a full repaint of a 12-megapixel photo at fit zoom then reads a few hundred
    thousand pixels instead of twelve million. :meth:`refresh` keeps the cached levels in step
    with pixel changes, rewriting only the changed rectangle of each.
    """

    def __init__(self, image: QImage, z: float, origin: tuple[int, int] = (0, 0),
                 parent: QGraphicsItem | None = None) -> None:
        super().__init__(parent)
        self.image = image
        self._levels: dict[int, QImage] = {}  # factor (2, 4, 8) -> downscaled image
        self.setPos(*origin)
        self.split_x: float | None = None
        self.setZValue(z)
        # exposedRect tells paint() which part needs drawing.
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemUsesExtendedStyleOption, True)

    def set_image(self, image: QImage) -> None:
        self.prepareGeometryChange()
        self.image = image
        self._levels.clear()
        self.update()

    def boundingRect(self) -> QRectF:
        return QRectF(0, 0, self.image.width(), self.image.height())

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        exposed = option.exposedRect.intersected(self.boundingRect())
        if self.split_x is not None:
            x = max(0.0, self.split_x - self.x())
            exposed = exposed.intersected(QRectF(0, 0, x, self.image.height()))
        if exposed.isEmpty():
            return
        # Whole pixels so that the smoothing filter never samples outside the image.
        src = exposed.toAlignedRect()
        factor = mip_factor(painter)
        if factor == 1:
            painter.drawImage(QRectF(src), self.image, QRectF(src))
            return
        level = self.level(factor)
        # Whole level pixels: the target is the image rectangle they cover (clipped back to
        # what is exposed, so a split view's edge stays exact).
        mx0, my0 = src.left() // factor, src.top() // factor
        mx1 = min(level.width(), -(-(src.right() + 1) // factor))
        my1 = min(level.height(), -(-(src.bottom() + 1) // factor))
        target = QRectF(mx0 * factor, my0 * factor,
                        min(self.image.width(), mx1 * factor) - mx0 * factor,
                        min(self.image.height(), my1 * factor) - my0 * factor)
        painter.save()
        painter.setClipRect(exposed, Qt.ClipOperation.IntersectClip)
        painter.drawImage(target, level, QRectF(mx0, my0, mx1 - mx0, my1 - my0))
        painter.restore()

    @property
    def mip_factors(self) -> tuple[int, ...]:
        """The downscale factors cached so far (built on first use at that zoom)."""
        return tuple(sorted(self._levels))

    def level(self, factor: int) -> QImage:
        """The image reduced ``factor`` times (built now if not cached)."""
        level = self._levels.get(factor)
        if level is None:
            level = QImage(-(-self.image.width() // factor), -(-self.image.height() // factor),
                           self.image.format())
            write_downscaled(level, self.image, factor, Rect(0, 0, self.image.width(), self.image.height()))
            self._levels[factor] = level
        return level

    def refresh(self, rect: Rect) -> None:
        """Schedule a repaint of ``rect`` (image pixels) after its QImage pixels changed."""
        if rect.empty:
            return
        for factor, level in self._levels.items():
            write_downscaled(level, self.image, factor, rect)
        self.update(QRectF(rect.x0, rect.y0, rect.width, rect.height))


def mip_factor(painter: QPainter) -> int:
    """1, 2, 4 or 8: the largest power of two not above the painter's image-to-device
    downscale (1 at half size or more)."""
    t = painter.worldTransform()
    scale = math.hypot(t.m11(), t.m12()) * painter.device().devicePixelRatioF()
    if scale <= 0 or scale > 0.5:
        return 1
    return min(MAX_MIP_FACTOR, 2 ** int(math.floor(math.log2(1.0 / scale))))


class BrushOutline(QGraphicsEllipseItem):
    """A circle the size of the brush that follows the pointer (cosmetic 1 px pen, drawn in
    black and white so it shows on any photo)."""

    def __init__(self) -> None:
        super().__init__()
        pen = QPen(QColor(255, 255, 255, 220), 0)
        pen.setCosmetic(True)
        self.setPen(pen)
        self.setZValue(100)
        self._inner = QGraphicsEllipseItem(self)
        dark = QPen(QColor(0, 0, 0, 180), 0, Qt.PenStyle.DotLine)
        dark.setCosmetic(True)
        self._inner.setPen(dark)
        self.setAcceptedMouseButtons(Qt.MouseButton.NoButton)

    def place(self, centre: QPointF, radius: float) -> None:
        r = QRectF(centre.x() - radius, centre.y() - radius, 2 * radius, 2 * radius)
        self.setRect(r)
        self._inner.setRect(r)


class DividerSignals(QObject):
    moved = Signal(float)


class SplitDivider(QGraphicsLineItem):
    """Vertical before/after divider; dragging it horizontally emits ``signals.moved(x)``."""

    def __init__(self, height: float, width: float) -> None:
        super().__init__(0, 0, 0, height)
        self.signals = DividerSignals()
        self._width = width
        pen = QPen(QColor(255, 255, 255), 3)
        pen.setCosmetic(True)
        self.setPen(pen)
        self.setZValue(90)
        self.setCursor(Qt.CursorShape.SplitHCursor)
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIsMovable, True)
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemSendsGeometryChanges, True)

    def shape(self):  # a wider grab area than the 3 px line
        path = QPainterPath()
        view_scale = 1.0
        if self.scene() and self.scene().views():
            view_scale = max(1e-3, self.scene().views()[0].transform().m11())
        half = 8 / view_scale
        path.addRect(QRectF(-half, 0, 2 * half, self.line().length()))
        return path

    def itemChange(self, change, value):
        if change == QGraphicsItem.GraphicsItemChange.ItemPositionChange:
            x = min(max(0.0, value.x()), self._width)
            return QPointF(x, 0.0)
        if change == QGraphicsItem.GraphicsItemChange.ItemPositionHasChanged:
            self.signals.moved.emit(self.pos().x())
        return super().itemChange(change, value)
