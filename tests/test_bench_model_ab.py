"""bench/model_ab.py's lattice figure: the high-pass spectrum's peak over its median must
single out a periodic pattern in a fill, which noise of the same strength does not have."""

from __future__ import annotations

import numpy as np

from bench.model_ab import high_pass, spectral_peak


def _grey(values: np.ndarray) -> np.ndarray:
    return np.repeat(np.clip(values, 0, 255).astype(np.uint8)[..., None], 3, axis=2)


def test_a_lattice_has_a_far_higher_spectral_peak_than_noise_of_the_same_strength():
    rng = np.random.default_rng(0)
    hole = np.zeros((160, 160), bool)
    hole[16:144, 16:144] = True
    y, x = np.mgrid[:160, :160]
    noise = _grey(128 + rng.normal(0, 12, (160, 160)))
    lattice = _grey(128 + 12 * np.sign(np.sin(2 * np.pi * x / 6)) * np.sign(np.sin(2 * np.pi * y / 6)))
    assert spectral_peak(lattice, hole) > 10 * spectral_peak(noise, hole)


def test_high_pass_removes_flat_colour_and_keeps_edges():
    flat = _grey(np.full((40, 40), 90.0))
    assert np.abs(high_pass(flat)).max() < 1e-3
    step = _grey(np.where(np.arange(40)[None, :] < 20, 60.0, 200.0).repeat(40, axis=0))
    assert np.abs(high_pass(step)[:, 18:22]).max() > 20
