"""inpaint_studio.fileutil.atomic_write: all or nothing, no temp left, normal permissions."""

import os

import pytest

from inpaint_studio import fileutil
from inpaint_studio.fileutil import atomic_write


class Interrupted(BaseException):
    """Like KeyboardInterrupt: not an Exception, must still clean up."""


def test_writes_new_file_and_leaves_nothing_else(tmp_path):
    out = atomic_write(str(tmp_path / "a.bin"), lambda f: f.write(b"\x00payload\xff"))
    assert out == tmp_path / "a.bin"
    assert out.read_bytes() == b"\x00payload\xff"
    assert os.listdir(tmp_path) == ["a.bin"]


def test_destination_keeps_old_content_until_the_write_completes(tmp_path):
    target = tmp_path / "model.safetensors"
    target.write_bytes(b"old")
    seen = []

    def write(f):
        f.write(b"new part 1")
        seen.append(target.read_bytes())  # a reader in the middle of the write
        f.write(b", part 2")

    atomic_write(target, write)
    assert seen == [b"old"]
    assert target.read_bytes() == b"new part 1, part 2"


@pytest.mark.parametrize("error", [OSError("disk full"), Interrupted()])
def test_failure_keeps_old_file_and_removes_temp(tmp_path, error):
    target = tmp_path / "last.pt"
    target.write_bytes(b"previous checkpoint")

    def write(f):
        f.write(b"half")
        raise error

    with pytest.raises(type(error)):
        atomic_write(target, write)
    assert target.read_bytes() == b"previous checkpoint"
    assert os.listdir(tmp_path) == ["last.pt"]


def test_failure_on_a_new_name_creates_nothing(tmp_path):
    def failing_encoder(f):
        f.write(b"PNG header")
        raise ValueError("encoder failed")

    with pytest.raises(ValueError, match="encoder failed"):
        atomic_write(tmp_path / "x.png", failing_encoder)
    assert os.listdir(tmp_path) == []


def test_overwrite_false_refuses_existing_file(tmp_path):
    target = tmp_path / "orig.png"
    target.write_bytes(b"original photo")
    called = []
    with pytest.raises(FileExistsError, match="orig.png already exists; refusing to overwrite"):
        atomic_write(target, called.append, overwrite=False)
    assert called == []
    assert target.read_bytes() == b"original photo"
    atomic_write(tmp_path / "new.png", lambda f: f.write(b"ok"), overwrite=False)
    assert (tmp_path / "new.png").read_bytes() == b"ok"


def test_missing_folder_is_named_unless_parents_are_made(tmp_path):
    target = tmp_path / "runs" / "a" / "config.json"
    with pytest.raises(FileNotFoundError, match=r"folder .*runs[/\\]a does not exist"):
        atomic_write(target, lambda f: f.write(b"{}"))
    assert not (tmp_path / "runs").exists()
    atomic_write(target, lambda f: f.write(b"{}"), make_parents=True)
    assert target.read_bytes() == b"{}"


def test_folder_as_destination_is_refused(tmp_path):
    (tmp_path / "samples").mkdir()
    with pytest.raises(IsADirectoryError, match="samples is a folder"):
        atomic_write(tmp_path / "samples", lambda f: f.write(b"x"))
    assert os.listdir(tmp_path / "samples") == []


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_permissions_follow_the_umask_like_a_new_file(tmp_path, umask):
    old = os.umask(umask)
    try:
        out = atomic_write(tmp_path / "card.json", lambda f: f.write(b"{}"))
        plain = tmp_path / "plain.json"
        plain.write_bytes(b"{}")
    finally:
        os.umask(old)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask
    assert out.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777


def test_data_is_fsynced_before_the_rename(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(fileutil.os, "fsync", lambda fd: (events.append("fsync"), real_fsync(fd)))
    monkeypatch.setattr(fileutil.os, "replace",
                        lambda a, b: (events.append("replace"), real_replace(a, b)))
    atomic_write(tmp_path / "a", lambda f: f.write(b"x"))
    assert events[:2] == ["fsync", "replace"]
