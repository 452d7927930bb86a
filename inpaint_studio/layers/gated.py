"""Gated convolutions (DeepFill v2, Yu et al. 2019).

A gated convolution learns, per pixel and channel, how much of its feature to let through:
one convolution produces ``2 * out_ch`` channels, split into features ``a`` and gates ``b``,
and the output is ``act(a) * sigmoid(b)``. This replaces partial convolutions' hand-made mask
update with a learned soft mask, which is what lets free-form holes and sketch guidance work.

Shapes: ``(B, in_ch, H, W) -> (B, out_ch, H', W')`` with "same" zero padding, so
``H' = ceil(H / stride)`` for odd kernels (any dilation). Values are unbounded floats.

Without autograd (inference) the conv output's features are activated in place and gated
straight into the result (GLU), and a layer whose conv output (``2 * out_ch`` channels) would exceed
:data:`BAND_ELEMENTS` computes it in horizontal bands of rows, so no full-size temporary
exists: that bounds peak memory on large photos (a 2048 px full-resolution layer's conv output
alone is 800 MB, its upsampled input 800 MB more). An up-conv upsamples band by band too. The
bands compute exactly the unbanded convolution (zero rows stand in for the padding at the
image's top and bottom). The result is channels_last when the layer's weights are (a model
moved with ``.to(memory_format=torch.channels_last)``), whatever the input's format.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .gating import activate, gate, uses_fused_inference

ACTIVATIONS = ("elu", "relu", None)
#: Most conv output elements (2 * out_ch * rows * width * batch) one inference band holds:
#: 16 Mi floats (64 MB). Smaller bands measured no faster on a 2-core AVX2 CPU (some band
#: heights picked slower oneDNN kernels), so only layers above 2048 px-class sizes are banded.
BAND_ELEMENTS = 1 << 24

#: ``rows(lo, hi)``: rows ``[lo, hi)`` (clamped to the image by the caller) of a conv input.
RowSource = Callable[[int, int], torch.Tensor]


def _is_channels_last(t: torch.Tensor) -> bool:
    """True for a 4-D tensor laid out NHWC (and not also NCHW, as 1x1 ones can be)."""
    return t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous()


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
        if not torch.is_grad_enabled():
            return self.forward_banded(lambda lo, hi: x[:, :, lo:hi], x)
        return gate(self.conv(x), self.out_ch, self.activation)

    def forward_banded(self, rows: RowSource, like: torch.Tensor, scale: int = 1) -> torch.Tensor:
        """The layer's output on an input given by rows, computed band by band (no autograd).

        rows: ``rows(lo, hi)`` returns input rows ``[lo, hi)`` as ``(B, in_ch, hi - lo, W)``
            for ``0 <= lo < hi <= height``.
        like: the tensor ``rows`` reads from, ``scale`` times smaller than the layer's input
            (the input's batch, dtype, device and memory format; its size / ``scale``).
        """
        conv = self.conv
        (k, _), (s, _), (d, _), (p, _) = conv.kernel_size, conv.stride, conv.dilation, conv.padding
        b, _, h, w = like.shape
        h, w = h * scale, w * scale
        out_h, out_w = (h + 2 * p - d * (k - 1) - 1) // s + 1, (w + 2 * p - d * (k - 1) - 1) // s + 1
        # The weight's format decides (a model moved to channels_last): an input that arrives
        # NCHW from a cat or a mask product must not turn every later layer NCHW, which costs
        # a conversion of the input and of the output per layer.
        fmt = torch.channels_last if _is_channels_last(conv.weight) else torch.contiguous_format
        band = max(1, BAND_ELEMENTS // (2 * self.out_ch * out_w * b))
        if band >= out_h:  # one band: the plain convolution, padding included
            y = F.conv2d(rows(0, h), conv.weight, conv.bias, s, p, d)
            return self._gate_into(y, None).contiguous(memory_format=fmt)
        out = None
        for r0 in range(0, out_h, band):
            r1 = min(r0 + band, out_h)
            # input rows [lo, hi) feed output rows [r0, r1); rows outside the image are zeros
            lo, hi = r0 * s - p, (r1 - 1) * s - p + d * (k - 1) + 1
            x = rows(max(lo, 0), min(hi, h))
            if lo < 0 or hi > h:
                x = F.pad(x, (0, 0, max(0, -lo), max(0, hi - h)))
            y = F.conv2d(x, conv.weight, conv.bias, stride=s, padding=(0, p), dilation=d)
            if out is None:
                # The conv's own dtype: under autocast that is the compute dtype (bf16), so no
                # layer round-trips its activations through fp32.
                out = torch.empty(b, self.out_ch, out_h, out_w, dtype=y.dtype, device=y.device,
                                  memory_format=fmt)
            self._gate_into(y, out[:, :, r0:r1])
        return out

    def _gate_into(self, y: torch.Tensor, out: torch.Tensor | None) -> torch.Tensor:
        """Gate the conv output ``y`` (no autograd) into ``out`` (or a new tensor when None)."""
        if uses_fused_inference(y.dtype):
            gated = gate(y, self.out_ch, self.activation)
            return gated if out is None else out.copy_(gated)
        # The activation in place, then GLU (``a * sigmoid(b)`` over the channel halves) in one
        # pass: two passes over the conv output instead of three (activation, sigmoid,
        # product), and no temporary. Channel halves of an NHWC tensor are strided, which makes
        # each pass slow; on a loaded 2-core AMX CPU this measured 1.2-2x faster than the three.
        activate(self.activation, y[:, : self.out_ch], inplace=True)
        if out is None:
            return F.glu(y, dim=1)
        return torch._C._nn.glu(y, 1, out=out)


#: How :class:`GatedUpConv2d` doubles its input: ``"nearest"`` (the reference's) repeats each
#: pixel 2x2; ``"bilinear"`` (``align_corners=False``) interpolates, so the up-sampled map has
#: no 2x2 block grid for later layers to modulate into a lattice.
UPSAMPLE_MODES = ("nearest", "bilinear")


class GatedUpConv2d(nn.Module):
    """x2 upsampling (``upsample``: one of :data:`UPSAMPLE_MODES`) then a gated 3x3 conv:
    ``(B, in_ch, H, W) -> (B, out_ch, 2H, 2W)`` (the reference's ``gen_deconv``, nearest;
    avoids transposed-conv checkerboards)."""

    def __init__(self, in_ch: int, out_ch: int, activation: str | None = "elu",
                 upsample: str = "nearest") -> None:
        super().__init__()
        if upsample not in UPSAMPLE_MODES:
            raise ValueError(f"upsample must be one of {UPSAMPLE_MODES}, got {upsample!r}")
        self.upsample = upsample
        self.conv = GatedConv2d(in_ch, out_ch, 3, activation=activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.is_grad_enabled():
            rows = lambda lo, hi: upsampled_rows(x, lo, hi, self.upsample)  # noqa: E731
            return self.conv.forward_banded(rows, x, scale=2)
        return self.conv(upsample2x(x, self.upsample))


def upsample2x(x: torch.Tensor, mode: str) -> torch.Tensor:
    """``(B, C, H, W) -> (B, C, 2H, 2W)``, ``mode`` one of :data:`UPSAMPLE_MODES`."""
    if mode == "nearest":
        return F.interpolate(x, scale_factor=2, mode="nearest")
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


def upsampled_rows(x: torch.Tensor, lo: int, hi: int, mode: str = "nearest") -> torch.Tensor:
    """Rows ``[lo, hi)`` of ``upsample2x(x, mode)``, without upsampling the rest: exactly those
    rows. Bilinear output row ``r`` reads input rows ``(r - 1) // 2`` and ``(r + 1) // 2``
    (clamped at the image's edges), so one more input row each side is upsampled and dropped."""
    margin = 0 if mode == "nearest" else 1
    s0, s1 = max(0, lo // 2 - margin), min(x.shape[2], (hi + 1) // 2 + margin)
    band = upsample2x(x[:, :, s0:s1], mode)
    return band[:, :, lo - 2 * s0 : hi - 2 * s0]
