"""Classical engines through the engine API: registry, fill quality on known content,
determinism, odd sizes."""

from __future__ import annotations

import numpy as np
import pytest

from inpaint_studio.engine import FillOptions, FillRequest, InvalidRequest, get_engine, list_engines
from inpaint_studio.engine import patchmatch
from inpaint_studio.metrics import l1

CLASSICAL = ("patchmatch", "telea", "ns")


def _fill(name: str, image: np.ndarray, mask: np.ndarray, **options) -> np.ndarray:
    stages = list(get_engine(name).fill(FillRequest(image, mask, options=FillOptions(**options))))
    assert [s.name for s in stages] == ["final"] and stages[0].final
    return stages[0].image


def _box_mask(h: int, w: int, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    mask = np.zeros((h, w), np.uint8)
    mask[y0:y1, x0:x1] = 255
    return mask


def _gradient(h: int = 64, w: int = 80) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    return np.stack([xx * 3, yy * 3, 128 + 0 * xx], -1).clip(0, 255).astype(np.uint8)


def _stripes(h: int = 72, w: int = 72, period: int = 8) -> np.ndarray:
    """Vertical stripes of a hard square wave: diffusion cannot continue them, copying can."""
    xx = np.arange(w)
    row = np.where((xx // (period // 2)) % 2 == 0, 40, 220).astype(np.uint8)
    return np.repeat(np.repeat(row[None, :, None], h, 0), 3, 2)


def test_classical_engines_are_registered_with_titles():
    infos = {info.name: info for info in list_engines()}
    for name in CLASSICAL:
        info = infos[name]
        assert info.kind == "classical" and info.availability.ok
        assert info.title and info.description and info.title != name


@pytest.mark.parametrize("name", CLASSICAL)
def test_fills_a_smooth_gradient_with_small_error(name):
    image = _gradient()
    mask = _box_mask(64, 80, 24, 40, 30, 50)
    out = _fill(name, image, mask)
    hole = mask > 127
    assert out.shape == image.shape
    assert l1(out, image, hole) < 0.03
    np.testing.assert_array_equal(out[~hole], image[~hole])  # outside the hole: untouched


def test_patchmatch_continues_a_periodic_texture_better_than_telea():
    image = _stripes()
    mask = _box_mask(72, 72, 26, 46, 26, 46)
    hole = mask > 127
    pm = l1(_fill("patchmatch", image, mask), image, hole)
    telea = l1(_fill("telea", image, mask), image, hole)
    assert pm < 0.05, pm
    assert pm < telea / 3, (pm, telea)


def test_patchmatch_is_deterministic_for_a_seed(rng):
    image = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    hole = np.zeros((64, 64), bool)
    hole[20:44, 20:44] = True
    first = patchmatch.inpaint(image, hole, seed=3)
    np.testing.assert_array_equal(first, patchmatch.inpaint(image, hole, seed=3))
    assert not np.array_equal(first, patchmatch.inpaint(image, hole, seed=4))


def test_patchmatch_never_sees_the_pixels_under_the_hole(rng):
    # The known part is noise in [100, 150]; what lies under the hole is black. Copied texture
    # stays in the known range, up to the border correction's colour shift (a few levels);
    # any leak of the black block would pull values and the mean far down.
    image = rng.integers(100, 151, (48, 48, 3), dtype=np.uint8)
    image[16:32, 16:32] = 0
    hole = np.zeros((48, 48), bool)
    hole[16:32, 16:32] = True
    fill = patchmatch.inpaint(image, hole)[hole].astype(float)
    assert fill.min() >= 90 and fill.max() <= 160, (fill.min(), fill.max())
    assert abs(fill.mean() - 125) < 5, fill.mean()


@pytest.mark.parametrize("name", CLASSICAL)
def test_one_pixel_and_all_hole_images(name):
    pixel = np.array([[[9, 99, 199]]], np.uint8)
    with pytest.raises(InvalidRequest, match="the mask covers the whole image"):
        _fill(name, pixel, np.full((1, 1), 255, np.uint8))
    tiny = np.full((6, 5, 3), 77, np.uint8)
    mask = _box_mask(6, 5, 2, 4, 2, 4)
    out = _fill(name, tiny, mask)
    assert out.shape == tiny.shape
    assert np.abs(out.astype(int) - 77).max() <= 2  # a constant image stays constant


def test_patchmatch_fill_of_all_hole_is_grey():
    image = np.zeros((20, 20, 3), np.uint8)
    out = patchmatch.inpaint(image, np.ones((20, 20), bool))
    assert np.all(out == 128)


def test_coarse_pixel_is_a_hole_only_when_no_fine_pixel_is_known():
    image = np.full((8, 8, 3), 50.0, np.float32)
    image[:, 1] = 250.0  # the known pixel beside the stroke sets the coarse value alone
    hole = np.zeros((8, 8), bool)
    hole[:, 0] = True  # a 1-px stroke: every coarse pixel of column 0 keeps a known pixel
    hole[4:6, 4:6] = True  # an aligned 2x2 block: exactly one coarse pixel fully covered
    small, small_hole = patchmatch._downsample(image, hole)
    expected = np.zeros((4, 4), bool)
    expected[2, 2] = True
    np.testing.assert_array_equal(small_hole, expected)
    np.testing.assert_allclose(small[:, 0], 250.0)  # hole pixels never averaged in


def test_pyramid_depth_follows_the_hole_thickness():
    image = np.zeros((256, 256, 3), np.float32)
    thin = np.zeros((256, 256), bool)
    thin[100:110, 20:230] = True  # 10 px stroke: already shallow enough
    wide = np.zeros((256, 256), bool)
    wide[64:192, 64:192] = True  # 128 px square, 64 px deep: halve until <= 16 px deep
    assert len(patchmatch._pyramid(image, thin, 3)) == 1
    levels = patchmatch._pyramid(image, wide, 3)
    assert len(levels) == 3
    assert patchmatch._hole_depth(levels[-1][1]) <= patchmatch.COARSEST_HOLE_DEPTH
