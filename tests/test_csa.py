"""Coherent semantic attention: search, generation recurrence, the CSA generator's features
and the consistency loss's gradients."""

from __future__ import annotations

import math

import pytest
import torch

from inpaint_studio.layers.csa import CoherentSemanticAttention, mask_to_grid
from inpaint_studio.networks import build


def test_constant_background_is_reproduced_inside_the_hole():
    torch.manual_seed(0)
    background = torch.randn(3, 1, 1)
    features = background.expand(3, 8, 8).clone()[None].repeat(2, 1, 1, 1)
    mask = torch.zeros(2, 1, 8, 8)
    mask[0, :, 2:6, 1:5] = 1
    mask[1, :, 0:3, 3:8] = 1
    features = torch.where(mask.bool(), torch.randn_like(features), features)
    out = CoherentSemanticAttention()(features, mask)
    assert torch.allclose(out, background.expand(2, 3, 8, 8), atol=1e-6)


def test_generation_follows_the_papers_recurrence_on_a_hand_example():
    # One row: known (1,0), hole (2,1), hole (1,2), known (0,2); channels are the pairs.
    feats = torch.tensor([[1.0, 0.0], [2.0, 1.0], [1.0, 2.0], [0.0, 2.0]]).t().reshape(1, 2, 1, 4)
    mask = torch.tensor([0.0, 1.0, 1.0, 0.0]).reshape(1, 1, 1, 4)
    out = CoherentSemanticAttention()(feats, mask)[0, :, 0].t()
    # Hole 1: cos to (1,0) = 2/sqrt5 beats cos to (0,2) = 1/sqrt5 -> m'_1 = (1, 0).
    # Hole 2: best match (0,2) with D_max = 2/sqrt5; D_ad = cos((1,2), m'_1) = 1/sqrt5.
    # m'_2 = (D_ad * (1,0) + D_max * (0,2)) / (D_ad + D_max) = (1/3) (1,0) + (2/3) (0,2).
    d_ad, d_max = 1 / math.sqrt(5), 2 / math.sqrt(5)
    second = (d_ad * torch.tensor([1.0, 0.0]) + d_max * torch.tensor([0.0, 2.0])) / (d_ad + d_max)
    expected = torch.stack([torch.tensor([1.0, 0.0]), torch.tensor([1.0, 0.0]), second,
                            torch.tensor([0.0, 2.0])])
    assert torch.allclose(out, expected, atol=1e-6)
    assert torch.allclose(second, torch.tensor([1 / 3, 4 / 3]))


def test_generation_mixes_with_the_previous_hole_in_raster_order():
    # 2x3 grid; holes at (0,0), (0,1), (1,0). For (1,0) the previous patch in raster order is
    # (0,1), not the one above it, (0,0); the two readings give different results.
    a, b = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    grid = [[torch.tensor([1.0, 0.1]), b, a], [torch.tensor([1.0, 2.0]), b, a]]
    feats = torch.stack([torch.stack(row) for row in grid]).permute(2, 0, 1)[None]
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]]).reshape(1, 1, 2, 3)
    out = CoherentSemanticAttention()(feats, mask)[0]
    # (0,0): best match a -> a. (0,1) = b: match b (D_max 1), D_ad = cos(b, a) = 0 -> b.
    # (1,0) = (1,2): match b (D_max 2/sqrt5); previous = b, D_ad = 2/sqrt5 -> b.
    # (Mixing with (0,0) = a instead would give (a + 2b) / 3.)
    assert torch.allclose(out[:, 0, 0], a, atol=1e-6)
    assert torch.allclose(out[:, 0, 1], b, atol=1e-6)
    assert torch.allclose(out[:, 1, 0], b, atol=1e-6)


def test_known_positions_pass_through_and_no_hole_is_identity():
    torch.manual_seed(1)
    x = torch.randn(2, 4, 6, 6)
    mask = torch.zeros(2, 1, 6, 6)
    layer = CoherentSemanticAttention()
    assert torch.equal(layer(x, mask), x)
    mask[1, :, 1:4, 2:5] = 1
    out = layer(x, mask)
    assert torch.equal(out[0], x[0])
    known = ~mask[1, 0].bool()
    assert torch.equal(out[1][:, known], x[1][:, known])
    assert not torch.allclose(out[1][:, ~known], x[1][:, ~known])


def test_batch_equals_samples_run_alone():
    torch.manual_seed(2)
    x = torch.randn(3, 5, 8, 8)
    mask = torch.zeros(3, 1, 8, 8)
    mask[0, :, 1:5, 1:3] = 1
    mask[2, :, 3:8, 0:8] = 1
    layer = CoherentSemanticAttention(search_budget_mb=0.001)  # forces chunked search
    together = layer(x, mask)
    for i in range(3):
        assert torch.allclose(together[i:i + 1], layer(x[i:i + 1], mask[i:i + 1]), atol=1e-6)


def test_mask_to_grid_marks_a_cell_with_any_hole_pixel():
    mask = torch.zeros(1, 1, 8, 8)
    mask[0, 0, 5, 2] = 1
    grid = mask_to_grid(mask, (4, 4))
    expected = torch.zeros(1, 1, 4, 4)
    expected[0, 0, 2, 1] = 1
    assert torch.equal(grid, expected)


def test_consistency_loss_reaches_the_encoder():
    from trainer.losses import consistency_loss

    torch.manual_seed(0)
    net = build("csa", cnum=8, depth=4)
    image = torch.rand(2, 3, 32, 32) * 2 - 1
    mask = torch.zeros(2, 1, 32, 32)
    mask[:, :, 8:24, 8:20] = 1
    _, _, csa_feat, dec_feat = net(image, mask, with_features=True)
    assert csa_feat.shape == dec_feat.shape == (2, 512, 4, 4)
    target = torch.randn(2, 512, 4, 4)
    consistency_loss(csa_feat, dec_feat, target, mask).backward()
    for name in ("refine.down.0.0.weight", "refine.down.1.1.weight", "rough.down.0.0.weight"):
        grad = dict(net.named_parameters())[name].grad
        assert grad is not None and grad.abs().sum() > 0, name


def test_csa_streams_coarse_then_refined_equal_to_forward():
    torch.manual_seed(0)
    net = build("csa", cnum=8, depth=4).eval()
    image = torch.rand(1, 3, 32, 32) * 2 - 1
    mask = torch.zeros(1, 1, 32, 32)
    mask[:, :, 4:20, 6:30] = 1
    names, outs = zip(*net.stages(image, mask))
    assert names == ("coarse", "refined")
    for a, b in zip(outs, net(image, mask)):
        assert torch.allclose(a, b)


def test_csa_depth_too_small_is_rejected():
    with pytest.raises(ValueError, match="depth must be at least 4"):
        build("csa", cnum=8, depth=3)
