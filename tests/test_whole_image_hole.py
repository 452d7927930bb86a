"""A mask over every pixel leaves nothing to fill from: every engine refuses it alike, with
the same one-line reason, where the CLI and the app's worker both see it (issue 13, item 3)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from inpaint_studio.engine import FillRequest, InvalidRequest, get_engine
from inpaint_studio.engine.deep import DeepEngine
from inpaint_studio.engine.hd import WHOLE_IMAGE_HOLE
from inpaint_studio.networks import InpaintGenerator, build, registry
from inpaint_studio.weights import save_model

TINY = "test_whole_hole_tiny"


class _Tiny(InpaintGenerator):
    stage_names = ("coarse", "refined")

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(5, 3, 3, padding=1)

    def forward(self, image, mask, sketch=None):
        sketch = torch.zeros_like(mask) if sketch is None else sketch
        out = torch.tanh(self.conv(torch.cat([image, mask, sketch], 1)))
        return out, out


@pytest.fixture
def tiny_deep(tmp_path, monkeypatch):
    monkeypatch.setitem(registry._GENERATORS, TINY, registry.ArchInfo(TINY, _Tiny, "tiny"))
    path = tmp_path / "tiny.safetensors"
    save_model(path, build(TINY), metadata={"title": "Tiny"})
    return DeepEngine(path, device="cpu")


@pytest.mark.parametrize("engine_name", ["patchmatch", "telea", "deep"])
def test_whole_image_hole_is_refused_by_every_engine(engine_name, photo, tiny_deep):
    engine = tiny_deep if engine_name == "deep" else get_engine(engine_name, "cpu")
    request = FillRequest(photo, np.full(photo.shape[:2], 255, np.uint8))
    with pytest.raises(InvalidRequest) as caught:
        list(engine.fill(request))
    assert str(caught.value) == WHOLE_IMAGE_HOLE


@pytest.mark.parametrize("engine_name", ["patchmatch", "telea"])
def test_one_known_pixel_is_enough_to_fill(engine_name, photo):
    mask = np.full(photo.shape[:2], 255, np.uint8)
    mask[40, 60] = 0
    stages = list(get_engine(engine_name, "cpu").fill(FillRequest(photo, mask)))
    result = stages[-1].image
    assert result.shape == photo.shape
    assert (result[40, 60] == photo[40, 60]).all()
