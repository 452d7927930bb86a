"""Split the training photos into halves that can each travel to a lent GPU machine.

    python scripts/pack_device_data.py [--data ../shared/data/train] [--parts 2]

A device call carries the repository's tracked files plus the paths it names, 64 MiB in all
(the device tool's README). The tracked files (the shipped model and its relay state, the docs'
images) take about half of that, so the 44 MB of training photos do not fit in one call. They
are hard-linked (copied where links are impossible) into ``traindata/a``, ``traindata/b``, ...
(git-ignored; sub-folders kept), each small enough to carry with the tracked files. Carry one
part per call, the calls back to back: a warm machine keeps the ignored folders an earlier call
brought, so the last call trains on all of them (``scripts/device_relay_leg.sh``).

The parts are consecutive runs of the sorted file names, so the trainer, listing
``traindata/a`` then ``traindata/b``, sees the photos in the order it sees the original folder
and holds out the same validation photos as the CPU legs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from trainer.data import find_images  # noqa: E402

CALL_LIMIT = 64 * 2**20          # bytes a device call may carry, tracked files included
MARGIN = 4 * 2**20               # room for files committed before the call


def tracked_bytes() -> int:
    """Size of the repository's tracked files as they are in the working tree."""
    names = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, check=True,
                           capture_output=True).stdout.split(b"\0")
    return sum((REPO / os.fsdecode(n)).stat().st_size for n in names
               if n and (REPO / os.fsdecode(n)).is_file())


def split_consecutive(files: list[Path], parts: int) -> list[list[Path]]:
    """``files`` (sorted) cut into ``parts`` consecutive runs of about equal total size."""
    sizes = [f.stat().st_size for f in files]
    total, groups, current, acc = sum(sizes), [], [], 0
    for f, s in zip(files, sizes):
        if len(groups) < parts - 1 and acc + s / 2 > total * (len(groups) + 1) / parts:
            groups.append(current)
            current = []
        current.append(f)
        acc += s
    groups.append(current)
    return groups


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "train")
    parser.add_argument("--parts", type=int, default=2)
    parser.add_argument("--out", type=Path, default=REPO / "traindata")
    args = parser.parse_args(argv)
    # The trainer's own listing (image files only, hidden ones skipped, sorted per folder), so
    # the parts hold exactly what it would train on, in its order.
    files = list(find_images([args.data]))
    if not files:
        print(f"no photos in {args.data}", file=sys.stderr)
        return 1
    tracked = tracked_bytes()
    room = CALL_LIMIT - tracked - MARGIN
    groups = split_consecutive(files, args.parts)
    if args.out.exists():
        shutil.rmtree(args.out)
    for i, group in enumerate(groups):
        folder = args.out / chr(ord("a") + i)
        folder.mkdir(parents=True)
        for f in group:
            target = folder / f.relative_to(args.data)
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(f, target)
            except OSError:
                shutil.copy2(f, target)
        size = sum(f.stat().st_size for f in group)
        fits = ("fits" if size <= room
                else f"does NOT fit ({room / 2**20:.1f} MiB of room): use more --parts")
        shown = folder.relative_to(REPO) if folder.is_relative_to(REPO) else folder
        print(f"{shown}: {len(group)} photos, {size / 2**20:.1f} MiB, {fits}")
    print(f"tracked files: {tracked / 2**20:.1f} MiB; carry one part per call "
          f"(carry=[\"traindata/a\"], then [\"traindata/b\"] ...), back to back")
    return 0


if __name__ == "__main__":
    sys.exit(main())
