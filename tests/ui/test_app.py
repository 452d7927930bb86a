"""The entry point: ``main([IMAGE])`` opens the photo in a window and returns on close."""

from __future__ import annotations

from PySide6.QtCore import QSettings, QTimer
from PySide6.QtWidgets import QApplication

from inpaint_studio.ui.app import main
from inpaint_studio.ui.main_window import MainWindow
from inpaint_studio.ui.settings import recent_files


def test_main_opens_the_image_and_exits_cleanly(qapp, photo_file, tmp_path, data_dir, dialogs):
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp_path / "cfg"))
    seen = {}

    def close_window():
        windows = [w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow) and w.isVisible()]
        seen["docs"] = [w.document for w in windows]
        seen["recent"] = recent_files(windows[0].settings)
        for w in windows:
            w.close()

    QTimer.singleShot(300, close_window)
    assert main([str(photo_file)]) == 0
    (doc,) = seen["docs"]
    assert doc is not None and doc.width == 128 and doc.source_path == str(photo_file.resolve())
    assert seen["recent"] == [str(photo_file.resolve())]
    assert (tmp_path / "cfg").exists()  # settings went to the temporary location
