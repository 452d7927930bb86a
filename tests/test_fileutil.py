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


# ----------------------------------------------------------------------------- issue 13


def _dead_pid() -> int:
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_stale_temps_of_killed_writers_are_removed_at_the_next_write(tmp_path, monkeypatch):
    monkeypatch.setattr(fileutil, "_CLEANED", set())
    dead = tmp_path / f".photo.png.{_dead_pid()}-0123abcd.tmp"
    live = tmp_path / f".last.pt.{os.getppid()}-89abcdef.tmp"  # a writer still running
    old_style = tmp_path / ".best.pt.deadbeef.tmp"
    fresh_old_style = tmp_path / ".other.pt.cafebabe.tmp"
    others = [tmp_path / ".notes.tmp", tmp_path / "photo.0123abcd.tmp", tmp_path / "keep.png",
              tmp_path / ".x.relay.tmp"]
    for f in [dead, live, old_style, fresh_old_style, *others]:
        f.write_bytes(b"partial")
    hour_ago = os.path.getmtime(old_style) - 3600
    os.utime(old_style, (hour_ago, hour_ago))

    atomic_write(tmp_path / "result.png", lambda f: f.write(b"done"))

    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted([live.name, fresh_old_style.name, "result.png", *(o.name for o in others)])


def test_temp_of_a_live_pid_is_removed_after_a_day(tmp_path):
    stuck = tmp_path / f".a.png.{os.getppid()}-00000000.tmp"
    stuck.write_bytes(b"")
    now = os.path.getmtime(stuck)
    assert fileutil.remove_stale_temps(tmp_path, now=now + 3600) == []
    assert fileutil.remove_stale_temps(tmp_path, now=now + fileutil.STALE_AFTER_SECONDS + 1) == [stuck]


def test_read_only_folder_message_names_the_destination(tmp_path, monkeypatch):
    real_open = os.open

    def refuse(path, *args, **kwargs):
        if str(path).endswith(".tmp"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(fileutil.os, "open", refuse)
    with pytest.raises(PermissionError) as err:
        atomic_write(tmp_path / "out.jpg", lambda f: f.write(b"x"))
    assert str(err.value) == f"cannot write {tmp_path / 'out.jpg'}: Permission denied"
    assert err.value.errno == 13 and ".tmp" not in str(err.value)


def test_full_disk_message_names_the_file_and_removes_the_temp(tmp_path):
    import errno

    def fill_up(f):
        f.write(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError) as err:
        atomic_write(tmp_path / "last.pt", fill_up)
    assert str(err.value) == f"cannot write {tmp_path / 'last.pt'}: No space left on device"
    assert err.value.errno == errno.ENOSPC
    assert os.listdir(tmp_path) == []


def test_sigterm_mid_write_unwinds_like_ctrl_c_and_leaves_no_temp(tmp_path):
    import signal

    from inpaint_studio.termination import Terminated, exit_status, terminate_like_interrupt

    target = tmp_path / "last.pt"
    target.write_bytes(b"previous")
    saved = signal.getsignal(signal.SIGTERM)
    try:
        assert terminate_like_interrupt()

        def killed_half_way(f):
            f.write(b"half")
            os.kill(os.getpid(), signal.SIGTERM)

        with pytest.raises(KeyboardInterrupt) as caught:
            atomic_write(target, killed_half_way)
    finally:
        signal.signal(signal.SIGTERM, saved)
    assert isinstance(caught.value, Terminated) and exit_status(caught.value) == 143
    assert exit_status(KeyboardInterrupt()) == 130
    assert os.listdir(tmp_path) == ["last.pt"] and target.read_bytes() == b"previous"
