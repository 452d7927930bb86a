"""Cost per image of the training data pipeline (trainer/data.py), part by part.

    python bench/data_speed.py                          # ../shared/data/train, 128 px
    python bench/data_speed.py --data DIR --size 256 --images 200

Prints milliseconds per image for each part of ``InpaintDataset.__getitem__`` (JPEG decode
with the random rescale, crop and flip, free-form/box mask, sketch edges, tensor
conversion), the whole item, and what one data-loader worker can feed (images/s), against the
training target of 10 images/s at 128 px (issue 10). Single-threaded, as a loader worker is.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from inpaint_studio.sketch import edge_sketch, sketch_in_hole  # noqa: E402
from trainer.data import InpaintDataset, list_images, read_photo  # noqa: E402

TARGET_IMAGES_PER_S = 10.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "train"))
    parser.add_argument("--size", type=int, default=128, help="crop size (default 128)")
    parser.add_argument("--images", type=int, default=100, help="images to time (default 100)")
    parser.add_argument("--quick", action="store_true", help="30 images")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    paths = list_images([args.data])
    n = min(30 if args.quick else args.images, len(paths))
    ds = InpaintDataset(paths, size=args.size, sketch_prob=1.0, seed=0)
    parts = {"decode + rescale": 0.0, "crop + flip": 0.0, "mask": 0.0, "sketch": 0.0}
    for i in range(n):
        rng = ds._rng(i)
        t0 = time.perf_counter()
        rgb = read_photo(paths[i], ds._short_side(rng), ds.min_side)
        t1 = time.perf_counter()
        crop = ds._crop(rgb, rng)
        t2 = time.perf_counter()
        mask = ds.masks(args.size, args.size, rng)
        t3 = time.perf_counter()
        sketch_in_hole(edge_sketch(crop, ds.sketch_method), mask)
        t4 = time.perf_counter()
        for key, dt in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            parts[key] += dt
    t0 = time.perf_counter()
    for i in range(n):
        ds[i]
    whole = (time.perf_counter() - t0) / n
    print(f"data pipeline at {args.size} px, {n} photos from {args.data}, one thread "
          f"(sketch on every item; training draws it with probability 0.5)")
    for key, total in parts.items():
        print(f"  {key:<18} {1e3 * total / n:7.2f} ms/image")
    print(f"  {'whole item':<18} {1e3 * whole:7.2f} ms/image -> {1 / whole:6.1f} images/s per "
          f"worker (target {TARGET_IMAGES_PER_S:.0f}: "
          f"{'met' if 1 / whole >= TARGET_IMAGES_PER_S else 'MISSED'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
