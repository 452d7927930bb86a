"""DeepFill v1 generator (Yu et al., "Generative Image Inpainting with Contextual Attention",
CVPR 2018), after its reference code: plain (ungated) convolutions with ELU, coarse-to-fine.

* Coarse net: input masked RGB, ones, mask (5 channels); 5x5 conv, two stride-2 downsamplings,
  dilated 3x3 convs (rates 2, 4, 8, 16) at 1/4 resolution, two nearest-x2 upsamplings, a
  3x3 conv to RGB clipped to [-1, 1] (the reference clips rather than tanh).
* Refine net: the coarse output composited into the known pixels, ones, mask; two branches
  at 1/4 resolution, a dilated-conv branch and a contextual-attention branch (attention with
  propagation, :class:`inpaint_studio.layers.contextual.ContextualAttention`), concatenated,
  then the same decoder as the coarse net.

Widths: cnum (reference 32), 2cnum, 4cnum. The optional attention block (``attention=``)
acts on the concatenated branch features of the refine net, at 1/4 resolution.
"""

from __future__ import annotations

from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from ..layers.attention import build_attention
from ..layers.contextual import AttentionCapture, ContextualAttention
from .base import InpaintGenerator
from .registry import register_generator

#: Resolution of the refine net's attention features relative to the image.
FEATURE_STRIDE = 4


class Conv(nn.Module):
    """Conv2d ("same" padding for odd kernels, with dilation) + ELU; ``activation=False``:
    no activation."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int = 3, stride: int = 1,
                 dilation: int = 1, activation: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel, stride, dilation * (kernel - 1) // 2, dilation)
        self.activation = nn.ELU() if activation else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(self.conv(x))


class UpConv(Conv):
    """Nearest x2 upsampling then :class:`Conv` 3x3."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.interpolate(x, scale_factor=2.0, mode="nearest"))


def _dilated(ch: int) -> list[nn.Module]:
    return [Conv(ch, ch, 3, dilation=rate) for rate in (2, 4, 8, 16)]


def _decoder(in_ch: int, cnum: int) -> nn.Sequential:
    """1/4-resolution features -> RGB at full resolution (pre-clip)."""
    return nn.Sequential(
        Conv(in_ch, 4 * cnum), Conv(4 * cnum, 4 * cnum),
        UpConv(4 * cnum, 2 * cnum), Conv(2 * cnum, 2 * cnum),
        UpConv(2 * cnum, cnum), Conv(cnum, cnum // 2),
        Conv(cnum // 2, 3, activation=False),
    )


@register_generator(
    "deepfill_v1", "DeepFill v1 (Yu et al. 2018): coarse-to-fine with contextual attention"
)
class DeepFillV1Generator(InpaintGenerator):
    """Args: ``cnum`` base width (reference 32; even), ``attention`` optional block name.

    ``forward(image, mask, sketch=None) -> (coarse, refined)``, both raw ``(B, 3, H, W)`` in
    [-1, 1]; inputs as :mod:`inpaint_studio.networks.base` (no sketch guidance).
    ``stages()`` yields the coarse output before the refine net runs.
    """

    stage_names = ("coarse", "refined")
    multiple = 8

    def __init__(self, cnum: int = 32, attention: str | None = None) -> None:
        super().__init__()
        if cnum < 2 or cnum % 2:
            raise ValueError(f"deepfill_v1: cnum must be an even number >= 2, got {cnum}")
        c = cnum
        self.coarse = nn.Sequential(
            Conv(5, c, 5), Conv(c, 2 * c, 3, 2), Conv(2 * c, 2 * c),
            Conv(2 * c, 4 * c, 3, 2), Conv(4 * c, 4 * c), Conv(4 * c, 4 * c),
            *_dilated(4 * c), _decoder(4 * c, c),
        )
        self.refine_conv = nn.Sequential(
            Conv(5, c, 5), Conv(c, c, 3, 2), Conv(c, 2 * c),
            Conv(2 * c, 2 * c, 3, 2), Conv(2 * c, 4 * c), Conv(4 * c, 4 * c),
            *_dilated(4 * c),
        )
        self.refine_attention_in = nn.Sequential(
            Conv(5, c, 5), Conv(c, c, 3, 2), Conv(c, 2 * c),
            Conv(2 * c, 4 * c, 3, 2), Conv(4 * c, 4 * c),
        )
        # The reference uses ReLU before contextual attention (cosine matching of features).
        self.refine_attention_pre = nn.Sequential(nn.Conv2d(4 * c, 4 * c, 3, 1, 1), nn.ReLU())
        self.contextual = ContextualAttention(ksize=3, stride=1, rate=2, fuse_k=3,
                                              softmax_scale=10.0, fuse=True)
        self.refine_attention_out = nn.Sequential(Conv(4 * c, 4 * c), Conv(4 * c, 4 * c))
        self.block_attention = build_attention(attention, 8 * c)
        self.refine_decoder = _decoder(8 * c, c)

    def _check(self, image: torch.Tensor) -> None:
        h, w = image.shape[-2:]
        if h % self.multiple or w % self.multiple:
            raise ValueError(f"deepfill_v1: input {h}x{w} is not a multiple of {self.multiple}")

    @staticmethod
    def _inputs(image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return torch.cat([image * (1 - mask), torch.ones_like(mask), mask], dim=1)

    def run_coarse(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The coarse output ``(B, 3, H, W)`` in [-1, 1]."""
        self._check(image)
        return self.coarse(self._inputs(image, mask)).clamp(-1.0, 1.0)

    def run_refine(self, image: torch.Tensor, mask: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
        """The refined output from the coarse one, ``(B, 3, H, W)`` in [-1, 1]."""
        composite = image * (1 - mask) + coarse * mask
        x = self._inputs(composite, mask)
        conv_branch = self.refine_conv(x)
        feats = self.refine_attention_pre(self.refine_attention_in(x))
        # A feature cell is a hole when any of its 4x4 pixels is (no copying from half-holes).
        small_mask = F.max_pool2d(mask, FEATURE_STRIDE)
        attended = self.refine_attention_out(self.contextual(feats, feats, small_mask))
        merged = self.block_attention(torch.cat([conv_branch, attended], dim=1))
        return self.refine_decoder(merged).clamp(-1.0, 1.0)

    def forward(
        self, image: torch.Tensor, mask: torch.Tensor, sketch: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        coarse = self.run_coarse(image, mask)
        return coarse, self.run_refine(image, mask, coarse)

    def stages(
        self, image: torch.Tensor, mask: torch.Tensor, sketch: torch.Tensor | None = None
    ) -> Iterator[tuple[str, torch.Tensor]]:
        coarse = self.run_coarse(image, mask)
        yield "coarse", coarse
        yield "refined", self.run_refine(image, mask, coarse)

    def capture_attention(self, topk: int) -> None:
        """Keep, on every later forward, the ``topk`` heaviest background cells per query
        (0 turns capture off). Read them with :meth:`attention_source`."""
        if topk < 0:
            raise ValueError(f"topk must be >= 0, got {topk}")
        self.contextual.capture_topk = int(topk)

    def attention_source(self) -> AttentionCapture | None:
        """The captured attention of the last forward, in matching-grid coordinates: image
        pixel ``(Y, X)`` is grid cell ``(Y // 8, X // 8)`` (features at 1/4, rate 2)."""
        return self.contextual.last_capture
