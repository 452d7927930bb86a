"""A/B of deep models (exported safetensors) on a quick subset of the evaluation pairs: the
figures and the look that decide a training recipe's arm.

    python bench/model_ab.py BASE.safetensors ARM.safetensors [...] [--labels base,arm,...]
                             [--quick 8] [--texture none|patchmatch] [--sheet out/model_ab.jpg]
                             [--data DIR]

Every model fills the pairs of the first ``--quick`` photos (all four hole bins of each)
through the engine API with the default options (strategy ``crop``, no texture stage), as
``bench/quality.py`` does; ``--texture patchmatch`` adds the texture stage, as the app and the
CLI do by default, to see what a model's fills become there. Per bin and model it prints:

* hole L1 (mean absolute error in [0, 1] over the hole) and PSNR over the image;
* detail, det/2 and det/4: the fill's mean |Laplacian| over the hole / the photo's, at full,
  half and quarter resolution (``bench/texture.detail_ratio``; 1.0 = as detailed as the photo):
  fine texture, then structure (edges a few pixels wide at quarter resolution are the photo's
  horizons and outlines; a blurred fill scores low there too);
* change: the mean absolute high-pass (image minus its 2 px Gaussian) of the fill minus the
  first model's fill, over the hole, in grey levels: how much fine structure a model adds or
  removes relative to the base (0 for the base itself). It counts a lattice and real detail
  alike: whether the detail is a lattice is judged on the sheet (A/B 13 found no single
  figure that separates them: a peak-over-median of the change's spectrum did not).

The sheet (PNG or JPEG by its suffix, written when ``--sheet`` is given) has one row per sheet
pair (different photos, cycling through the bins): 200 px crops at 100 % around the hole's deepest point, the
input, each model, the original; then the same for a 64 px centre shown at 3x, where a lattice
of a few pixels is plain to see. Asserts nothing.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

if __package__ in (None, ""):  # run as a script: make ``bench`` and the package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import default_data_dir, load_pair, read_eval_pairs  # noqa: E402
from bench.quality import contact_sheet, fill_once, sheet_pairs, show_hole  # noqa: E402
from bench.texture import deepest_window, detail_ratio  # noqa: E402
from inpaint_studio.engine import FillOptions  # noqa: E402
from inpaint_studio.engine.request import TEXTURES  # noqa: E402
from inpaint_studio.metrics import l1, psnr  # noqa: E402

CROP = 200    # px of the 100 % crops
ZOOM_CROP = 64  # px of the zoomed crops
ZOOM = 3
METRICS = ("hole_l1", "psnr", "detail", "detail_half", "detail_quarter", "change")


def high_pass(image: np.ndarray) -> np.ndarray:
    """Grey ``float32 (H, W)``: ``image`` (RGB ``uint8``) minus its Gaussian of 2 px."""
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return grey - cv2.GaussianBlur(grey, (0, 0), 2.0)


def open_models(paths: list[Path], labels: list[str]) -> list:
    """One CPU deep engine per model file; exits saying why when one cannot be used."""
    from inpaint_studio.engine.deep import DeepEngine

    engines = []
    for path, label in zip(paths, labels):
        engine = DeepEngine(path, device="cpu", name=label)
        if not engine.availability():
            raise SystemExit(f"cannot use {path}: {engine.availability().reason}")
        engines.append(engine)
    return engines


def crop_row(crops: list[tuple[str, np.ndarray]], rows: slice, cols: slice,
             zoom: int = 1) -> list[tuple[str, np.ndarray]]:
    """Each labelled image's ``[rows, cols]`` window, enlarged ``zoom`` times by pixel
    replication (a lattice stays a lattice, no interpolation smooths it)."""
    out = []
    for label, image in crops:
        part = image[rows, cols]
        if zoom > 1:
            part = cv2.resize(part, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_NEAREST)
        out.append((label, part))
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", type=Path, help="exported models; the first is the base")
    parser.add_argument("--labels", default="", help="comma-separated names, one per model")
    parser.add_argument("--quick", type=int, default=8, help="pairs of the first N photos")
    parser.add_argument("--texture", choices=TEXTURES, default="none",
                        help="texture stage after the model (default none: the model's own fill)")
    parser.add_argument("--sheet-pairs", type=int, default=8)
    parser.add_argument("--sheet", type=Path, default=None, help="write the crops' sheet here")
    parser.add_argument("--data", type=Path, default=default_data_dir())
    args = parser.parse_args(argv)
    labels = args.labels.split(",") if args.labels else [p.stem for p in args.models]
    if len(labels) != len(args.models):
        parser.error("--labels needs one name per model")

    engines = open_models(args.models, labels)
    pairs = read_eval_pairs(args.data, quick=args.quick)
    shown = set(sheet_pairs(pairs, args.sheet_pairs))
    results: dict[tuple[str, str], list[dict[str, float]]] = defaultdict(list)
    sheet_rows, zoom_rows = [], []
    for pair in pairs:
        image, mask = load_pair(pair)
        hole = mask > 127
        options = FillOptions(texture=args.texture)
        fills = [fill_once(engine, image, mask, options)[0] for engine in engines]
        base_hp = high_pass(fills[0])
        for label, fill in zip(labels, fills):
            results[(pair.hole_bin, label)].append({
                "hole_l1": l1(fill, image, hole), "psnr": psnr(fill, image),
                "detail": detail_ratio(fill, image, hole),
                "detail_half": detail_ratio(fill, image, hole, scale=2),
                "detail_quarter": detail_ratio(fill, image, hole, scale=4),
                "change": float(np.abs(high_pass(fill) - base_hp)[hole].mean())})
        if pair in shown:
            crops = [("input", show_hole(image, hole)), *zip(labels, fills), ("original", image)]
            rows, cols = deepest_window(hole, CROP)
            sheet_rows.append(crop_row(crops, rows, cols))
            zrows, zcols = deepest_window(hole, ZOOM_CROP)
            zoom_rows.append(crop_row(crops, zrows, zcols, ZOOM))

    print(f"{len(pairs)} pairs ({args.quick} photos), engine defaults, texture {args.texture}; "
          f"base = {labels[0]}")
    print("| bin | model | " + " | ".join(METRICS) + " |")
    print("|---" * (len(METRICS) + 2) + "|")
    for hole_bin in sorted({b for b, _ in results}):
        for label in labels:
            rows = results[(hole_bin, label)]
            cells = [f"{np.nanmean([r[m] for r in rows]):.4f}" for m in METRICS]
            print(f"| {hole_bin} | {label} | " + " | ".join(cells) + " |")
    if args.sheet is not None:
        args.sheet.parent.mkdir(parents=True, exist_ok=True)
        parts = [contact_sheet(sheet_rows), contact_sheet(zoom_rows)]
        width = max(p.shape[1] for p in parts)
        sheet = np.concatenate([np.pad(p, ((0, 0), (0, width - p.shape[1]), (0, 0)), constant_values=255)
                                for p in parts], axis=0)
        params = [cv2.IMWRITE_JPEG_QUALITY, 92] if args.sheet.suffix.lower() in (".jpg", ".jpeg") else []
        cv2.imwrite(str(args.sheet), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR), params)
        print(f"sheet: {args.sheet}")


if __name__ == "__main__":
    main()
