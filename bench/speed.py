"""Speed and peak memory of every available engine, relative to Telea in the same run.

Cases: a 512x512 photo with a 25 % hole, and a 12-megapixel (4000x3000) photo with a 3 %
hole, both through the default ``crop`` strategy. Each engine and case runs in its own child
process (so peak RSS is that engine's); the child fills once untimed (model load, numba
compile or cache load, shown as "first"), then ``--runs`` times, and reports the median.

    python bench/speed.py [--engines patchmatch,telea,ns] [--runs 3] [--pypatchmatch]

``--pypatchmatch`` adds the PyPI ``pypatchmatch`` library (``pip install pypatchmatch``, the
``bench`` extra) as a reference row on the 512 case (patch radius 3, 7x7 patches like ours);
the package itself never imports it.
Prints figures; asserts nothing about them.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make ``bench`` and the package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import run_child, synthetic_hole, synthetic_photo  # noqa: E402

CASES = {"512": (512, 512, 0.25), "12mp": (3000, 4000, 0.03)}
PYPATCHMATCH = "pypatchmatch"


def _fill_function(engine_name: str):
    """A callable ``(image, mask) -> filled image`` for an engine name (or pypatchmatch)."""
    if engine_name == PYPATCHMATCH:
        from patchmatch import patch_match

        # patch_size is a radius; 3 (7x7 patches, like ours) is what its examples use.
        return lambda image, mask: patch_match.inpaint(image, mask > 127, patch_size=3)

    from inpaint_studio.engine import FillRequest, get_engine

    engine = get_engine(engine_name)

    def fill(image, mask):
        *_, last = engine.fill(FillRequest(image, mask))
        return last.image

    return fill


def worker(engine_name: str, case: str, runs: int) -> None:
    """Child process: time one engine on one case and print a JSON line."""
    height, width, ratio = CASES[case]
    image = synthetic_photo(height, width)
    mask = synthetic_hole(height, width, ratio)
    t0 = time.perf_counter()
    fill = _fill_function(engine_name)
    fill(image, mask)
    first = time.perf_counter() - t0
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fill(image, mask)
        times.append(time.perf_counter() - t0)
    print(json.dumps({"first_s": first, "median_s": statistics.median(times)}))


def _available_engines() -> list[str]:
    from inpaint_studio.engine import all_engines

    return [e.name for e in all_engines() if e.availability()]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engines", help="comma-separated engine names (default: every available one)")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per engine and case (median)")
    parser.add_argument("--cases", default="512,12mp", help="comma-separated: 512, 12mp")
    parser.add_argument("--pypatchmatch", action="store_true", help="add the pypatchmatch library as a reference")
    parser.add_argument("--worker", nargs=2, metavar=("ENGINE", "CASE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker[0], args.worker[1], args.runs)
        return

    engines = args.engines.split(",") if args.engines else _available_engines()
    if "telea" not in engines:
        engines.insert(0, "telea")  # the yardstick
    if args.pypatchmatch:
        engines.append(PYPATCHMATCH)
    cases = args.cases.split(",")
    results: dict[tuple[str, str], tuple[dict, float]] = {}
    for case in cases:
        for name in engines:
            if name == PYPATCHMATCH and case != "512":
                continue  # it fills the whole 12 MP image: many minutes, nothing learnt
            print(f"  measuring {name} on {case} ...", file=sys.stderr, flush=True)
            try:
                results[name, case] = run_child(
                    ["bench.speed", "--worker", name, case, "--runs", str(args.runs)]
                )
            except RuntimeError as exc:
                print(f"  {name} on {case} failed: {exc}", file=sys.stderr)

    header = f"{'case':<6} {'engine':<14} {'median s':>9} {'x telea':>8} {'first s':>8} {'peak MiB':>9} {'x telea':>8}"
    print(header)
    print("-" * len(header))
    for case in cases:
        ref = results.get(("telea", case))
        for name in engines:
            if name == PYPATCHMATCH and case != "512":
                continue
            if (name, case) not in results:
                print(f"{case:<6} {name:<14} {'failed':>9}")
                continue
            report, rss = results[name, case]
            time_ratio = report["median_s"] / ref[0]["median_s"] if ref else float("nan")
            rss_ratio = rss / ref[1] if ref else float("nan")
            print(
                f"{case:<6} {name:<14} {report['median_s']:>9.3f} {time_ratio:>8.2f} "
                f"{report['first_s']:>8.2f} {rss:>9.0f} {rss_ratio:>8.2f}"
            )


if __name__ == "__main__":
    main()
