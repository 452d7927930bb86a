"""Speed and memory of the deep engine (DeepFill v2) against a reference-style implementation.

    python bench/speed_deep.py                       # CPU, 2 threads, every case
    python bench/speed_deep.py --cases 512 --runs 5
    python bench/speed_deep.py --device cuda         # on a machine with an NVIDIA GPU
    python bench/speed_deep.py --quick               # 512 only, fp32 and bf16, one run
    python bench/speed_deep.py --model resources/models/deepfill_v2.safetensors  # bf16 vs fp32

DeepFill v2 runs with RANDOM weights here: timing does not depend on the weights, and the
outputs are never looked at. Each case runs in its own child process through the real
:class:`~inpaint_studio.engine.deep.DeepEngine` (the path the app takes: HD strategy,
tensors, stages, compositing), so its peak RSS is that case's alone.

Per case it reports the time from Fill to the coarse stage and to the refined stage (median
of ``--runs`` warm runs; loading the weights and the first, cold fill are reported apart),
where the time goes (coarse stage / contextual attention / rest of the refine net and
compositing) and peak RSS; then the same with the contextual attention layers swapped for
``bench/reference_contextual.py`` (per-sample loop, unchunked, convolution propagation), and
the ratio. A reference run whose score matrix would not fit in this machine's free memory is
skipped with its estimate instead of swapping the machine to death.

Cases (``--cases``): ``512`` and ``1024`` (square photos, ``full`` strategy, a centred 25 %
hole), ``12mp`` (4000x3000 photo, ``crop`` strategy, a 3 % hole), ``2048`` (``full``, for peak
memory; one run).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.common import run_child, synthetic_hole, synthetic_photo  # noqa: E402


@dataclass(frozen=True)
class Case:
    label: str
    height: int
    width: int
    strategy: str
    hole_ratio: float
    runs: int | None = None  # overrides --runs (the 2048 case is about memory)


CASES = {
    "512": Case("512x512 full", 512, 512, "full", 0.25),
    "1024": Case("1024x1024 full", 1024, 1024, "full", 0.25),
    "12mp": Case("12 MP crop, 3% hole", 3000, 4000, "crop", 0.03),
    "2048": Case("2048x2048 full", 2048, 2048, "full", 0.25, runs=1),
}

# Targets of issue 3, part 6: (case, measure) -> limit. Seconds, or MiB for "rss".
CPU_TARGETS = {
    ("512", "coarse"): 0.6,
    ("512", "refined"): 2.0,
    ("1024", "refined"): 8.0,
    ("1024", "rss"): 2048.0,
    ("2048", "rss"): 3072.0,
}
GPU_TARGETS = {("512", "refined"): 0.015}
GPU_MIN_SPEEDUP = 5.0

# Bytes of the reference's working set per score-matrix element, fitted to issue 3's
# measurement of the reference-style layer (20.2 GB peak at 1024x1024, a 16384^2 float
# matrix): the propagation convolution unfolds the matrix 9-fold, plus copies.
REFERENCE_BYTES_PER_SCORE = 4 * 19


def matching_grid(case: Case, working_size: int = 512) -> int:
    """Positions of DeepFill v2's attention grid for the crop the engine sees (1/8 of its
    pixels per side: /4 by the refine encoder, /2 by the matching rate)."""
    h, w = case.height, case.width
    if case.strategy == "crop":
        # A 3 % hole plus its margin is larger than the working size: resized down to it.
        h = w = working_size
    return (h // 8) * (w // 8)


def reference_bytes(case: Case) -> int:
    grid = matching_grid(case)
    return grid * grid * REFERENCE_BYTES_PER_SCORE


def available_bytes() -> int:
    """MemAvailable from /proc/meminfo (Linux), else a large number (no guard)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 1 << 50


# ---------------------------------------------------------------------------------------------
# Child process: one case, one implementation


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def _attention_timer(model, device, layer_types: tuple[type, ...]):
    """Forward hooks accumulating wall time inside every attention layer; returns a list whose
    single item is the running total (seconds)."""
    total = [0.0]
    starts: dict[int, float] = {}

    def before(module, args):
        _sync(device)
        starts[id(module)] = time.perf_counter()

    def after(module, args, output):
        _sync(device)
        total[0] += time.perf_counter() - starts.pop(id(module))

    for module in model.modules():
        if isinstance(module, layer_types):
            module.register_forward_pre_hook(before)
            module.register_forward_hook(after)
    return total


def worker(case_key: str, impl: str, device_name: str, threads: int, runs: int, scope: str | None = None,
           precision: str = "fp32", cnum: int = 48) -> dict:
    """One case in this process. ``precision``: fp32, bf16 or auto, optionally with ``+fused``
    (the fused gating compiled first, as the app does in the background; its seconds are
    reported as ``compile``)."""
    import torch

    from inpaint_studio.engine import FillOptions, FillRequest
    from inpaint_studio.engine.deep import DeepEngine, resolve_device
    from inpaint_studio.layers.contextual import ContextualAttention
    from inpaint_studio.networks import build
    from inpaint_studio.weights import save_model

    from bench.reference_contextual import ReferenceContextualAttention, swap_in_reference

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    precision, _, fused = precision.partition("+")
    compile_seconds = None
    if fused:
        from inpaint_studio.engine.deep import warm_up_fused_gating

        compile_seconds = warm_up_fused_gating(device_name, precision)
        if compile_seconds is None:
            raise SystemExit("the fused gating does not apply here (fp32, a GPU, no compiler)")
    case = CASES[case_key]
    device, note = resolve_device(device_name)
    if note:
        raise SystemExit(note)

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "deepfill_v2_random.safetensors"
        save_model(path, build("deepfill_v2", cnum=cnum), metadata={
            "title": "DeepFill v2 (random weights, benchmark only)",
            "provenance": {"data": "none: random initialisation"},
        })
        engine = DeepEngine(path, device=device_name)
        started = time.perf_counter()
        model = engine.model(device)
        load_seconds = time.perf_counter() - started
        if scope is not None:
            model.attention_scope = scope
        if impl == "reference":
            # the reference computes attention at every position, as the reference code does
            model.attention_scope = "all"
        swapped = swap_in_reference(model, ContextualAttention) if impl == "reference" else 0
        if impl == "reference" and swapped == 0:
            raise SystemExit("no ContextualAttention layer found to swap")
        attention = _attention_timer(model, device, (ContextualAttention, ReferenceContextualAttention))

        image = synthetic_photo(case.height, case.width, seed=1)
        mask = synthetic_hole(case.height, case.width, case.hole_ratio)
        request = FillRequest(image, mask, options=FillOptions(strategy=case.strategy, device=device_name,
                                                               precision=precision))

        def one_fill() -> dict:
            attention[0] = 0.0
            times = {}
            cpu_start = time.process_time()
            for stage in engine.fill(request):
                times[stage.name] = stage.seconds
                ran_in = stage.extras.get("precision", "?")
            return {"coarse": times["coarse"], "refined": times["refined"], "attention": attention[0],
                    "cpu": time.process_time() - cpu_start, "precision": ran_in}

        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        cold = one_fill()
        # GPUs need a few passes before kernels are chosen and caches are warm.
        for _ in range(3 if device.type == "cuda" else 0):
            one_fill()
        warm = [one_fill() for _ in range(runs)]

    result = {key: statistics.median(r[key] for r in warm) for key in ("coarse", "refined", "attention", "cpu")}
    result["cold_refined"] = cold["refined"]
    result["precision"] = cold["precision"]
    result["load"] = load_seconds
    result["compile"] = compile_seconds
    result["runs"] = runs
    result["hole_percent"] = round(100.0 * float((mask > 127).mean()), 1)
    if device.type == "cuda":
        result["gpu_peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
        result["gpu"] = torch.cuda.get_device_name()
    return result


# ---------------------------------------------------------------------------------------------
# Parent: run every case in a child, print the table


def check_equivalence() -> tuple[float, float]:
    """Max |ours - reference| of the two attention layers on random ``2x8x32x32`` features
    with a different hole per sample, without and with propagation.

    Without propagation the two compute the same function (expect ~1e-5). With it they
    differ on purpose: the reference convolves the flattened score matrix, so the last
    column of a grid row counts as the neighbour of the next row's first; ours pads with
    zeros (see ``layers/contextual.py``). The cost of the two is what is compared."""
    import torch

    from inpaint_studio.layers.contextual import ContextualAttention

    from bench.reference_contextual import ReferenceContextualAttention

    torch.manual_seed(0)
    fg, bg = torch.randn(2, 8, 32, 32), torch.randn(2, 8, 32, 32)
    mask = torch.zeros(2, 1, 32, 32)
    mask[0, :, 8:20, 10:24] = 1
    mask[1, :, 16:30, 2:12] = 1
    diffs = []
    for fuse in (False, True):
        ours = ContextualAttention(fuse=fuse)
        reference = ReferenceContextualAttention.like(ours)
        with torch.no_grad():
            diffs.append(float((ours(fg, bg, mask) - reference(fg, bg, mask)).abs().max()))
    return diffs[0], diffs[1]


def _fmt(value: float | None, unit: str = "s") -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if unit == "s" else f"{value:.0f}"


def _verdict(value: float | None, target: float, unit: str) -> str:
    if value is None:
        return f"target <= {target:g} {unit}: not measured"
    return f"target <= {target:g} {unit}: {'met' if value <= target else 'MISSED'}"


def compare_precisions(model_path: Path, device: str, threads: int, photos: int) -> int:
    """Fill the first ``photos`` eval pairs (../shared/data, eval_pairs.tsv) with the trained
    model in fp32 and in bf16 and print, per photo and overall, the mean absolute difference in
    the hole (grey levels, 0..255) and the PSNR between the two fills over the hole."""
    import numpy as np
    import torch

    from inpaint_studio import imageio
    from inpaint_studio.engine import FillOptions, FillRequest
    from inpaint_studio.engine.deep import DeepEngine

    torch.set_num_threads(threads)
    data = REPO.parent / "shared" / "data"
    rows = [line.split("\t") for line in (data / "eval_pairs.tsv").read_text().splitlines()[1:]]
    engine = DeepEngine(model_path, device=device)
    diffs, sq = [], []
    print(f"bf16 vs fp32 fills of {model_path.name}, {photos} eval pairs, strategy full")
    for image_name, mask_name, _ in rows[:photos]:
        rgb = imageio.load_image(data / "eval" / image_name).rgb
        mask = imageio.load_mask(data / "masks" / mask_name, size=(rgb.shape[1], rgb.shape[0]),
                                 resize=True)
        fills = {}
        for prec in ("fp32", "bf16"):
            request = FillRequest(rgb, mask, options=FillOptions(strategy="full", device=device,
                                                                  precision=prec))
            fills[prec] = [s for s in engine.fill(request)][-1].image.astype(np.float64)
        hole = mask > 127
        d = np.abs(fills["fp32"] - fills["bf16"])[hole]
        mse = float((d ** 2).mean())
        psnr = float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)
        diffs.append(d.mean())
        sq.append(mse)
        print(f"  {image_name} {mask_name}: mean |diff| {d.mean():.3f} grey levels, PSNR {psnr:.1f} dB")
    mse = float(np.mean(sq))
    psnr = float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)
    mean = float(np.mean(diffs))
    print(f"overall: mean |diff| in the hole {mean:.3f} grey levels (target < 1: "
          f"{'met' if mean < 1 else 'MISSED'}), PSNR {psnr:.1f} dB (target >= 40: "
          f"{'met' if psnr >= 40 else 'MISSED'})")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--runs", type=int, default=3, help="warm runs per case; the median is shown")
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated: {', '.join(CASES)}")
    parser.add_argument("--no-reference", action="store_true", help="skip the reference-style runs")
    parser.add_argument("--force-reference", action="store_true",
                        help="run the reference even where its estimated memory exceeds what is free")
    parser.add_argument("--attention-scope", choices=("all", "hole"), default=None,
                        help="set the generator's attention_scope (default: the engine's choice)")
    parser.add_argument("--precisions", default="fp32,bf16,bf16+fused",
                        help="precisions to run ours in, side by side: fp32, bf16, auto, each "
                        "optionally +fused (the fused gating, compiled before timing as the app "
                        "does in the background); default fp32,bf16,bf16+fused; the "
                        "reference-style runs use fp32")
    parser.add_argument("--cnum", type=int, default=48,
                        help="DeepFill v2's base width (48: the paper's; 32: the shipped model's)")
    parser.add_argument("--quick", action="store_true",
                        help="a short run: the 512 case, one warm run, no reference")
    parser.add_argument("--model", type=Path, default=None,
                        help="a trained .safetensors: instead of timing, fill eval photos in fp32 "
                        "and bf16 and print how much they differ in the hole (issue 10: < 1 "
                        "grey level on average, PSNR >= 40 dB)")
    parser.add_argument("--photos", type=int, default=4, help="--model: eval pairs to compare")
    parser.add_argument("--worker", nargs=2, metavar=("CASE", "IMPL"), help=argparse.SUPPRESS)
    parser.add_argument("--worker-precision", default="fp32", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        case_key, impl = args.worker
        print(json.dumps(worker(case_key, impl, args.device, args.threads, args.runs, args.attention_scope,
                                args.worker_precision, args.cnum)))
        return 0
    if args.model is not None:
        return compare_precisions(args.model, args.device, args.threads, args.photos)
    if args.quick:
        args.cases, args.runs, args.no_reference = "512", 1, True
    precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]

    keys = [k.strip() for k in args.cases.split(",") if k.strip()]
    unknown = [k for k in keys if k not in CASES]
    if unknown:
        parser.error(f"unknown case(s) {', '.join(unknown)}; choose from {', '.join(CASES)}")
    gpu = args.device.startswith("cuda")
    targets = GPU_TARGETS if gpu else CPU_TARGETS

    print(f"Deep engine speed: DeepFill v2 (cnum {args.cnum}) with RANDOM weights, for timing only")
    scope = args.attention_scope or "the engine's"
    print(f"device {args.device}, {args.threads} CPU threads, attention scope {scope}, "
          f"median of --runs {args.runs} warm fills; load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    same, fused = check_equivalence()
    print(f"ours vs reference-style attention, 2x8x32x32 features, per-sample holes: max |diff| "
          f"{same:.1e} without propagation (same function), {fused:.2f} with it (the reference's "
          f"propagation wraps around grid rows; ours pads with zeros)")
    print()

    header = (f"{'case':<22}{'impl':<17}{'coarse s':>9}{'refined s':>10}{'attn s':>8}{'rest s':>8}"
              f"{'CPU s':>8}{'load s':>8}{'cold s':>8}{'RSS MiB':>9}{'GPU MiB':>9}")
    print(header)
    print("-" * len(header))
    results: dict[tuple[str, str], dict] = {}
    for key in keys:
        case = CASES[key]
        runs = case.runs or args.runs
        impls = [f"ours-{p}" for p in precisions] + ([] if args.no_reference else ["reference"])
        for label in impls:
            impl, _, prec = label.partition("-")
            prec = prec or "fp32"
            if impl == "reference" and not args.force_reference:
                need, free = reference_bytes(case), available_bytes()
                if need > 0.6 * free:
                    print(f"{case.label:<22}{impl:<17}skipped: needs ~{need / 2**30:.1f} GiB "
                          f"(score matrix {matching_grid(case)}^2), {free / 2**30:.1f} GiB free")
                    continue
            cmd = ["bench.speed_deep", "--worker", key, impl, "--device", args.device,
                   "--threads", str(args.threads), "--runs", str(runs if impl == "ours" else min(runs, 2)),
                   "--worker-precision", prec, "--cnum", str(args.cnum)]
            if args.attention_scope:
                cmd += ["--attention-scope", args.attention_scope]
            try:
                r, rss = run_child(cmd)
            except RuntimeError as exc:
                print(f"{case.label:<22}{label:<17}failed: {exc}")
                continue
            r["rss_mib"] = rss
            results[key, label] = r
            results.setdefault((key, "ours"), r)
            if impl == "ours":
                fused = "+fused" if r.get("compile") is not None else ""
                label = f"ours {r['precision']}{fused}"  # the precision that ran (auto resolves)
            rest = r["refined"] - r["coarse"] - r["attention"]
            print(f"{case.label:<22}{label:<17}{_fmt(r['coarse']):>9}{_fmt(r['refined']):>10}"
                  f"{_fmt(r['attention']):>8}{_fmt(rest):>8}{_fmt(r['cpu']):>8}{_fmt(r['load']):>8}{_fmt(r['cold_refined']):>8}"
                  f"{_fmt(rss, 'MiB'):>9}{_fmt(r.get('gpu_peak_mib'), 'MiB'):>9}", flush=True)

    print()
    print("coarse = Fill to coarse stage shown (HD prep + coarse net); attn = contextual attention "
          "layers; rest = refined - coarse - attn (refine convs, compositing); CPU = process CPU "
          "seconds of the whole fill (all threads; robust to a busy machine, where wall times "
          "inflate); load = reading the "
          "weights file; cold = the first fill after it (refined); RSS = peak of the case's process.")
    print()
    print("Ratios (reference / ours, same run):")
    for key in keys:
        ours, ref = results.get((key, "ours")), results.get((key, "reference"))
        if ours and ref:
            print(f"  {CASES[key].label:<22} refined x{ref['refined'] / ours['refined']:.1f}, "
                  f"attention x{ref['attention'] / max(ours['attention'], 1e-9):.1f}, "
                  f"peak RSS x{ref['rss_mib'] / ours['rss_mib']:.1f}")
            if gpu and key == "512":
                speedup = ref["refined"] / ours["refined"]
                print(f"  {'':<22} GPU speed-up target >= {GPU_MIN_SPEEDUP:g}x: "
                      f"{'met' if speedup >= GPU_MIN_SPEEDUP else 'MISSED'}")
    print()
    print("Precision (fp32 / bf16 wall time, same run):")
    for key in keys:
        f32 = results.get((key, "ours-fp32"))
        for other in ("bf16", "bf16+fused"):
            b16 = results.get((key, f"ours-{other}"))
            if f32 and b16:
                print(f"  {CASES[key].label:<22} fp32 / {other:<10} coarse x{f32['coarse'] / b16['coarse']:.2f}, "
                      f"refined x{f32['refined'] / b16['refined']:.2f}, CPU s x{f32['cpu'] / b16['cpu']:.2f}")
        if (key, "ours-bf16+fused") in results:
            print(f"  {'':<22} compiling the fused gating took "
                  f"{results[key, 'ours-bf16+fused']['compile']:.1f} s (once per process, in the background)")
    print()
    print("Targets (issue 10): 512x512 refined <= 0.6 s in bf16 on a 2-core AMX CPU; <= 1.5 s "
          "in fp32 on an AVX2-only CPU (run with ONEDNN_MAX_CPU_ISA=AVX2 to imitate one).")
    for prec, limit in (("bf16", 0.6), ("bf16+fused", 0.6), ("fp32", 1.5)):
        r = results.get(("512", f"ours-{prec}"))
        value = None if r is None else r["refined"]
        shown = "-" if value is None else f"{value:.3f} s"
        print(f"  {CASES['512'].label:<22} {prec:<10} {shown:>12}   {_verdict(value, limit, 's')}")
    print()
    print("Targets (issue 3, part 6; ours in fp32):")
    for (key, measure), limit in targets.items():
        r = results.get((key, "ours-fp32")) or results.get((key, "ours"))
        value = None if r is None else r["rss_mib"] if measure == "rss" else r[measure]
        unit = "MiB" if measure == "rss" else "s"
        shown = "-" if value is None else f"{value:.3f} s" if unit == "s" else f"{value:.0f} MiB"
        print(f"  {CASES[key].label:<22} {measure:<8} {shown:>12}   {_verdict(value, limit, unit)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
