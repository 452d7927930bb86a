"""Photo listing, validation split and the training/validation dataset."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from trainer.data import (
    InpaintDataset,
    NoReadablePhotos,
    PathList,
    find_images,
    list_images,
    read_photo,
    validation_split,
)


def _save(path, size=(80, 60), seed=0, **kw):
    """Save an RGB image of ``size`` (w, h) at ``path``: noisy gradients under a grid of
    high-contrast 6 px squares (edges everywhere, so every crop has sketch lines)."""
    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([xx * 255 / w, yy * 255 / h, np.full_like(xx, 128)], -1).astype(np.float32)
    img[(yy // 6 + xx // 6) % 2 == 0] = (20, 20, 20)
    img += rng.normal(0, 6, img.shape)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path, **kw)
    return path


@pytest.fixture
def photos(tmp_path):
    """Five readable photos in nested folders plus files that are not photos."""
    root = tmp_path / "photos"
    _save(root / "b.png", seed=1)
    _save(root / "a.JPG", seed=2)
    _save(root / "sub" / "c.webp", seed=3)
    _save(root / "sub" / "deeper" / "d.bmp", seed=4)
    _save(root / "sub" / "e.tif", seed=5)
    (root / "notes.txt").write_text("not a photo")
    _save(root / ".hidden.png")
    _save(root / ".cache" / "x.png")
    return root


def test_find_images_is_recursive_sorted_and_filters(photos):
    found = [p.relative_to(photos).as_posix() for p in find_images([photos])]
    assert found == ["a.JPG", "b.png", "sub/c.webp", "sub/deeper/d.bmp", "sub/e.tif"]


def test_find_images_names_a_missing_root(tmp_path):
    with pytest.raises(FileNotFoundError, match="no_such_folder"):
        list(find_images([tmp_path / "no_such_folder"]))


def test_list_images_over_several_roots_and_empty_folder_error(photos, tmp_path):
    other = tmp_path / "other"
    _save(other / "z.png")
    listing = list_images([photos, other])
    assert len(listing) == 6 and listing[-1] == other / "z.png"
    empty = tmp_path / "empty_folder"
    (empty / "sub").mkdir(parents=True)
    (empty / "sub" / "readme.txt").write_text("x")
    with pytest.raises(ValueError, match="no photos found in .*empty_folder"):
        list_images([photos, empty])


def test_path_list_is_compact_indexable_and_picklable(tmp_path):
    names = [tmp_path / f"dir/ph\u00f6to_{i:03d}.jpg" for i in range(50)]
    listing = PathList.from_paths(names)
    assert len(listing) == 50 and listing[0] == names[0] and listing[-1] == names[-1]
    assert list(listing) == names
    assert listing.nbytes() < sum(len(str(n).encode()) for n in names) + 8 * 52
    sub = listing.subset([7, 3, 49])
    assert list(sub) == [names[7], names[3], names[49]]
    assert list(listing[10:13]) == names[10:13]
    assert list(pickle.loads(pickle.dumps(sub))) == list(sub)
    assert len(listing.subset([])) == 0
    with pytest.raises(IndexError):
        listing[50]


def test_validation_split_is_seeded_disjoint_and_complete():
    listing = PathList.from_paths([f"/p/{i}.png" for i in range(30)])
    train, val = validation_split(listing, 6, seed=3)
    train2, val2 = validation_split(listing, 6, seed=3)
    _, val_other = validation_split(listing, 6, seed=4)
    assert list(val) == list(val2) and list(train) == list(train2)
    assert list(val) != list(val_other)
    assert len(val) == 6 and sorted(map(str, [*train, *val])) == sorted(map(str, listing))
    with pytest.raises(ValueError, match="cannot hold out 30 validation photos from 30"):
        validation_split(listing, 30, seed=0)


def _check_sample(sample, size):
    assert sample["image"].shape == (3, size, size) and sample["image"].dtype == torch.float32
    assert -1.0 <= sample["image"].min() and sample["image"].max() <= 1.0
    for key in ("mask", "sketch"):
        assert sample[key].shape == (1, size, size) and sample[key].dtype == torch.float32
        assert set(sample[key].unique().tolist()) <= {0.0, 1.0}
    assert torch.all(sample["sketch"] <= sample["mask"])  # lines only inside the hole
    assert sample["mask"].mean() > 0


def test_training_samples_have_the_contract_shapes_and_vary_by_epoch(photos):
    ds = InpaintDataset(list_images([photos]), size=32, sketch_prob=1.0, seed=5)
    first = ds[0]
    _check_sample(first, 32)
    assert first["sketch"].sum() > 0  # kept with probability 1 on a textured photo
    assert torch.equal(ds[0]["image"], first["image"]) and torch.equal(ds[0]["mask"], first["mask"])
    ds.set_epoch(1)
    again = ds[0]
    assert not torch.equal(again["mask"], first["mask"])
    assert ds.bad_files == {}


def test_sketch_dropped_with_probability_zero(photos):
    ds = InpaintDataset(list_images([photos]), size=32, sketch_prob=0.0)
    assert all(ds[i]["sketch"].sum() == 0 for i in range(len(ds)))


def test_partial_sketches_keep_a_subset_of_the_full_lines(photos):
    # --sketch-keep-min: training sketches lose whole line pieces, never gain or move a pixel;
    # validation keeps every line, so its figures stay comparable with earlier runs.
    listing = list_images([photos])
    full = InpaintDataset(listing, size=64, sketch_prob=1.0, seed=3)
    partial = InpaintDataset(listing, size=64, sketch_prob=1.0, seed=3, sketch_keep_min=0.0)
    fewer = 0
    for i in range(len(listing)):
        a, b = full[i], partial[i]
        assert torch.equal(a["image"], b["image"]) and torch.equal(a["mask"], b["mask"])
        assert torch.all(b["sketch"] <= a["sketch"])
        fewer += int(b["sketch"].sum() < a["sketch"].sum())
    assert fewer >= 2
    val_full = InpaintDataset(listing, size=64, sketch_prob=1.0, seed=3, train=False)
    val_partial = InpaintDataset(listing, size=64, sketch_prob=1.0, seed=3, train=False,
                                 sketch_keep_min=0.0)
    assert all(torch.equal(val_full[i]["sketch"], val_partial[i]["sketch"]) for i in range(len(listing)))


def test_validation_set_identical_across_constructions(photos):
    listing = list_images([photos])
    a = InpaintDataset(listing, size=48, train=False, seed=11)
    b = InpaintDataset(PathList.from_paths(list(listing)), size=48, train=False, seed=11)
    b.set_epoch(7)  # has no effect on validation samples
    for i in range(len(listing)):
        sa, sb = a[i], b[i]
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
    # Different indices get different masks.
    assert not torch.equal(a[0]["mask"], a[1]["mask"])


def test_validation_is_a_centre_crop_of_the_rescaled_photo(tmp_path):
    img = np.zeros((40, 80, 3), np.uint8)
    img[:, 20:60] = 255  # a white centre band exactly as wide as the centre square
    Image.fromarray(img).save(tmp_path / "band.png")
    sample = InpaintDataset([tmp_path / "band.png"], size=40, train=False)[0]
    assert torch.all(sample["image"] == 1.0)


def test_exif_orientation_is_applied(tmp_path):
    raw = np.zeros((64, 96, 3), np.uint8)
    raw[:, :48] = (255, 0, 0)  # left half red, stored landscape
    raw[:, 48:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    Image.fromarray(raw).save(tmp_path / "rotated.jpg", exif=exif, quality=95)
    rgb = read_photo(tmp_path / "rotated.jpg", lambda short: short, min_side=8)
    assert rgb.shape == (96, 64, 3)  # portrait once upright
    assert rgb[:40, :, 0].mean() > 200 and rgb[:40, :, 2].mean() < 50  # left became top
    assert rgb[-40:, :, 2].mean() > 200


def test_big_jpeg_is_decoded_small_and_rescaled(tmp_path):
    path = _save(tmp_path / "big.jpg", size=(1600, 1200))
    rgb = read_photo(path, lambda short: 100, min_side=8)
    assert rgb.shape == (100, 133, 3)


def test_sixteen_bit_gray_is_scaled_not_clipped(tmp_path):
    gray = np.full((40, 40), 65535, np.uint16)
    gray[:, :20] = 257 * 100
    Image.fromarray(gray).save(tmp_path / "deep.png")
    rgb = read_photo(tmp_path / "deep.png", lambda short: short, min_side=8)
    assert rgb.dtype == np.uint8 and rgb[0, 0, 0] == 100 and rgb[0, 39, 0] == 255


def _add_bad_files(root):
    (root / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg" * 10)
    good = _save(root / "tmp_full.jpg", size=(200, 150)).read_bytes()
    (root / "tmp_full.jpg").unlink()
    (root / "truncated.jpg").write_bytes(good[: len(good) // 2])
    _save(root / "tiny.png", size=(8, 8))


def test_bad_files_are_skipped_warned_and_counted(photos):
    _add_bad_files(photos)
    listing = list_images([photos])
    assert len(listing) == 8
    ds = InpaintDataset(listing, size=32, seed=1)
    with pytest.warns(UserWarning, match="skipping photo") as caught:
        samples = [ds[i] for i in range(len(ds))]
    for sample in samples:
        _check_sample(sample, 32)
    assert sorted(p.rsplit("/", 1)[-1] for p in ds.bad_files) == ["corrupt.jpg", "tiny.png", "truncated.jpg"]
    assert "too small (8x8" in ds.bad_files[str(photos / "tiny.png")]
    assert "truncated" in ds.bad_files[str(photos / "truncated.jpg")]
    assert sum(int(s["skipped_files"]) for s in samples) == 3
    assert len(caught) == 3
    # A second pass neither warns again nor counts again.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert sum(int(ds[i]["skipped_files"]) for i in range(len(ds))) == 0


def test_only_bad_files_stop_with_a_clear_error(tmp_path):
    _add_bad_files(tmp_path)
    ds = InpaintDataset(list_images([tmp_path]), size=32, max_retries=10)
    with pytest.warns(UserWarning), pytest.raises(NoReadablePhotos, match="no readable photo in 11 tries"):
        ds[0]
    # Now every file is known bad: the message counts them instead of naming "None".
    with pytest.raises(NoReadablePhotos, match=r"in 11 tries \(\d+ of \d+ known bad\)"):
        ds[0]


def test_dataloader_workers_batch_samples(photos):
    _add_bad_files(photos)
    ds = InpaintDataset(list_images([photos]), size=32)
    loader = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        batches = list(loader)
    assert [b["image"].shape for b in batches] == [(4, 3, 32, 32), (4, 3, 32, 32)]
    assert batches[0]["mask"].shape == (4, 1, 32, 32)
    # Each worker finds and counts the bad files it meets (at most once per worker).
    assert 3 <= sum(int(b["skipped_files"].sum()) for b in batches) <= 6


def test_bad_arguments(photos):
    listing = list_images([photos])
    with pytest.raises(ValueError, match="sketch_prob"):
        InpaintDataset(listing, sketch_prob=2.0)
    with pytest.raises(ValueError, match="sketch_keep_min"):
        InpaintDataset(listing, sketch_keep_min=-0.5)
    with pytest.raises(ValueError, match="unknown mask kind"):
        InpaintDataset(listing, mask="hexagons")
    with pytest.raises(ValueError, match="no photos"):
        InpaintDataset([])
