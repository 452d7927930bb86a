"""Export: training checkpoint -> ``.safetensors`` model file the app loads.

Only the EMA generator travels (no discriminator, no optimizer), stored as fp16 by default,
with a model card (``inpaint_studio.weights``): base model, number of photos, steps, images
seen, training time, hardware, data sources and the validation metrics. The default
destination is the user's models folder (``paths.user_models_dir()``), where the app lists it.
"""

from __future__ import annotations

import datetime
import re
import sys
from pathlib import Path
from typing import Any

from inpaint_studio import networks, paths
from inpaint_studio.weights import ModelCard, save_model

from .checkpoint import BEST, LAST, CheckpointError, load_checkpoint


def default_export_path(run_dir: Path) -> Path:
    """``<user models>/<run folder name>.safetensors`` (name reduced to safe characters)."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(run_dir).resolve().name).strip("._") or "model"
    return paths.user_models_dir() / f"{stem}.safetensors"


def _load_source(source: Path) -> tuple[Path, dict[str, Any]]:
    """The checkpoint a source means, and its state: a run folder means its best checkpoint
    when it has one (validation-selected), else last; an unreadable best falls back to last,
    saying so on stderr."""
    if not source.is_dir():
        return source, load_checkpoint(source)
    best, last = source / BEST, source / LAST
    if not best.is_file():
        return last, load_checkpoint(last)
    try:
        return best, load_checkpoint(best)
    except CheckpointError as exc:
        if not last.is_file():
            raise
        state = load_checkpoint(last)
        print(f"note: {exc}; exporting {last} (step {state['step']}) instead", file=sys.stderr)
        return last, state


def export_checkpoint(source: str | Path, out: str | Path | None = None, *, fp16: bool = True,
                      title: str = "", extra_provenance: dict[str, Any] | None = None) -> ModelCard:
    """Write the EMA generator of ``source`` (a checkpoint file or run folder) to ``out``.

    out: the ``.safetensors`` path (default :func:`default_export_path` of the run folder).
    Returns the written model's card.
    """
    ckpt_path, state = _load_source(Path(source))
    cfg = state["config"]
    run_dir = ckpt_path.parent
    out = Path(out) if out else default_export_path(run_dir)

    generator = networks.build(cfg["arch"], **state["arch_args"])
    generator.load_state_dict(state["ema"])

    best = state["best"]
    metrics = {k: v for k, v in best.items() if k.startswith("val_")}
    counters = state["counters"]
    provenance = {
        "base_model": state.get("base_model", ""),
        "photos": state.get("photos"),
        "data_sources": state.get("data_sources", cfg["data"]),
        "steps": state["step"],
        "images_seen": counters["images"],
        "training_seconds": round(counters["seconds"], 1),
        "hardware": f"{state.get('world_size', 1)} x {state.get('device_name', 'unknown')}",
        "size": cfg["size"],
        "batch_size": cfg["batch_size"],
        "checkpoint": ckpt_path.name,
        "exported": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        **(extra_provenance or {}),
    }
    name = title or cfg.get("title") or out.stem
    base = f" fine-tuned from {provenance['base_model']}" if provenance["base_model"] else ""
    description = (f"{cfg['arch']}{base} on {provenance['photos']} photos, "
                   f"{provenance['steps']} steps")
    return save_model(out, generator, fp16=fp16, metadata={
        "title": name, "description": description, "provenance": provenance,
        "metrics": metrics,
    })
