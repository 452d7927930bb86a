"""Training checkpoints: written atomically, read without unpickling arbitrary objects.

A checkpoint is a ``dict`` saved by ``torch.save`` that holds only tensors and plain
containers (dict, list, str, int, float, bool, None), so that :func:`load_checkpoint` can use
``torch.load(weights_only=True)``. The loop stores in it (keys): ``step``, ``config`` (the
``TrainConfig`` as a dict), ``generator``, ``ema``, ``discriminators``, ``opt_g``, ``opt_d``
(state dicts), ``scaler`` (GradScaler state or None), ``rng`` (see :func:`capture_rng`),
``data`` (sampler position: ``epoch``, ``batches_done``), ``best`` (best validation L1 and the
validations since it improved), ``counters`` (non-finite skipped steps, images seen, seconds).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from inpaint_studio.fileutil import atomic_write

LAST = "last.pt"
BEST = "best.pt"


class CheckpointError(RuntimeError):
    """A checkpoint that is missing or cannot be read (the message says which and why)."""


def capture_rng() -> dict[str, Any]:
    """The state of every random generator training draws from, as tensors and numbers.

    python: ``random`` (Mersenne Twister words as int64); numpy: the legacy global generator;
    torch: the CPU generator; cuda: one state per visible GPU (empty list without CUDA).
    """
    version, words, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": {"version": version, "words": torch.tensor(words, dtype=torch.int64),
                   "gauss": gauss},
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore_rng(state: dict[str, Any]) -> None:
    """Put back what :func:`capture_rng` recorded (CUDA states only where CUDA is present)."""
    py = state["python"]
    random.setstate((py["version"], tuple(int(w) for w in py["words"].tolist()), py["gauss"]))
    nps = state["numpy"]
    np.random.set_state(
        (nps["kind"], nps["keys"].numpy().astype(np.uint32), nps["pos"], nps["has_gauss"],
         nps["cached"])
    )
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically: a killed process leaves either the previous
    checkpoint or the new one, never a half-written file."""
    atomic_write(path, lambda f: torch.save(state, f), make_parents=True)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (``weights_only=True``: no code
    runs from the file). ``path`` may be a run folder, meaning its ``last.pt``.

    Raises :class:`CheckpointError`; when an unreadable ``last.pt`` has a readable ``best.pt``
    beside it, the message offers that one (the command to resume from it)."""
    path = Path(path)
    if path.is_dir():
        path = path / LAST
    try:
        return _read(path, map_location)
    except CheckpointError as exc:
        best = path.with_name(BEST)
        if path.name != LAST or not best.is_file():
            raise
        try:
            state = _read(best, "cpu")
        except CheckpointError:
            raise exc from None
        raise CheckpointError(
            f"{exc}; {best} (step {state.get('step', '?')}) is readable: continue from it with "
            f"--resume {best}"
        ) from None


def _read(path: Path, map_location: str | torch.device) -> dict[str, Any]:
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises several types for foreign or truncated files
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"cannot read checkpoint {path}: {first_line}") from None
    if not isinstance(state, dict) or "generator" not in state or "config" not in state:
        raise CheckpointError(f"{path} is not an Inpaint Studio training checkpoint")
    return state
