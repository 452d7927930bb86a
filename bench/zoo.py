"""Train every architecture of the zoo for the same short budget and compare them.

    python bench/zoo.py [--data DIR] [--size 128] [--steps 60] [--width small] [--minutes 0]

Each architecture trains through the real trainer (``trainer.loop.train``, its own recipe and
losses) on the same photos, crop size, batch size, seed and number of generator steps,
validating its EMA generator on the trainer's fixed validation set every ``--val-every``
steps and at the last step. ``--minutes`` caps each run's time; a run stopped by the cap
reports its last validation (the "@step" column), or n/a if none happened yet. The table gives, side by side:
parameters, training speed (generator steps/s and images/s through G), inference time per
image at the training size, and the last validation L1 / PSNR / SSIM (composited result,
whole image, [0, 1] scale) with the step it was measured at.

VGG-16: CSA and PConv need VGG features for their losses. Without ``--vgg-weights`` (a
torchvision ImageNet state dict) the bench writes a randomly initialised VGG-16 and says so in
the table: their perceptual, style and consistency terms are then not the papers' losses.

``--width small`` (default) uses reduced widths so a CPU can take a few dozen steps per
architecture in minutes; ``--width reference`` uses each paper's widths (for a GPU).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from inpaint_studio import networks  # noqa: E402
from trainer.config import TrainConfig  # noqa: E402
from trainer.loop import train  # noqa: E402
from trainer.recipes import get_recipe, recipe_names  # noqa: E402

WIDTHS = {
    "small": {
        "deepfill_v1": {"cnum": 16},
        "deepfill_v2": {"cnum": 24},
        "csa": {"cnum": 16, "depth": 5},
        "pconv": {"cnum": 16, "depth": 5},
    },
    "reference": {
        "deepfill_v1": {"cnum": 32},
        "deepfill_v2": {"cnum": 48},
        "csa": {"cnum": 64, "depth": 6},
        "pconv": {"cnum": 64, "depth": 7},
    },
}


def random_vgg_file(folder: Path) -> Path:
    """A VGG-16 state dict in torchvision's naming with He-initialised random weights."""
    from safetensors.torch import save_file

    from inpaint_studio.networks.vgg import _CONVS

    g = torch.Generator().manual_seed(0)
    state = {}
    for index, cin, cout in _CONVS:
        std = math.sqrt(2.0 / (9 * cin))
        state[f"features.{index}.weight"] = torch.randn(cout, cin, 3, 3, generator=g) * std
        state[f"features.{index}.bias"] = torch.zeros(cout)
    path = folder / "vgg16_RANDOM_not_imagenet.safetensors"
    save_file(state, str(path))
    return path


def inference_ms(arch: str, args: dict, size: int, device: torch.device, repeats: int = 5) -> float:
    """Median milliseconds of one eval forward (all stages) on one ``size`` image."""
    torch.manual_seed(0)
    G = networks.build(arch, **args).to(device).eval()
    image = torch.rand(1, 3, size, size, device=device) * 2 - 1
    mask = torch.zeros(1, 1, size, size, device=device)
    mask[..., size // 4: size * 3 // 4, size // 4: size * 3 // 4] = 1
    times = []
    with torch.no_grad():
        for i in range(repeats + 1):
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            G(image, mask)
            if device.type == "cuda":
                torch.cuda.synchronize()
            if i:  # the first run warms up
                times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def read_log(run_dir: Path) -> dict:
    """Last validation metrics (and their step) and the done event of a run's log.jsonl."""
    result: dict = {}
    for line in (run_dir / "log.jsonl").read_text().splitlines():
        record = json.loads(line)
        if "val_l1" in record:
            result.update({k: v for k, v in record.items() if k.startswith("val_")})
            result["val_step"] = record.get("step")
        if record.get("event") == "done":
            result["steps"] = record["step"]
            result["seconds"] = record["seconds"]
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "train"),
                        help="training photos (default: ../shared/data/train)")
    parser.add_argument("--arch", nargs="+", default=None,
                        help="architectures to train (default: every one with a recipe)")
    parser.add_argument("--size", type=int, default=128, help="training crop size")
    parser.add_argument("--batch-size", type=int, default=4, help="images per step")
    parser.add_argument("--steps", type=int, default=60, help="generator steps per architecture")
    parser.add_argument("--minutes", type=float, default=0.0,
                        help="time cap per architecture (0 = none); the run stops at the cap")
    parser.add_argument("--val-every", type=int, default=0,
                        help="also validate every N steps (0 = only at the last step)")
    parser.add_argument("--val-count", type=int, default=16, help="validation photos (fixed, seeded)")
    parser.add_argument("--width", choices=sorted(WIDTHS), default="small",
                        help="network widths: small (CPU) or reference (the papers')")
    parser.add_argument("--vgg-weights", default="",
                        help="VGG-16 ImageNet weights; default: a random VGG, labelled as such")
    parser.add_argument("--workers", type=int, default=2, help="data-loading workers")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--out", default="", help="run folders (default: a temporary folder)")
    args = parser.parse_args(argv)

    archs = args.arch or [a for a in recipe_names() if a in networks.generator_names()]
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="zoo-bench-"))
    out.mkdir(parents=True, exist_ok=True)
    vgg_label = "ImageNet"
    vgg_path = args.vgg_weights
    if not vgg_path and any(get_recipe(a).needs_vgg for a in archs):
        vgg_path = str(random_vgg_file(out))
        vgg_label = "RANDOM"
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                          else ("cpu" if args.device == "auto" else args.device))

    rows = []
    for arch in archs:
        gen_args = WIDTHS[args.width].get(arch, {})
        cfg = TrainConfig(
            arch=arch, gen_args=dict(gen_args), data=[args.data], out=str(out / arch),
            size=args.size, batch_size=args.batch_size, steps=args.steps,
            val_count=args.val_count, val_every=args.val_every, sample_every=0,
            ckpt_every=max(args.steps, 1), log_every=10, workers=args.workers, seed=0,
            max_minutes=args.minutes, device=args.device,
            vgg_weights=vgg_path if get_recipe(arch).needs_vgg else "",
        )
        print(f"== {arch} {gen_args} ==", flush=True)
        train(cfg)
        log = read_log(out / arch)
        params = sum(p.numel() for p in networks.build(arch, **gen_args).parameters())
        steps_per_s = log["steps"] / max(log["seconds"], 1e-9)
        rows.append({
            "arch": arch, "args": gen_args, "params_m": params / 1e6, "steps": log["steps"],
            "steps_per_s": steps_per_s, "images_per_s": steps_per_s * args.batch_size,
            "infer_ms": inference_ms(arch, gen_args, args.size, device),
            "val_l1": log.get("val_l1"), "val_psnr": log.get("val_psnr"),
            "val_ssim": log.get("val_ssim"), "val_step": log.get("val_step"),
            "vgg": vgg_label if get_recipe(arch).needs_vgg else "-",
        })

    cap = f" (time cap {args.minutes} min)" if args.minutes else ""
    print(f"\nZoo benchmark: {args.size}x{args.size}, batch {args.batch_size}, {args.steps} G steps "
          f"each{cap}, device {device}, widths '{args.width}', data {args.data}")
    header = ("arch", "args", "params M", "G steps", "steps/s", "img/s", "infer ms", "val L1",
              "val PSNR", "val SSIM", "@step", "VGG")
    print(" | ".join(header))
    print(" | ".join("---" for _ in header))

    def fmt(v, spec):
        return "n/a" if v is None else format(v, spec)

    for r in rows:
        print(" | ".join([
            r["arch"], json.dumps(r["args"]), f"{r['params_m']:.2f}", str(r["steps"]),
            f"{r['steps_per_s']:.2f}", f"{r['images_per_s']:.1f}", f"{r['infer_ms']:.0f}",
            fmt(r["val_l1"], ".4f"), fmt(r["val_psnr"], ".2f"), fmt(r["val_ssim"], ".3f"),
            str(r["val_step"]), r["vgg"],
        ]))
    if vgg_label == "RANDOM":
        print("\nVGG = RANDOM: no ImageNet VGG-16 was given, so CSA and PConv trained with a "
              "randomly initialised VGG-16; their perceptual/style/consistency terms are not "
              "the papers' losses. Pass --vgg-weights for real figures.")
    print("img/s counts images through the generator; DeepFill v1 also runs 5 critic steps "
          "per generator step (5 batches through G and D).")
    (out / "zoo.json").write_text(json.dumps(rows, indent=2))
    print(f"runs and zoo.json under {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
