"""Atomic file writes: the one way Inpaint Studio puts a file on disk.

A crash, a full disk or an encoder error half-way through a write must never leave a
half-written photo, model, checkpoint or session under its final name (the app would list it
and fail to load it, or a resumed run would read garbage), and must never damage the file it
was about to replace. :func:`atomic_write` writes into a temporary file in the same folder
(same file system, so the rename is atomic), flushes it to the disk and renames it over the
destination in one step.

A process killed outright (SIGKILL, power cut) cannot remove its temporary file; the next
write into that folder removes such leftovers of ours (see :func:`remove_stale_temps`).
"""

from __future__ import annotations

import os
import re
import secrets
import threading
import time
from pathlib import Path
from typing import BinaryIO, Callable

# Our temporary files: ``.<name>.<pid>-<8 hex>.tmp``; before the pid was added, ``.<name>.<8
# hex>.tmp``. Nothing else in a folder matches, so nothing else is ever removed.
_TEMP_NAME = re.compile(r"^\..+\.(?:(?P<pid>\d+)-)?[0-9a-f]{8}\.tmp$")
# A temp file older than this is stale even if its pid is alive (the pid was reused).
STALE_AFTER_SECONDS = 24 * 3600
# A temp without a pid (older versions) is stale once no write could still be going on.
_STALE_UNOWNED_SECONDS = 600
_CLEANED: set[Path] = set()
_CLEANED_LOCK = threading.Lock()


def atomic_write(
    path: str | os.PathLike,
    write_fn: Callable[[BinaryIO], object],
    *,
    overwrite: bool = True,
    make_parents: bool = False,
) -> Path:
    """Create or replace ``path`` with what ``write_fn`` writes, all at once or not at all.

    write_fn: called once with a binary file object open for writing (e.g.
        ``lambda f: f.write(data)`` or ``lambda f: image.save(f, format="PNG")``); its return
        value is ignored. Whatever it raises propagates after the temporary file is removed.
    overwrite: when False an existing ``path`` raises :class:`FileExistsError` before anything
        is written (a check, not a lock: a file created meanwhile by another process is
        replaced).
    make_parents: create missing parent folders; otherwise a missing folder raises
        :class:`FileNotFoundError` naming it.

    The temporary file is ``.<name>.<pid>-<random>.tmp`` beside ``path``; it is written,
    flushed and fsynced, then ``os.replace``-d onto ``path``, so readers see the old file or the
    new one, never a mix. It is created with mode ``0o666`` so the umask decides the
    permissions, as for any new file (``tempfile.mkstemp`` would make it owner-only). The first
    write of a process into a folder removes stale temporary files of ours there.

    An :class:`OSError` (read-only folder, full disk...) is re-raised as the same class with a
    message naming ``path``, never the temporary file. Returns ``path`` as a Path.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder, not a file name")
    if not overwrite and path.exists():
        raise FileExistsError(f"{path} already exists; refusing to overwrite it (ask to overwrite)")
    folder = path.parent
    if make_parents:
        folder.mkdir(parents=True, exist_ok=True)
    elif not folder.is_dir():
        raise FileNotFoundError(f"cannot save {path}: folder {folder} does not exist")

    _clean_once(folder)
    temp = folder / f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp"
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    except OSError as exc:
        raise _naming(exc, path) from None
    try:
        with os.fdopen(fd, "wb") as f:
            write_fn(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise _naming(exc, path) from exc
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    _sync_folder(folder)
    return path


def _naming(exc: OSError, path: Path) -> OSError:
    """``exc`` as the same class, its message naming the destination (the user never heard
    of our temporary file); ``errno`` is kept for callers that test it."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    if str(path) in reason:
        return exc
    named = type(exc)(f"cannot write {path}: {reason}")
    named.errno = exc.errno  # strerror/filename stay unset: they would replace the message
    return named


def remove_stale_temps(folder: str | os.PathLike, now: float | None = None) -> list[Path]:
    """Remove temporary files :func:`atomic_write` left in ``folder`` when its process was
    killed: those whose process is gone, any older than :data:`STALE_AFTER_SECONDS`, and
    pid-less ones of older versions after ten minutes. A temp of a live writer is kept.
    Returns what was removed; files that vanish or cannot be removed meanwhile are skipped."""
    now = time.time() if now is None else now
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        match = _TEMP_NAME.match(entry.name)
        if match is None:
            continue
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            age = now - entry.stat(follow_symlinks=False).st_mtime
            pid = match.group("pid")
            stale = age > STALE_AFTER_SECONDS or (
                not _process_alive(int(pid)) if pid else age > _STALE_UNOWNED_SECONDS
            )
            if stale:
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except OSError:
            continue
    return removed


def _process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (POSIX). Elsewhere, unknown: assume it does, so only
    the age rule removes files."""
    if pid == os.getpid():
        return True
    if os.name != "posix":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


def _clean_once(folder: Path) -> None:
    """:func:`remove_stale_temps` on the first write of this process into ``folder`` (a
    listing per write would make a large batch folder quadratic)."""
    key = folder.resolve()
    with _CLEANED_LOCK:
        if key in _CLEANED:
            return
        _CLEANED.add(key)
    remove_stale_temps(folder)


def _sync_folder(folder: Path) -> None:
    """Make the rename itself durable (POSIX: the new directory entry reaches the disk).
    Windows cannot open a folder for fsync; its rename is journaled by NTFS."""
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems (network mounts) refuse fsync on folders; the data is written
    finally:
        os.close(fd)
