"""CSA generator (Liu et al., "Coherent Semantic Attention for Image Inpainting", ICCV 2019):
a rough U-Net, then a refinement U-Net with the coherent semantic attention layer at its
fourth encoder level (1/8 resolution: 32x32 at 256x256 input).

Both U-Nets follow pix2pix: 4x4 stride-2 convs with LeakyReLU(0.2) and BN (none on the first
and the innermost level), transposed 4x4 stride-2 convs with ReLU and BN on the way up, skip
connections by concatenation, tanh output. Widths cnum * (1, 2, 4, 8, 8, ...).

The consistency loss compares, against VGG-16 relu4_3 (512 channels, 1/8 resolution) of the
ground truth, (a) the CSA layer's output and (b) the decoder features at the same resolution.
When those features do not have 512 channels (cnum != 64), a 1x1 conv projects each to 512;
these heads serve only the loss. ``forward(..., with_features=True)`` returns them.

The optional attention block sits on the refinement U-Net's innermost features.
"""

from __future__ import annotations

from typing import Iterator

import torch
from torch import nn

from ..layers.attention import build_attention
from ..layers.csa import CoherentSemanticAttention
from .base import InpaintGenerator
from .registry import register_generator

VGG_RELU4_3_CHANNELS = 512
CSA_LEVEL = 2  # encoder output index 2 = third stride-2 conv = 1/8 resolution


def _widths(cnum: int, depth: int) -> list[int]:
    return [cnum * min(2**k, 8) for k in range(depth)]


class UNet(nn.Module):
    """pix2pix-style U-Net ``(B, in_ch, H, W) -> (B, 3, H, W)`` in [-1, 1].

    ``csa_level``: index of the encoder output rewritten by a :class:`CoherentSemanticAttention`
    layer (None for the rough net). ``forward(x, mask)`` returns ``(output, csa_out,
    decoder_feat)``; the last two are the CSA output and the decoder features of the same
    resolution, or None without a CSA level.
    """

    def __init__(
        self, in_ch: int, cnum: int, depth: int, csa_level: int | None = None,
        attention: str | None = None,
    ) -> None:
        super().__init__()
        widths = _widths(cnum, depth)
        self.down = nn.ModuleList()
        for k in range(depth):
            layers: list[nn.Module] = [] if k == 0 else [nn.LeakyReLU(0.2)]
            layers.append(nn.Conv2d(in_ch if k == 0 else widths[k - 1], widths[k], 4, 2, 1))
            if 0 < k < depth - 1:
                layers.append(nn.BatchNorm2d(widths[k]))
            self.down.append(nn.Sequential(*layers))
        self.innermost_attention = build_attention(attention, widths[-1])
        # up[k] produces the resolution of encoder input k: from level k (plus skip) to k-1.
        self.up = nn.ModuleList()
        for k in range(depth):
            in_up = widths[k] if k == depth - 1 else 2 * widths[k]
            out_up = 3 if k == 0 else widths[k - 1]
            layers = [nn.ReLU(), nn.ConvTranspose2d(in_up, out_up, 4, 2, 1)]
            layers.append(nn.Tanh() if k == 0 else nn.BatchNorm2d(out_up))
            self.up.append(nn.Sequential(*layers))
        self.csa_level = csa_level
        self.csa = CoherentSemanticAttention() if csa_level is not None else None

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        skips = []
        csa_out = None
        for k, block in enumerate(self.down):
            x = block(x)
            if k == self.csa_level:
                x = csa_out = self.csa(x, mask)
            skips.append(x)
        x = self.innermost_attention(skips[-1])
        decoder_feat = None
        for k in reversed(range(len(self.up))):
            if k < len(self.up) - 1:
                x = torch.cat([x, skips[k]], dim=1)
            x = self.up[k](x)
            if self.csa_level is not None and k == self.csa_level + 1:
                decoder_feat = x  # decoder output at the CSA level's resolution
        return x, csa_out, decoder_feat


@register_generator(
    "csa", "Coherent semantic attention (Liu et al. 2019): rough U-Net then refinement U-Net"
)
class CsaGenerator(InpaintGenerator):
    """Args: ``cnum`` base width (reference 64), ``depth`` levels of each U-Net (input sides
    must be multiples of ``2**depth``; at least 4 so the CSA level has a decoder twin),
    ``attention`` optional block on the refinement net's innermost features.

    ``forward(image, mask, sketch=None) -> (coarse, refined)``: ``coarse`` is the paper's rough
    output; the refinement net sees the rough output composited into the known pixels, plus
    the mask. Inputs as :mod:`inpaint_studio.networks.base`.
    """

    stage_names = ("coarse", "refined")

    def __init__(self, cnum: int = 64, depth: int = 6, attention: str | None = None) -> None:
        super().__init__()
        if depth < CSA_LEVEL + 2:
            raise ValueError(f"csa: depth must be at least {CSA_LEVEL + 2}, got {depth}")
        self.multiple = 2**depth
        self.rough = UNet(4, cnum, depth)
        self.refine = UNet(4, cnum, depth, csa_level=CSA_LEVEL, attention=attention)
        level_ch = _widths(cnum, depth)[CSA_LEVEL]

        def head() -> nn.Module:
            if level_ch == VGG_RELU4_3_CHANNELS:
                return nn.Identity()
            return nn.Conv2d(level_ch, VGG_RELU4_3_CHANNELS, 1)

        self.csa_head = head()
        self.decoder_head = head()

    def _check(self, image: torch.Tensor) -> None:
        h, w = image.shape[-2:]
        if h % self.multiple or w % self.multiple:
            raise ValueError(f"csa: input {h}x{w} is not a multiple of {self.multiple}")

    def _rough(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        self._check(image)
        return self.rough(torch.cat([image * (1 - mask), mask], dim=1), mask)[0]

    def _refine(
        self, image: torch.Tensor, mask: torch.Tensor, coarse: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        composite = image * (1 - mask) + coarse * mask
        refined, csa_out, decoder_feat = self.refine(torch.cat([composite, mask], dim=1), mask)
        return refined, csa_out, decoder_feat

    def forward(  # type: ignore[override]
        self, image: torch.Tensor, mask: torch.Tensor, sketch: torch.Tensor | None = None,
        with_features: bool = False,
    ) -> tuple[torch.Tensor, ...]:
        """``(coarse, refined)``; with ``with_features=True`` also ``(csa_feat, decoder_feat)``,
        each ``(B, 512, H/8, W/8)``, comparable with VGG-16 relu4_3 of the ground truth (the
        consistency loss). A keyword of ``forward`` rather than a separate method so that
        training goes through wrappers (DDP, torch.compile) that only intercept ``forward``."""
        coarse = self._rough(image, mask)
        refined, csa_out, decoder_feat = self._refine(image, mask, coarse)
        if not with_features:
            return coarse, refined
        return coarse, refined, self.csa_head(csa_out), self.decoder_head(decoder_feat)

    def stages(
        self, image: torch.Tensor, mask: torch.Tensor, sketch: torch.Tensor | None = None
    ) -> Iterator[tuple[str, torch.Tensor]]:
        coarse = self._rough(image, mask)
        yield "coarse", coarse
        yield "refined", self._refine(image, mask, coarse)[0]
