"""The training loop: one function, :func:`train`, for train, finetune and resume.

Per step (``step`` counts generator updates): for each of ``--d-steps`` (default: the recipe's
``d_steps_per_g``) batches, run the generator and update the discriminators on its detached
output; then update the generator on the last batch and move the EMA copy towards it. Around
that: AMP (autocast, plus a gradient scaler for fp16), optional ``torch.compile``, gradient
clipping, a guard that skips any update whose gradients are not finite, DDP when launched by
torchrun, validation of the EMA generator on a fixed set, sample grids, early stopping and
atomic checkpoints from which ``--resume`` continues exactly (checkpoint layout:
``checkpoint.py``).

Exact resume: the data order (epoch and position in it), weights, optimizer and scaler
states and every random generator are restored. With ``--workers 0`` and ``--deterministic``
on the CPU a run stopped and resumed ends bit-identical to an uninterrupted one; with workers,
the order is the same and each worker's augmentation stream is reseeded per epoch.
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader

from inpaint_studio import networks, precision
from inpaint_studio.layers import gating
from inpaint_studio.weights import load_model

from .checkpoint import BEST, LAST, capture_rng, restore_rng, save_checkpoint
from .config import TrainConfig, resumed_generator_args
from .batches import Batches, training_data
from . import freeze
from .evaluate import batch_metrics
from .progress import Progress, sample_grid
from .recipes import Recipe, get_recipe
from .relay import load_resume_state

# After this many consecutive skipped (non-finite) updates the run is declared diverged.
MAX_CONSECUTIVE_NONFINITE = 50
SAMPLE_ROWS = 4


# ---------------------------------------------------------------------------------------------
# Process, device and precision


@dataclass(frozen=True)
class Distributed:
    """Where this process stands in a (possibly single-process) run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _start_distributed(device_pref: str) -> Distributed:
    """Join the process group when torchrun launched us (its RANK/WORLD_SIZE/LOCAL_RANK)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Distributed()
    env = Distributed(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    use_cuda = torch.cuda.is_available() and device_pref != "cpu"
    if use_cuda:
        torch.cuda.set_device(env.local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return env


def _pick_device(pref: str, env: Distributed) -> torch.device:
    if pref == "auto":
        pref = "cuda" if torch.cuda.is_available() else "cpu"
    if pref.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RuntimeError(f"--device {pref}: no CUDA device is available here (use cpu)")
        # Under torchrun every process drives the GPU of its local rank.
        return torch.device("cuda", env.local_rank if env.enabled else torch.device(pref).index or 0)
    return torch.device(pref)


def _autocast_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """``auto``: the precision policy's choice (bf16 on GPUs and CPUs that compute it natively,
    fp16 with a scaler on older GPUs, None = full precision elsewhere); else as forced."""
    if amp == "auto":
        dtype = precision.resolve("auto", device)
        return None if dtype == torch.float32 else dtype
    return {"bf16": torch.bfloat16, "fp16": torch.float16, "off": None}[amp]


def _agree(flag: bool, env: Distributed, device: torch.device) -> bool:
    """Rank 0's decision, on every rank (stop decisions must be collective or DDP hangs)."""
    if not env.enabled:
        return flag
    t = torch.tensor([1 if flag else 0], device=device)
    dist.broadcast(t, 0)
    return bool(t.item())


@contextlib.contextmanager
def _rng_untouched() -> Iterator[None]:
    """Validation and sampling must not shift the training's random streams (so their
    frequency does not change the training, and resume stays exact)."""
    state = capture_rng()
    try:
        yield
    finally:
        restore_rng(state)


# ---------------------------------------------------------------------------------------------
# Updates


def apply_update(loss: torch.Tensor, opt: torch.optim.Optimizer, params: list[nn.Parameter],
                 scaler: torch.amp.GradScaler, clip: float) -> torch.Tensor:
    """Backward, clip, step, scaler update. Returns a 0-dim bool tensor on the device: False
    when the gradients were not finite, and then no weight changed (a fp16 scaler also lowers
    its scale).

    No host sync: the finite flag stays on the device. A fused Adam (``fused=True``) skips its
    own step where its ``found_inf`` is set, as it does for a fp16 scaler; other optimizers
    fall back to reading the flag. Each call ends with ``scaler.update()``, so an optimizer can
    step several times per training step (DeepFill v1's D steps): a GradScaler unscales an
    optimizer once per update."""
    scaler.scale(loss).backward()
    scaler.unscale_(opt)
    norm = torch.nn.utils.clip_grad_norm_(params, clip if clip > 0 else math.inf)
    finite = torch.isfinite(norm)
    if scaler.is_enabled():
        scaler.step(opt)  # the scaler skips the step itself when it saw inf/NaN
    elif opt.param_groups[0].get("fused"):
        opt.found_inf = (~finite).float()
        try:
            opt.step()
        finally:
            del opt.found_inf
    elif bool(finite):
        opt.step()
    scaler.update()
    opt.zero_grad(set_to_none=True)
    return finite


def _adam(params: list[nn.Parameter], lr: float, betas: tuple[float, float],
          device: torch.device) -> torch.optim.Adam:
    """Adam, fused (one kernel per step, and on-device skipping of non-finite steps) on the
    CPU and CUDA."""
    return torch.optim.Adam(params, lr=lr, betas=betas, fused=device.type in ("cpu", "cuda") or None)


@torch.no_grad()
def _ema_update(ema: nn.Module, model: nn.Module, decay: float, applied: torch.Tensor) -> None:
    """``ema += (1 - decay) * (model - ema)`` where ``applied`` (0-dim bool tensor: the
    generator's update happened) is True; unchanged otherwise, without a host sync."""
    e_params = [p for p in ema.parameters()]
    m_params = [p.detach() for p in model.parameters()]
    weight = applied.to(e_params[0].dtype) * (1.0 - decay)
    torch._foreach_lerp_(e_params, m_params, [weight] * len(e_params))
    for e, b in zip(ema.buffers(), model.buffers()):
        e.copy_(b)


def _discriminator_update(cfg: TrainConfig, recipe: Recipe, D_run: nn.Module, batch: dict,
                          out: dict[str, Any], opt_d: torch.optim.Optimizer,
                          d_params: list[nn.Parameter], scaler: torch.amp.GradScaler,
                          autocast: Callable[[], Any]) -> tuple[torch.Tensor, dict, torch.Tensor]:
    """One discriminator update on ``batch`` and the generator's (detached) output ``out``.
    Returns the loss (detached), its logged parts and the 0-dim bool finite flag of
    :func:`apply_update`, all on the device. Shared by the warm-up and the main loop, so both
    treat a non-finite update the same way."""
    with autocast():
        d_loss, d_parts = recipe.d_loss(D_run, batch, _detached(out))
    finite = apply_update(d_loss, opt_d, d_params, scaler, cfg.grad_clip)
    return d_loss.detach(), d_parts, finite


def _warm_up_discriminator(cfg: TrainConfig, recipe: Recipe, G_run: nn.Module, D_run: nn.Module,
                           opt_d: torch.optim.Optimizer, d_params: list[nn.Parameter],
                           scaler: torch.amp.GradScaler, autocast: Callable[[], Any],
                           batches: Batches, progress: Progress, step: int,
                           counters: dict[str, Any], env: Distributed) -> None:
    """``cfg.d_warmup_steps`` discriminator updates on the generator's current fills, before
    the generator's first update in this process (which stays where it was).

    Why: a GAN phase resumed from a model trained on L1 alone starts with a discriminator that
    last saw a much worse generator, and its first gradients paint artefacts (a grid in smooth
    areas: docs/training.md, A/B 9). Letting it catch up first gives the generator meaningful
    adversarial gradients from its first step. The images count towards ``counters["images"]``
    (they were read and trained on); ``step`` (generator updates) does not move. It stops with a
    FloatingPointError after MAX_CONSECUTIVE_NONFINITE consecutive non-finite updates, as the
    main loop does, or when none of its updates was finite."""
    n = cfg.d_warmup_steps
    # Per half: loss sum and number of finite updates, on the device. Like the main loop, the
    # run of consecutive skipped updates is read only every MAX_CONSECUTIVE_NONFINITE updates
    # (a host sync), so a warm-up that diverges half-way stops under the same rule.
    halves = torch.zeros(2, 2, device=d_params[0].device)
    bad_run = torch.zeros((), dtype=torch.int64, device=d_params[0].device)
    for i in range(n):
        batch = batches.next()
        with autocast(), torch.no_grad():
            out = recipe.run_generator(G_run, batch)
        d_loss, _, finite = _discriminator_update(cfg, recipe, D_run, batch, out, opt_d,
                                                  d_params, scaler, autocast)
        # A skipped (non-finite) update adds nothing to the means, as to the weights.
        halves[int(2 * i >= n)] += torch.stack([torch.where(finite, d_loss.float(), 0.0),
                                                finite.float()])
        bad_run = (bad_run + 1) * ~finite
        counters["images"] += cfg.batch_size * env.world_size
        if (i + 1) % MAX_CONSECUTIVE_NONFINITE == 0 and int(bad_run) >= MAX_CONSECUTIVE_NONFINITE:
            raise FloatingPointError(
                f"discriminator warm-up diverged: {int(bad_run)} consecutive updates with "
                f"non-finite gradients by update {i + 1} of {n} (lower --lr-d or use --grad-clip)")
    # A second half's mean below the first's says the discriminator caught up on something.
    means = [round(total / count, 5) if count else None for total, count in halves.tolist()]
    bad = n - int(halves[:, 1].sum())
    counters["nonfinite"] += bad
    progress.event("d_warmup", step, updates=n, nonfinite_skipped=bad,
                   loss_d_first_half=means[0], loss_d_second_half=means[1])
    if bad == n:
        raise FloatingPointError(f"discriminator warm-up diverged: all {n} updates had "
                                 "non-finite gradients (lower --lr-d or use --grad-clip)")


def _detached(out: dict[str, Any]) -> dict[str, Any]:
    def detach(v: Any) -> Any:
        if torch.is_tensor(v):
            return v.detach()
        if isinstance(v, (tuple, list)):
            return type(v)(detach(x) for x in v)
        return v
    return {k: detach(v) for k, v in out.items()}


def _param_count(optimizer_state: dict[str, Any]) -> int:
    """Number of parameter tensors an optimiser's ``state_dict()`` covers."""
    return sum(len(group["params"]) for group in optimizer_state["param_groups"])


def _load_vgg(recipe_cls: type[Recipe], cfg: TrainConfig, device: torch.device) -> nn.Module | None:
    if not recipe_cls.needs_vgg:
        return None
    from inpaint_studio.networks.vgg import VGG16Features

    # VGG16Features raises VGGWeightsMissing with the message saying what to supply.
    return VGG16Features(cfg.vgg_weights or None).to(device).eval()


# ---------------------------------------------------------------------------------------------
# Validation


@torch.no_grad()
def _validate(G: nn.Module, recipe: Recipe, val_batches: list[dict[str, torch.Tensor]],
              autocast: Callable[[], Any]) -> tuple[dict[str, float], np.ndarray]:
    """EMA generator on the fixed validation set: mean L1/PSNR/SSIM of the composited final
    stage, and the sample grid of its first rows."""
    was_training = G.training
    G.eval()
    scores: list[dict[str, float]] = []
    grid = None
    for batch in val_batches:
        with autocast():
            stages = recipe.run_generator(G, batch)["stages"]
        stages = tuple(s.float() for s in stages)
        final = stages[-1] * batch["mask"] + batch["image"] * (1 - batch["mask"])
        scores.extend(batch_metrics(final, batch["image"]))
        if grid is None:
            n = min(SAMPLE_ROWS, batch["image"].shape[0])
            grid = sample_grid(batch["image"][:n], batch["mask"][:n],
                               tuple(s[:n] for s in stages), batch["sketch"][:n])
    G.train(was_training)
    metrics = {f"val_{k}": float(np.mean([s[k] for s in scores])) for k in scores[0]}
    return metrics, grid


# ---------------------------------------------------------------------------------------------
# The run


@dataclass
class RunResult:
    """How a run ended: its folder, last step, best validation L1, why it stopped."""

    out_dir: Path
    step: int
    best_val_l1: float | None
    stopped: str  # "steps", "early_stop", "time"


def train(cfg: TrainConfig, on_step: Callable[[int], None] | None = None) -> RunResult:
    """Run (or continue, with ``cfg.resume``) training as ``cfg`` says.

    on_step: called with the step number after each completed step (after its checkpoint);
        an exception from it ends the run as a kill would (tests use it).
    """
    env = _start_distributed(cfg.device)
    device = _pick_device(cfg.device, env)
    out_dir = Path(cfg.out)
    resume_state = load_resume_state(cfg.resume) if cfg.resume else None
    if cfg.deterministic and device.type == "cuda":
        # CPU kernels are deterministic for a fixed thread count already (and the switch
        # below would import torch's compiler, seconds of start-up).
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    fused = gating.set_fused(cfg.fused_gating)

    # Same initial weights on every rank (DDP also broadcasts rank 0's), then per-rank streams.
    torch.manual_seed(cfg.seed)
    recipe_cls = get_recipe(cfg.arch)
    vgg = _load_vgg(recipe_cls, cfg, device)
    recipe = recipe_cls(cfg, device, vgg)
    base_card = None
    if resume_state is not None:
        G = networks.build(cfg.arch, **resumed_generator_args(resume_state, cfg))
    elif cfg.init:
        G, base_card = load_model(cfg.init)
        if G.arch != cfg.arch:
            raise ValueError(f"--init {cfg.init} is a {G.arch} model, but --arch is {cfg.arch}")
    else:
        G = recipe.build_generator(cfg.generator_args())
    # Training-time adjustments (e.g. frozen encoder batch norm) apply however G was made.
    if cfg.freeze_enc_bn and not hasattr(G, "freeze_encoder_bn"):
        raise ValueError(f"--freeze-enc-bn: generator {cfg.arch!r} has no encoder batch norm "
                         "to freeze (pconv has)")
    recipe.prepare_generator(G)
    D = recipe.build_discriminators()
    G.to(device)
    D.to(device)
    if cfg.channels_last:
        G.to(memory_format=torch.channels_last)
        D.to(memory_format=torch.channels_last)
    if cfg.freeze_coarse:
        freeze.freeze_coarse(G)
    if cfg.train_only:
        freeze.train_only(G, cfg.train_only)
    seed = cfg.seed + env.rank
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)

    g_params = [p for p in G.parameters() if p.requires_grad]
    d_params = list(D.parameters())
    lr_g = cfg.lr_g or recipe.lr_g * cfg.lr_scale
    lr_d = cfg.lr_d or recipe.lr_d * cfg.lr_scale
    opt_g = _adam(g_params, lr_g, recipe.betas, device)
    opt_d = _adam(d_params, lr_d, recipe.betas, device) if d_params else None
    amp_dtype = _autocast_dtype(cfg.amp, device)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)

    def autocast() -> Any:
        return torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None)

    data = training_data(cfg)
    step, epoch, batches_done = 0, 0, 0
    best = {"val_l1": None, "since": 0}
    counters = {"nonfinite": 0, "images": 0, "seconds": 0.0, "skipped_files": 0}
    ema = copy.deepcopy(G).eval().requires_grad_(False)
    if resume_state is not None:
        G.load_state_dict(resume_state["generator"])
        ema.load_state_dict(resume_state["ema"])
        D.load_state_dict(resume_state["discriminators"])
        # A relay state (trainer/relay.py) carries no optimizer moments: Adam starts afresh.
        saved_g = resume_state["opt_g"]
        if saved_g is not None and _param_count(saved_g) != len(g_params):
            # --train-only or --freeze-coarse changed on resume: the moments belong to another
            # set of parameters, so the generator's Adam starts afresh (as from a relay state).
            print(f"note: the generator now trains {len(g_params)} parameter tensors, the "
                  f"checkpoint's optimiser {_param_count(saved_g)}: its Adam starts afresh",
                  file=sys.stderr)
            saved_g = None
        if saved_g is not None:
            opt_g.load_state_dict(saved_g)
        if opt_d is not None and resume_state["opt_d"] is not None:
            opt_d.load_state_dict(resume_state["opt_d"])
        # The saved state carries the old learning rates; the configuration's win (so that
        # `--resume RUN --lr-g X` lowers the rate, e.g. to decay it for the end of a run).
        for opt, lr in ((opt_g, lr_g), (opt_d, lr_d)):
            for group in (opt.param_groups if opt is not None else []):
                group["lr"] = lr
        if resume_state["scaler"] is not None:
            scaler.load_state_dict(resume_state["scaler"])
        step = resume_state["step"]
        epoch, batches_done = resume_state["data"]["epoch"], resume_state["data"]["batches_done"]
        best, counters = resume_state["best"], resume_state["counters"]

    G_run: nn.Module = DDP(G, device_ids=[device.index] if device.type == "cuda" else None) \
        if env.enabled else G
    D_run = nn.ModuleDict({k: DDP(v, device_ids=[device.index] if device.type == "cuda" else None)
                           for k, v in D.items()}) if env.enabled else D
    # The generator step needs D's gradients w.r.t. its input only, not D's weights: it calls
    # the bare modules with frozen weights (no DDP gradient sync needed either).
    D_frozen = nn.ModuleDict(dict(D.items()))
    if cfg.compile:
        G_run = torch.compile(G_run)
        D_run = nn.ModuleDict({k: torch.compile(v) for k, v in D_run.items()})
        D_frozen = nn.ModuleDict({k: torch.compile(v) for k, v in D_frozen.items()})

    batches = Batches(data, cfg, env, device, epoch, batches_done)
    # The fixed validation set, read once by rank 0 (the only one that validates).
    val_batches = [{k: v.to(device) for k, v in b.items() if k != "skipped_files"}
                   for b in DataLoader(data.val, batch_size=cfg.batch_size)] if env.is_main else []
    progress = Progress(out_dir, cfg.steps, first_step=step, enabled=env.is_main)

    def state() -> dict[str, Any]:
        return {
            "step": step, "config": cfg.to_json(), "arch_args": dict(G.arch_args),
            "generator": G.state_dict(),
            "ema": ema.state_dict(), "discriminators": D.state_dict(),
            "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict() if opt_d else None,
            "scaler": scaler.state_dict() if scaler.is_enabled() else None,
            "rng": capture_rng(), "data": {"epoch": batches.epoch,
                                           "batches_done": batches.batches_done},
            "best": dict(best),
            # skipped steps not yet read into the counters (see the loop) count too
            "counters": {**counters, "nonfinite": counters["nonfinite"] + int(bad_since_log)},
            "base_model": base_card.title if base_card else
            (resume_state or {}).get("base_model", ""),
            "photos": data.photo_count, "data_sources": [str(d) for d in cfg.data],
            "device_name": _device_name(device), "world_size": env.world_size,
        }

    def checkpoint(name: str = LAST) -> None:
        if env.is_main:
            save_checkpoint(out_dir / name, state())
            progress.event("checkpoint", step, path=str(out_dir / name))

    if env.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        cfg.save(out_dir / "config.json")
    progress.event("start", step, arch=cfg.arch, steps=cfg.steps, photos=data.photo_count,
                   val_photos=len(data.val), val_skipped=data.val.bad_files, device=str(device),
                   world_size=env.world_size,
                   amp=str(amp_dtype).replace("torch.", "") if amp_dtype else "off",
                   fused_gating=fused,
                   resumed=resume_state is not None)
    if resume_state is not None and resume_state["rng"] is not None:
        restore_rng(resume_state["rng"])  # last, so setup above draws nothing from it

    stopped = "steps"
    bad_since_log = torch.zeros((), dtype=torch.int64, device=device)
    bad_run = torch.zeros((), dtype=torch.int64, device=device)
    window_start, window_images = time.perf_counter(), 0
    run_start = time.perf_counter() - counters["seconds"]
    process_start = time.perf_counter()  # --max-minutes counts this process, not earlier legs
    G.train()
    D.train()
    try:
        if cfg.d_warmup_steps and opt_d is not None and recipe.trains_discriminator:
            _warm_up_discriminator(cfg, recipe, G_run, D_run, opt_d, d_params, scaler, autocast,
                                   batches, progress, step, counters, env)
        elif cfg.d_warmup_steps:
            progress.event("d_warmup", step, updates=0,
                           note="skipped: this run trains no discriminator (--gan-weight 0?)")
        d_steps = cfg.d_steps or recipe.d_steps_per_g
        while step < cfg.steps:
            # Discriminator updates (the last one on the batch the generator then trains on).
            losses: dict[str, float] = {}
            ok = torch.ones((), dtype=torch.bool, device=device)
            for i in range(d_steps):
                batch = batches.next()
                last = i == d_steps - 1
                with autocast(), torch.set_grad_enabled(last):
                    out = recipe.run_generator(G_run, batch)
                if opt_d is not None and recipe.trains_discriminator:
                    _, d_parts, d_ok = _discriminator_update(cfg, recipe, D_run, batch, out,
                                                             opt_d, d_params, scaler, autocast)
                    ok = ok & d_ok
                    losses.update(d_parts)
            # Generator update against frozen discriminators.
            D.requires_grad_(False)
            with autocast():
                g_loss, g_parts = recipe.g_loss(D_frozen, batch, out)
            D.requires_grad_(True)
            g_ok = apply_update(g_loss, opt_g, g_params, scaler, cfg.grad_clip)
            ok = ok & g_ok
            # Warm-up: early on, the EMA follows the generator closely (short fine-tunes).
            _ema_update(ema, G, min(cfg.ema_decay, (1 + step) / (10 + step)), g_ok)
            # Skipped steps counted on the device; read when logging (no host sync per step).
            bad_since_log += ~ok
            bad_run = (bad_run + 1) * ~ok
            losses.update(g_parts)
            step += 1
            images = cfg.batch_size * env.world_size * d_steps
            counters["images"] += images
            window_images += images

            if batches.skipped_files:
                counters["skipped_files"] += batches.skipped_files
                batches.skipped_files = 0
                # File names are known here only without workers (each worker warns itself).
                progress.event("skipped_files", step, total=counters["skipped_files"],
                               files=data.train.bad_files)
            # 0 means off (as for --val-every): only the last step is logged.
            log_now = bool(cfg.log_every) and step % cfg.log_every == 0 or step == cfg.steps
            # The skipped-step counters are read (a host sync) only when logging, and every
            # MAX_CONSECUTIVE_NONFINITE steps, so a diverged run still stops in time.
            if log_now or step % MAX_CONSECUTIVE_NONFINITE == 0:
                skipped, consecutive_bad = int(bad_since_log), int(bad_run)
                if skipped:
                    bad_since_log.zero_()
                    counters["nonfinite"] += skipped
                    progress.event("nonfinite", step, skipped_total=counters["nonfinite"],
                                   skipped=skipped,
                                   losses={k: float(v) for k, v in losses.items()
                                           if math.isfinite(float(v))})
                if consecutive_bad >= MAX_CONSECUTIVE_NONFINITE:
                    raise FloatingPointError(
                        f"training diverged: {consecutive_bad} consecutive steps with non-finite "
                        f"gradients (lower the learning rate or use --grad-clip)")
            elapsed = time.perf_counter() - window_start
            progress.train_step(step, losses, opt_g.param_groups[0]["lr"], lr_d,
                                window_images / max(elapsed, 1e-9), log=log_now)
            if log_now:
                window_start, window_images = time.perf_counter(), 0
            counters["seconds"] = time.perf_counter() - run_start

            is_last = step == cfg.steps
            stop_now = False
            # A run stopped by --max-minutes is validated at its last step too, so every relay
            # leg ends with a validation figure whatever its --val-every.
            time_up = bool(env.is_main and cfg.max_minutes
                           and time.perf_counter() - process_start > cfg.max_minutes * 60)
            if env.is_main and (cfg.val_every and step % cfg.val_every == 0 or is_last or time_up):
                with _rng_untouched():
                    metrics, grid = _validate(ema, recipe, val_batches, autocast)
                progress.validation(step, metrics)
                if cfg.sample_every:
                    progress.sample(step, grid)
                if best["val_l1"] is None or metrics["val_l1"] < best["val_l1"]:
                    best = {"val_l1": metrics["val_l1"], "since": 0, **metrics}
                    checkpoint(BEST)
                else:
                    best["since"] += 1
                    if cfg.early_stop and best["since"] >= cfg.early_stop:
                        stopped, stop_now = "early_stop", True
                        progress.event("early_stop", step, best_val_l1=best["val_l1"])
            elif (env.is_main and cfg.sample_every and step % cfg.sample_every == 0):
                with _rng_untouched():
                    _, grid = _validate(ema, recipe, val_batches[:1], autocast)
                progress.sample(step, grid)
            if time_up:
                stopped, stop_now = "time", True
            stop_now = _agree(stop_now, env, device)
            if cfg.ckpt_every and step % cfg.ckpt_every == 0 or is_last or stop_now:
                checkpoint()
            if on_step is not None:
                on_step(step)
            if stop_now:
                break
    except BaseException as exc:
        progress.event("error", step, message=f"{type(exc).__name__}: {exc}")
        progress.close()
        raise
    progress.event("done", step, stopped=stopped, best_val_l1=best["val_l1"],
                   nonfinite_skipped=counters["nonfinite"],
                   skipped_files=counters["skipped_files"], seconds=round(counters["seconds"], 1))
    progress.close()
    if env.enabled:
        dist.barrier()
    return RunResult(out_dir, step, best["val_l1"], stopped)


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import platform

    return f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"
