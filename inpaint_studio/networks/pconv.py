"""The partial-convolution U-Net (Liu et al., ECCV 2018), one "final" stage.

Encoder: ``depth`` partial convs with stride 2 (kernels 7, 5, 5, then 3; widths
cnum, 2cnum, 4cnum, then 8cnum), BN (not on the first) and ReLU. Decoder: nearest x2 upsampling
of features and validity mask, concatenation with the encoder level of the same size (features
and their masks, per channel), partial conv 3x3, BN, LeakyReLU(0.2); the last layer
concatenates the input image and its mask and maps to RGB with no BN and no activation.
The paper uses ``depth=7`` at 512x512; ``depth`` is an argument so small inputs work (input
sides must be multiples of ``2**depth``).

The optional attention block (``attention=se|cbam|danet``) sits on the bottleneck features
(the deepest encoder output), where it is cheapest and sees the whole image.

Fine-tuning phase of the paper: :meth:`PConvUNet.freeze_encoder_bn` keeps the encoder's
batch-norm layers in eval mode with frozen affine parameters, even under ``train()``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..layers.attention import build_attention
from ..layers.partial import PartialConv2d
from .base import InpaintGenerator
from .registry import register_generator


class _EncoderLevel(nn.Module):
    """PartialConv (stride 2) -> optional BN -> ReLU, on (features, validity)."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, batch_norm: bool) -> None:
        super().__init__()
        self.conv = PartialConv2d(in_ch, out_ch, kernel, stride=2, bias=not batch_norm)
        self.norm = nn.BatchNorm2d(out_ch) if batch_norm else nn.Identity()

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, valid = self.conv(x, valid)
        return F.relu(self.norm(x)), valid


class _DecoderLevel(nn.Module):
    """Upsample x2 (nearest), concat the skip, PartialConv 3x3 -> BN -> LeakyReLU(0.2).

    ``last=True``: no BN and no activation (the output layer)."""

    def __init__(self, in_ch: int, skip_ch: int, out_ch: int, last: bool = False) -> None:
        super().__init__()
        self.conv = PartialConv2d(in_ch + skip_ch, out_ch, 3, bias=last)
        self.norm = nn.Identity() if last else nn.BatchNorm2d(out_ch)
        self.last = last

    def forward(
        self, x: torch.Tensor, valid: torch.Tensor, skip: torch.Tensor, skip_valid: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        valid = F.interpolate(valid, scale_factor=2.0, mode="nearest")
        # Each concatenated channel keeps its own validity: a per-channel mask.
        masks = torch.cat(
            [valid.expand(-1, x.shape[1], -1, -1), skip_valid.expand(-1, skip.shape[1], -1, -1)], 1
        )
        x, valid = self.conv(torch.cat([x, skip], dim=1), masks)
        x = self.norm(x)
        return (x if self.last else F.leaky_relu(x, 0.2)), valid


@register_generator("pconv", "Partial-convolution U-Net (Liu et al. 2018): single stage, irregular holes")
class PConvUNet(InpaintGenerator):
    """Args: ``cnum`` base width (paper 64), ``depth`` encoder levels (paper 7 at 512x512),
    ``attention`` optional block name on the bottleneck.

    ``forward(image, mask, sketch=None) -> (final,)``: image ``(B,3,H,W)`` in [-1,1], mask
    ``(B,1,H,W)`` 1 = hole; H, W multiples of ``2**depth``. The output is linear (the paper
    has no output activation); it is clamped to [-1, 1] only in eval mode so training keeps
    gradients for out-of-range values.
    """

    stage_names = ("final",)

    def __init__(self, cnum: int = 64, depth: int = 7, attention: str | None = None) -> None:
        super().__init__()
        if depth < 2:
            raise ValueError(f"pconv: depth must be at least 2, got {depth}")
        self.multiple = 2**depth
        kernels = [7, 5, 5] + [3] * max(depth - 3, 0)
        widths = [cnum * min(2**k, 8) for k in range(depth)]
        self.encoder = nn.ModuleList(
            _EncoderLevel(3 if k == 0 else widths[k - 1], widths[k], kernels[k], batch_norm=k > 0)
            for k in range(depth)
        )
        self.bottleneck_attention = build_attention(attention, widths[-1])
        # Decoder level k takes level k+1's output and encoder level k's features.
        self.decoder = nn.ModuleList(
            _DecoderLevel(widths[k + 1], widths[k], widths[k]) for k in range(depth - 1)
        )
        self.output = _DecoderLevel(widths[0], 3, 3, last=True)
        self._encoder_bn_frozen = False

    def freeze_encoder_bn(self, frozen: bool = True) -> None:
        """Keep encoder BN in eval mode (running statistics) with frozen affine parameters."""
        self._encoder_bn_frozen = frozen
        for level in self.encoder:
            for p in level.norm.parameters():
                p.requires_grad_(not frozen)
        self.train(self.training)

    def train(self, mode: bool = True) -> "PConvUNet":
        super().train(mode)
        if self._encoder_bn_frozen:
            for level in self.encoder:
                level.norm.eval()
        return self

    def forward(
        self, image: torch.Tensor, mask: torch.Tensor, sketch: torch.Tensor | None = None
    ) -> tuple[torch.Tensor]:
        h, w = image.shape[-2:]
        if h % self.multiple or w % self.multiple:
            raise ValueError(f"pconv: input {h}x{w} is not a multiple of {self.multiple}")
        valid = 1.0 - mask
        x = image * valid
        skips = [(x, valid)]
        for level in self.encoder:
            x, valid = level(x, valid)
            skips.append((x, valid))
        x = self.bottleneck_attention(x)
        for k in reversed(range(len(self.decoder))):
            x, valid = self.decoder[k](x, valid, *skips[k + 1])
        x, _ = self.output(x, valid, *skips[0])
        return (x if self.training else x.clamp(-1.0, 1.0),)
