"""Partial convolution (Liu et al., "Image Inpainting for Irregular Holes Using Partial
Convolutions", ECCV 2018).

For every output position with window ``X`` (inputs) and ``M`` (validity, 1 = known)::

    out = W^T (X * M) * sum(1) / sum(M) + b    if sum(M) > 0
    out = 0                                    otherwise
    new_mask = 1 if sum(M) > 0 else 0

``sum(1)`` is the number of entries in the window (``C_in * k * k``); zero padding counts as
invalid, so borders are renormalised like holes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class PartialConv2d(nn.Conv2d):
    """A conv layer that sees only valid inputs and renormalises by their count.

    ``forward(x, valid) -> (out, new_valid)``:

    * ``x``: ``(B, C_in, H, W)`` float.
    * ``valid``: 1 = known, 0 = hole (note: the inverse of the network-level ``mask``), either
      ``(B, 1, H, W)`` (one mask shared by every channel) or ``(B, C_in, H, W)`` (a mask per
      channel, as after concatenating skip connections whose masks differ).
    * ``out``: ``(B, C_out, H', W')``, 0 where no valid input reached the window.
    * ``new_valid``: ``(B, 1, H', W')`` float {0, 1}, 1 where any valid input reached the
      window (any channel). Always single-channel: the output channels share one window.

    Padding defaults to ``dilation * (kernel_size - 1) // 2`` ("same" for odd kernels).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int | None = None,
        dilation: int = 1,
        bias: bool = True,
    ) -> None:
        if padding is None:
            padding = dilation * (kernel_size - 1) // 2
        super().__init__(
            in_channels, out_channels, kernel_size, stride=stride, padding=padding,
            dilation=dilation, bias=bias,
        )
        self.window_size = float(in_channels * kernel_size * kernel_size)

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        if valid.shape[1] not in (1, x.shape[1]) or valid.shape[2:] != x.shape[2:]:
            raise ValueError(
                f"PartialConv2d: mask of shape {tuple(valid.shape)} does not fit input "
                f"{tuple(x.shape)}; expected (B, 1 or {x.shape[1]}, {x.shape[2]}, {x.shape[3]})"
            )
        valid = valid.to(x.dtype)
        with torch.no_grad():
            # Count of valid inputs per window; a single-channel mask stands for C_in equal
            # channels, hence the factor.
            ones = torch.ones(1, valid.shape[1], *self.kernel_size, dtype=x.dtype, device=x.device)
            count = F.conv2d(valid, ones, None, self.stride, self.padding, self.dilation)
            if valid.shape[1] == 1:
                count = count * self.in_channels
            new_valid = (count > 0).to(x.dtype)
            scale = self.window_size / count.clamp(min=1.0) * new_valid
        raw = F.conv2d(x * valid, self.weight, None, self.stride, self.padding, self.dilation)
        out = raw * scale
        if self.bias is not None:
            out = out + self.bias.view(1, -1, 1, 1) * new_valid
        return out, new_valid
