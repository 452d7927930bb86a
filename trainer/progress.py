"""What a person (or the app) sees of a run: console bar, JSON-lines log, TensorBoard, samples.

``log.jsonl`` in the run folder holds one JSON object per line, appended and flushed as the run
goes (the app's fine-tune dialog tails it):

* training lines: ``{"step": 120, "time": 35.2, "loss_g_total": 0.41, "loss_d_hinge": 0.9,
  ..., "lr": 1e-4, "lr_d": 1e-4, "images_per_s": 7.9}`` (one ``loss_<name>`` per part the
  recipe reports; null where a value was not finite)
* validation lines: ``{"step": 500, "time": ..., "val_l1": 0.031, "val_psnr": 24.1,
  "val_ssim": 0.88}`` (L1 in [0, 1] units over the whole composited image, PSNR in dB)
* event lines: ``{"event": "start" | "checkpoint" | "sample" | "skipped_files" |
  "nonfinite" | "early_stop" | "export" | "done" | "error", "step": ..., "time": ...,
  ...details}``; ``start`` carries ``arch``, ``steps`` (the run's total), ``photos``, ``val_photos``,
  ``device``; ``skipped_files`` the ``total`` of unreadable photos met so far; ``sample``,
  ``checkpoint`` and ``export`` a ``path``; ``error`` a ``message``.

``time`` is seconds since the run (or its resumption) started. Only rank 0 of a DDP run
writes anything: other ranks get a :class:`Progress` with ``enabled=False``.

A resumed run continues the log from its checkpoint's step: training and validation lines
written after that step by the killed process are dropped first (the steps are done again),
as is a line torn by the kill; event lines stay as the record of what happened.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from inpaint_studio.fileutil import atomic_write

LOG_NAME = "log.jsonl"


def _tensorboard_writer(log_dir: Path, purge_step: int | None = None) -> Any | None:
    """A SummaryWriter when tensorboard is installed, else None (it is optional).
    purge_step: a resumed run's first step; TensorBoard hides what a killed process logged
    from there on."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(log_dir=str(log_dir), purge_step=purge_step)


def trim_log_after(path: Path, step: int) -> int:
    """Drop from the log at ``path`` the training and validation lines past ``step`` and any
    line that is not a JSON object (torn by a kill); keep event lines. Returns how many lines
    were dropped (the file is rewritten atomically only when there are some)."""
    if not path.is_file():
        return 0
    kept, dropped = [], 0
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if not isinstance(record, dict):
            dropped += 1
            continue
        later = isinstance(record.get("step"), int) and record["step"] > step
        if later and "event" not in record:
            dropped += 1
            continue
        kept.append(line + "\n")
    if dropped:
        text = "".join(kept)
        atomic_write(path, lambda f: f.write(text.encode("utf-8")))
    return dropped


def _finite_or_none(value: float) -> float | None:
    # JSON has no NaN/inf; a reader must not choke on a diverged loss.
    return value if math.isfinite(value) else None


class Progress:
    """Console bar, ``log.jsonl``, optional TensorBoard, for one training process.

    out_dir: the run folder; total_steps: for the bar; first_step: where a resumed run starts.
    enabled: False on DDP ranks other than 0 (every method is then a no-op).
    """

    def __init__(self, out_dir: Path, total_steps: int, first_step: int = 0, enabled: bool = True):
        self.enabled = enabled
        self.out_dir = Path(out_dir)
        self.start_time = time.perf_counter()
        if not enabled:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if first_step > 0:  # resuming: the killed process's later steps are done again
            trim_log_after(self.out_dir / LOG_NAME, first_step)
        self._log = open(self.out_dir / LOG_NAME, "a", encoding="utf-8")
        self._tb = _tensorboard_writer(self.out_dir / "tensorboard",
                                       purge_step=first_step if first_step > 0 else None)
        self._bar = tqdm(total=total_steps, initial=first_step, unit="step", dynamic_ncols=True,
                         file=sys.stderr, mininterval=1.0)

    def elapsed(self) -> float:
        return time.perf_counter() - self.start_time

    def _write(self, record: dict[str, Any]) -> None:
        record["time"] = round(self.elapsed(), 3)
        self._log.write(json.dumps(record) + "\n")
        self._log.flush()

    def event(self, name: str, step: int, **details: Any) -> None:
        """An event line (start, checkpoint, sample, nonfinite, early_stop, export, done, error)."""
        if self.enabled:
            self._write({"event": name, "step": step, **details})
            if name == "start":
                self._bar.write(_start_line(step, details))
            elif name in ("error", "nonfinite", "early_stop", "export"):
                self._bar.write(f"[step {step}] {name}: {details}")

    def train_step(self, step: int, losses: dict[str, Any], lr: float, lr_d: float,
                   images_per_s: float, log: bool) -> None:
        """Advance the bar to ``step``; when ``log``, also show and write the losses.

        losses: floats or 0-dim tensors; tensors are read only here, when logging, so a GPU
        run does not wait for the device every step.
        """
        if not self.enabled:
            return
        self._bar.update(step - self._bar.n)
        if not log:
            return
        values = {k: float(v) for k, v in losses.items()}
        short = {k: f"{v:.3f}" for k, v in list(values.items())[:4]}
        self._bar.set_postfix(**short, img_s=f"{images_per_s:.1f}", refresh=False)
        self._write({"step": step, **{f"loss_{k}": _finite_or_none(v) for k, v in values.items()},
                     "lr": lr, "lr_d": lr_d, "images_per_s": round(images_per_s, 3)})
        if self._tb is not None:
            for name, value in values.items():
                self._tb.add_scalar(f"loss/{name}", value, step)
            self._tb.add_scalar("lr/g", lr, step)
            self._tb.add_scalar("images_per_s", images_per_s, step)

    def validation(self, step: int, metrics: dict[str, float]) -> None:
        """A validation line: ``val_l1``, ``val_psnr``, ``val_ssim``."""
        if not self.enabled:
            return
        self._write({"step": step, **{k: _finite_or_none(v) for k, v in metrics.items()}})
        self._bar.write(f"[step {step}] validation " +
                        " ".join(f"{k}={v:.4f}" for k, v in metrics.items()))
        if self._tb is not None:
            for name, value in metrics.items():
                self._tb.add_scalar(f"val/{name}", value, step)

    def sample(self, step: int, grid: np.ndarray) -> Path | None:
        """Write ``grid`` (uint8 HxWx3) as ``samples/step_XXXXXXX.png`` and log its path."""
        if not self.enabled:
            return None
        path = self.out_dir / "samples" / f"step_{step:07d}.png"
        # Atomic: the fine-tune dialog shows the newest PNG while training writes the next.
        image = Image.fromarray(grid)
        atomic_write(path, lambda f: image.save(f, format="PNG"), make_parents=True)
        self.event("sample", step, path=str(path))
        if self._tb is not None:
            self._tb.add_image("samples", grid, step, dataformats="HWC")
        return path

    def close(self) -> None:
        if not self.enabled:
            return
        self._bar.close()
        self._log.close()
        if self._tb is not None:
            self._tb.close()


def _start_line(step: int, details: dict[str, Any]) -> str:
    """The console's first line: what trains on what, where (the log keeps every detail)."""
    verb = f"resuming at step {step} of" if details.get("resumed") else "training for"
    processes = details.get("world_size", 1)
    where = f"{processes} x {details.get('device')}" if processes > 1 else details.get("device")
    return (f"{details.get('arch', 'model')}: {verb} {details.get('steps')} steps on "
            f"{details.get('photos')} photos ({details.get('val_photos')} held out for "
            f"validation), {where}, mixed precision {details.get('amp', 'off')}")


def append_event(out_dir: str | Path, name: str, step: int, **details: Any) -> None:
    """Append one event line to a finished run's ``log.jsonl`` (e.g. ``export`` after the
    training process has closed its :class:`Progress`)."""
    with open(Path(out_dir) / LOG_NAME, "a", encoding="utf-8") as f:
        f.write(json.dumps({"event": name, "step": step, **details}) + "\n")


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(B, C, H, W) in [-1, 1] (C = 1 or 3) -> uint8 (B, H, W, 3)."""
    x = ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu()
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    return x.permute(0, 2, 3, 1).numpy()


def sample_grid(image: torch.Tensor, mask: torch.Tensor, stages: tuple[torch.Tensor, ...],
                sketch: torch.Tensor | None = None) -> np.ndarray:
    """One row per sample: masked input | each stage output (raw) | original.

    image: (B, 3, H, W) in [-1, 1]; mask: (B, 1, H, W), 1 = hole; stages: (B, 3, H, W) each;
    sketch: (B, 1, H, W) {0, 1} or None, drawn in white over the hole of the masked input.
    Returns uint8 ``(B*H, (len(stages)+2)*W, 3)``; the hole shows as mid grey.
    """
    masked = image * (1 - mask)
    if sketch is not None:
        masked = torch.where((sketch * mask) > 0.5, torch.ones_like(masked), masked)
    columns = [masked, *stages, image]
    rows = [np.concatenate([to_uint8(c)[i] for c in columns], axis=1)
            for i in range(image.shape[0])]
    return np.concatenate(rows, axis=0)
