"""scripts/pack_device_data.py: the photos cut into parts that each fit a device call."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "pack_device_data.py"


def _load():
    spec = importlib.util.spec_from_file_location("pack_device_data", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _photos(folder: Path, sizes: list[int]) -> list[Path]:
    folder.mkdir()
    files = []
    for i, size in enumerate(sizes):
        f = folder / f"p{i:03d}.jpg"
        f.write_bytes(b"x" * size)
        files.append(f)
    return files


def test_parts_are_consecutive_runs_of_about_equal_size(tmp_path):
    # Consecutive runs keep the trainer's listing order (part a then part b = the original
    # folder), so a run on the parts holds out the same validation photos.
    pack = _load()
    files = _photos(tmp_path / "photos", [100, 300, 50, 250, 200, 100, 400, 600])
    for parts in (1, 2, 3):
        groups = pack.split_consecutive(files, parts)
        assert len(groups) == parts
        assert [f for g in groups for f in g] == files
        sizes = [sum(f.stat().st_size for f in g) for g in groups]
        # no part is more than one photo's size away from an equal share
        assert max(sizes) - 2000 / parts <= 600


def test_main_links_the_parts_and_says_whether_they_fit(tmp_path, capsys):
    pack = _load()
    _photos(tmp_path / "photos", [1000] * 10)
    (tmp_path / "photos" / ".hidden").write_bytes(b"not a photo")
    assert pack.main(["--data", str(tmp_path / "photos"), "--out", str(tmp_path / "out")]) == 0
    a, b = sorted(p.name for p in (tmp_path / "out" / "a").iterdir()), \
        sorted(p.name for p in (tmp_path / "out" / "b").iterdir())
    assert a + b == [f"p{i:03d}.jpg" for i in range(10)] and len(a) == 5
    text = capsys.readouterr().out
    assert text.count("fits") == 2 and "tracked files" in text


def test_an_empty_folder_is_refused_with_a_message(tmp_path, capsys):
    pack = _load()
    (tmp_path / "empty").mkdir()
    assert pack.main(["--data", str(tmp_path / "empty"), "--out", str(tmp_path / "out")]) == 1
    assert "no photos in" in capsys.readouterr().err
