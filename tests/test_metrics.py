"""L1, PSNR and SSIM against hand-derived values and an independent reference."""

from __future__ import annotations

import math

import numpy as np
import pytest

from inpaint_studio.metrics import l1, psnr, ssim


def _pattern_and_noisy() -> tuple[np.ndarray, np.ndarray]:
    """A 48x64 RGB pattern and a copy with deterministic +-12 'noise' (no RNG involved)."""
    yy, xx = np.mgrid[0:48, 0:64]
    a = np.stack([(xx * 4) % 256, (yy * 5) % 256, ((xx + yy) * 2) % 256], -1).astype(np.uint8)
    noise = ((xx[..., None] * 7 + yy[..., None] * 13 + np.arange(3) * 5) % 25) - 12
    b = np.clip(a.astype(int) + noise, 0, 255).astype(np.uint8)
    return a, b


def test_l1_in_unit_range_and_over_region():
    a = np.zeros((4, 4, 3), np.uint8)
    b = a.copy()
    b[:2] = 51  # 0.2 in [0, 1] units on half the pixels
    assert l1(a, b) == pytest.approx(0.1)
    region = np.zeros((4, 4), bool)
    region[:2] = True
    assert l1(a, b, region) == pytest.approx(0.2)
    assert l1(a, b, ~region) == 0.0
    assert l1(a.astype(np.float32) / 255, b.astype(np.float32) / 255) == pytest.approx(0.1)


def test_psnr_hand_computed_and_identical():
    a = np.zeros((8, 8, 3), np.uint8)
    b = np.full_like(a, 10)
    assert psnr(a, b) == pytest.approx(10 * math.log10(255.0**2 / 100.0))
    assert psnr(a, a) == math.inf


def test_ssim_identical_is_one():
    a, _ = _pattern_and_noisy()
    assert ssim(a, a) == pytest.approx(1.0, abs=1e-12)


def test_ssim_of_two_constant_images_is_the_luminance_term():
    # Zero variance leaves (2 mu_a mu_b + C1) / (mu_a^2 + mu_b^2 + C1), everywhere.
    a = np.full((32, 32, 3), 100, np.uint8)
    b = np.full((32, 32, 3), 110, np.uint8)
    ma, mb, c1 = 100 / 255, 110 / 255, 0.01**2
    assert ssim(a, b) == pytest.approx((2 * ma * mb + c1) / (ma**2 + mb**2 + c1), rel=1e-9)


def test_ssim_and_psnr_match_scikit_image_reference():
    # Reference values computed once with scikit-image 0.26.0:
    # structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
    # channel_axis=-1, data_range=255) and peak_signal_noise_ratio(a, b, data_range=255).
    a, b = _pattern_and_noisy()
    assert ssim(a, b) == pytest.approx(0.709459420080159, abs=1e-6)
    assert ssim(a[..., 1], b[..., 1]) == pytest.approx(0.7673732140996394, abs=1e-6)
    assert psnr(a, b) == pytest.approx(31.038676519226676, abs=1e-9)


def test_metrics_reject_mismatched_inputs():
    a = np.zeros((4, 4, 3), np.uint8)
    with pytest.raises(ValueError, match="differ in shape"):
        l1(a, np.zeros((4, 5, 3), np.uint8))
    with pytest.raises(ValueError, match="both be uint8 or both floating"):
        ssim(a, a.astype(np.float32))
    with pytest.raises(ValueError, match="region is empty"):
        l1(a, a, np.zeros((4, 4), bool))
