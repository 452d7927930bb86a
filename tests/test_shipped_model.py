"""The shipped DeepFill v2 (resources/models): a model this project trained, with its card,
its relay state and the in-training rule (PatchMatch stays the default until it wins)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from inpaint_studio import paths
from inpaint_studio.engine import FillOptions, FillRequest
from inpaint_studio.engine.deep import DeepEngine
from inpaint_studio.engine.registry import clear_cache, default_engine_name, list_engines
from inpaint_studio.weights import read_metadata
from trainer.relay import load_relay_state

MODEL = paths.shipped_models_dir() / "deepfill_v2.safetensors"
pytestmark = pytest.mark.skipif(not MODEL.is_file(), reason="no shipped model in this checkout")


def test_card_records_every_leg_and_the_data_terms():
    card = read_metadata(MODEL)
    assert card.arch == "deepfill_v2" and card.dtype == "float16"
    runs = card.extra["training_runs"]
    assert [r["leg"] for r in runs] == list(range(1, len(runs) + 1))
    cumulative = [r["cumulative_images"] for r in runs]
    assert cumulative == sorted(cumulative) and all(r["images"] > 0 for r in runs)
    assert set(runs[-1]["eval"]) == {"10-20", "20-30", "30-40", "40-50"}
    assert "non-commercial" in card.extra["data_terms"]


def test_in_training_model_is_listed_but_patchmatch_stays_the_default():
    clear_cache()
    card = read_metadata(MODEL)
    rows = {r.name: r for r in list_engines("cpu")}
    assert rows["deepfill_v2"].availability.ok
    if card.in_training:
        assert rows["deepfill_v2"].title.endswith("(in training)")
        assert "PatchMatch" in rows["deepfill_v2"].description  # its figures, in the tooltip
        assert default_engine_name("cpu") == "patchmatch"
    else:
        assert default_engine_name("cpu") == "deepfill_v2"


def test_relay_state_continues_the_shipped_generator():
    state = load_relay_state(MODEL.with_name("deepfill_v2.train-state.safetensors"))
    assert state["step"] > 0 and state["counters"]["images"] == \
        read_metadata(MODEL).extra["training_runs"][-1]["cumulative_images"]
    model, _ = DeepEngine(MODEL).model(torch.device("cpu")), None
    shipped = model.state_dict()
    assert set(state["ema"]) == set(shipped)
    for name, tensor in state["ema"].items():
        assert torch.allclose(tensor, shipped[name].float(), atol=1e-3), name


def test_fill_continues_a_smooth_gradient_better_than_a_flat_grey():
    """A trained model fills a hole in a colour ramp with the ramp (a fresh or broken one
    gives a constant): its error in the hole must be well below that of the best constant
    colour (the hole's own mean, which no fill could know)."""
    h, w = 128, 128
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    image = np.stack([40 + 1.4 * xx, 60 + 1.2 * yy, 180 - 0.8 * xx], -1).clip(0, 255).astype(np.uint8)
    mask = np.zeros((h, w), np.uint8)
    mask[48:80, 40:88] = 255
    *_, last = DeepEngine(MODEL).fill(FillRequest(image, mask, options=FillOptions(strategy="full")))
    hole = mask > 127
    err = np.abs(last.image[hole].astype(float) - image[hole]).mean()
    best_constant = np.abs(image[hole].astype(float) - image[hole].mean(axis=0)).mean()
    assert err < 0.6 * best_constant, (err, best_constant)
