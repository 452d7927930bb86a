"""Helpers shared by the benchmarks: the evaluation pairs, synthetic photos and holes, and
running one measurement in a child process to read its own peak memory.

Run the benchmarks from the repository root (``python bench/quality.py``); they use the
package as installed or, failing that, from the checkout.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent


def default_data_dir() -> Path:
    """``<repo>/../shared/data``: where the evaluation photos and masks live."""
    return REPO.parent / "shared" / "data"


@dataclass(frozen=True)
class EvalPair:
    """One row of ``eval_pairs.tsv``: a photo, a mask and the mask's hole-ratio bin."""

    image: Path
    mask: Path
    hole_bin: str


def read_eval_pairs(data_dir: Path, quick: int | None = None) -> list[EvalPair]:
    """Pairs in file order; ``quick`` keeps the pairs of the first ``quick`` distinct photos
    (every bin of each), so a quick run still covers all bins."""
    table = data_dir / "eval_pairs.tsv"
    if not table.is_file():
        raise SystemExit(f"no evaluation table at {table}; pass --data DIR")
    with table.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    pairs = [EvalPair(data_dir / "eval" / r["image"], data_dir / "masks" / r["mask"], r["hole_bin"]) for r in rows]
    if quick is None:
        return pairs
    keep: list[Path] = []
    for pair in pairs:
        if pair.image not in keep:
            keep.append(pair.image)
    chosen = set(keep[:quick])
    return [p for p in pairs if p.image in chosen]


def load_pair(pair: EvalPair) -> tuple[np.ndarray, np.ndarray]:
    """The photo (RGB ``uint8 (H, W, 3)``) and its mask resized nearest-neighbour to the
    photo and thresholded at 127 (``uint8 (H, W)``, 255 = hole), as the protocol fixes."""
    with Image.open(pair.image) as im:
        image = np.asarray(im.convert("RGB"), dtype=np.uint8).copy()
    with Image.open(pair.mask) as im:
        mask = np.asarray(im.convert("L"), dtype=np.uint8)
    h, w = image.shape[:2]
    mask = cv2.resize(mask, (w, h), interpolation=cv2.INTER_NEAREST)
    return image, np.where(mask > 127, 255, 0).astype(np.uint8)


def synthetic_photo(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A photo-like RGB ``uint8`` image: smooth colour gradients plus fine noise texture."""
    rng = np.random.default_rng(seed)
    yy = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    xx = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :]
    base = np.stack(
        [90 + 120 * xx + 0 * yy, 60 + 150 * yy + 0 * xx, 160 - 80 * xx * yy], axis=-1
    )
    texture = rng.normal(0.0, 12.0, size=(height, width, 1)).astype(np.float32)
    return np.clip(base + texture, 0, 255).astype(np.uint8)


def synthetic_hole(height: int, width: int, ratio: float) -> np.ndarray:
    """A ``uint8 (H, W)`` mask (255 = hole) covering about ``ratio`` of the image: one
    centred ellipse with the image's aspect ratio, like a removed object."""
    area = ratio * height * width
    # Ellipse area pi*a*b with a/b = width/height.
    b = np.sqrt(area * height / (np.pi * width))
    a = b * width / height
    mask = np.zeros((height, width), np.uint8)
    cv2.ellipse(mask, (width // 2, height // 2), (int(round(a)), int(round(b))), 0, 0, 360, 255, -1)
    return mask


def run_child(args: list[str]) -> tuple[dict, float]:
    """Run ``python -m <args>`` from the repository root; return the JSON object it prints on
    its last stdout line and the child's peak resident memory in MiB.

    The peak comes from ``os.wait4`` on that child (its own ``ru_maxrss``), so each measurement
    is per child, unlike ``getrusage(RUSAGE_CHILDREN)``, which keeps the largest child so far.
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    with tempfile.TemporaryFile(mode="w+") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", *args], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=err, text=True
        )
        out = proc.stdout.read()
        proc.stdout.close()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        err.seek(0)
        err_text = err.read().strip()[-800:]
    if proc.returncode != 0:
        raise RuntimeError(f"child {' '.join(args)} failed ({proc.returncode}): {err_text}")
    lines = [line for line in out.splitlines() if line.strip()]
    if not lines:
        raise RuntimeError(f"child {' '.join(args)} printed nothing; stderr: {err_text}")
    # Linux reports ru_maxrss in KiB, macOS in bytes.
    peak = usage.ru_maxrss / (1024 * 1024) if sys.platform == "darwin" else usage.ru_maxrss / 1024
    return json.loads(lines[-1]), peak
