"""Image I/O: every odd file a user may have, masks, metadata round trips, atomic writes."""

from __future__ import annotations

import io
import os

import cv2
import numpy as np
import pytest
from PIL import Image, ImageCms, ImageFile, ImageOps

from inpaint_studio import imageio as iio
from inpaint_studio import imagesave
from inpaint_studio.imageio import ImageLoadError, MaskSizeError, load_image, load_mask, save_image

from .data_gen import exif_block, gradient_rgb, png_bomb, tinted_cmyk_profile, write_16bit


def _exif_of(path) -> Image.Exif:
    with Image.open(path) as im:
        return im.getexif()


# ----------------------------------------------------------------------------- formats/modes


@pytest.mark.parametrize("fmt,ext", [("PNG", ".png"), ("BMP", ".bmp"), ("TIFF", ".tif"),
                                     ("WEBP", ".webp")])
def test_lossless_formats_load_exactly(tmp_path, fmt, ext):
    rgb = gradient_rgb(20, 30)
    path = tmp_path / f"a{ext}"
    Image.fromarray(rgb).save(path, format=fmt, **({"lossless": True} if fmt == "WEBP" else {}))
    loaded = load_image(path)
    assert loaded.format == fmt
    assert loaded.rgb.dtype == np.uint8 and loaded.rgb.shape == (20, 30, 3)
    np.testing.assert_array_equal(loaded.rgb, rgb)
    assert loaded.alpha is None and loaded.bit_depth == 8 and not loaded.gray


def test_jpeg_loads_close_to_source(tmp_path):
    rgb = gradient_rgb(32, 48)
    Image.fromarray(rgb).save(tmp_path / "a.jpg", quality=98)
    loaded = load_image(tmp_path / "a.jpg")
    assert loaded.format == "JPEG" and loaded.size == (48, 32)
    assert np.abs(loaded.rgb.astype(int) - rgb).mean() < 3


def test_one_pixel_image(tmp_path):
    Image.new("RGB", (1, 1), (10, 20, 30)).save(tmp_path / "dot.png")
    loaded = load_image(tmp_path / "dot.png")
    assert loaded.rgb.shape == (1, 1, 3) and loaded.rgb[0, 0].tolist() == [10, 20, 30]


def test_gray_and_bilevel_become_rgb_and_save_gray(tmp_path):
    gray = gradient_rgb(10, 12)[..., 0]
    Image.fromarray(gray, mode="L").save(tmp_path / "g.png")
    Image.fromarray(gray > 100).save(tmp_path / "b.png")
    loaded = load_image(tmp_path / "g.png")
    assert loaded.gray and np.array_equal(loaded.rgb, np.repeat(gray[..., None], 3, axis=-1))
    assert load_image(tmp_path / "b.png").rgb[..., 0].max() == 255
    save_image(tmp_path / "g_out.png", loaded.rgb, like=loaded)
    with Image.open(tmp_path / "g_out.png") as out:
        assert out.mode == "L" and np.array_equal(np.asarray(out), gray)


def test_la_alpha_kept_aside_and_put_back(tmp_path):
    gray = gradient_rgb(8, 9)[..., 1]
    alpha = np.tile(np.arange(9, dtype=np.uint8) * 30, (8, 1))
    Image.fromarray(np.dstack([gray, alpha]), mode="LA").save(tmp_path / "la.png")
    loaded = load_image(tmp_path / "la.png")
    np.testing.assert_array_equal(loaded.alpha, alpha)
    np.testing.assert_array_equal(loaded.rgb[..., 2], gray)
    save_image(tmp_path / "out.png", loaded.rgb, like=loaded)
    with Image.open(tmp_path / "out.png") as out:
        assert out.mode == "LA"
        np.testing.assert_array_equal(np.asarray(out)[..., 1], alpha)


def test_palette_with_transparency(tmp_path):
    im = Image.new("P", (6, 4), 1)
    im.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    im.putpixel((0, 0), 0)
    im.info["transparency"] = 0
    im.save(tmp_path / "p.png", transparency=0)
    loaded = load_image(tmp_path / "p.png")
    assert loaded.alpha is not None
    assert loaded.alpha[0, 0] == 0 and loaded.alpha[1, 1] == 255
    assert loaded.rgb[1, 1].tolist() == [0, 0, 255]


def test_palette_without_transparency_has_no_alpha(tmp_path):
    Image.new("RGB", (5, 5), (0, 204, 0)).convert("P").save(tmp_path / "p.png")
    loaded = load_image(tmp_path / "p.png")
    assert loaded.alpha is None and loaded.rgb[2, 2].tolist() == [0, 204, 0]


def test_rgba_round_trip_puts_alpha_back(tmp_path):
    rgb = gradient_rgb(10, 10)
    alpha = np.full((10, 10), 255, np.uint8)
    alpha[:5] = 40
    Image.fromarray(np.dstack([rgb, alpha]), mode="RGBA").save(tmp_path / "a.png")
    loaded = load_image(tmp_path / "a.png")
    np.testing.assert_array_equal(loaded.rgb, rgb)
    filled = loaded.rgb.copy()
    filled[2:4, 2:4] = 7
    save_image(tmp_path / "out.webp", filled, like=loaded, format=None)
    again = load_image(tmp_path / "out.webp")
    assert again.format == "WEBP"
    assert again.alpha is not None and np.abs(again.alpha.astype(int) - alpha).max() <= 2
    # JPEG has no alpha channel: the result is written without it instead of failing.
    save_image(tmp_path / "out.jpg", filled, like=loaded)
    assert load_image(tmp_path / "out.jpg").alpha is None


# ----------------------------------------------------------------------------- CMYK


def test_cmyk_jpeg_goes_through_its_icc_profile(tmp_path):
    # The hand-made profile maps ink-free paper to red; the plain formula gives white.
    Image.new("CMYK", (6, 6), (0, 0, 0, 0)).save(tmp_path / "icc.jpg",
                                                  icc_profile=tinted_cmyk_profile())
    loaded = load_image(tmp_path / "icc.jpg")
    r, g, b = loaded.rgb[3, 3].tolist()
    assert r > 200 and g < 60 and b < 60, loaded.rgb[3, 3]
    # The kept profile describes the converted pixels (sRGB), not the CMYK source.
    assert loaded.icc_profile[16:20] == b"RGB "
    assert ImageCms.getProfileDescription(
        ImageCms.ImageCmsProfile(io.BytesIO(loaded.icc_profile))).strip().startswith("sRGB")


def test_cmyk_jpeg_without_profile_uses_plain_conversion(tmp_path):
    Image.new("CMYK", (6, 6), (0, 255, 255, 0)).save(tmp_path / "plain.jpg")
    loaded = load_image(tmp_path / "plain.jpg")
    r, g, b = loaded.rgb[3, 3].tolist()
    assert r > 230 and g < 25 and b < 25
    assert loaded.icc_profile is None and loaded.mode == "CMYK"


# ----------------------------------------------------------------------------- 16 bit


def test_16bit_gray_png_reduced_for_engine_and_kept_for_save(tmp_path, rng):
    wide = rng.integers(0, 65536, size=(12, 10), dtype=np.uint16)
    Image.fromarray(wide).save(tmp_path / "g16.png")
    loaded = load_image(tmp_path / "g16.png")
    assert loaded.bit_depth == 16 and loaded.gray and loaded.rgb.dtype == np.uint8
    np.testing.assert_array_equal(loaded.rgb[..., 0], np.round(wide / 257).astype(np.uint8))
    filled = loaded.rgb.copy()
    filled[0, 0] = 3  # 3 * 257 = 771 in 16 bits
    save_image(tmp_path / "out.png", filled, like=loaded)
    out = cv2.imread(str(tmp_path / "out.png"), cv2.IMREAD_UNCHANGED)
    assert out.dtype == np.uint16 and out.ndim == 2
    assert out[0, 0] == 771
    np.testing.assert_array_equal(out.ravel()[1:], wide.ravel()[1:])


@pytest.mark.parametrize("ext", [".png", ".tif"])
def test_16bit_rgb_keeps_untouched_pixels_bit_for_bit(tmp_path, rng, ext):
    wide = rng.integers(0, 65536, size=(9, 11, 3), dtype=np.uint16)
    write_16bit(tmp_path / f"c16{ext}", wide)
    loaded = load_image(tmp_path / f"c16{ext}")
    assert loaded.bit_depth == 16 and not loaded.gray
    assert np.abs(loaded.rgb.astype(int) - wide / 257.0).max() <= 0.5
    filled = loaded.rgb.copy()
    filled[4, 5] = (1, 2, 3)
    save_image(tmp_path / f"out{ext}", filled, like=loaded)
    out = cv2.cvtColor(cv2.imread(str(tmp_path / f"out{ext}"), cv2.IMREAD_UNCHANGED),
                       cv2.COLOR_BGR2RGB)
    assert out.dtype == np.uint16
    assert out[4, 5].tolist() == [257, 514, 771]
    keep = np.ones((9, 11), bool)
    keep[4, 5] = False
    np.testing.assert_array_equal(out[keep], wide[keep])
    # Another decoder agrees on the byte order (Pillow reads the high byte of each sample).
    with Image.open(tmp_path / f"out{ext}") as im:
        high = np.asarray(im.convert("RGB")).astype(int)
    assert np.abs(high[keep] - (wide[keep] >> 8)).max() <= 1


def test_16bit_rgba_png_alpha_and_icc_survive(tmp_path, rng):
    wide = rng.integers(0, 65536, size=(6, 7, 4), dtype=np.uint16)
    write_16bit(tmp_path / "c16.png", wide)
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    loaded = load_image(tmp_path / "c16.png")
    loaded.icc_profile = srgb
    loaded.exif = exif_block()
    assert loaded.alpha is not None
    save_image(tmp_path / "out.png", loaded.rgb, like=loaded)
    out = cv2.imread(str(tmp_path / "out.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(cv2.cvtColor(out, cv2.COLOR_BGRA2RGBA), wide)
    with Image.open(tmp_path / "out.png") as im:
        assert im.info["icc_profile"] == srgb
        assert im.getexif()[0x010F] == "TestCam"


# ----------------------------------------------------------------------------- EXIF


def test_exif_orientation_6_rotates_pixels_and_is_dropped_on_save(tmp_path):
    rgb = np.zeros((20, 40, 3), np.uint8)  # stored landscape, red marker top-left
    rgb[:4, :4] = (255, 0, 0)
    Image.fromarray(rgb).save(tmp_path / "rot.jpg", exif=exif_block(orientation=6), quality=95)
    loaded = load_image(tmp_path / "rot.jpg")
    # Orientation 6 = rotate 90 degrees clockwise to view: portrait, marker top-right.
    assert loaded.size == (20, 40)
    assert loaded.rgb[1, 18, 0] > 200 and loaded.rgb[1, 1, 0] < 50
    save_image(tmp_path / "out.jpg", loaded.rgb, like=loaded)
    exif = _exif_of(tmp_path / "out.jpg")
    assert 0x0112 not in exif
    assert exif[0x010F] == "TestCam"
    assert exif.get_ifd(0x8769)[0x9003] == "2021:06:01 12:00:00"
    # Loading the saved file again does not rotate a second time.
    assert load_image(tmp_path / "out.jpg").size == (20, 40)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orientation_matches_pillow_exif_transpose(tmp_path, orientation):
    rgb = gradient_rgb(5, 7)
    Image.fromarray(rgb).save(tmp_path / "o.png", exif=exif_block(orientation))
    with Image.open(tmp_path / "o.png") as im:
        expected = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    np.testing.assert_array_equal(load_image(tmp_path / "o.png").rgb, expected)


def test_icc_and_exif_round_trip_and_format_kept(tmp_path):
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    Image.fromarray(gradient_rgb(16, 16)).save(tmp_path / "a.jpg", icc_profile=srgb,
                                               exif=exif_block(make="Kodak"))
    loaded = load_image(tmp_path / "a.jpg")
    target = tmp_path / "result"  # no extension: the format of the original is kept
    save_image(target, loaded.rgb, like=loaded)
    with Image.open(target) as im:
        assert im.format == "JPEG"
        assert im.info["icc_profile"] == srgb
        assert im.getexif()[0x010F] == "Kodak"


def test_gray_profile_not_written_onto_colour_pixels():
    gray_icc = b"\0" * 16 + b"GRAY" + b"\0" * 108
    assert imagesave._matching_icc(gray_icc, "RGB") is None
    assert imagesave._matching_icc(gray_icc, "L") == gray_icc


# ----------------------------------------------------------------------------- bad files


def test_truncated_jpeg_and_png_give_one_line_error(tmp_path):
    Image.fromarray(gradient_rgb(64, 64)).save(tmp_path / "full.jpg")
    Image.fromarray(gradient_rgb(64, 64)).save(tmp_path / "full.png")
    for name in ("full.jpg", "full.png"):
        data = (tmp_path / name).read_bytes()
        (tmp_path / f"cut_{name}").write_bytes(data[: len(data) // 2])
        with pytest.raises(ImageLoadError) as err:
            load_image(tmp_path / f"cut_{name}")
        message = str(err.value)
        assert f"cut_{name}" in message and "truncated" in message and "\n" not in message


def test_non_image_missing_and_folder(tmp_path):
    (tmp_path / "notes.jpg").write_text("not a picture")
    with pytest.raises(ImageLoadError, match=r"notes\.jpg: not an image"):
        load_image(tmp_path / "notes.jpg")
    with pytest.raises(ImageLoadError, match="no such file"):
        load_image(tmp_path / "missing.png")
    with pytest.raises(ImageLoadError, match="folder"):
        load_image(tmp_path)


def test_pixel_limit_names_both_numbers(tmp_path):
    Image.new("RGB", (100, 50)).save(tmp_path / "big.png")
    with pytest.raises(ImageLoadError) as err:
        load_image(tmp_path / "big.png", max_pixels=4_000)
    assert "100x50 = 5,000 pixels" in str(err.value) and "4,000" in str(err.value)
    assert load_image(tmp_path / "big.png", max_pixels=5_000).size == (100, 50)


def test_pixel_limit_above_pillow_default_is_honoured(tmp_path, monkeypatch):
    # Pillow refuses beyond 2x its own limit; our configured limit must win both ways.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    Image.new("L", (40, 40)).save(tmp_path / "mid.png")  # 1,600 px > 2 * 100
    assert load_image(tmp_path / "mid.png", max_pixels=2_000).size == (40, 40)
    assert Image.MAX_IMAGE_PIXELS == 100  # restored


def test_decompression_bomb_refused_before_decoding(tmp_path):
    # A tiny file whose header claims 20000x20000 (400 MP): refused by the default limit.
    (tmp_path / "bomb.png").write_bytes(png_bomb(20_000, 20_000))
    assert (tmp_path / "bomb.png").stat().st_size < 10_000
    with pytest.raises(ImageLoadError, match="20000x20000 = 400,000,000 pixels"):
        load_image(tmp_path / "bomb.png")


# ----------------------------------------------------------------------------- masks


def test_mask_threshold_at_127(tmp_path):
    values = np.array([[0, 127, 128, 255]], np.uint8)
    Image.fromarray(values, mode="L").save(tmp_path / "m.png")
    mask = load_mask(tmp_path / "m.png")
    assert mask.dtype == np.uint8 and mask.tolist() == [[0, 0, 255, 255]]


def test_rgba_mask_uses_its_alpha(tmp_path):
    rgba = np.zeros((4, 4, 4), np.uint8)  # black paint everywhere, hole = opaque strokes
    rgba[1:3, 1:3, 3] = 255
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "m.png")
    expected = np.zeros((4, 4), np.uint8)
    expected[1:3, 1:3] = 255
    np.testing.assert_array_equal(load_mask(tmp_path / "m.png"), expected)


def test_opaque_rgba_mask_uses_its_gray_values(tmp_path):
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 3] = 255
    rgba[0, 0, :3] = 255
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "m.png")
    assert load_mask(tmp_path / "m.png").sum() == 255


def test_colour_jpeg_mask_is_binary(tmp_path):
    rgb = np.zeros((16, 16, 3), np.uint8)
    rgb[4:12, 4:12] = 255
    Image.fromarray(rgb).save(tmp_path / "m.jpg")
    mask = load_mask(tmp_path / "m.jpg")
    assert set(np.unique(mask)) == {0, 255}
    assert mask[8, 8] == 255 and mask[0, 0] == 0


def test_mask_size_mismatch_names_both_sizes(tmp_path):
    Image.new("L", (30, 20)).save(tmp_path / "m.png")
    with pytest.raises(MaskSizeError) as err:
        load_mask(tmp_path / "m.png", size=(60, 40))
    assert "30x20" in str(err.value) and "60x40" in str(err.value)


def test_mask_resize_is_nearest_neighbour(tmp_path):
    small = np.zeros((2, 2), np.uint8)
    small[0, 1] = 255
    Image.fromarray(small, mode="L").save(tmp_path / "m.png")
    mask = load_mask(tmp_path / "m.png", size=(6, 4), resize=True)
    assert mask.shape == (4, 6) and set(np.unique(mask)) == {0, 255}
    assert mask[:2, 3:].min() == 255 and mask[:2, :3].max() == 0 and mask[2:].max() == 0


def test_empty_and_all_hole_masks(tmp_path):
    Image.new("L", (5, 3), 0).save(tmp_path / "empty.png")
    Image.new("L", (5, 3), 255).save(tmp_path / "full.png")
    assert load_mask(tmp_path / "empty.png", size=(5, 3)).max() == 0
    assert load_mask(tmp_path / "full.png", size=(5, 3)).min() == 255


def test_sketch_loads_like_a_mask(tmp_path):
    lines = np.zeros((8, 8), np.uint8)
    lines[4] = 200
    Image.fromarray(lines, mode="L").save(tmp_path / "s.png")
    sketch = iio.load_sketch(tmp_path / "s.png", size=(8, 8))
    assert sketch[4].min() == 255 and sketch.sum() == 255 * 8
    with pytest.raises(MaskSizeError, match="sketch"):
        iio.load_sketch(tmp_path / "s.png", size=(9, 8))


def test_save_mask_round_trip_and_png_only(tmp_path):
    mask = np.zeros((6, 7), bool)
    mask[2:4, 3:6] = True
    iio.save_mask(tmp_path / "m.png", mask)
    np.testing.assert_array_equal(load_mask(tmp_path / "m.png"), mask.astype(np.uint8) * 255)
    with pytest.raises(ValueError, match="PNG"):
        iio.save_mask(tmp_path / "m.jpg", mask)


# ----------------------------------------------------------------------------- safe writes


def test_save_refuses_to_overwrite_the_original(tmp_path):
    Image.fromarray(gradient_rgb(8, 8)).save(tmp_path / "orig.png")
    before = (tmp_path / "orig.png").read_bytes()
    loaded = load_image(tmp_path / "orig.png")
    with pytest.raises(FileExistsError, match="orig.png already exists"):
        save_image(tmp_path / "orig.png", np.zeros_like(loaded.rgb), like=loaded)
    assert (tmp_path / "orig.png").read_bytes() == before
    save_image(tmp_path / "orig.png", np.zeros_like(loaded.rgb), like=loaded, overwrite=True)
    assert load_image(tmp_path / "orig.png").rgb.max() == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["orig.png"]


def test_failed_write_leaves_old_file_and_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "out.png"
    target.write_bytes(b"previous result")

    def broken_encoder(self, fp, *args, **kwargs):
        fp.write(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", broken_encoder)
    with pytest.raises(OSError, match="disk full"):
        save_image(target, gradient_rgb(4, 4), overwrite=True)
    assert target.read_bytes() == b"previous result"
    assert os.listdir(tmp_path) == ["out.png"]


def test_saved_file_has_normal_permissions(tmp_path):
    path = save_image(tmp_path / "x.png", gradient_rgb(2, 2))
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_save_rejects_bad_arrays_and_formats(tmp_path):
    with pytest.raises(ValueError, match=r"RGB uint8 array \(H, W, 3\)"):
        save_image(tmp_path / "x.png", np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match="format"):
        save_image(tmp_path / "x.png", gradient_rgb(2, 2), format="NOPE")
    assert not list(tmp_path.iterdir())


def test_extension_chooses_format_over_original(tmp_path):
    Image.fromarray(gradient_rgb(8, 8)).save(tmp_path / "a.jpg")
    loaded = load_image(tmp_path / "a.jpg")
    save_image(tmp_path / "b.png", loaded.rgb, like=loaded)
    with Image.open(tmp_path / "b.png") as im:
        assert im.format == "PNG"
    np.testing.assert_array_equal(load_image(tmp_path / "b.png").rgb, loaded.rgb)


# ----------------------------------------------------------------------------- hardening
# Issue 13: memory bounded by what a decode costs, sizes checked from headers, pages and
# FIFOs reported instead of lost or waited on.


def test_16bit_rgba_over_the_bytes_limit_is_refused_before_decoding(tmp_path, rng, monkeypatch):
    write_16bit(tmp_path / "deep.png", rng.integers(0, 65536, (30, 40, 4), dtype=np.uint16))
    needed = 30 * 40 * 4 * 2
    assert load_image(tmp_path / "deep.png", max_bytes=needed).bit_depth == 16

    def no_decode(*args, **kwargs):
        raise AssertionError("decoded although the header says it is too large")

    monkeypatch.setattr(iio.cv2, "imdecode", no_decode)
    with pytest.raises(ImageLoadError) as err:
        load_image(tmp_path / "deep.png", max_bytes=needed - 1)
    assert str(err.value) == (
        f"cannot load {tmp_path / 'deep.png'}: 40x30 RGBA at 16 bits per sample decodes to "
        f"{needed:,} bytes, over the limit of {needed - 1:,} bytes")


def test_default_bytes_limit_halves_the_pixels_of_16bit_rgba():
    # An 8-bit RGBA photo at the pixel limit fits; a 16-bit RGBA one of that size does not.
    assert iio.DEFAULT_MAX_DECODE_BYTES == iio.DEFAULT_MAX_PIXELS * 4


def test_huge_mask_for_a_small_photo_is_refused_from_its_header(tmp_path, monkeypatch):
    (tmp_path / "m.png").write_bytes(png_bomb(10_900, 10_900))  # 118.8 MP, under the limit

    def no_decode(self, *args, **kwargs):
        raise AssertionError("mask decoded before its size was checked")

    monkeypatch.setattr(Image.Image, "load", no_decode)
    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decode)
    with pytest.raises(MaskSizeError, match=r"is 10900x10900 but the image is 481x321"):
        load_mask(tmp_path / "m.png", size=(481, 321))


def test_mask_size_check_uses_the_upright_size(tmp_path):
    plane = np.zeros((20, 30), np.uint8)
    plane[2:5, 3:9] = 255
    Image.fromarray(plane).save(tmp_path / "m.jpg", exif=exif_block(6), quality=100)
    mask = load_mask(tmp_path / "m.jpg", size=(20, 30))  # orientation 6: 30 wide stored
    np.testing.assert_array_equal(mask, np.rot90(plane, -1))
    with pytest.raises(MaskSizeError, match="is 20x30 but the image is 30x20"):
        load_mask(tmp_path / "m.jpg", size=(30, 20))


def test_large_mask_converted_in_strips_equals_the_whole_image_rule(tmp_path, rng):
    h, w = 1100, 37  # more rows than one strip
    rgba = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "alpha.png")
    np.testing.assert_array_equal(load_mask(tmp_path / "alpha.png"),
                                  np.where(rgba[..., 3] > 127, 255, 0))
    rgb = rgba[..., :3]
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    luma = (rgb.astype(np.uint32) @ np.array([299, 587, 114]) + 500) // 1000
    np.testing.assert_array_equal(load_mask(tmp_path / "rgb.png"), np.where(luma > 127, 255, 0))


def test_16bit_mask_still_thresholds_its_reduced_values(tmp_path):
    samples = np.array([[0, 127 * 257, 128 * 257, 65535]], np.uint16)
    write_16bit(tmp_path / "m.png", samples)
    assert load_mask(tmp_path / "m.png").tolist() == [[0, 0, 255, 255]]


def test_multi_page_tiff_says_only_the_first_page_is_edited(tmp_path, photo):
    pages = [Image.fromarray(photo), Image.fromarray(photo[::-1].copy()), Image.new("RGB", (8, 8))]
    pages[0].save(tmp_path / "scan.tif", save_all=True, append_images=pages[1:])
    loaded = load_image(tmp_path / "scan.tif")
    np.testing.assert_array_equal(loaded.rgb, photo)
    assert loaded.notes == ["scan.tif has 3 pages; only the first is edited and saved"]
    Image.fromarray(photo).save(tmp_path / "one.tif")
    assert load_image(tmp_path / "one.tif").notes == []


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
@pytest.mark.timeout(20)
def test_fifo_is_refused_not_waited_on(tmp_path):
    os.mkfifo(tmp_path / "pipe.png")
    with pytest.raises(ImageLoadError, match="pipe.png: not a regular file"):
        load_mask(tmp_path / "pipe.png")
    with pytest.raises(ImageLoadError, match="not a regular file"):
        load_image(tmp_path / "pipe.png")
