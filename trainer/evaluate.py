"""Evaluation: L1 / PSNR / SSIM by hole-ratio bin on a photo folder with fixed masks.

Fills go through the engine API (``DeepEngine.fill`` with a ``FillRequest``), exactly as the
app runs them (HD strategy, padding, paste-back), and are scored with
``inpaint_studio.metrics`` on the whole composited image (image L1, PSNR, SSIM) and over the
hole (hole L1). L1 is in [0, 1] units, PSNR in dB.

Masks are fixed so that figures compare between models and runs, from (first that applies):
a pairs TSV (``image<TAB>mask[<TAB>hole_bin]``, as ``shared/data/eval_pairs.tsv``), a mask
folder (sorted; photo i gets mask i mod n), or masks generated from a seed (mixed free-form +
box, seeded per photo index).
"""

from __future__ import annotations

import csv
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np
import torch

from inpaint_studio import metrics
from inpaint_studio.fileutil import atomic_write

# Hole-ratio bins (fractions of the image), labelled in percent like the shared eval data.
HOLE_BINS: tuple[tuple[float, float], ...] = (
    (0.0, 0.1), (0.1, 0.2), (0.2, 0.3), (0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (0.6, 1.0001),
)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp")


def bin_label(ratio: float) -> str:
    """The hole-ratio bin of ``ratio`` (hole fraction in [0, 1]), e.g. ``"20-30"``."""
    for lo, hi in HOLE_BINS:
        if lo <= ratio < hi:
            return f"{round(lo * 100)}-{min(round(hi * 100), 100)}"
    raise ValueError(f"hole ratio {ratio} outside [0, 1]")


def to_uint8_hwc(images: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) float in [-1, 1] -> uint8 (B, H, W, 3), rounded like the engine does."""
    x = ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


def batch_metrics(pred: torch.Tensor, gt: torch.Tensor) -> list[dict[str, float]]:
    """Per-sample ``{"l1", "psnr", "ssim"}`` of composited predictions against the truth.

    pred, gt: (B, 3, H, W) in [-1, 1]. Both are quantised to uint8 first, so figures match
    what a saved fill would score. PSNR of identical images is capped at 100 dB (the mean of
    a batch must stay finite).
    """
    out = []
    for p, g in zip(to_uint8_hwc(pred), to_uint8_hwc(gt)):
        out.append({"l1": metrics.l1(p, g), "psnr": min(metrics.psnr(p, g), 100.0),
                    "ssim": metrics.ssim(p, g)})
    return out


@dataclass(frozen=True)
class EvalPair:
    """One evaluation case: a photo and its fixed mask (a file, or a seed to generate one)."""

    image: Path
    mask: Path | None
    mask_seed: int = 0


def find_photos(folder: Path) -> list[Path]:
    """Photos under ``folder`` (recursive, sorted); a clear error when there are none."""
    if not folder.is_dir():
        raise FileNotFoundError(f"photo folder {folder} does not exist")
    photos = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not photos:
        raise FileNotFoundError(f"no photos (JPEG/PNG/WebP/TIFF/BMP) under {folder}")
    return photos


def evaluation_pairs(data: Path, masks: Path | None = None, pairs_tsv: Path | None = None,
                     seed: int = 0, limit: int = 0) -> list[EvalPair]:
    """The fixed evaluation cases (see the module docstring for where masks come from).

    pairs_tsv paths are relative to ``data`` (images) and ``masks`` (masks; default: the TSV's
    folder / ``masks``). limit: keep only the first N cases (0 = all).
    """
    if pairs_tsv is not None:
        mask_dir = masks or pairs_tsv.parent / "masks"
        with open(pairs_tsv, newline="") as f:
            rows = [r for r in csv.DictReader(f, delimiter="\t")]
        if not rows or not {"image", "mask"} <= set(rows[0]):
            raise ValueError(f"{pairs_tsv} needs a header with 'image' and 'mask' columns")
        pairs = [EvalPair(data / r["image"], mask_dir / r["mask"]) for r in rows]
    else:
        photos = find_photos(data)
        if masks is not None:
            mask_files = find_photos(masks)
            pairs = [EvalPair(p, mask_files[i % len(mask_files)]) for i, p in enumerate(photos)]
        else:
            pairs = [EvalPair(p, None, seed * 100_003 + i) for i, p in enumerate(photos)]
    return pairs[:limit] if limit else pairs


def _load_case(pair: EvalPair) -> tuple[np.ndarray, np.ndarray]:
    from inpaint_studio.imageio import load_image, load_mask
    from inpaint_studio.masks import mixed_mask

    rgb = load_image(pair.image).rgb
    h, w = rgb.shape[:2]
    if pair.mask is not None:
        mask = load_mask(pair.mask, size=(w, h), resize=True)
    else:
        mask = mixed_mask(h, w, np.random.default_rng(pair.mask_seed))
    return rgb, mask


@dataclass
class EvalReport:
    """Per-bin means and per-case rows of an evaluation."""

    model: str
    bins: dict[str, dict[str, float]] = field(default_factory=dict)
    overall: dict[str, float] = field(default_factory=dict)
    cases: list[dict] = field(default_factory=list)

    def table(self) -> str:
        """A plain-text table: one row per hole-ratio bin, then all cases."""
        head = f"{'bin %':>8} {'n':>4} {'hole L1':>9} {'img L1':>8} {'PSNR':>7} {'SSIM':>6} {'s/img':>7}"
        lines = [f"model: {self.model}", head]
        for label, row in [*self.bins.items(), ("all", self.overall)]:
            lines.append(f"{label:>8} {row['n']:>4} {row['hole_l1']:>9.4f} {row['l1']:>8.4f} "
                         f"{row['psnr']:>7.2f} {row['ssim']:>6.4f} {row['seconds']:>7.2f}")
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {"model": self.model, "bins": self.bins, "overall": self.overall,
                "cases": self.cases}


def _mean_rows(rows: list[dict]) -> dict[str, float]:
    keys = ("hole_l1", "l1", "psnr", "ssim", "seconds")
    return {"n": len(rows), **{k: float(np.mean([r[k] for r in rows])) for k in keys}}


def evaluate_engine(engine, pairs: Iterable[EvalPair], strategy: str = "crop") -> EvalReport:
    """Fill every case with ``engine`` (an ``inpaint_studio.engine`` Engine) and score it."""
    from inpaint_studio.engine.request import FillOptions, FillRequest

    report = EvalReport(model=engine.name)
    options = FillOptions(strategy=strategy)
    for pair in pairs:
        rgb, mask = _load_case(pair)
        hole = mask > 127
        if not hole.any():
            continue
        start = time.perf_counter()
        *_, final = engine.fill(FillRequest(rgb, mask, options=options))
        seconds = time.perf_counter() - start
        ratio = float(hole.mean())
        report.cases.append({
            "image": pair.image.name, "mask": pair.mask.name if pair.mask else f"seed {pair.mask_seed}",
            "hole_ratio": ratio, "bin": bin_label(ratio), "seconds": seconds,
            "hole_l1": metrics.l1(final.image, rgb, region=hole), "l1": metrics.l1(final.image, rgb),
            "psnr": min(metrics.psnr(final.image, rgb), 100.0), "ssim": metrics.ssim(final.image, rgb),
        })
    if not report.cases:
        raise ValueError("nothing to evaluate: every mask was empty")
    for lo, _ in HOLE_BINS:
        label = bin_label(lo)
        rows = [c for c in report.cases if c["bin"] == label]
        if rows:
            report.bins[label] = _mean_rows(rows)
    report.overall = _mean_rows(report.cases)
    return report


def evaluate_model(model: Path, pairs: list[EvalPair], device: str = "auto",
                   strategy: str = "crop") -> EvalReport:
    """Evaluate a ``.safetensors`` model file through the deep engine the app uses."""
    from inpaint_studio.engine.deep import DeepEngine
    from inpaint_studio.weights import WeightsError

    engine = DeepEngine(Path(model), device=device)
    available = engine.availability()
    if not available:
        # A user's file problem (missing, corrupt, foreign): one line, not a traceback.
        raise WeightsError(f"cannot evaluate {model}: {available.reason}")
    report = evaluate_engine(engine, pairs, strategy)
    report.model = str(model)
    return report


def write_report(report: EvalReport, path: Path) -> None:
    text = json.dumps(report.to_json(), indent=2) + "\n"
    atomic_write(path, lambda f: f.write(text.encode()), make_parents=True)
