"""Hand one leg of the default model's training relay to the next: export, evaluate, card.

    python scripts/publish_default_model.py --run runs/default_model/leg1 [--limit N]

1. Exports the EMA generator of the run's ``last.pt`` as fp16 to
   ``resources/models/deepfill_v2.safetensors`` and writes the relay state the next leg
   resumes from, ``resources/models/deepfill_v2.train-state.safetensors`` (trainer/relay.py).
2. Evaluates it on the shared eval pairs through the engine API with the default strategy
   (as ``bench/quality.py``), next to PatchMatch and Telea; the classical rows are
   deterministic and cached in ``docs/quality_classical.json`` (recomputed when the classical
   engines' source changes).
3. Writes the model card: title, ``in_training`` (true until the model beats both classical
   engines on hole L1 and PSNR in every bin), the one-line ``figures`` the app shows, the
   training table (one row per leg: hardware, minutes, images, cumulative images, eval
   figures), the data's terms and how to resume.
4. Appends the leg to ``docs/learning_curve.md`` (cumulative images -> hole L1 per bin).

The run must have been started from the previous relay state (or from scratch for the first
leg); its counters are cumulative, so "images this leg" is the difference to the card's last row.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.common import default_data_dir, load_pair, read_eval_pairs  # noqa: E402
from bench.quality import fill_once, score  # noqa: E402
from inpaint_studio import networks, precision  # noqa: E402
from inpaint_studio.engine import get_engine  # noqa: E402
from inpaint_studio.engine.deep import DeepEngine  # noqa: E402
from inpaint_studio.weights import TRAINING_STATE_SUFFIX, card_path, read_metadata, save_model  # noqa: E402
from trainer.checkpoint import load_checkpoint  # noqa: E402
from trainer.relay import save_relay_state  # noqa: E402

MODEL = REPO / "resources" / "models" / "deepfill_v2.safetensors"
CLASSICAL = ("patchmatch", "telea")
DATA_TERMS = (
    "Trained on the project's shared training photos (ImageNet samples, BSDS500 train/val, "
    "Urban100, Sun-Hays80, clothing photos and a few others; see shared/data/MANIFEST.tsv). "
    "Most sources are for research / non-commercial use only (the clothing photos are CC0): "
    "so is this model."
)
RESUME = ("inpaint-train train --resume resources/models/deepfill_v2.train-state.safetensors "
          "--data ../shared/data/train --max-minutes N (scripts/train_relay_leg.sh does it all)")


CURVE_HEADER = """# Learning curve of the shipped DeepFill v2

One row per relay leg (scripts/train_relay_leg.sh): cumulative training images seen -> hole L1
per hole-ratio bin on the shared eval pairs (through the engine API, default strategy).
Targets: lower than both PatchMatch and Telea in every bin (docs/quality_classical.json).

| leg | date | images seen | 10-20 % | 20-30 % | 30-40 % | 40-50 % | pairs |
|---|---|---|---|---|---|---|---|
"""


def add_curve_row(curve: Path, line: str) -> None:
    """Add ``line`` to the legs' table of ``learning_curve.md`` (the first table: the file goes
    on with notes and further tables), after its last row; the file is created if missing."""
    text = curve.read_text(encoding="utf-8") if curve.is_file() else CURVE_HEADER
    lines = text.splitlines()
    start = next(i for i, l in enumerate(lines) if l.startswith("| leg |"))
    end = start
    while end + 1 < len(lines) and lines[end + 1].startswith("|"):
        end += 1
    lines.insert(end + 1, line)
    curve.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _hardware(state: dict) -> str:
    """Where the leg trained: the GPU's name from the checkpoint when it ran on one (a leg
    trained on a lent GPU is published on this CPU), else this CPU and its flags."""
    trained_on = str(state.get("device_name", ""))
    if trained_on and not trained_on.startswith("CPU"):
        processes = state.get("world_size", 1)
        return f"GPU, {trained_on}" + (f" x{processes}" if processes > 1 else "")
    flags = sorted(precision.cpu_flags() & {"amx_bf16", "avx512_bf16", "avx512f", "avx2"})
    return f"CPU, {os.cpu_count()} cores ({', '.join(flags) or 'no AVX flags read'})"


def _classical_fingerprint(pairs: list) -> str:
    """A hash of the classical engines' fills of the first two pairs: the cache stays valid
    exactly as long as the engines fill the same way (a source edit that changes nothing,
    e.g. a new optional mode, keeps it)."""
    h = hashlib.sha1()
    for pair in pairs[:2]:
        image, mask = load_pair(pair)
        for name in CLASSICAL:
            h.update(fill_once(get_engine(name), image, mask)[0].tobytes())
    return h.hexdigest()[:12]


def evaluate(model: Path | None, limit: int | None, docs: Path,
             any_cpu_cache: bool = False) -> dict[str, dict[str, dict[str, float]]]:
    """``{engine: {bin: {hole_l1, psnr, ssim, image_l1, seconds, n}}}`` on the eval pairs
    (``model`` None: only the classical engines, to fill their cache). any_cpu_cache: when
    this CPU's classical fills differ in their last bits from the cached ones (another CPU's
    floating point), use the cached rows of the same pairs anyway instead of recomputing."""
    pairs = read_eval_pairs(default_data_dir(), limit)
    key = f"{_classical_fingerprint(pairs)}:{limit or 'all'}"
    cache_file = docs / "quality_classical.json"
    cache = json.loads(cache_file.read_text()) if cache_file.is_file() else {}
    same_pairs = [k for k in cache if k.endswith(f":{limit or 'all'}")]
    if key not in cache and any_cpu_cache and same_pairs and model:
        print(f"classical rows: cached on another CPU ({same_pairs[0]}; here {key})", file=sys.stderr)
        key = same_pairs[0]
    engines = {"deepfill_v2": DeepEngine(model)} if model else {}
    if key not in cache:
        engines.update({name: get_engine(name) for name in CLASSICAL})
    scores: dict[tuple[str, str], list[dict[str, float]]] = defaultdict(list)
    for i, pair in enumerate(pairs, 1):
        image, mask = load_pair(pair)
        for name, engine in engines.items():
            filled, seconds = fill_once(engine, image, mask)
            scores[name, pair.hole_bin].append(score(image, filled, mask > 127, seconds))
        if i % 20 == 0:
            print(f"  evaluated {i}/{len(pairs)} pairs", file=sys.stderr, flush=True)
    table: dict[str, dict[str, dict[str, float]]] = defaultdict(dict)
    for (name, hole_bin), rows in scores.items():
        table[name][hole_bin] = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
        table[name][hole_bin]["n"] = len(rows)
    if key not in cache:
        cache = {**cache, key: {name: table[name] for name in CLASSICAL}}
        cache_file.write_text(json.dumps(cache, indent=1, sort_keys=True) + "\n")
    table.update(cache[key])
    return dict(table)


def beats_classical(table: dict) -> bool:
    """Lower hole L1 and higher PSNR than every classical engine, in every bin."""
    ours = table["deepfill_v2"]
    return all(ours[b]["hole_l1"] < table[c][b]["hole_l1"] and ours[b]["psnr"] > table[c][b]["psnr"]
               for b in ours for c in CLASSICAL)


def figures_line(table: dict) -> str:
    bins = sorted(table["deepfill_v2"])

    def row(name: str) -> str:
        return "/".join(f"{table[name][b]['hole_l1']:.3f}" for b in bins)

    return (f"hole L1 by hole bin {'/'.join(bins)} %: this model {row('deepfill_v2')}; "
            f"PatchMatch {row('patchmatch')}; Telea {row('telea')} (lower is better)")


def format_table(table: dict) -> str:
    bins = sorted(table["deepfill_v2"])
    lines = ["| bin | engine | hole L1 | PSNR dB | SSIM |", "|---|---|---|---|---|"]
    for b in bins:
        for name in ("deepfill_v2", *CLASSICAL):
            r = table[name][b]
            lines.append(f"| {b} % | {name} | {r['hole_l1']:.4f} | {r['psnr']:.2f} | {r['ssim']:.4f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, help="the leg's run folder (its last.pt)")
    parser.add_argument("--model", type=Path, default=MODEL)
    parser.add_argument("--limit", type=int, default=None,
                        help="evaluate only the first N eval photos (default: all 83 = 332 pairs)")
    parser.add_argument("--working-size", type=int, default=512,
                        help="working size stored in the card (the engine resizes larger crops to it)")
    parser.add_argument("--docs", type=Path, default=REPO / "docs",
                        help="where the classical cache and learning_curve.md live")
    parser.add_argument("--any-cpu-cache", action="store_true",
                        help="use the cached classical rows even when this CPU's fills differ in "
                             "their last bits (recomputing PatchMatch takes ~20 minutes)")
    parser.add_argument("--classical-only", action="store_true",
                        help="only evaluate (and cache) PatchMatch and Telea, no model")
    args = parser.parse_args(argv)
    if args.classical_only:
        evaluate(None, args.limit, args.docs)
        print(f"cached in {args.docs / 'quality_classical.json'}")
        return 0
    if args.run is None:
        parser.error("--run RUN_DIR is needed (or --classical-only)")

    state = load_checkpoint(args.run)
    cfg = state["config"]
    generator = networks.build(cfg["arch"], **state["arch_args"])
    generator.load_state_dict(state["ema"])
    previous = read_metadata(args.model).extra.get("training_runs", []) if args.model.is_file() else []
    counters = state["counters"]
    images_before = previous[-1]["cumulative_images"] if previous else 0
    seconds_before = sum(r["minutes"] for r in previous) * 60
    row = {
        "leg": len(previous) + 1,
        "date": datetime.date.today().isoformat(),
        "hardware": _hardware(state),
        "minutes": round((counters["seconds"] - seconds_before) / 60, 1),
        "images": counters["images"] - images_before,
        "cumulative_images": counters["images"],
        "steps": state["step"],
        "recipe": {k: cfg[k] for k in ("size", "batch_size", "lr_g", "l1_hole_weight", "gan_weight",
                                        "ema_decay", "amp") if k in cfg},
    }
    provenance = {
        "photos": state.get("photos"), "data_sources": state.get("data_sources"),
        "steps": state["step"], "images_seen": counters["images"],
        "training_seconds": round(counters["seconds"], 1), "hardware": row["hardware"],
        "size": cfg["size"], "batch_size": cfg["batch_size"],
        "exported": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    metadata = {
        "title": "DeepFill v2 (in training)",
        "description": (f"DeepFill v2 (cnum {state['arch_args'].get('cnum', 48)}) trained by this "
                        f"project on {state.get('photos')} photos, {counters['images']:,} images seen"),
        "provenance": provenance, "metrics": {}, "working_size": args.working_size,
        "in_training": True, "data_terms": DATA_TERMS, "resume": RESUME,
        # This leg's row goes in only with its figures (below): a publish stopped during the
        # evaluation leaves the card's table as it was, so running it again counts right.
        "training_runs": previous,
    }
    args.model.parent.mkdir(parents=True, exist_ok=True)
    save_model(args.model, generator, fp16=True, metadata=metadata)
    relay = save_relay_state(args.run, args.model.with_name(
        args.model.stem + TRAINING_STATE_SUFFIX))
    print(f"exported {args.model} and {relay} ({relay.stat().st_size / 1e6:.1f} MB)")

    start = time.perf_counter()
    table = evaluate(args.model, args.limit, args.docs, args.any_cpu_cache)
    n_pairs = sum(int(r["n"]) for r in table["deepfill_v2"].values())
    print(f"evaluated {n_pairs} pairs in {time.perf_counter() - start:.0f} s")
    print(format_table(table))
    done = beats_classical(table) and args.limit is None
    row["eval"] = {b: {k: round(v, 4) for k, v in r.items() if k in ("hole_l1", "psnr", "ssim")}
                   for b, r in table["deepfill_v2"].items()}
    row["eval_pairs"] = n_pairs
    metadata.update(
        title="DeepFill v2" if done else "DeepFill v2 (in training)", in_training=not done,
        figures=figures_line(table), training_runs=previous + [row],
        metrics={"eval_pairs": n_pairs, **{b: row["eval"][b] for b in row["eval"]}},
    )
    save_model(args.model, generator, fp16=True, metadata=metadata)
    bins = sorted(row["eval"])
    add_curve_row(args.docs / "learning_curve.md",
                  f"| {row['leg']} | {row['date']} | {row['cumulative_images']:,} | "
                  + " | ".join(f"{row['eval'][b]['hole_l1']:.4f}" for b in bins) + f" | {n_pairs} |")
    print(f"card: {card_path(args.model)}; beats PatchMatch and Telea in every bin: {done}")
    print(metadata["figures"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
