"""Boundary colour harmonisation of deep fills (engine/harmonise.py) and its place in the HD
layer: a fill a few levels off the photo is pulled onto it, its own detail kept."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from inpaint_studio.engine import CoreStage, Engine, FillOptions, FillRequest, hd
from inpaint_studio.engine.harmonise import edge_of, harmonise_fill, membrane, pull_push
from inpaint_studio.engine.hd import run_fill


def photo(h: int = 96, w: int = 128, seed: int = 0) -> np.ndarray:
    """A smooth colour gradient with fine texture (std ~8 levels) on top: RGB uint8."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([60 + xx, 90 + 0.5 * yy, 150 - 0.3 * xx], -1)
    texture = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), 1.0)
    return np.clip(base + 8 * (texture / texture.std())[..., None], 0, 255).astype(np.uint8)


def blob(h: int = 96, w: int = 128) -> np.ndarray:
    hole = np.zeros((h, w), np.uint8)
    cv2.ellipse(hole, (64, 48), (30, 20), 20, 0, 360, 1, -1)
    return hole.astype(bool)


def test_pull_push_keeps_fixed_values_and_spreads_a_constant():
    fixed = np.zeros((40, 50), bool)
    fixed[5, 7] = fixed[30, 44] = True
    values = np.zeros((40, 50, 2), np.float32)
    values[fixed] = (3.0, -2.0)
    out = pull_push(fixed, values)
    assert out.shape == (40, 50, 2)
    assert np.allclose(out, (3.0, -2.0), atol=1e-4)  # one value everywhere: nothing else to blend
    values[30, 44] = (5.0, 0.0)
    out = pull_push(fixed, values)
    assert np.allclose(out[fixed], values[fixed])
    assert abs(out[6, 8, 0] - 3.0) < abs(out[6, 8, 0] - 5.0)  # near a point, its value rules
    assert 3.0 <= out[..., 0].min() and out[..., 0].max() <= 5.0  # no overshoot


def test_membrane_is_linear_across_a_strip_between_two_fixed_columns():
    region = np.ones((20, 41), bool)
    fixed = np.zeros_like(region)
    fixed[:, 0] = fixed[:, 40] = True
    values = np.zeros((20, 41, 1), np.float32)
    values[:, 40] = 40.0
    out = membrane(region, fixed, values, steps=3000)
    # The exact membrane is the straight ramp x; pull-push plus relaxation gets close.
    assert np.abs(out[..., 0] - np.arange(41)[None, :]).max() < 1.0
    assert not membrane(region, fixed, values)[~region].any()


def test_a_shifted_fill_is_pulled_onto_the_photo_and_keeps_its_detail():
    truth = photo()
    hole = blob()
    # The fill: the photo's own content, 12 levels too bright and a touch too red in the hole.
    fill = truth.astype(np.int16)
    fill[hole] += (16, 12, 12)
    fill = np.clip(fill, 0, 255).astype(np.uint8)
    image = truth.copy()
    image[hole] = 0  # the photo's hole pixels are never read
    out = harmonise_fill(fill, image, hole)
    assert np.array_equal(out[~hole], fill[~hole])
    before = np.abs(fill[hole].astype(float) - truth[hole]).mean()
    after = np.abs(out[hole].astype(float) - truth[hole]).mean()
    assert before > 12 and after < 3, (before, after)
    bias = (out[hole].astype(float) - truth[hole]).mean(0)
    assert np.abs(bias).max() < 2.0, bias
    # Away from the edge only a smooth field was added: the fill's fine texture is all there.
    # (At the edge the field carries the photo's local means, texture-scale themselves.)
    deep = cv2.distanceTransform(hole.astype(np.uint8), cv2.DIST_L2, 3) >= 4
    detail = lambda a: cv2.Laplacian(a.astype(np.float32).mean(-1), cv2.CV_32F)[deep]  # noqa: E731
    assert np.corrcoef(detail(out), detail(fill))[0, 1] > 0.95
    # Garbage under the hole changes nothing: it is not read.
    noisy = image.copy()
    noisy[hole] = np.random.default_rng(1).integers(0, 256, (int(hole.sum()), 3))
    assert np.array_equal(harmonise_fill(fill, noisy, hole), out)


def test_a_fill_that_meets_the_photo_is_barely_touched():
    truth = photo(seed=3)
    hole = blob()
    smooth = cv2.GaussianBlur(truth, (0, 0), 3.0)
    fill = truth.copy()
    fill[hole] = smooth[hole]  # right colours, no texture: like a trained model's fill
    out = harmonise_fill(fill, truth, hole)
    change = np.abs(out[hole].astype(float) - fill[hole])
    assert change.mean() < 3.0, change.mean()


def test_edges_and_degenerate_holes():
    hole = np.zeros((8, 8), bool)
    hole[2:5, 2:6] = True
    edge = edge_of(hole)
    assert edge[2, 2] and edge[4, 5] and not edge[0, 0]
    assert edge.sum() == 10 and not edge[3, 3]  # the 3 x 4 box less its 2 inner pixels
    image = photo(8, 8)
    assert np.array_equal(harmonise_fill(image, image, np.zeros((8, 8), bool)), image)
    everything = np.ones((8, 8), bool)
    assert np.array_equal(harmonise_fill(image, image, everything), image)  # nothing to meet


class OffsetDeepEngine(Engine):
    """A deep model whose fill is the photo's content, 20 levels too dark."""

    name = "offset"
    kind = "deep"
    stage_names = ("coarse", "refined")

    def __init__(self, truth: np.ndarray):
        self.truth = truth

    def fill_core(self, image, hole, sketch, options):
        dark = np.clip(self.truth.astype(np.int16) - 20, 0, 255).astype(np.uint8)
        for name in self.stage_names:
            yield CoreStage(name, dark)


@pytest.mark.parametrize("harmonise", [True, False])
def test_the_hd_layer_harmonises_deep_stages_when_asked(harmonise):
    truth = photo()
    hole = blob()
    request = FillRequest(truth, hole.astype(np.uint8) * 255,
                          options=FillOptions(strategy="full", harmonise=harmonise))
    stages = list(run_fill(OffsetDeepEngine(truth), request))
    assert [s.name for s in stages] == ["coarse", "refined"]
    for stage in stages:
        error = np.abs(stage.image[hole].astype(float) - truth[hole]).mean()
        assert (error < 3) if harmonise else (error > 18), error
        far = cv2.dilate(hole.astype(np.uint8), np.ones((2 * hd.SEAM_PX + 3,) * 2, np.uint8)) == 0
        assert np.array_equal(stage.image[far], truth[far])


def test_harmonise_is_on_by_default_and_off_from_the_cli():
    from inpaint_studio.cli import build_parser

    assert FillOptions().harmonise is True
    args = build_parser().parse_args(["fill", "in.png", "--mask", "m.png", "--no-harmonise"])
    assert args.harmonise is False
    assert build_parser().parse_args(["fill", "in.png", "--mask", "m.png"]).harmonise is True
