"""File commands of the window: open (dialog, drop, paste, recent, command line), save and
save-as through :mod:`inpaint_studio.imageio` (format, EXIF, ICC and alpha kept), mask and
sketch import / export, copy to the clipboard.

The original photo is never overwritten without an explicit confirmation; an unreadable
file shows a message and the window carries on.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QObject
from PySide6.QtWidgets import QApplication, QFileDialog

from .. import imageio
from ..document import Document, Layer
from .dialogs import confirm, show_error
from .jpeg_quality import estimate_jpeg_quality
from .qimage import qimage_to_rgb, rgb_to_qimage

if TYPE_CHECKING:
    from .main_window import MainWindow

IMAGE_FILTER = "Images (*.jpg *.jpeg *.png *.webp *.tif *.tiff *.bmp);;All files (*)"
PNG_FILTER = "PNG image (*.png)"


def suggested_output(source: str | None) -> str:
    """``photo.jpg`` -> ``photo_inpainted.jpg`` beside it (a pasted image: ``untitled.png``)."""
    if not source:
        return str(Path.home() / "untitled_inpainted.png")
    path = Path(source)
    return str(path.with_name(f"{path.stem}_inpainted{path.suffix}"))


class FileController(QObject):
    """Runs the file commands against the window's document."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.save_path: str | None = None  # where Save writes without asking

    # ------------------------------------------------------------------ open
    def open_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self.window, "Open photo", self._start_dir(), IMAGE_FILTER)
        if path:
            self.open_path(path)

    def open_path(self, path: str) -> bool:
        """Load ``path`` into a new document; an unreadable file gives a message, False."""
        if not self.window.confirm_discard():
            return False
        try:
            loaded = imageio.load_image(path)
        except imageio.ImageLoadError as exc:
            show_error(self.window, "Cannot open photo", str(exc))
            return False
        except MemoryError:
            show_error(self.window, "Cannot open photo", f"{path} is too large for the memory here.")
            return False
        self.save_path = None
        self.window.set_document(Document(loaded.rgb, str(Path(path).resolve())), loaded)
        self.window.remember_recent(str(Path(path).resolve()))
        return True

    def open_dropped(self, paths: list[str]) -> None:
        if paths:
            self.open_path(paths[0])

    def paste(self) -> None:
        """Open the clipboard's image (or the first file whose path is on it)."""
        clipboard = QApplication.clipboard()
        mime = clipboard.mimeData()
        if mime is not None and mime.hasUrls() and mime.urls()[0].isLocalFile():
            self.open_path(mime.urls()[0].toLocalFile())
            return
        image = clipboard.image()
        if image.isNull():
            self.window.show_status("The clipboard holds no image.")
            return
        if not self.window.confirm_discard():
            return
        self.save_path = None
        self.window.set_document(Document(qimage_to_rgb(image)), None)
        self.window.show_status(f"Pasted a {image.width()}x{image.height()} image.")

    # ------------------------------------------------------------------ save
    def save(self) -> bool:
        doc = self.window.document
        if doc is None:
            return False
        if self.save_path is None:
            return self.save_as()
        return self._write(self.save_path, overwrite=True)

    def save_as(self) -> bool:
        doc = self.window.document
        if doc is None:
            return False
        path, _ = QFileDialog.getSaveFileName(
            self.window, "Save photo as", suggested_output(doc.source_path), IMAGE_FILTER,
            options=QFileDialog.Option.DontConfirmOverwrite)
        if not path:
            return False
        return self.save_to(path)

    def save_to(self, path: str) -> bool:
        """Save to ``path``, asking before replacing a file (with a stronger warning for the
        original photo)."""
        doc = self.window.document
        target = Path(path).resolve()
        if target.exists():
            if doc.source_path and target == Path(doc.source_path).resolve():
                ok = confirm(self.window, "Overwrite the original?",
                             f"{target.name} is the original photo. Replace it with the edited "
                             "image? This cannot be undone.", "Overwrite original")
            else:
                ok = confirm(self.window, "Replace file?", f"{target.name} exists. Replace it?", "Replace")
            if not ok:
                return False
        return self._write(str(target), overwrite=True)

    def _write(self, path: str, overwrite: bool) -> bool:
        doc = self.window.document
        try:
            imageio.save_image(path, doc.image, like=self.window.loaded, overwrite=overwrite,
                               **self._quality_for(path))
        except (OSError, ValueError) as exc:
            show_error(self.window, "Cannot save", f"Could not save {path}: {exc}")
            return False
        doc.mark_saved()
        self.save_path = path  # Ctrl+S writes here from now on, and the title names it
        self.window.remember_recent(path)
        self.window.show_status(f"Saved {path}")
        self.window.update_title()
        return True

    def _quality_for(self, path: str) -> dict:
        """``{"quality": q}`` when writing a JPEG from a JPEG source whose quality can be
        estimated (kept, at most the writer's 95); else nothing (the writer's default)."""
        loaded = self.window.loaded
        if loaded is None or Path(path).suffix.lower() not in (".jpg", ".jpeg") \
                or loaded.format != "JPEG":
            return {}
        quality = estimate_jpeg_quality(loaded.path)
        return {} if quality is None else {"quality": min(95, quality)}

    # ---------------------------------------------------------- mask / sketch
    def import_layer(self, layer: Layer) -> None:
        doc = self.window.document
        if doc is None:
            return
        path, _ = QFileDialog.getOpenFileName(self.window, f"Import {layer.value}", self._start_dir(), IMAGE_FILTER)
        if path:
            self.import_layer_from(layer, path)

    def import_layer_from(self, layer: Layer, path: str) -> bool:
        doc = self.window.document
        loader = imageio.load_mask if layer is Layer.MASK else imageio.load_sketch
        try:
            plane = loader(path, size=(doc.width, doc.height))
        except (imageio.ImageLoadError, imageio.MaskSizeError) as exc:
            show_error(self.window, f"Cannot import {layer.value}", str(exc))
            return False
        self.window.layers_changed(doc.set_layer(layer, plane))
        return True

    def export_layer(self, layer: Layer) -> None:
        doc = self.window.document
        if doc is None:
            return
        stem = Path(doc.source_path).stem if doc.source_path else "untitled"
        suggestion = str(Path(self._start_dir()) / f"{stem}_{layer.value}.png")
        path, _ = QFileDialog.getSaveFileName(self.window, f"Export {layer.value}", suggestion, PNG_FILTER)
        if path:
            self.export_layer_to(layer, path)

    def export_layer_to(self, layer: Layer, path: str) -> bool:
        if not path.lower().endswith(".png"):
            path += ".png"
        try:
            imageio.save_mask(path, self.window.document.plane(layer.value), overwrite=True)
        except (OSError, ValueError) as exc:
            show_error(self.window, f"Cannot export {layer.value}", str(exc))
            return False
        self.window.show_status(f"Exported the {layer.value} to {path}")
        return True

    # ------------------------------------------------------------------ clipboard
    def copy_image(self, shown: np.ndarray | None) -> None:
        """Copy the shown result (or the photo) to the clipboard."""
        doc = self.window.document
        if doc is None:
            return
        QApplication.clipboard().setImage(rgb_to_qimage(shown if shown is not None else doc.image))
        self.window.show_status("Copied the image to the clipboard.")

    def _start_dir(self) -> str:
        doc = self.window.document
        if doc is not None and doc.source_path:
            return str(Path(doc.source_path).parent)
        return str(Path.home())
