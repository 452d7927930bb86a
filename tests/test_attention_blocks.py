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
