"""bench/quality.py writes its contact sheet to the git-ignored out/ folder unless asked to
update the tracked docs copy (issue 13, item 13)."""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

import pytest

from bench import quality

REPO = Path(__file__).resolve().parent.parent


class _Refused(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise _Refused(message)


def test_plain_run_writes_the_sheet_under_out_which_git_ignores():
    path = quality.sheet_path(None, False, _Parser())
    assert path == REPO / "out" / "quality_sheet.png"
    ignored = subprocess.run(["git", "check-ignore", "-q", str(path)], cwd=REPO)
    assert ignored.returncode == 0, "out/ must be git-ignored"


def test_update_docs_writes_the_tracked_sheet_and_an_explicit_path_wins(tmp_path):
    assert quality.sheet_path(None, True, _Parser()) == REPO / "docs" / "quality_sheet.png"
    assert quality.sheet_path(tmp_path / "s.png", False, _Parser()) == tmp_path / "s.png"
    with pytest.raises(_Refused, match="not both"):
        quality.sheet_path(tmp_path / "s.png", True, _Parser())


def test_texture_option_reaches_the_fill_options(tmp_path, monkeypatch):
    # --texture patchmatch measures what the app and the CLI fill with by default; without it
    # the engine API's default (no texture stage) is measured, as the protocol asks.
    import cv2
    import numpy as np

    (tmp_path / "eval").mkdir()
    (tmp_path / "masks").mkdir()
    cv2.imwrite(str(tmp_path / "eval" / "p.png"), np.full((32, 32, 3), 90, np.uint8))
    mask = np.zeros((32, 32), np.uint8)
    mask[8:20, 8:20] = 255
    cv2.imwrite(str(tmp_path / "masks" / "m.png"), mask)
    (tmp_path / "eval_pairs.tsv").write_text("image\tmask\thole_bin\np.png\tm.png\t10-20\n")
    seen = []

    def fake_fill(engine, image, mask, options=None):
        seen.append(options.texture)
        return image.copy(), 0.0

    monkeypatch.setattr(quality, "make_engine", lambda name: object())
    monkeypatch.setattr(quality, "fill_once", fake_fill)
    for flags, expected in (([], "none"), (["--texture", "patchmatch"], "patchmatch")):
        quality.main(["--engines", "deepfill_v2", "--data", str(tmp_path),
                      "--sheet", str(tmp_path / "s.png"), *flags])
        assert seen[-1] == expected
