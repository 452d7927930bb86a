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
