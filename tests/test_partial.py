"""PartialConv2d and the PConv U-Net: the defining properties of partial convolutions."""

from __future__ import annotations

import pytest
import torch

from inpaint_studio.layers.partial import PartialConv2d
from inpaint_studio.networks import build


def _hole_valid(b: int, c: int, h: int, w: int) -> torch.Tensor:
    valid = torch.ones(b, c, h, w)
    valid[..., 3:7, 2:6] = 0
    return valid


def test_renormalisation_formula_on_hand_example():
    conv = PartialConv2d(1, 1, 3, padding=0, bias=True)
    with torch.no_grad():
        conv.weight.copy_(torch.arange(1.0, 10.0).view(1, 1, 3, 3))
        conv.bias.fill_(0.5)
    x = torch.full((1, 1, 3, 3), 2.0)
    valid = torch.tensor([[1.0, 0, 0], [1, 1, 0], [0, 0, 0]]).view(1, 1, 3, 3)
    out, new_valid = conv(x, valid)
    # W^T(X*M) = 2 * (w1 + w4 + w5) = 2 * (1 + 4 + 5) = 20; sum(1)/sum(M) = 9/3 = 3.
    assert out.item() == pytest.approx(20 * 3 + 0.5)
    assert new_valid.item() == 1.0


def test_window_without_valid_input_is_zero_even_with_bias():
    conv = PartialConv2d(2, 3, 3, padding=0, bias=True)
    with torch.no_grad():
        conv.bias.fill_(7.0)
    out, new_valid = conv(torch.randn(1, 2, 3, 3), torch.zeros(1, 1, 3, 3))
    assert torch.equal(out, torch.zeros(1, 3, 1, 1))
    assert torch.equal(new_valid, torch.zeros(1, 1, 1, 1))


def test_border_windows_are_renormalised_for_zero_padding():
    conv = PartialConv2d(1, 1, 3, bias=False)  # padding 1
    with torch.no_grad():
        conv.weight.fill_(1.0)
    out, _ = conv(torch.ones(1, 1, 4, 4), torch.ones(1, 1, 4, 4))
    # Every window averages ones and rescales by 9 / (valid count): all outputs equal 9.
    assert torch.allclose(out, torch.full_like(out, 9.0))


def test_per_channel_mask_counts_each_channel():
    conv = PartialConv2d(2, 1, 1, padding=0, bias=False)
    with torch.no_grad():
        conv.weight.fill_(1.0)
    x = torch.tensor([3.0, 5.0]).view(1, 2, 1, 1)
    out, new_valid = conv(x, torch.tensor([1.0, 0.0]).view(1, 2, 1, 1))
    assert out.item() == pytest.approx(3.0 * 2 / 1)  # only channel 0 is valid: 3 * (2/1)
    assert new_valid.item() == 1.0


def test_mask_update_marks_windows_touching_any_valid_pixel():
    conv = PartialConv2d(3, 4, 3, stride=1)
    valid = _hole_valid(1, 1, 10, 10)
    _, new_valid = conv(torch.randn(1, 3, 10, 10), valid)
    expected = torch.ones(1, 1, 10, 10)
    expected[..., 4:6, 3:5] = 0  # the 3x3 window fits inside the 4x4 hole only there
    assert torch.equal(new_valid, expected)


def test_output_at_valid_positions_ignores_values_under_the_hole():
    torch.manual_seed(0)
    conv = PartialConv2d(3, 5, 3, stride=2)
    valid = _hole_valid(2, 1, 10, 10)
    x = torch.randn(2, 3, 10, 10)
    x2 = torch.where(valid.bool(), x, torch.randn_like(x) * 100)
    out1, m1 = conv(x, valid)
    out2, m2 = conv(x2, valid)
    assert torch.equal(m1, m2)
    assert torch.allclose(out1, out2, atol=1e-5)


def test_mask_shape_mismatch_is_a_clear_error():
    conv = PartialConv2d(3, 4, 3)
    with pytest.raises(ValueError, match="does not fit input"):
        conv(torch.randn(1, 3, 8, 8), torch.ones(1, 2, 8, 8))


def test_pconv_unet_output_ignores_hole_values_and_keeps_shape():
    torch.manual_seed(0)
    net = build("pconv", cnum=8, depth=4).eval()
    image = torch.rand(2, 3, 32, 32) * 2 - 1
    mask = torch.zeros(2, 1, 32, 32)
    mask[:, :, 8:20, 10:24] = 1
    scrambled = torch.where(mask.bool(), torch.rand_like(image) * 2 - 1, image)
    (out1,) = net(image, mask)
    (out2,) = net(scrambled, mask)
    assert out1.shape == image.shape
    assert torch.allclose(out1, out2, atol=1e-5)


def test_pconv_unet_rejects_sizes_not_multiple_of_its_depth():
    net = build("pconv", cnum=8, depth=4)
    with pytest.raises(ValueError, match="multiple of 16"):
        net(torch.zeros(1, 3, 40, 40), torch.zeros(1, 1, 40, 40))


def test_frozen_encoder_bn_stays_in_eval_and_keeps_running_stats():
    net = build("pconv", cnum=8, depth=4)
    net.freeze_encoder_bn(True)
    net.train()
    bn = net.encoder[1].norm
    before = bn.running_mean.clone()
    net(torch.rand(2, 3, 32, 32), torch.zeros(2, 1, 32, 32))
    assert not bn.training and torch.equal(bn.running_mean, before)
    assert not any(p.requires_grad for p in bn.parameters())
    assert net.decoder[0].norm.training  # decoder BN still trains
