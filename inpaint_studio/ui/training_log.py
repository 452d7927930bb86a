"""Reading a trainer run's ``log.jsonl`` while it grows (no Qt: plain file tailing).

Each line is one JSON object: progress lines carry ``step`` plus loss figures (``loss_*`` or
any numeric field), ``lr``, ``images_per_s`` and, at validation steps, ``val_l1`` /
``val_psnr`` / ``val_ssim``; event lines carry ``"event"`` (start, checkpoint, sample, done,
error) and maybe ``"message"``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class TrainingProgress:
    """What the fine-tune dialog shows, accumulated from the log lines read so far."""

    step: int = 0
    total_steps: int | None = None
    latest: dict[str, float] = field(default_factory=dict)
    validation: dict[str, float] = field(default_factory=dict)
    events: list[str] = field(default_factory=list)

    def update(self, record: dict) -> None:
        event = record.get("event")
        if event is not None:
            message = record.get("message") or record.get("path") or ""
            self.events.append(f"{event}: {message}" if message else str(event))
            if isinstance(record.get("steps"), int):
                self.total_steps = record["steps"]
        if isinstance(record.get("step"), int):
            self.step = record["step"]
        numbers = {k: float(v) for k, v in record.items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in ("step", "steps")}
        self.validation.update({k: v for k, v in numbers.items() if k.startswith("val_")})
        if event is None:
            self.latest.update({k: v for k, v in numbers.items() if not k.startswith("val_")})

    def summary(self) -> str:
        """One line of the most useful figures, e.g. ``step 120 · loss_g 0.412 · 38.1 img/s``."""
        parts = [f"step {self.step}" + (f"/{self.total_steps}" if self.total_steps else "")]
        for key, value in sorted(self.latest.items()):
            if key == "images_per_s":
                parts.append(f"{value:.1f} img/s")
            elif key == "lr":
                parts.append(f"lr {value:.1e}")
            else:
                parts.append(f"{key} {value:.4g}")
        parts += [f"{k} {v:.4g}" for k, v in sorted(self.validation.items())]
        return " · ".join(parts)


class LogTail:
    """Reads the complete lines appended to a JSON-lines file since the last call."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._offset = 0
        self._partial = b""

    def read_new(self) -> list[dict]:
        """New records (a half-written last line waits for the next call; a line that is
        not JSON is skipped)."""
        try:
            with self.path.open("rb") as f:
                f.seek(self._offset)
                chunk = f.read()
        except FileNotFoundError:
            return []
        self._offset += len(chunk)
        data = self._partial + chunk
        lines = data.split(b"\n")
        self._partial = lines.pop()  # incomplete (or empty) tail
        records = []
        for line in lines:
            line = line.strip()
            if not line:
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(value, dict):
                records.append(value)
        return records
