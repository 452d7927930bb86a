"""Attention blocks by name: shapes, DANet identity at init, errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from inpaint_studio.layers.attention import ATTENTION_NAMES, build_attention


@pytest.mark.parametrize("name", ["se", "cbam", "danet", "none", None])
def test_block_preserves_shape_and_is_finite(name):
    torch.manual_seed(0)
    block = build_attention(name, 32)
    x = torch.randn(2, 32, 6, 5)
    y = block(x)
    assert y.shape == x.shape and torch.isfinite(y).all()


def test_every_listed_name_builds():
    for name in ATTENTION_NAMES:
        assert isinstance(build_attention(name, 8), nn.Module)


def test_danet_is_identity_at_init_and_not_after_its_scales_move():
    torch.manual_seed(0)
    block = build_attention("danet", 16)
    x = torch.randn(2, 16, 5, 7)
    assert torch.equal(block(x), x)
    with torch.no_grad():
        block.gamma_position.fill_(0.5)
        block.gamma_channel.fill_(0.5)
    assert not torch.allclose(block(x), x)


def test_danet_scales_receive_gradients_at_init():
    block = build_attention("danet", 16)
    block(torch.randn(1, 16, 4, 4)).pow(2).sum().backward()
    assert block.gamma_position.grad.abs() > 0 and block.gamma_channel.grad.abs() > 0


def test_se_gates_channels_between_zero_and_one():
    block = build_attention("se", 16)
    x = torch.rand(1, 16, 4, 4) + 0.1
    y = block(x)
    ratio = y / x
    assert (ratio > 0).all() and (ratio < 1).all()
    # One gate per channel: the ratio is constant over positions.
    assert torch.allclose(ratio, ratio[..., :1, :1].expand_as(ratio), atol=1e-6)


def test_cbam_applies_a_spatial_gate_that_varies_over_positions():
    torch.manual_seed(0)
    block = build_attention("cbam", 16)
    x = torch.rand(1, 16, 6, 6) + 0.1
    ratio = block(x) / x
    assert ratio.std(dim=(-1, -2)).max() > 1e-4


def test_unknown_name_lists_the_choices():
    with pytest.raises(ValueError, match="se, cbam, danet"):
        build_attention("transformer", 8)


# --- against independent hand computations (issue 13, item 11) ------------------------------
# Written in numpy with explicit loops and the papers' formulas, not with the blocks' own ops.

import numpy as np  # noqa: E402


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().double().numpy()


def _sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def _dense(conv: nn.Conv2d, vector: np.ndarray) -> np.ndarray:
    """A 1x1 convolution applied to a (C,) descriptor: W v + b."""
    return _np(conv.weight)[:, :, 0, 0] @ vector + _np(conv.bias)


def _randomised(block: nn.Module, seed: int) -> nn.Module:
    """Non-trivial weights (zero-initialised scales and biases would hide mistakes)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in block.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    return block


def test_se_matches_the_paper_formula():
    block = _randomised(build_attention("se", 32), 1)  # hidden width 32 // 16 = 2
    x = torch.randn(2, 32, 5, 4, generator=torch.Generator().manual_seed(2))
    y = _np(block(x))
    for b in range(2):
        xb = _np(x[b])
        squeeze = xb.reshape(32, -1).mean(axis=1)  # global average pool
        excite = _sigmoid(_dense(block.fc2, np.maximum(_dense(block.fc1, squeeze), 0)))
        np.testing.assert_allclose(y[b], xb * excite[:, None, None], rtol=1e-5, atol=1e-6)


def test_cbam_matches_the_paper_formula():
    block = _randomised(build_attention("cbam", 16), 3)
    x = torch.randn(1, 16, 6, 5, generator=torch.Generator().manual_seed(4))
    y = _np(block(x))[0]
    xb = _np(x[0])
    fc1, fc2 = block.mlp[0], block.mlp[2]

    def mlp(v):
        return _dense(fc2, np.maximum(_dense(fc1, v), 0))

    flat = xb.reshape(16, -1)
    channel_gate = _sigmoid(mlp(flat.mean(axis=1)) + mlp(flat.max(axis=1)))
    refined = xb * channel_gate[:, None, None]
    pooled = np.stack([refined.mean(axis=0), refined.max(axis=0)])  # (2, H, W)
    k = _np(block.spatial.weight)[0]  # (2, 7, 7)
    bias = float(_np(block.spatial.bias)[0])
    padded = np.pad(pooled, ((0, 0), (3, 3), (3, 3)))
    h, w = pooled.shape[1:]
    spatial = np.empty((h, w))
    for i in range(h):
        for j in range(w):
            spatial[i, j] = (padded[:, i:i + 7, j:j + 7] * k).sum() + bias
    np.testing.assert_allclose(y, refined * _sigmoid(spatial)[None], rtol=1e-5, atol=1e-6)


def test_danet_matches_the_paper_formulas():
    block = _randomised(build_attention("danet", 16), 5)
    gp, gc = float(block.gamma_position), float(block.gamma_channel)
    x = torch.randn(1, 16, 3, 4, generator=torch.Generator().manual_seed(6)) * 0.3
    y = _np(block(x))[0]
    xb = _np(x[0]).reshape(16, -1)  # (C, N) positions as columns
    n = xb.shape[1]

    def conv1x1(conv, features):
        return _np(conv.weight)[:, :, 0, 0] @ features + _np(conv.bias)[:, None]

    q, k, v = (conv1x1(c, xb) for c in (block.position.query, block.position.key,
                                         block.position.value))
    position = np.zeros_like(xb)
    for j in range(n):  # output position j attends over every position i
        energy = np.array([q[:, j] @ k[:, i] for i in range(n)])
        weights = np.exp(energy - energy.max())
        weights /= weights.sum()
        position[:, j] = sum(weights[i] * v[:, i] for i in range(n))
    channel = np.zeros_like(xb)
    for c in range(16):  # output channel c mixes every channel c2
        energy = np.array([xb[c] @ xb[c2] for c2 in range(16)])
        weights = np.exp(energy - energy.max())
        weights /= weights.sum()
        channel[c] = sum(weights[c2] * xb[c2] for c2 in range(16))
    expected = xb + gp * position + gc * channel
    np.testing.assert_allclose(y.reshape(16, -1), expected, rtol=1e-4, atol=1e-5)
