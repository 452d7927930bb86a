"""Training speed of DeepFill v2: images/s of one G+D step at 256x256.

    python bench/train_speed.py                    # CPU (2 threads): ours vs reference-style
    python bench/train_speed.py --size 128 --batch 16 --no-reference   # fp32 vs bf16 at 128 px
    python bench/train_speed.py --quick            # a short check that it runs
    python bench/train_speed.py --device cuda      # GPU: bf16 / channels_last / compile variants

One step is what ``trainer.loop`` does per image batch: generator forward, SN-PatchGAN
discriminator update on the detached composite (hinge), generator update (L1 on both stages
+ hinge), through the real ``deepfill_v2`` recipe and the loop's own update function
(backward, clipping guard, Adam). Random weights and synthetic photos: speed does not depend
on them. DeepFill v2 at its full width (cnum 48), or ``--cnum 32`` (the shipped model's).

Compared in the same run: a reference-style step (fp32, contextual attention as
``bench/reference_contextual.py``: a Python loop over the batch, unchunked scores) swapped into
the same generator. The ratio ours / reference is printed. Issue 5's target on an H100/H200:
at least 300 images/s for the G+D step at 256x256. On the CPU, fp32 and bf16 (autocast,
channels_last, with and without the fused gating of ``layers/gating.py``) side by side;
issue 10's targets on a 2-core AMX CPU: >= 10 images/s at 128 px, >= 4 at 256 px.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from bench.reference_contextual import swap_in_reference  # noqa: E402
from inpaint_studio.layers.contextual import ContextualAttention  # noqa: E402
from inpaint_studio.masks import mixed_mask  # noqa: E402
from inpaint_studio import precision  # noqa: E402
from inpaint_studio.layers import gating  # noqa: E402
from trainer.loop import _adam, apply_update  # noqa: E402
from trainer.recipes import get_recipe  # noqa: E402

TARGET_GPU_IMAGES_PER_S = 300
#: Issue 10's CPU targets (2-core AMX CPU, bf16): images/s by crop size.
CPU_TARGETS = {128: 10.0, 256: 4.0}


def synthetic_batch(batch: int, size: int, device: torch.device) -> dict[str, torch.Tensor]:
    """Smooth random photos in [-1, 1], DeepFill v2 free-form+box masks, sparse sketches."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size] / size
    images, masks = [], []
    for _ in range(batch):
        f = rng.uniform(2, 12, 3)
        img = np.stack([np.sin(f[c] * (xx + yy * rng.uniform())) for c in range(3)])
        images.append(img.astype(np.float32) * 0.8)
        masks.append((mixed_mask(size, size, rng) > 127).astype(np.float32)[None])
    image = torch.from_numpy(np.stack(images))
    mask = torch.from_numpy(np.stack(masks))
    sketch = (torch.rand(mask.shape, generator=torch.Generator().manual_seed(0)) > 0.97).float()
    return {k: v.to(device) for k, v in
            {"image": image, "mask": mask, "sketch": sketch * mask}.items()}


def measure(device: torch.device, batch: dict[str, torch.Tensor], *, reference: bool,
            amp: torch.dtype | None, channels_last: bool, compile: bool, steps: int,
            warmup: int, fused_gating: bool = False, cnum: int = 48) -> float:
    """Images per second of the G+D step for one variant (median of per-step times)."""
    gating.set_fused(fused_gating)
    torch.manual_seed(0)
    recipe = get_recipe("deepfill_v2")(None, device, None)
    G = recipe.build_generator({"cnum": cnum})
    D = recipe.build_discriminators()
    if reference:
        swap_in_reference(G, ContextualAttention)
    G.to(device).train()
    D.to(device).train()
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    if channels_last:
        G.to(memory_format=fmt)
        D.to(memory_format=fmt)
        batch = {k: v.contiguous(memory_format=fmt) for k, v in batch.items()}
    opt_g = _adam(list(G.parameters()), recipe.lr_g, recipe.betas, device)
    opt_d = _adam(list(D.parameters()), recipe.lr_d, recipe.betas, device)
    scaler = torch.amp.GradScaler(device.type, enabled=amp == torch.float16)
    G_run = torch.compile(G) if compile else G
    D_run = torch.nn.ModuleDict({k: torch.compile(v) for k, v in D.items()}) if compile else D

    def step() -> None:
        with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
            out = recipe.run_generator(G_run, batch)
            detached = {"stages": tuple(s.detach() for s in out["stages"])}
            d_loss, _ = recipe.d_loss(D_run, batch, detached)
        apply_update(d_loss, opt_d, list(D.parameters()), scaler, 0.0)
        D.requires_grad_(False)
        with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
            g_loss, _ = recipe.g_loss(D_run, batch, out)
        D.requires_grad_(True)
        apply_update(g_loss, opt_g, list(G.parameters()), scaler, 0.0)  # updates the scaler

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(warmup):
        step()
    sync()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - start)
    return batch["image"].shape[0] / statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    parser.add_argument("--batch", type=int, default=0,
                        help="images per step (default: 2 on CPU, 32 on GPU)")
    parser.add_argument("--size", type=int, default=256, help="crop size (default: 256)")
    parser.add_argument("--steps", type=int, default=0,
                        help="timed steps per variant (default: 3 on CPU, 20 on GPU)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (default: 2)")
    parser.add_argument("--cnum", type=int, default=48,
                        help="DeepFill v2's base width (48: the paper's; 32: the shipped model's)")
    parser.add_argument("--no-compile", action="store_true", help="GPU: skip compile variants")
    parser.add_argument("--no-reference", action="store_true", help="skip the reference-style step")
    parser.add_argument("--quick", action="store_true",
                        help="a short run: 128 px, batch 4, two timed steps, no reference")
    args = parser.parse_args(argv)
    if args.quick:
        args.size, args.batch, args.steps = 128, args.batch or 4, args.steps or 2
        args.no_reference = True

    device = torch.device(args.device)
    gpu = device.type == "cuda"
    if gpu and not torch.cuda.is_available():
        print("no CUDA device here; run with --device cpu")
        return 2
    torch.set_num_threads(args.threads)
    batch_size = args.batch or (32 if gpu else 2)
    steps = args.steps or (20 if gpu else 3)
    warmup = 3 if gpu else 1
    batch = synthetic_batch(batch_size, args.size, device)
    where = torch.cuda.get_device_name(device) if gpu else f"CPU, {args.threads} threads"
    print(f"DeepFill v2 (cnum {args.cnum}) G+D training step, {args.size}x{args.size}, batch "
          f"{batch_size}, {where}; random weights, synthetic photos")

    if gpu:
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        bf16 = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        variants = [("ours fp32", dict(amp=None, channels_last=False, compile=False)),
                    (f"ours {str(bf16)[6:]}", dict(amp=bf16, channels_last=False, compile=False)),
                    (f"ours {str(bf16)[6:]} + channels_last",
                     dict(amp=bf16, channels_last=True, compile=False))]
        if not args.no_compile:
            variants += [(f"ours {str(bf16)[6:]} + compile",
                          dict(amp=bf16, channels_last=False, compile=True)),
                         (f"ours {str(bf16)[6:]} + channels_last + compile",
                          dict(amp=bf16, channels_last=True, compile=True))]
    else:
        # fp32 and bf16 side by side (bf16 is emulated, hence slow, without AMX/AVX512-BF16)
        native = "native" if precision.cpu_has_native_bf16() else "EMULATED on this CPU"
        variants = [("ours fp32", dict(amp=None, channels_last=False, compile=False)),
                    ("ours fp32 + channels_last", dict(amp=None, channels_last=True, compile=False)),
                    (f"ours bf16 ({native}) + channels_last",
                     dict(amp=torch.bfloat16, channels_last=True, compile=False)),
                    ("ours bf16 + channels_last + fused gating",
                     dict(amp=torch.bfloat16, channels_last=True, compile=False, fused_gating=True))]

    rates: dict[str, float] = {}
    if args.no_reference:
        reference = None
    else:
        reference = measure(device, batch, reference=True, amp=None, channels_last=False,
                            compile=False, steps=steps, warmup=warmup, cnum=args.cnum)
        print(f"  {'reference-style fp32 (per-sample attention)':<48} {reference:8.2f} images/s")
    for name, options in variants:
        rates[name] = measure(device, batch, reference=False, steps=steps, warmup=warmup,
                              cnum=args.cnum, **options)
        base = rates["ours fp32"]
        print(f"  {name:<48} {rates[name]:8.2f} images/s   x{rates[name] / base:.2f} vs ours fp32"
              + (f", x{rates[name] / reference:.2f} vs reference" if reference else ""), flush=True)
    best_name = max(rates, key=rates.get)
    print(f"best: {best_name}, {rates[best_name]:.2f} images/s")
    if not gpu:
        target = CPU_TARGETS.get(args.size)
        if target:
            verdict = "meets" if rates[best_name] >= target else "misses"
            print(f"target >= {target:g} images/s at {args.size} px on a 2-core AMX CPU (issue 10): "
                  f"{verdict} it")
    if gpu:
        verdict = "meets" if rates[best_name] >= TARGET_GPU_IMAGES_PER_S else "misses"
        print(f"target >= {TARGET_GPU_IMAGES_PER_S} images/s on an H100/H200: {verdict} it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
