"""Image quality metrics for inpainting evaluation (numpy + OpenCV, no torch).

Inputs are two images of the same shape, ``(H, W)`` or ``(H, W, C)``: ``uint8`` in [0, 255]
or floating point in [0, 1]. Both must share the dtype family, so a value range is never
guessed twice. Results are Python floats.

* :func:`l1`: mean absolute error in [0, 1] units, optionally over a boolean region.
* :func:`psnr`: peak signal-to-noise ratio in dB (``inf`` for identical images).
* :func:`ssim`: structural similarity with an 11x11 Gaussian window (sigma 1.5), K1 0.01,
  K2 0.03, population covariances, symmetric-reflect borders, the 5 px border excluded from
  the mean, averaged over channels: the conventions of scikit-image's
  ``structural_similarity(..., gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
  channel_axis=-1)``.
"""

from __future__ import annotations

import cv2
import numpy as np

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03


def _as_unit_float(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both images as float64 in [0, 1] after checking shapes and dtypes agree."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    if a.ndim not in (2, 3):
        raise ValueError(f"expected an (H, W) or (H, W, C) image, got shape {a.shape}")
    kinds = {a.dtype.kind, b.dtype.kind}
    if kinds == {"u"} and a.dtype == b.dtype == np.uint8:
        return a.astype(np.float64) / 255.0, b.astype(np.float64) / 255.0
    if kinds == {"f"}:
        return a.astype(np.float64), b.astype(np.float64)
    raise ValueError(f"images must both be uint8 or both floating point, got {a.dtype} and {b.dtype}")


def l1(a: np.ndarray, b: np.ndarray, region: np.ndarray | None = None) -> float:
    """Mean absolute difference in [0, 1] units; ``region`` (bool ``(H, W)``) restricts the
    mean to its pixels (all channels)."""
    fa, fb = _as_unit_float(a, b)
    diff = np.abs(fa - fb)
    if region is None:
        return float(diff.mean())
    region = np.asarray(region, dtype=bool)
    if region.shape != fa.shape[:2]:
        raise ValueError(f"region shape {region.shape} differs from the image's {fa.shape[:2]}")
    if not region.any():
        raise ValueError("region is empty: no pixel to average over")
    return float(diff[region].mean())


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """``10 log10(1 / MSE)`` with images in [0, 1]; ``inf`` when they are identical."""
    fa, fb = _as_unit_float(a, b)
    mse = float(np.mean((fa - fb) ** 2))
    return float("inf") if mse == 0.0 else 10.0 * np.log10(1.0 / mse)


def _gaussian(plane: np.ndarray) -> np.ndarray:
    return cv2.GaussianBlur(
        plane, (SSIM_WINDOW, SSIM_WINDOW), SSIM_SIGMA, sigmaY=SSIM_SIGMA,
        borderType=cv2.BORDER_REFLECT,
    )


def _ssim_plane(x: np.ndarray, y: np.ndarray) -> float:
    c1, c2 = SSIM_K1 ** 2, SSIM_K2 ** 2  # data range 1
    mx, my = _gaussian(x), _gaussian(y)
    vx = _gaussian(x * x) - mx * mx
    vy = _gaussian(y * y) - my * my
    cxy = _gaussian(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    pad = (SSIM_WINDOW - 1) // 2
    inner = s[pad:-pad, pad:-pad] if min(s.shape) > 2 * pad else s
    return float(inner.mean())


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean structural similarity in [-1, 1] (1 = identical), averaged over channels."""
    fa, fb = _as_unit_float(a, b)
    if fa.ndim == 2:
        return _ssim_plane(fa, fb)
    return float(np.mean([_ssim_plane(fa[..., c], fb[..., c]) for c in range(fa.shape[2])]))
