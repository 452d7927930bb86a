"""Fill with the real deep engine from the window: a shipped model when one is present,
else a DeepFill v2 with random weights written to the test's user models folder (the
pictures mean nothing; the stages, the worker thread and the attention view are real)."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from inpaint_studio import engine as engine_api
from inpaint_studio.engine.request import RECOMMENDED_TEXTURE
from inpaint_studio.ui.canvas import CanvasTool

from .conftest import drag, view_point


def _deep_engine_name() -> str | None:
    engine_api.clear_cache()
    for info in engine_api.list_engines("cpu"):
        if info.kind == "deep" and info.availability:
            return info.name
    try:
        from inpaint_studio.networks import build
        from inpaint_studio.weights import save_model
    except ImportError:
        return None
    from inpaint_studio import paths

    path = paths.user_models_dir() / "random_deepfill_v2.safetensors"
    save_model(path, build("deepfill_v2"), metadata={
        "title": "DeepFill v2 (random weights, test only)",
        "provenance": {"data": "none: random initialisation"},
    })
    engine_api.clear_cache()
    names = [i.name for i in engine_api.list_engines("cpu") if i.kind == "deep" and i.availability]
    return path.stem if path.stem in names else None


@pytest.mark.slow
def test_deep_engine_streams_stages_and_shows_attention(qtbot, settings, dialogs, data_dir, photo_file):
    name = _deep_engine_name()
    if name is None:
        pytest.skip("the deep engine cannot load a model here")
    from inpaint_studio.ui.main_window import MainWindow

    settings.setValue("prefs/texture", RECOMMENDED_TEXTURE)  # the app's default
    window = MainWindow(settings=settings)
    qtbot.addWidget(window)
    window.show()
    try:
        assert window.files.open_path(str(photo_file))
        window.canvas.actual_size()
        window.canvas.set_radius(8)
        drag(window, [(50, 40), (75, 48)])
        window.fill.device_box.setCurrentIndex(window.fill.device_box.findData("cpu"))
        window.fill.engine_box.setCurrentIndex(window.fill.engine_box.findData(name))
        assert window.fill.engine_name == name
        window.start_fill()
        qtbot.waitUntil(lambda: not window.service.busy, timeout=120000)
        qtbot.wait(50)
        names = [stage for _, stage in window.fill.stages_seen]
        # The app's default adds the texture stage after refined (Preferences.texture).
        options = engine_api.FillOptions(texture=RECOMMENDED_TEXTURE)
        assert tuple(names) == engine_api.get_engine(name, "cpu").stages_for(options)
        assert names[-1] == "texture"
        assert window.fill.result.final
        assert "attention" in window.fill.result.extras  # the app asks for it on every fill
        window.set_tool(CanvasTool.PROBE)
        viewport = window.canvas.viewport()
        QTest.mouseClick(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                         view_point(window, 60, 44))
        assert window.canvas.heatmap_item is not None, window.status_label.text()
    finally:
        window.service.shutdown()
        engine_api.clear_cache()  # forget the temporary model for later tests
