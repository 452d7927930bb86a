"""Deep fill alone vs deep fill + texture stage (guided PatchMatch at full resolution) vs plain
PatchMatch, on the fixed evaluation pairs and on speed cases.

    python bench/texture.py [--model PATH] [--limit N] [--small-working-size 256]
                            [--sheet docs/texture_sheet.png] [--speed] [--first-fill]

Quality (``<data>/eval_pairs.tsv``, protocol of ``bench/quality.py``, default ``crop``
strategy): per hole-ratio bin, hole L1, PSNR and SSIM over the image, and the detail ratio:
mean absolute Laplacian of the result's grey image over the hole divided by the original's
(1.0 = as detailed as the photo, below = blurred), at full resolution ("detail", the finest
texture) and at half resolution ("det/2", texture a few pixels across: a fill can reach the
photo's finest detail with grain alone and still be smooth at this scale). Twice: with the
model's own working size, and with ``--small-working-size`` (the photos, up to 768 px, are
then filled small and upscaled, as a 12 MP photo's crop is at the real working size). One
fill with the texture option yields both "deep" (its refined stage) and "deep+texture" (its
texture stage); the s/img column is the time to that stage.

The deep model: ``--model``, else the shipped ``resources/models/deepfill_v2.safetensors`` (the
issue's bar is checked with it); without one, a stand-in says so in the output: OpenCV Telea at
the working size (smooth and blurred like an undertrained model).

``--speed``: a synthetic 512x512 photo with a 25 % hole and a 12 MP (4000x3000) one with a
3 % hole: time to the deep result, to the texture stage, and plain PatchMatch (after one
untimed warm-up fill). ``--first-fill``: PatchMatch's first fill in a fresh process vs its
second (numba kernels come from the on-disk cache, not a compile).

Writes a contact sheet of 100 % crops (input with the hole tinted, deep, deep+texture,
PatchMatch, original), taken from the small-working-size run. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

if __package__ in (None, ""):  # run as a script: make ``bench`` and the package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    REPO, default_data_dir, load_pair, read_eval_pairs, synthetic_hole, synthetic_photo,
)
from bench.quality import contact_sheet, sheet_pairs, show_hole  # noqa: E402
from inpaint_studio.engine import CoreStage, Engine, FillOptions, FillRequest, get_engine  # noqa: E402
from inpaint_studio.metrics import l1, psnr, ssim  # noqa: E402

METHODS = ("deep", "deep+texture", "patchmatch")
METRICS = ("hole_l1", "psnr", "ssim", "detail", "detail_half", "seconds")
CROP = 200  # contact sheet crops: 200x200 px shown at 100 % (the sheet's row height)
MODEL_CANDIDATES = (REPO / "resources" / "models" / "deepfill_v2.safetensors",)


class TeleaStandIn(Engine):
    """Stands in for an undertrained deep model when none exists: OpenCV Telea (smooth,
    texture-free) at a deep model's working size, yielding coarse and refined."""

    name = "telea-stand-in"
    title = "Telea standing in for a deep model"
    kind = "deep"
    multiple = 8
    stage_names = ("coarse", "refined")

    def __init__(self, working_size: int = 512):
        self.working_size = working_size

    def fill_core(self, image, hole, sketch, options):
        smooth = cv2.inpaint(image, hole.astype(np.uint8) * 255, 5, cv2.INPAINT_TELEA)
        yield CoreStage("coarse", smooth)
        yield CoreStage("refined", smooth)


def open_deep_engine(path: Path | None) -> tuple[Engine, str]:
    """The deep engine to measure and a line saying which it is."""
    from inpaint_studio.engine.deep import DeepEngine

    candidates = [path] if path is not None else [p for p in MODEL_CANDIDATES if p.is_file()]
    for candidate in candidates:
        engine = DeepEngine(candidate, device="cpu")
        if engine.availability():
            return engine, f"deep model {candidate} (working size {engine.working_size})"
        print(f"cannot use {candidate}: {engine.availability().reason}", file=sys.stderr)
    if path is not None:
        raise SystemExit(f"--model {path} cannot be used")
    return TeleaStandIn(), "NO deep model found: Telea at 512 px stands in for a blurred deep fill"


def detail_ratio(result: np.ndarray, original: np.ndarray, hole: np.ndarray, scale: int = 1) -> float:
    """Mean |Laplacian| of ``result`` over ``hole`` / that of ``original`` (grey images; RGB
    ``uint8 (H, W, 3)``, hole bool ``(H, W)``), both first shrunk ``scale`` times by area
    averaging (the hole: pixels at least half hole). 1.0 = as detailed as the photo at that
    scale; nan when no hole pixel is left after shrinking."""
    if scale > 1:
        h, w = hole.shape
        size = (max(1, w // scale), max(1, h // scale))
        result, original = (cv2.resize(a, size, interpolation=cv2.INTER_AREA) for a in (result, original))
        hole = cv2.resize(hole.astype(np.float32), size, interpolation=cv2.INTER_AREA) >= 0.5
    if not hole.any():
        return float("nan")

    def energy(image: np.ndarray) -> float:
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
        return float(np.abs(cv2.Laplacian(grey, cv2.CV_32F))[hole].mean())

    return energy(result) / max(energy(original), 1e-6)


def score(original, result, hole, seconds) -> dict[str, float]:
    return {"hole_l1": l1(result, original, hole), "psnr": psnr(result, original),
            "ssim": ssim(result, original), "detail": detail_ratio(result, original, hole),
            "detail_half": detail_ratio(result, original, hole, scale=2), "seconds": seconds}


def deep_and_texture(engine: Engine, image, mask, seed: int = 0) -> dict[str, tuple[np.ndarray, float]]:
    """One fill with the texture stage: ``{"deep": (refined, s), "deep+texture": (texture, s)}``."""
    t0 = time.perf_counter()
    out = {}
    for stage in engine.fill(FillRequest(image, mask, options=FillOptions(texture="patchmatch", seed=seed))):
        if stage.name == "texture":
            out["deep+texture"] = (stage.image, time.perf_counter() - t0)
        elif stage.name in ("refined", "final"):
            out["deep"] = (stage.image, time.perf_counter() - t0)
    return out


def plain_patchmatch(image, mask) -> tuple[np.ndarray, float]:
    t0 = time.perf_counter()
    *_, last = get_engine("patchmatch").fill(FillRequest(image, mask))
    return last.image, time.perf_counter() - t0


def deepest_window(hole: np.ndarray, size: int) -> tuple[slice, slice]:
    """A ``size`` x ``size`` window (clipped to the image) centred on the hole pixel farthest
    from any known pixel."""
    depth = cv2.distanceTransform(hole.astype(np.uint8), cv2.DIST_L2, 3)
    y, x = np.unravel_index(int(np.argmax(depth)), depth.shape)
    h, w = hole.shape
    y0 = int(min(max(0, y - size // 2), max(0, h - size)))
    x0 = int(min(max(0, x - size // 2), max(0, w - size)))
    return slice(y0, y0 + size), slice(x0, x0 + size)


def format_table(results: dict, title: str) -> str:
    bins = sorted({b for b, _ in results if b != "all"}) + ["all"]
    header = (f"{'hole bin':<9} {'method':<13} {'n':>4} {'hole L1':>8} {'PSNR dB':>8} {'SSIM':>7} "
              f"{'detail':>7} {'det/2':>6} {'s/img':>7}  hole L1 vs deep")
    lines = [title, header, "-" * len(header)]
    for hole_bin in bins:
        deep_l1 = None
        for method in METHODS:
            scores = results.get((hole_bin, method), [])
            if not scores:
                continue
            # Only the half-resolution detail is undefined (nan) for a hole too thin to survive
            # the shrinking; a nan anywhere else is a bug and must show.
            mean = {k: float((np.nanmean if k == "detail_half" else np.mean)([s[k] for s in scores]))
                    for k in METRICS}
            if method == "deep":
                deep_l1 = mean["hole_l1"]
            versus = f"{100 * (mean['hole_l1'] / deep_l1 - 1):+.1f} %" if deep_l1 else ""
            lines.append(
                f"{hole_bin:<9} {method:<13} {len(scores):>4} {mean['hole_l1']:>8.4f} {mean['psnr']:>8.2f} "
                f"{mean['ssim']:>7.4f} {mean['detail']:>7.3f} {mean['detail_half']:>6.3f} "
                f"{mean['seconds']:>7.2f}  {versus}"
            )
    return "\n".join(lines)


def run_quality(engine: Engine, pairs, working_size: int | None, with_patchmatch: bool,
                sheet_set: set, sheet_rows: list) -> dict:
    """Scores per (bin, method) with ``engine.working_size`` set to ``working_size`` (None:
    the engine's own); appends 100 % crops of the pairs in ``sheet_set`` to ``sheet_rows``."""
    own = engine.working_size
    if working_size is not None:
        engine.working_size = working_size
    results: dict = defaultdict(list)
    try:
        for index, pair in enumerate(pairs, 1):
            image, mask = load_pair(pair)
            hole = mask > 127
            fills = deep_and_texture(engine, image, mask)
            if with_patchmatch:
                fills["patchmatch"] = plain_patchmatch(image, mask)
            shown = []
            for method, (result, seconds) in fills.items():
                s = score(image, result, hole, seconds)
                results[pair.hole_bin, method].append(s)
                results["all", method].append(s)
                shown.append(f"{method}={s['hole_l1']:.4f}/{s['detail']:.2f}/{s['detail_half']:.2f}")
            print(f"  [{index}/{len(pairs)}] {pair.image.name} {pair.hole_bin} " + " ".join(shown),
                  file=sys.stderr, flush=True)
            if pair in sheet_set:
                rows, cols = deepest_window(hole, CROP)
                row = [("input", show_hole(image, hole)[rows, cols])]
                row += [(m, fills[m][0][rows, cols]) for m in METHODS if m in fills]
                sheet_rows.append(row + [("original", image[rows, cols])])
    finally:
        engine.working_size = own
    return results


def run_speed(engine: Engine, runs: int) -> None:
    cases = {"512x512, 25 % hole": (512, 512, 0.25), "12 MP, 3 % hole": (3000, 4000, 0.03)}
    print(f"\nspeed (median of {runs} after one warm-up fill; crop strategy)")
    print(f"{'case':<20} {'deep':>8} {'deep+texture':>13} {'texture stage':>14} {'patchmatch':>11}")
    for label, (h, w, ratio) in cases.items():
        image, mask = synthetic_photo(h, w), synthetic_hole(h, w, ratio)
        deep_and_texture(engine, image, mask)
        plain_patchmatch(image, mask)
        deep, total, pm = [], [], []
        for _ in range(runs):
            fills = deep_and_texture(engine, image, mask)
            deep.append(fills["deep"][1])
            total.append(fills["deep+texture"][1])
            pm.append(plain_patchmatch(image, mask)[1])
        d, t, p = (statistics.median(v) for v in (deep, total, pm))
        print(f"{label:<20} {d:>7.2f}s {t:>12.2f}s {t - d:>13.2f}s {p:>10.2f}s", flush=True)


FIRST_FILL_CHILD = """
import json, sys, time
from bench.common import synthetic_hole, synthetic_photo
from inpaint_studio.engine import FillRequest, get_engine, patchmatch
image, mask = synthetic_photo(512, 512), synthetic_hole(512, 512, 0.25)
engine = get_engine("patchmatch")
times = {}
if sys.argv[1] == "warm":
    times["warm_up"] = patchmatch.warm_up()
for run in ("first", "second"):
    t = time.perf_counter()
    list(engine.fill(FillRequest(image, mask)))
    times[run] = time.perf_counter() - t
print(json.dumps(times))
"""


def run_first_fill(processes: int) -> None:
    """PatchMatch's first vs second fill, each in ``processes`` fresh processes, without and
    with :func:`patchmatch.warm_up` (loads the cached kernels) before the first."""
    print(f"\nPatchMatch 512x512 / 25 %: first fill vs second in {processes} fresh processes")
    for k in range(processes):
        for mode in ("cold", "warm"):
            out = subprocess.run([sys.executable, "-c", FIRST_FILL_CHILD, mode], cwd=REPO,
                                 capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
            t = json.loads(out)
            warm = f"warm_up {t['warm_up']:.2f} s, then " if "warm_up" in t else ""
            print(f"  process {k + 1} ({mode}): {warm}first {t['first']:.2f} s, second {t['second']:.2f} s "
                  f"(first / second {t['first'] / t['second']:.2f})", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="deep model file (default: see above)")
    parser.add_argument("--data", type=Path, default=default_data_dir(), help="data folder (eval_pairs.tsv)")
    parser.add_argument("--limit", type=int, metavar="N", help="only the first N photos (all their bins)")
    parser.add_argument("--small-working-size", type=int, default=256,
                        help="second run's working size (0: skip that run)")
    parser.add_argument("--no-own-size", action="store_true", help="skip the run at the model's working size")
    parser.add_argument("--sheet", type=Path, default=REPO / "docs" / "texture_sheet.png")
    parser.add_argument("--sheet-rows", type=int, default=4)
    parser.add_argument("--speed", action="store_true", help="also time the 512 and 12 MP cases")
    parser.add_argument("--runs", type=int, default=1, help="timed runs per speed case")
    parser.add_argument("--first-fill", type=int, default=0, metavar="P",
                        help="time PatchMatch's first vs second fill in P fresh processes")
    args = parser.parse_args(argv)

    engine, which = open_deep_engine(args.model)
    print(which)
    pairs = read_eval_pairs(args.data, args.limit)
    sheet_rows: list = []
    if not args.no_own_size:
        results = run_quality(engine, pairs, None, True, set(), [])
        print(format_table(results, f"\n{len(pairs)} pairs, photos at their own size, working size "
                                    f"{engine.working_size}"), flush=True)
    if args.small_working_size:
        on_sheet = set(sheet_pairs(pairs, args.sheet_rows))
        results = run_quality(engine, pairs, args.small_working_size, True, on_sheet, sheet_rows)
        print(format_table(results, f"\n{len(pairs)} pairs, working size {args.small_working_size} "
                                    f"(photos up to 768 px filled small and upscaled)"), flush=True)
    if sheet_rows:
        args.sheet.parent.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(args.sheet), cv2.cvtColor(contact_sheet(sheet_rows), cv2.COLOR_RGB2BGR)):
            raise SystemExit(f"could not write the contact sheet to {args.sheet}")
        print(f"contact sheet (100 % crops): {args.sheet}")
    if args.speed:
        run_speed(engine, args.runs)
    if args.first_fill:
        run_first_fill(args.first_fill)


if __name__ == "__main__":
    main()
