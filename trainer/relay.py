"""Relay state: what a later training run needs to continue the shipped model, kept small.

Training the default model is a relay across sittings on different machines; only what is
committed survives. A full checkpoint (``last.pt``: fp32 weights, Adam moments of both
networks, random states) is ~100 MB, too large to commit at every hand-over. The relay state
keeps what matters:

* the raw (non-EMA) generator, fp32: the weights the optimizer moves (the EMA copy is the
  shipped model itself, ``resources/models/<name>.safetensors``, fp16);
* the discriminators, fp16 (~12 MB for SN-PatchGAN): a fresh discriminator would have to
  relearn what fake looks like while the generator drifts;
* the step, the cumulative counters (images seen, seconds), the best validation figures, the
  data epoch and the training configuration, as JSON in the file's metadata.

Adam's moments and the random states are dropped: Adam re-estimates its moments within a few
hundred steps (its bias correction starts from zero moments), and the data order of a new
epoch is seeded from (seed, epoch) anyway. A run resumed from a relay state therefore
continues the weights and the bookkeeping exactly, not the optimizer's trajectory.

File layout (safetensors, no pickle): tensors ``generator.<param>`` and
``discriminators.<name>.<param>``; metadata ``format`` = ``"inpaint-studio-relay/1"`` and
``state`` = JSON ``{step, config, arch_args, counters, best, data, base_model, photos,
data_sources, device_name, world_size}``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save

from inpaint_studio.fileutil import atomic_write
from inpaint_studio.weights import TRAINING_STATE_SUFFIX

from .checkpoint import CheckpointError, load_checkpoint

FORMAT = "inpaint-studio-relay/1"
_META_KEYS = ("step", "config", "arch_args", "counters", "best", "data", "base_model", "photos",
              "data_sources", "device_name", "world_size")


def is_relay_file(path: str | Path) -> bool:
    return Path(path).suffix == ".safetensors"


def save_relay_state(checkpoint: str | Path, out: str | Path) -> Path:
    """Write the relay state of a training checkpoint (file or run folder: its ``last.pt``)."""
    state = load_checkpoint(checkpoint)
    tensors = {f"generator.{k}": v.float().contiguous() for k, v in state["generator"].items()}
    for k, v in state["discriminators"].items():
        tensors[f"discriminators.{k}"] = (v.half() if v.is_floating_point() else v).contiguous()
    meta = {k: state.get(k) for k in _META_KEYS}
    # The next leg starts a fresh epoch (its order is seeded by the epoch number).
    meta["data"] = {"epoch": state["data"]["epoch"] + 1, "batches_done": 0}
    metadata = {"format": FORMAT, "state": json.dumps(meta)}
    out = Path(out)
    data = save(tensors, metadata=metadata)  # in memory: one atomic write, no temp file of ours
    atomic_write(out, lambda f: f.write(data), make_parents=True)
    return out


def load_relay_state(path: str | Path, ema_model: str | Path | None = None) -> dict[str, Any]:
    """A resume state (the keys :func:`trainer.checkpoint.load_checkpoint` returns) from a
    relay file; ``opt_g``, ``opt_d``, ``scaler`` and ``rng`` are None (fresh optimizer).

    ema_model: the shipped model whose weights are the EMA generator (default: the relay
        file's name without ``.train-state``, i.e. ``X.train-state.safetensors`` -> ``X.safetensors``);
        when it is missing the EMA starts from the raw generator.
    """
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
        tensors = load_file(str(path))
    except (OSError, SafetensorError, RuntimeError, ValueError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"cannot read relay state {path}: {exc}") from None
    if metadata.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an Inpaint Studio relay state (format "
                              f"{metadata.get('format')!r}, expected {FORMAT!r})")
    state: dict[str, Any] = json.loads(metadata["state"])
    generator = {k[len("generator."):]: v for k, v in tensors.items() if k.startswith("generator.")}
    state["generator"] = generator
    state["discriminators"] = {k[len("discriminators."):]: v.float() if v.is_floating_point() else v
                               for k, v in tensors.items() if k.startswith("discriminators.")}
    ema_path = Path(ema_model) if ema_model else path.with_name(
        path.name.replace(TRAINING_STATE_SUFFIX, ".safetensors"))
    if ema_path != path and ema_path.is_file():
        ema = {k: v.float() for k, v in load_file(str(ema_path)).items()}
        if set(ema) != set(generator):
            raise CheckpointError(f"{ema_path} does not hold the generator of {path} "
                                  "(different parameter names)")
        state["ema"] = ema
    else:
        state["ema"] = {k: v.clone() for k, v in generator.items()}
    state.update(opt_g=None, opt_d=None, scaler=None, rng=None)
    return state


def load_resume_state(source: str | Path) -> dict[str, Any]:
    """``--resume`` source: a run folder or checkpoint file, or a relay ``.safetensors``."""
    if is_relay_file(source):
        return load_relay_state(source)
    return load_checkpoint(source, map_location="cpu")

