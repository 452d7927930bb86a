"""Open, save, import/export, clipboard and recent files; unreadable files never stop the app."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageCms
from PySide6.QtCore import QMimeData, Qt, QUrl
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from inpaint_studio import imageio
from inpaint_studio.document import Layer
from inpaint_studio.ui.files import suggested_output
from inpaint_studio.ui.qimage import rgb_to_qimage
from inpaint_studio.ui.settings import recent_files

from .conftest import drag


def test_corrupt_file_shows_a_message_and_the_window_stays_usable(window, tmp_path, photo_file, dialogs):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    assert not window.files.open_path(str(broken))
    kind, title, text = dialogs.shown[-1]
    assert kind == "warning" and title == "Cannot open photo" and "broken.jpg" in text
    assert window.document is None
    assert window.files.open_path(str(photo_file))
    assert window.document is not None and window.document.width == 128
    drag(window, [(20, 20), (30, 20)])
    assert window.document.mask.any()


def test_save_never_overwrites_the_original_without_confirmation(window, photo_file, photo, dialogs):
    window.files.open_path(str(photo_file))
    window.document.apply_fill(np.full_like(photo, 9))
    dialogs.answer_yes = False
    assert not window.files.save_to(str(photo_file))
    assert dialogs.shown[-1][1] == "Overwrite the original?"
    np.testing.assert_array_equal(imageio.load_image(photo_file).rgb, photo)
    dialogs.answer_yes = True
    assert window.files.save_to(str(photo_file))
    assert (imageio.load_image(photo_file).rgb == 9).all()
    assert not window.document.modified


def test_save_as_keeps_format_and_icc_and_ctrl_s_reuses_the_path(window, tmp_path, photo, dialogs):
    src = tmp_path / "shot.jpg"
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    Image.fromarray(photo).save(src, format="JPEG", quality=95, icc_profile=icc)
    window.files.open_path(str(src))
    target = suggested_output(str(src))
    assert target.endswith("shot_inpainted.jpg")
    assert window.files.save_to(target)
    with Image.open(target) as im:
        assert im.format == "JPEG" and im.info.get("icc_profile") == icc
    window.document.apply_fill(np.full_like(photo, 50))
    assert window.files.save()  # no dialog: saves to the path chosen before
    assert abs(int(imageio.load_image(target).rgb.mean()) - 50) <= 2
    assert not any(t == "Overwrite the original?" for t in dialogs.titles())
    assert recent_files(window.settings)[0].endswith("shot_inpainted.jpg")


def test_mask_and_sketch_export_then_import(window, photo_file, tmp_path, dialogs):
    window.files.open_path(str(photo_file))
    drag(window, [(20, 20), (60, 30)])
    mask = window.document.mask.copy()
    out = tmp_path / "mask.png"
    assert window.files.export_layer_to(Layer.MASK, str(out))
    window.actions.clear_mask.trigger()
    assert window.files.import_layer_from(Layer.MASK, str(out))
    np.testing.assert_array_equal(window.document.mask, mask)
    assert window.canvas.overlay_item.image.pixelColor(40, 25).alpha() > 0
    small = tmp_path / "small.png"
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(small)
    assert not window.files.import_layer_from(Layer.SKETCH, str(small))
    assert "5x5" in dialogs.shown[-1][2] and "128x96" in dialogs.shown[-1][2]


def test_paste_and_copy_through_the_clipboard(window, photo):
    clipboard = QApplication.clipboard()
    clipboard.setImage(rgb_to_qimage(photo))
    window.actions.paste.trigger()
    assert window.document is not None and window.document.source_path is None
    np.testing.assert_array_equal(window.document.image, photo)
    window.document.apply_fill(np.full_like(photo, 77))
    window.canvas.refresh_image(window.document.full_rect)
    window.actions.copy_result.trigger()
    copied = clipboard.image()
    assert copied.width() == 128 and copied.pixelColor(3, 3).red() == 77


def test_drop_and_paste_of_a_file_path_open_it(window, photo_file):
    window.canvas.files_dropped.emit([str(photo_file)])
    assert window.document is not None and window.document.source_path == str(photo_file.resolve())
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(photo_file))])
    QApplication.clipboard().setMimeData(mime)
    window.document = None
    window.actions.paste.trigger()
    assert window.document is not None
    assert recent_files(window.settings) == [str(photo_file.resolve())]
    assert window.recent_menu.actions()[0].text() == "photo.png"
    # The clipboard owns the QMimeData; clearing it now, while the QApplication lives, keeps the
    # process from freeing it a second time at interpreter exit (a segfault, exit code 139).
    QApplication.clipboard().clear()


def test_opening_another_photo_asks_before_dropping_a_painted_mask_or_sketch(window, photo_file, tmp_path, photo, dialogs):
    from inpaint_studio import imageio
    from inpaint_studio.ui.canvas import CanvasTool

    other = tmp_path / "other.png"
    imageio.save_image(other, photo[::-1].copy())
    assert window.files.open_path(str(photo_file))
    assert window.files.open_path(str(other))  # nothing painted: no question
    assert dialogs.shown == []
    window.set_tool(CanvasTool.PEN)
    drag(window, [(10, 10), (40, 10)])
    dialogs.answer_yes = False
    assert not window.files.open_path(str(photo_file))
    assert dialogs.shown[-1][1] == "Save changes?" and "sketch lines" in dialogs.shown[-1][2]
    assert window.document.source_path == str(other.resolve()) and window.document.sketch.any()
    window.set_tool(CanvasTool.BRUSH)
    drag(window, [(10, 30), (40, 30)])
    assert not window.close()  # closing asks too, and "no" keeps the window open
    assert "painted mask and the sketch lines" in dialogs.shown[-1][2]
    dialogs.answer_yes = True
    assert window.files.open_path(str(photo_file))
    assert window.document.source_path == str(photo_file.resolve()) and not window.document.has_hole


def test_jpeg_keeps_the_source_quality_when_saved(window, tmp_path, photo, dialogs, monkeypatch):
    from PIL import Image

    from inpaint_studio.ui import files
    from inpaint_studio.ui.jpeg_quality import estimate_jpeg_quality

    big = np.repeat(np.repeat(photo, 4, axis=0), 4, axis=1)
    source = tmp_path / "camera.jpg"
    Image.fromarray(big).save(source, quality=92)
    assert estimate_jpeg_quality(source) == 92
    assert estimate_jpeg_quality(tmp_path / "nothing.jpg") is None
    assert window.files.open_path(str(source))
    target = tmp_path / "edited.jpg"
    monkeypatch.setattr(files.QFileDialog, "getSaveFileName",
                        staticmethod(lambda *a, **k: (str(target), "")))
    window.canvas.setFocus()
    QTest.keyClick(window.canvas, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier
                   | Qt.KeyboardModifier.ShiftModifier)
    assert estimate_jpeg_quality(target) == 92
    # About the source's size, not a quarter more as at a fixed quality 95.
    assert target.stat().st_size < 1.1 * source.stat().st_size
