"""Gated convolutions: the gating formula, "same" padding and x2 up-convs (nearest, bilinear)."""

from __future__ import annotations

import math

import pytest
import torch

from inpaint_studio.layers.gated import GatedConv2d, GatedUpConv2d, upsampled_rows


def _one_by_one(activation):
    """1x1 gated conv with feature a = 2x and gate b = x - 1."""
    layer = GatedConv2d(1, 1, 1, activation=activation)
    with torch.no_grad():
        layer.conv.weight.copy_(torch.tensor([2.0, 1.0]).view(2, 1, 1, 1))
        layer.conv.bias.copy_(torch.tensor([0.0, -1.0]))
    return layer


def _sigmoid(v):
    return 1.0 / (1.0 + math.exp(-v))


@pytest.mark.parametrize(
    "activation, act",
    [
        ("elu", lambda v: v if v > 0 else math.exp(v) - 1.0),
        ("relu", lambda v: max(v, 0.0)),
        (None, lambda v: v),
    ],
)
def test_gating_formula_on_hand_example(activation, act):
    xs = [-1.5, -0.25, 0.0, 0.5, 2.0, 3.0]
    out = _one_by_one(activation)(torch.tensor(xs).view(1, 1, 2, 3))
    expected = [act(2 * v) * _sigmoid(v - 1) for v in xs]
    assert out.flatten().tolist() == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize(
    "kernel, stride, dilation, expected_hw",
    [(5, 1, 1, (12, 20)), (3, 2, 1, (6, 10)), (3, 1, 4, (12, 20)), (3, 1, 16, (12, 20))],
)
def test_same_padding_shapes(kernel, stride, dilation, expected_hw):
    layer = GatedConv2d(4, 7, kernel, stride=stride, dilation=dilation)
    assert layer.conv.out_channels == 14  # features and gates from one conv
    out = layer(torch.randn(2, 4, 12, 20))
    assert out.shape == (2, 7, *expected_hw)


def test_up_conv_is_nearest_upsampling_then_gated_conv():
    torch.manual_seed(0)
    up = GatedUpConv2d(3, 5)
    x = torch.randn(1, 3, 4, 6)
    doubled = x.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
    out = up(x)
    assert out.shape == (1, 5, 8, 12)
    torch.testing.assert_close(out, up.conv(doubled))


def test_bilinear_up_conv_interpolates_between_input_pixels():
    torch.manual_seed(0)
    up = GatedUpConv2d(1, 2, upsample="bilinear")
    ramp = torch.arange(4.0).view(1, 1, 1, 4).expand(1, 1, 3, 4).contiguous()  # 0 1 2 3 along x
    # quarter steps between input pixels, edges clamped: no 2x2 block grid for later layers
    interpolated = torch.tensor([0.0, 0.25, 0.75, 1.25, 1.75, 2.25, 2.75, 3.0]).expand(1, 1, 6, 8)
    torch.testing.assert_close(up(ramp), up.conv(interpolated.contiguous()))
    assert not torch.allclose(up(ramp), _nearest_twin(up)(ramp))


def _nearest_twin(up):
    """``up``'s weights with nearest up-sampling."""
    twin = GatedUpConv2d(up.conv.conv.in_channels, up.conv.out_ch)
    twin.load_state_dict(up.state_dict())
    return twin


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
def test_upsampled_rows_are_exactly_those_of_the_whole_upsampling(mode):
    torch.manual_seed(3)
    x = torch.randn(1, 2, 7, 3)
    whole = torch.nn.functional.interpolate(
        x, scale_factor=2, mode=mode, **({} if mode == "nearest" else {"align_corners": False}))
    for lo in range(14):
        for hi in range(lo + 1, 15):
            torch.testing.assert_close(upsampled_rows(x, lo, hi, mode), whole[:, :, lo:hi])


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="odd kernel"):
        GatedConv2d(3, 3, 4)
    with pytest.raises(ValueError, match="activation"):
        GatedConv2d(3, 3, 3, activation="tanh")
    with pytest.raises(ValueError, match="upsample must be one of"):
        GatedUpConv2d(3, 3, upsample="bicubic")


@pytest.mark.parametrize("activation", ["elu", "relu", None])
@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_in_place_inference_path_equals_the_autograd_path(activation, memory_format):
    torch.manual_seed(0)
    layer = GatedConv2d(5, 6, 3, dilation=2, activation=activation).to(memory_format=memory_format)
    x = torch.randn(2, 5, 9, 11).contiguous(memory_format=memory_format)
    with_grad = layer(x)
    with torch.inference_mode():
        fast = layer(x)
    assert torch.equal(fast, with_grad.detach())
    # the next conv gets its preferred layout without a copy
    assert fast.is_contiguous(memory_format=memory_format)


@pytest.mark.parametrize("kernel, stride, dilation", [(5, 1, 1), (3, 2, 1), (3, 1, 4), (3, 2, 2)])
def test_banded_inference_equals_the_whole_image_conv(monkeypatch, kernel, stride, dilation):
    torch.manual_seed(1)
    layer = GatedConv2d(3, 4, kernel, stride=stride, dilation=dilation).to(memory_format=torch.channels_last)
    x = torch.randn(1, 3, 23, 10).contiguous(memory_format=torch.channels_last)
    whole = layer(x).detach()
    # bands of 3 output rows: first and last bands reach past the image (zero padding)
    monkeypatch.setattr("inpaint_studio.layers.gated.BAND_ELEMENTS", 2 * 4 * whole.shape[3] * 3)
    with torch.inference_mode():
        banded = layer(x)
    assert banded.shape == whole.shape
    torch.testing.assert_close(banded, whole, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
@pytest.mark.parametrize("rows_per_band", [1, 2, 5])
def test_banded_up_conv_upsamples_only_each_band(monkeypatch, rows_per_band, mode):
    torch.manual_seed(2)
    up = GatedUpConv2d(3, 2, upsample=mode)
    x = torch.randn(1, 3, 7, 5)
    whole = up(x).detach()
    monkeypatch.setattr("inpaint_studio.layers.gated.BAND_ELEMENTS", 2 * 2 * 10 * rows_per_band)
    with torch.inference_mode():
        banded = up(x)
    assert banded.shape == (1, 2, 14, 10)
    torch.testing.assert_close(banded, whole, atol=1e-6, rtol=1e-5)
