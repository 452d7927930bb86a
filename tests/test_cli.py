"""The ``inpaint-studio`` command: single and folder fills, errors, engines table, app launch."""

from __future__ import annotations

import sys
import types
from typing import Iterator

import numpy as np
import pytest
from PIL import Image

from inpaint_studio import cli
from inpaint_studio.engine import Availability, CoreStage, Engine, FillOptions, registry
from inpaint_studio.imageio import load_image

from .data_gen import exif_block

FILL_COLOUR = (10, 200, 30)


class TwoStageFake(Engine):
    """Paints the hole a flat colour: darker as "coarse", exact as "refined"."""

    name = "fake"
    title = "Fake"
    description = "flat colour, for tests"
    stage_names = ("coarse", "refined")

    def fill_core(self, image, hole, sketch, options: FillOptions) -> Iterator[CoreStage]:
        for name, scale in (("coarse", 0.5), ("refined", 1.0)):
            out = image.copy()
            out[hole] = (np.array(FILL_COLOUR) * scale).astype(np.uint8)
            yield CoreStage(name, out)


class BrokenFake(TwoStageFake):
    name = "broken"
    description = "never available"

    def availability(self) -> Availability:
        return Availability(False, "needs weights that are not installed")


@pytest.fixture(autouse=True)
def fake_engines(monkeypatch):
    """Registers the fakes for one test only and makes them the default engine; deep-model
    discovery is switched off so these tests never import torch."""
    monkeypatch.setattr(registry, "_CACHE", {})
    monkeypatch.setattr(registry, "_deep_engines", lambda device: [])
    monkeypatch.setitem(registry._FACTORIES, "fake", TwoStageFake)
    monkeypatch.setitem(registry._FACTORIES, "broken", BrokenFake)
    monkeypatch.setattr(cli, "default_engine_name", lambda device="auto": "fake")


def _write_photo(path, rgb, **params):
    Image.fromarray(rgb).save(path, **params)
    return path


def _write_mask(path, shape, box=(10, 20, 30, 50)):
    mask = np.zeros(shape, np.uint8)
    y0, y1, x0, x1 = box
    mask[y0:y1, x0:x1] = 255
    Image.fromarray(mask).save(path)
    return mask


# ----------------------------------------------------------------------------- single


def test_single_fill_default_output_keeps_format_and_exif(tmp_path, photo, capsys):
    src = _write_photo(tmp_path / "holiday.jpg", photo, quality=95, exif=exif_block(6))
    upright_shape = (photo.shape[1], photo.shape[0])  # orientation 6: portrait on load
    _write_mask(tmp_path / "m.png", upright_shape)
    before = src.read_bytes()

    assert cli.main(["fill", str(src), "--mask", str(tmp_path / "m.png")]) == 0

    out = tmp_path / "holiday_filled.jpg"
    result = load_image(out)
    assert result.format == "JPEG" and result.size == (photo.shape[0], photo.shape[1])
    assert np.abs(result.rgb[15, 40].astype(int) - FILL_COLOUR).max() < 12
    with Image.open(out) as im:
        assert im.getexif()[0x010F] == "TestCam" and 0x0112 not in im.getexif()
    assert src.read_bytes() == before
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[0] == "coarse" and lines[1].split()[0] == "refined"
    assert float(lines[1].split()[1]) >= float(lines[0].split()[1])
    assert lines[2] == f"wrote {out} (fake)"


class DeepFake(TwoStageFake):
    """The flat-colour fake, declared deep: ``--texture patchmatch`` adds a texture stage."""

    name = "deepfake"
    kind = "deep"


def test_texture_option_adds_the_texture_stage_to_a_deep_engine(tmp_path, photo, capsys, monkeypatch):
    monkeypatch.setitem(registry._FACTORIES, "deepfake", DeepFake)
    src = _write_photo(tmp_path / "p.png", photo)
    _write_mask(tmp_path / "m.png", photo.shape[:2])
    base = ["fill", str(src), "--mask", str(tmp_path / "m.png"), "--engine", "deepfake"]
    assert cli.main([*base, "--texture", "none", "--out", str(tmp_path / "plain.png")]) == 0
    plain = [line.split()[0] for line in capsys.readouterr().out.splitlines()[:-1]]
    assert plain == ["coarse", "refined"]
    assert cli.main([*base, "--out", str(tmp_path / "t.png")]) == 0  # the default: patchmatch
    textured = [line.split()[0] for line in capsys.readouterr().out.splitlines()[:-1]]
    assert textured == ["coarse", "refined", "texture"]
    # The flat guide gives a flat fill: texture is copied from the photo, coloured like the guide.
    hole = np.zeros(photo.shape[:2], bool)
    hole[10:20, 30:50] = True
    result = load_image(tmp_path / "t.png").rgb
    assert not np.array_equal(result[hole], load_image(tmp_path / "plain.png").rgb[hole])
    np.testing.assert_array_equal(result[~hole][:100], photo[~hole][:100])


class PrecisionFake(TwoStageFake):
    """Names the precision it was asked for the way the deep engine names the one that ran."""

    name = "precisionfake"

    def fill_core(self, image, hole, sketch, options: FillOptions) -> Iterator[CoreStage]:
        ran = {"auto": "bf16-or-fp32"}.get(options.precision, options.precision)
        for stage in super().fill_core(image, hole, sketch, options):
            yield CoreStage(stage.name, stage.image, {"precision": ran})


def test_precision_option_reaches_the_engine_and_the_output_line_names_it(tmp_path, photo, capsys,
                                                                          monkeypatch):
    monkeypatch.setitem(registry._FACTORIES, "precisionfake", PrecisionFake)
    src = _write_photo(tmp_path / "p.png", photo)
    _write_mask(tmp_path / "m.png", photo.shape[:2])
    base = ["fill", str(src), "--mask", str(tmp_path / "m.png"), "--engine", "precisionfake"]
    for pref, ran in (("fp32", "fp32"), ("bf16", "bf16"), (None, "bf16-or-fp32")):
        out = tmp_path / f"{pref}.png"
        assert cli.main([*base, "--out", str(out)] + (["--precision", pref] if pref else [])) == 0
        assert capsys.readouterr().out.splitlines()[-1] == f"wrote {out} (precisionfake, {ran})"
    assert cli.main([*base, "--precision", "fp8"]) != 0
    assert "argument --precision: invalid choice: 'fp8'" in capsys.readouterr().err


def test_png_fill_keeps_pixels_outside_hole_exactly(tmp_path, photo):
    src = _write_photo(tmp_path / "p.png", photo)
    mask = _write_mask(tmp_path / "m.png", photo.shape[:2])
    out = tmp_path / "custom.png"
    assert cli.main(["fill", str(src), "--mask", str(tmp_path / "m.png"), "--out", str(out)]) == 0
    result = load_image(out).rgb
    assert (result[mask > 0] == FILL_COLOUR).all()
    far = np.ones_like(mask, bool)
    far[5:35, 25:55] = False  # hole plus the seam band
    np.testing.assert_array_equal(result[far], photo[far])


def test_refuses_to_overwrite_input_or_existing_output(tmp_path, photo, capsys):
    src = _write_photo(tmp_path / "p.png", photo)
    _write_mask(tmp_path / "m.png", photo.shape[:2])
    before = src.read_bytes()
    args = ["fill", str(src), "--mask", str(tmp_path / "m.png")]

    assert cli.main(args + ["--out", str(src)]) == 1
    assert "refusing to overwrite the input" in capsys.readouterr().err
    assert src.read_bytes() == before

    (tmp_path / "p_filled.png").write_bytes(b"earlier result")
    assert cli.main(args) == 1
    assert "already exists" in capsys.readouterr().err
    assert (tmp_path / "p_filled.png").read_bytes() == b"earlier result"

    assert cli.main(args + ["--overwrite"]) == 0
    assert load_image(tmp_path / "p_filled.png").size == (photo.shape[1], photo.shape[0])


def test_a_missing_mask_is_named_before_an_existing_output(tmp_path, photo, capsys):
    # A retry with --overwrite would still fail on the mask: say that first.
    src = _write_photo(tmp_path / "p.png", photo)
    (tmp_path / "p_filled.png").write_bytes(b"earlier result")
    assert cli.main(["fill", str(src), "--mask", str(tmp_path / "typo.png")]) == 1
    err = capsys.readouterr().err
    assert "typo.png" in err and "already exists" not in err
    assert (tmp_path / "p_filled.png").read_bytes() == b"earlier result"


def test_bad_image_gives_one_line_error_without_traceback(tmp_path, capsys):
    (tmp_path / "x.jpg").write_bytes(b"\xff\xd8\xff garbage")
    _write_mask(tmp_path / "m.png", (8, 8))
    assert cli.main(["fill", str(tmp_path / "x.jpg"), "--mask", str(tmp_path / "m.png")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: cannot load") and "x.jpg" in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "x_filled.jpg").exists()


def test_mask_size_mismatch_and_resize_option(tmp_path, photo, capsys):
    src = _write_photo(tmp_path / "p.png", photo)
    _write_mask(tmp_path / "small.png", (48, 64), box=(5, 10, 15, 25))
    args = ["fill", str(src), "--mask", str(tmp_path / "small.png")]
    assert cli.main(args) == 1
    err = capsys.readouterr().err
    assert "64x48" in err and "128x96" in err
    assert cli.main(args + ["--resize-mask"]) == 0
    result = load_image(tmp_path / "p_filled.png").rgb
    assert (result[10:20, 30:50] == FILL_COLOUR).all()  # rows 5:10, cols 15:25 doubled
    assert not (result[21:, 51:] == FILL_COLOUR).all(axis=-1).any()


def test_empty_mask_writes_photo_unchanged_with_note(tmp_path, photo, capsys):
    src = _write_photo(tmp_path / "p.png", photo)
    Image.new("L", (photo.shape[1], photo.shape[0]), 0).save(tmp_path / "m.png")
    assert cli.main(["fill", str(src), "--mask", str(tmp_path / "m.png")]) == 0
    assert "marks no hole" in capsys.readouterr().err
    np.testing.assert_array_equal(load_image(tmp_path / "p_filled.png").rgb, photo)


def test_unknown_and_unavailable_engines(tmp_path, photo, capsys):
    src = _write_photo(tmp_path / "p.png", photo)
    _write_mask(tmp_path / "m.png", photo.shape[:2])
    args = ["fill", str(src), "--mask", str(tmp_path / "m.png"), "--engine"]
    assert cli.main(args + ["nope"]) == 1
    err = capsys.readouterr().err
    assert "unknown engine 'nope'" in err and "fake" in err
    assert cli.main(args + ["broken"]) == 1
    assert "needs weights that are not installed" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv,message",
    [
        (["fill", "a.png"], "needs IMAGE and --mask"),
        (["fill", "a.png", "--mask", "m.png", "--input", "d", "--masks", "d"], "not both"),
        (["fill", "--input", "d", "--masks", "d"], "--out DIR"),
        (["fill", "a.png", "--mask", "m.png", "--strategy", "tiles"], "invalid choice"),
        (["fill", "a.png", "--mask", "m.png", "--texture", "sharp"], "invalid choice"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_usage_errors_exit_2(argv, message, capsys):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_help_exits_0(capsys):
    assert cli.main(["fill", "--help"]) == 0
    assert "--resize-mask" in capsys.readouterr().out


# ----------------------------------------------------------------------------- folder


def test_folder_mode_matches_masks_and_survives_failures(tmp_path, photo, capsys):
    photos, masks, out = tmp_path / "in", tmp_path / "masks", tmp_path / "out"
    photos.mkdir()
    masks.mkdir()
    _write_photo(photos / "a.png", photo)
    _write_mask(masks / "a.png", photo.shape[:2])
    _write_photo(photos / "b.jpg", photo, quality=95)
    _write_mask(masks / "b_mask.png", photo.shape[:2])
    full = (photos / "a.png").read_bytes()
    (photos / "c.png").write_bytes(full[: len(full) // 3])  # truncated
    _write_mask(masks / "c.png", photo.shape[:2])
    _write_photo(photos / "d.png", photo)  # no mask
    (photos / "notes.txt").write_text("not a photo, not listed")

    code = cli.main(["fill", "--input", str(photos), "--masks", str(masks), "--out", str(out)])

    assert code == 1
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.jpg"]
    assert (load_image(out / "a.png").rgb[15, 40] == FILL_COLOUR).all()
    assert load_image(out / "b.jpg").format == "JPEG"
    captured = capsys.readouterr()
    assert "filled 2 of 4 photos" in captured.out
    assert "2 failed:" in captured.err
    assert "  c.png: cannot load" in captured.err and "truncated" in captured.err
    assert "  d.png: no mask named d_mask.* or d.*" in captured.err
    assert "filling" in captured.err  # the progress bar went to stderr
    assert (photos / "a.png").read_bytes() == full


def test_folder_mode_all_good_exits_0_and_masks_beside_photos(tmp_path, photo):
    folder, out = tmp_path / "shots", tmp_path / "done"
    folder.mkdir()
    _write_photo(folder / "a.png", photo)
    _write_mask(folder / "a_mask.png", photo.shape[:2])
    assert cli.main(["fill", "--input", str(folder), "--masks", str(folder), "--out", str(out)]) == 0
    assert [p.name for p in out.iterdir()] == ["a.png"]


def test_folder_mode_beside_photos_never_uses_a_photo_as_its_own_mask(tmp_path, photo, capsys):
    folder, out = tmp_path / "shots", tmp_path / "done"
    folder.mkdir()
    _write_photo(folder / "a.png", photo)
    _write_mask(folder / "a_mask.png", photo.shape[:2])
    _write_photo(folder / "b.png", photo)  # no b_mask: b.png must not mask itself
    code = cli.main(["fill", "--input", str(folder), "--masks", str(folder), "--out", str(out)])
    assert code == 1
    assert [p.name for p in out.iterdir()] == ["a.png"]
    assert f"  b.png: no mask named b_mask.* in {folder}" in capsys.readouterr().err


def test_folder_mode_refuses_to_write_into_input(tmp_path, photo, capsys):
    folder = tmp_path / "shots"
    folder.mkdir()
    _write_photo(folder / "a.png", photo)
    assert cli.main(["fill", "--input", str(folder), "--masks", str(folder),
                     "--out", str(folder)]) == 2
    assert "photos would be overwritten" in capsys.readouterr().err


def test_ambiguous_masks_are_reported(tmp_path):
    (tmp_path / "a.png").write_bytes(b"")
    (tmp_path / "a.jpg").write_bytes(b"")
    with pytest.raises(ValueError, match="several masks match: a.jpg, a.png"):
        cli.find_mask(tmp_path, "a")


# ----------------------------------------------------------------------------- engines / app


def test_engines_table_shows_availability_and_reason(capsys):
    assert cli.main(["engines"]) == 0
    lines = capsys.readouterr().out.splitlines()
    fake = next(line for line in lines if line.startswith("fake "))
    broken = next(line for line in lines if line.startswith("broken "))
    assert " yes " in fake and "flat colour" in fake
    assert " no " in broken and "needs weights that are not installed" in broken
    assert lines[-1] == "default: fake"


@pytest.mark.parametrize("argv,expected", [([], []), (["app"], []),
                                           (["app", "photo.jpg"], ["photo.jpg"])])
def test_app_is_started_lazily(monkeypatch, argv, expected):
    calls = []
    fake_app = types.ModuleType("inpaint_studio.ui.app")
    fake_app.main = lambda args=None: calls.append(args) or 0
    monkeypatch.setitem(sys.modules, "inpaint_studio.ui.app", fake_app)
    assert cli.main(argv) == 0
    assert calls == [expected]


# ----------------------------------------------------------------------------- real engine


def test_telea_end_to_end_removes_an_object(tmp_path, photo, monkeypatch):
    scene = photo.copy()
    scene[40:56, 60:76] = (255, 0, 255)  # a magenta "object" on the smooth photo
    src = _write_photo(tmp_path / "scene.png", scene)
    _write_mask(tmp_path / "m.png", photo.shape[:2], box=(38, 58, 58, 78))
    assert cli.main(["fill", str(src), "--mask", str(tmp_path / "m.png"),
                     "--engine", "telea", "--strategy", "full"]) == 0
    result = load_image(tmp_path / "scene_filled.png").rgb
    filled = result[40:56, 60:76].astype(int)
    # No magenta left, and the fill is close to the smooth photo underneath.
    assert not ((filled[..., 0] > 200) & (filled[..., 1] < 60) & (filled[..., 2] > 200)).any()
    assert np.abs(filled - photo[40:56, 60:76]).mean() < 40
    np.testing.assert_array_equal(result[:30], scene[:30])


# ----------------------------------------------------------------------------- issue 13


def test_mask_size_mismatch_names_the_resize_option(tmp_path, photo, capsys):
    src = _write_photo(tmp_path / "p.png", photo)
    _write_mask(tmp_path / "small.png", (48, 64))
    assert cli.main(["fill", str(src), "--mask", str(tmp_path / "small.png")]) == 1
    err = capsys.readouterr().err
    assert err.strip().endswith("use a mask of the same size or pass --resize-mask to scale it")


@pytest.mark.parametrize("out_of", ["masks", "masks_sub", "input_sub"])
def test_folder_mode_refuses_an_output_folder_that_is_or_lies_inside_an_input(
        tmp_path, photo, capsys, out_of):
    photos, masks = tmp_path / "photos", tmp_path / "masks"
    photos.mkdir()
    masks.mkdir()
    _write_photo(photos / "a.png", photo)
    _write_mask(masks / "a.png", photo.shape[:2])
    before = (masks / "a.png").read_bytes()
    out = {"masks": masks, "masks_sub": masks / "filled", "input_sub": photos / "filled"}[out_of]
    code = cli.main(["fill", "--input", str(photos), "--masks", str(masks), "--out", str(out),
                     "--overwrite"])
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "would be overwritten" in err
    assert ("--masks folder" in err) == out_of.startswith("masks")
    assert (masks / "a.png").read_bytes() == before
    assert sorted(p.name for p in masks.iterdir()) == ["a.png"]


def test_whole_image_mask_is_refused_with_one_line(tmp_path, photo, capsys):
    src = _write_photo(tmp_path / "p.png", photo)
    Image.new("L", (photo.shape[1], photo.shape[0]), 255).save(tmp_path / "all.png")
    assert cli.main(["fill", str(src), "--mask", str(tmp_path / "all.png")]) == 1
    err = capsys.readouterr().err
    assert err == "error: the mask covers the whole image: there are no known pixels to fill " \
                  "it from (leave part of the photo unmasked)\n"
    assert not (tmp_path / "p_filled.png").exists()


def test_multi_page_tiff_note_is_printed(tmp_path, photo, capsys):
    pages = [Image.fromarray(photo), Image.fromarray(photo)]
    pages[0].save(tmp_path / "scan.tif", save_all=True, append_images=pages[1:])
    _write_mask(tmp_path / "m.png", photo.shape[:2])
    assert cli.main(["fill", str(tmp_path / "scan.tif"), "--mask", str(tmp_path / "m.png")]) == 0
    assert "note: scan.tif has 2 pages; only the first is edited and saved" in capsys.readouterr().err


@pytest.mark.skipif(not hasattr(__import__("os"), "mkfifo"), reason="no FIFOs here")
@pytest.mark.timeout(30)
def test_fifo_as_mask_fails_at_once(tmp_path, photo, capsys):
    import os

    src = _write_photo(tmp_path / "p.png", photo)
    os.mkfifo(tmp_path / "pipe.png")
    assert cli.main(["fill", str(src), "--mask", str(tmp_path / "pipe.png")]) == 1
    assert "pipe.png: not a regular file" in capsys.readouterr().err


def test_sigterm_exits_143_with_one_line(monkeypatch, capsys):
    from inpaint_studio.termination import Terminated

    def killed(args):
        raise Terminated("terminated by signal 15")

    monkeypatch.setattr(cli, "_run_engines", killed)
    import signal

    saved = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        assert cli.main(["engines"]) == 143
        from inpaint_studio import termination

        assert signal.getsignal(signal.SIGTERM) is termination._raise_terminated
    finally:
        signal.signal(signal.SIGTERM, saved)
    assert capsys.readouterr().err == "error: terminated\n"


def test_old_torch_is_named_in_one_line_at_start(monkeypatch, capsys):
    from inpaint_studio import torch_check

    monkeypatch.setattr(torch_check, "installed_torch_version", lambda: "2.5.1+cpu")
    monkeypatch.setattr(cli, "unsafe_torch_warning", torch_check.unsafe_torch_warning)
    assert cli.main(["engines"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err == ["warning: torch 2.5.1+cpu can be made to run code while loading a checkpoint "
                   "(CVE-2025-32434); install torch>=2.6"]
    assert torch_check.unsafe_torch_warning("2.6.0") == "" and torch_check.unsafe_torch_warning("2.13.0+cpu") == ""
