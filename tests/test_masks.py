"""Mask generators: format, statistics of the DeepFill v2 strokes, flips, folders, names."""

from __future__ import annotations

import pickle

import cv2
import numpy as np
import pytest

from inpaint_studio import masks
from inpaint_studio.masks import (
    FolderMasks,
    MaskGenerator,
    box_mask,
    free_form_mask,
    hole_ratio,
    mixed_mask,
    stroke_width,
)

GENERATORS = [free_form_mask, box_mask, mixed_mask]


@pytest.mark.parametrize("make", GENERATORS)
@pytest.mark.parametrize("size", [(256, 256), (96, 160), (37, 23)])
def test_masks_are_binary_uint8_of_the_requested_size(make, size, rng):
    mask = make(*size, rng)
    assert mask.shape == size and mask.dtype == np.uint8
    assert set(np.unique(mask)) <= {0, 255}
    assert 0 < hole_ratio(mask) < 1


@pytest.mark.parametrize("make", GENERATORS)
def test_same_seed_same_mask_other_seed_other_mask(make):
    a = make(128, 128, np.random.default_rng(7))
    b = make(128, 128, np.random.default_rng(7))
    c = make(128, 128, np.random.default_rng(8))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_free_form_hole_ratio_matches_deepfill_v2_statistics():
    rng = np.random.default_rng(0)
    ratios = np.array([hole_ratio(free_form_mask(256, 256, rng)) for _ in range(200)])
    # 1-3 strokes of 12-40 px over segments of ~r = 45 px: about 15 % on average, from a few
    # percent (one thin short stroke) to under about half.
    assert 0.10 < ratios.mean() < 0.22
    assert ratios.min() > 0.005 and ratios.max() < 0.6


def test_free_form_strokes_are_flipped_both_ways():
    # Reference strokes always advance rightwards (angles +-72 degrees) and start upwards, so
    # without flips the hole mass piles up on the right (about 1.9x the left half).
    rng = np.random.default_rng(0)
    left = right = top = bottom = 0
    for _ in range(300):
        hole = free_form_mask(128, 128, rng) > 0
        left += hole[:, :64].sum()
        right += hole[:, 64:].sum()
        top += hole[:64].sum()
        bottom += hole[64:].sum()
    assert 0.8 < right / left < 1.25
    assert 0.8 < bottom / top < 1.25


def test_random_flips_apply_each_flip():
    mark = np.zeros((4, 6), np.uint8)
    mark[0, 0] = 255
    corners = set()
    rng = np.random.default_rng(3)
    for _ in range(40):
        flipped = masks._random_flips(mark, rng)
        corners.add(tuple(int(v) for v in np.argwhere(flipped)[0]))
    assert corners == {(0, 0), (0, 5), (3, 0), (3, 5)}


def _widest_stroke_half_width(mask: np.ndarray) -> float:
    return float(cv2.distanceTransform((mask > 0).astype(np.uint8), cv2.DIST_L2, 5).max())


def test_stroke_width_is_in_range_and_scales_with_image_size():
    rng = np.random.default_rng(1)
    at_256 = np.array([stroke_width(256, 256, rng) for _ in range(500)])
    at_512 = np.array([stroke_width(512, 512, rng) for _ in range(500)])
    assert at_256.min() >= 12 and at_256.max() <= 40
    assert at_256.min() <= 14 and at_256.max() >= 38  # the whole range is used
    assert at_512.min() >= 24 and at_512.max() <= 80
    # Drawn strokes are as wide as that: no hole is thinner than a 12 px brush.
    thinnest = min(_widest_stroke_half_width(free_form_mask(256, 256, rng)) for _ in range(60))
    assert thinnest >= 5.5


def test_box_mask_is_one_rectangle_sized_like_the_reference(rng):
    for _ in range(50):
        mask = box_mask(256, 256, rng)
        ys, xs = np.nonzero(mask)
        h, w = ys.max() - ys.min() + 1, xs.max() - xs.min() + 1
        assert len(ys) == h * w  # filled rectangle
        assert 128 - 32 <= h <= 128 and 128 - 32 <= w <= 128


def test_box_mask_rejects_bad_fractions(rng):
    with pytest.raises(ValueError, match="box_frac"):
        box_mask(64, 64, rng, box_frac=1.5)


def test_mixed_mask_contains_a_box_and_strokes():
    ratios_mixed = [hole_ratio(mixed_mask(256, 256, np.random.default_rng(s))) for s in range(40)]
    # The box alone covers at least (96/256)^2 = 14 %.
    assert min(ratios_mixed) >= 0.14
    assert np.mean(ratios_mixed) > 0.25


def test_hole_ratio_counts_pixels_over_127():
    mask = np.zeros((4, 5), np.uint8)
    mask[0, :] = 128
    mask[1, 0] = 127
    assert hole_ratio(mask) == pytest.approx(5 / 20)
    with pytest.raises(ValueError, match="HxW"):
        hole_ratio(np.zeros((2, 2, 3), np.uint8))


def test_bad_size_is_refused(rng):
    with pytest.raises(ValueError, match="positive"):
        free_form_mask(0, 10, rng)


@pytest.fixture
def mask_folder(tmp_path):
    """One 40x60 mask file with a block in its top-left corner (value 200), an empty
    subfolder and a non-image file that must be ignored."""
    folder = tmp_path / "masks"
    (folder / "sub").mkdir(parents=True)
    corner = np.zeros((40, 60), np.uint8)
    corner[:10, :15] = 200
    cv2.imwrite(str(folder / "corner.png"), corner)
    (folder / "notes.txt").write_text("not a mask")
    return folder


def test_folder_masks_flip_rotate_resize_and_threshold(mask_folder):
    source = FolderMasks(mask_folder)
    assert len(source) == 1
    rng = np.random.default_rng(0)
    corners = set()
    for _ in range(60):
        mask = source(32, 32, rng)
        assert mask.shape == (32, 32) and set(np.unique(mask)) == {0, 255}
        ys, xs = np.nonzero(mask)
        corners.add((int(ys.mean() > 16), int(xs.mean() > 16)))
    assert corners == {(0, 0), (0, 1), (1, 0), (1, 1)}


def test_folder_masks_threshold_and_invert(tmp_path, rng):
    folder = tmp_path / "m"
    folder.mkdir()
    values = np.full((8, 8), 126, np.uint8)
    values[:, 4:] = 128
    cv2.imwrite(str(folder / "half.png"), values)
    for _ in range(10):
        mask = FolderMasks(folder)(8, 8, rng)
        assert hole_ratio(mask) == pytest.approx(0.5)
        inverted = FolderMasks(folder, invert=True)(8, 8, np.random.default_rng(5))
        assert hole_ratio(inverted) == pytest.approx(0.5)
    same_rng = [FolderMasks(folder, invert=flag)(8, 8, np.random.default_rng(9)) for flag in (0, 1)]
    assert np.array_equal(same_rng[0], 255 - same_rng[1])


def test_folder_masks_errors_name_the_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        FolderMasks(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty.*no mask images"):
        FolderMasks(tmp_path / "empty")


def test_mask_generator_by_name(mask_folder, rng):
    for name in ("free_form", "box", "mixed", f"folder:{mask_folder}"):
        gen = MaskGenerator(name)
        mask = gen(48, 64, rng)
        assert mask.shape == (48, 64) and mask.dtype == np.uint8
        clone = pickle.loads(pickle.dumps(gen))  # DataLoader workers receive a copy
        assert np.array_equal(clone(48, 64, np.random.default_rng(2)), gen(48, 64, np.random.default_rng(2)))
    with pytest.raises(ValueError, match="unknown mask kind 'stars'.*free_form, box, mixed"):
        MaskGenerator("stars")
    with pytest.raises(ValueError, match="needs a folder"):
        MaskGenerator("folder:")


def test_mask_generator_draws_each_mask_from_one_of_several_sources(mask_folder):
    gen = MaskGenerator(f"box, folder:{mask_folder}")
    kinds = []
    for seed in range(40):
        mask = gen(32, 32, np.random.default_rng(seed))
        # The folder's corner block covers 1/16 of the mask, a reference box about a fifth.
        kinds.append("folder" if hole_ratio(mask) < 0.1 else "box")
        assert mask.shape == (32, 32) and set(np.unique(mask)) <= {0, 255}
    assert 10 < kinds.count("folder") < 30
    clone = pickle.loads(pickle.dumps(gen))
    assert np.array_equal(clone(32, 32, np.random.default_rng(3)), gen(32, 32, np.random.default_rng(3)))
    with pytest.raises(ValueError, match="unknown mask kind 'stars'"):
        MaskGenerator("mixed,stars")
