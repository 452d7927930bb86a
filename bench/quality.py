"""Fill quality of engines on the fixed evaluation pairs, by hole-ratio bin.

Protocol (``<data>/README.md``): each row of ``eval_pairs.tsv`` pairs an eval photo with a mask;
the mask is resized nearest-neighbour to the photo and thresholded at 127; the photo is filled
through the engine API with the default strategy; scores are L1 over the hole, L1 over the
image (both mean absolute error in [0, 1]), PSNR and SSIM over the image, averaged per bin.

    python bench/quality.py --engines patchmatch,telea,ns[,pypatchmatch] [--quick N] [--sheet PATH]
                            [--data DIR] [--update-docs]

``pypatchmatch`` is the PyPI ``pypatchmatch`` library (``pip install pypatchmatch``, the ``bench``
extra), run through the same engine API (same crop, zeroed hole, paste-back) with 7x7 patches
like ours and a fixed seed; only this benchmark imports it, never the package.

Prints one table (bin x engine) and writes a contact sheet PNG: for a few pairs, the input with
its hole shown, each engine's fill, and the original. The sheet goes to ``out/quality_sheet.png``
(git-ignored) unless ``--sheet`` names another path; ``--update-docs`` writes the tracked
``docs/quality_sheet.png`` the README shows, and only then.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

if __package__ in (None, ""):  # run as a script: make ``bench`` and the package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import REPO, EvalPair, default_data_dir, load_pair, read_eval_pairs  # noqa: E402
from inpaint_studio.engine import FillOptions, FillRequest, get_engine  # noqa: E402
from inpaint_studio.engine.base import CoreStage, Engine  # noqa: E402
from inpaint_studio.engine.request import TEXTURES  # noqa: E402
from inpaint_studio.metrics import l1, psnr, ssim  # noqa: E402

METRICS = ("hole_l1", "image_l1", "psnr", "ssim", "seconds")
THUMB_HEIGHT = 200
HOLE_TINT = np.array([255, 0, 255], np.float32)
PYPATCHMATCH = "pypatchmatch"


class PyPatchMatchReference(Engine):
    """The ``pypatchmatch`` library behind our engine API, for comparison only (not registered).

    Patch radius 3 (7x7 patches, as ours and as its examples); its random seed is set from the
    request before every fill so runs repeat."""

    name = PYPATCHMATCH
    title = "pypatchmatch (PyPI reference)"
    kind = "classical"
    working_size = None
    multiple = 1
    stage_names = ("final",)

    def fill_core(self, image, hole, sketch, options: FillOptions):
        from patchmatch import patch_match

        patch_match.set_random_seed(options.seed)
        yield CoreStage("final", patch_match.inpaint(image, hole, patch_size=3))


def make_engine(name: str) -> Engine:
    """A registered engine by name, or the pypatchmatch reference; a clear exit when the
    library is missing."""
    if name != PYPATCHMATCH:
        return get_engine(name)
    try:
        import patchmatch  # noqa: F401
    except ImportError as exc:
        raise SystemExit(f"--engines {PYPATCHMATCH} needs the library: pip install pypatchmatch ({exc})")
    return PyPatchMatchReference()


def score(original: np.ndarray, filled: np.ndarray, hole: np.ndarray, seconds: float) -> dict[str, float]:
    return {
        "hole_l1": l1(filled, original, hole),
        "image_l1": l1(filled, original),
        "psnr": psnr(filled, original),
        "ssim": ssim(filled, original),
        "seconds": seconds,
    }


def fill_once(engine, image: np.ndarray, mask: np.ndarray,
              options: FillOptions | None = None) -> tuple[np.ndarray, float]:
    """The engine's last stage for ``image`` / ``mask`` (default options unless given) and the
    seconds it took."""
    t0 = time.perf_counter()
    *_, last = engine.fill(FillRequest(image, mask, options=options or FillOptions()))
    return last.image, time.perf_counter() - t0


def show_hole(image: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """The input as the user sees it: hole pixels tinted magenta."""
    shown = image.astype(np.float32)
    shown[hole] = 0.35 * shown[hole] + 0.65 * HOLE_TINT
    return shown.astype(np.uint8)


def _thumb(image: np.ndarray, label: str) -> np.ndarray:
    h, w = image.shape[:2]
    tw = max(1, round(w * THUMB_HEIGHT / h))
    thumb = cv2.resize(image, (tw, THUMB_HEIGHT), interpolation=cv2.INTER_AREA)
    # A dark outline from the same thin glyphs shifted around the label: a thicker stroke would
    # not do, since OpenCV widens each glyph's advance with the thickness, and the outline's
    # letters would drift right of the white ones.
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            cv2.putText(thumb, label, (5 + dx, 18 + dy), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                        (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(thumb, label, (5, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return thumb


def contact_sheet(rows: list[list[tuple[str, np.ndarray]]]) -> np.ndarray:
    """Rows of labelled RGB images, each scaled to a common height, on a white background."""
    strips = []
    for row in rows:
        thumbs = [_thumb(img, label) for label, img in row]
        gap = np.full((THUMB_HEIGHT, 4, 3), 255, np.uint8)
        strips.append(np.concatenate([x for t in thumbs for x in (t, gap)][:-1], axis=1))
    width = max(s.shape[1] for s in strips)
    padded = [np.pad(s, ((0, 4), (0, width - s.shape[1]), (0, 0)), constant_values=255) for s in strips]
    return np.concatenate(padded, axis=0)


def sheet_pairs(pairs: list[EvalPair], count: int) -> list[EvalPair]:
    """``count`` pairs of different photos, cycling through the hole bins."""
    bins = sorted({p.hole_bin for p in pairs})
    chosen: list[EvalPair] = []
    used: set[Path] = set()
    for pair in pairs:
        if len(chosen) == count:
            break
        if pair.image not in used and pair.hole_bin == bins[len(chosen) % len(bins)]:
            chosen.append(pair)
            used.add(pair.image)
    return chosen


def format_table(results: dict[tuple[str, str], list[dict[str, float]]], engines: list[str]) -> str:
    bins = sorted({b for b, _ in results if b != "all"}) + ["all"]
    header = (f"{'hole bin':<9} {'engine':<12} {'n':>4} {'hole L1':>8} {'img L1':>8} "
              f"{'PSNR dB':>8} {'SSIM':>7} {'s/img':>7}")
    lines = [header, "-" * len(header)]
    for hole_bin in bins:
        for name in engines:
            scores = results.get((hole_bin, name), [])
            if not scores:
                continue
            mean = {k: float(np.mean([s[k] for s in scores])) for k in METRICS}
            lines.append(
                f"{hole_bin:<9} {name:<12} {len(scores):>4} {mean['hole_l1']:>8.4f} {mean['image_l1']:>8.4f} "
                f"{mean['psnr']:>8.2f} {mean['ssim']:>7.4f} {mean['seconds']:>7.2f}"
            )
    return "\n".join(lines)


OUT_SHEET = REPO / "out" / "quality_sheet.png"
DOCS_SHEET = REPO / "docs" / "quality_sheet.png"


def sheet_path(sheet: Path | None, update_docs: bool, parser: argparse.ArgumentParser) -> Path:
    """Where the contact sheet goes: ``--sheet``, else the docs copy with ``--update-docs``,
    else the git-ignored ``out/`` folder (a plain run never rewrites a tracked file)."""
    if sheet is not None and update_docs:
        parser.error("give --sheet PATH or --update-docs, not both")
    if sheet is not None:
        return sheet
    return DOCS_SHEET if update_docs else OUT_SHEET


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engines", default="patchmatch,telea,ns", help=f"comma-separated engine names ({PYPATCHMATCH} for the PyPI library)")
    parser.add_argument("--quick", type=int, metavar="N", help="only the first N photos (all their bins)")
    parser.add_argument("--data", type=Path, default=default_data_dir(), help="data folder (eval_pairs.tsv)")
    parser.add_argument("--sheet", type=Path, default=None, help=f"contact sheet PNG (default: {OUT_SHEET.relative_to(REPO)})")
    parser.add_argument("--update-docs", action="store_true", help=f"write the sheet to the tracked {DOCS_SHEET.relative_to(REPO)}")
    parser.add_argument("--sheet-rows", type=int, default=4, help="pairs shown on the contact sheet")
    parser.add_argument("--no-harmonise", dest="harmonise", action="store_false",
                        help="deep engines: the model's fill as it came, without the edge colour "
                        "harmonisation the app and the CLI apply (the model's own figures)")
    parser.add_argument("--texture", choices=TEXTURES, default="none",
                        help="deep engines: add the texture stage, as the app and the CLI do by "
                        "default (default: none, the engine API's default and the issue's protocol)")
    args = parser.parse_args(argv)
    args.sheet = sheet_path(args.sheet, args.update_docs, parser)

    names = [n.strip() for n in args.engines.split(",") if n.strip()]
    engines = {name: make_engine(name) for name in names}
    pairs = read_eval_pairs(args.data, args.quick)
    on_sheet = set(sheet_pairs(pairs, args.sheet_rows))
    options = FillOptions(harmonise=args.harmonise, texture=args.texture)
    results: dict[tuple[str, str], list[dict[str, float]]] = defaultdict(list)
    sheet_rows = []
    for index, pair in enumerate(pairs, 1):
        image, mask = load_pair(pair)
        hole = mask > 127
        row = [("input", show_hole(image, hole))]
        for name, engine in engines.items():
            filled, seconds = fill_once(engine, image, mask, options)
            scores = score(image, filled, hole, seconds)
            results[pair.hole_bin, name].append(scores)
            results["all", name].append(scores)
            row.append((name, filled))
        print(f"  [{index}/{len(pairs)}] {pair.image.name} {pair.hole_bin}", file=sys.stderr, flush=True)
        if pair in on_sheet:
            sheet_rows.append(row + [("original", image)])

    print(f"{len(pairs)} pairs from {args.data}, strategy crop (default)"
          + ("" if args.harmonise else ", deep fills not harmonised")
          + ("" if args.texture == "none" else f", deep fills with the {args.texture} texture stage"))
    print(format_table(results, names))
    if sheet_rows:
        args.sheet.parent.mkdir(parents=True, exist_ok=True)
        sheet = contact_sheet(sheet_rows)
        if not cv2.imwrite(str(args.sheet), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR)):
            raise SystemExit(f"could not write the contact sheet to {args.sheet}")
        print(f"contact sheet: {args.sheet}")


if __name__ == "__main__":
    main()
