"""Gated convolutions (DeepFill v2, Yu et al. 2019).

A gated convolution learns, per pixel and channel, how much of its feature to let through:
one convolution produces ``2 * out_ch`` channels, split into features ``a`` and gates ``b``,
and the output is ``act(a) * sigmoid(b)``. This replaces partial convolutions' hand-made mask
update with a learned soft mask, which is what lets free-form holes and sketch guidance work.

Shapes: ``(B, in_ch, H, W) -> (B, out_ch, H', W')`` with "same" zero padding, so
``H' = ceil(H / stride)`` for odd kernels (any dilation). Values are unbounded floats.

Without autograd (inference) the gating runs in place on the conv output and the product goes
straight into the result tensor: one full-size temporary (the conv output) instead of four,
which is what bounds peak memory on large photos. The result keeps the input's memory format
(channels_last in, channels_last out).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS = ("elu", "relu", None)


def _activation(name: str | None, x: torch.Tensor, inplace: bool = False) -> torch.Tensor:
    if name == "elu":
        return F.elu(x, inplace=inplace)
    if name == "relu":
        return F.relu(x, inplace=inplace)
    return x


class GatedConv2d(nn.Module):
    """``act(a) * sigmoid(b)`` where ``(a, b)`` split one conv's ``2 * out_ch`` output channels.

    activation: ``"elu"`` (the reference's default), ``"relu"`` (the reference uses it on the
        layer feeding contextual attention) or None (identity feature, still gated). The
        reference's ungated output layer is a plain ``nn.Conv2d`` followed by tanh; generators
        build that themselves.
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel_size: int,
        stride: int = 1,
        dilation: int = 1,
        activation: str | None = "elu",
    ) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"GatedConv2d needs an odd kernel for 'same' padding, got {kernel_size}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
        self.out_ch = out_ch
        self.activation = activation
        self.conv = nn.Conv2d(
            in_ch,
            2 * out_ch,
            kernel_size,
            stride=stride,
            padding=dilation * (kernel_size - 1) // 2,
            dilation=dilation,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features, gates = self.conv(x).split(self.out_ch, dim=1)
        if torch.is_grad_enabled():
            return _activation(self.activation, features) * torch.sigmoid(gates)
        # The conv output is a temporary nobody else sees: gate it in place.
        out = torch.empty_like(features, memory_format=torch.preserve_format)
        return torch.mul(_activation(self.activation, features, inplace=True), gates.sigmoid_(), out=out)


class GatedUpConv2d(nn.Module):
    """Nearest-neighbour x2 upsampling then a gated 3x3 conv: ``(B, in_ch, H, W) ->
    (B, out_ch, 2H, 2W)`` (the reference's ``gen_deconv``; avoids transposed-conv checkerboards)."""

    def __init__(self, in_ch: int, out_ch: int, activation: str | None = "elu") -> None:
        super().__init__()
        self.conv = GatedConv2d(in_ch, out_ch, 3, activation=activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))
