"""Atomic file writes: the one way Inpaint Studio puts a file on disk.

A crash, a full disk or an encoder error half-way through a write must never leave a
half-written photo, model, checkpoint or session under its final name (the app would list it
and fail to load it, or a resumed run would read garbage), and must never damage the file it
was about to replace. :func:`atomic_write` writes into a temporary file in the same folder
(same file system, so the rename is atomic), flushes it to the disk and renames it over the
destination in one step.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import BinaryIO, Callable


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

    The temporary file is ``.<name>.<random>.tmp`` beside ``path``; it is written, flushed and
    fsynced, then ``os.replace``-d onto ``path``, so readers see the old file or the new one,
    never a mix. It is created with mode ``0o666`` so the umask decides the permissions, as for
    any new file (``tempfile.mkstemp`` would make it owner-only). Returns ``path`` as a Path.
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

    temp = folder / f".{path.name}.{secrets.token_hex(4)}.tmp"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            write_fn(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    _sync_folder(folder)
    return path


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
