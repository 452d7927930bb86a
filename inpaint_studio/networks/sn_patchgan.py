"""SN-PatchGAN discriminator (DeepFill v2): six 5x5 stride-2 spectral-normalised convs.

Input: ``(B, in_channels, H, W)``, by default RGB in [-1, 1] + mask (1 = hole) + sketch
(``in_channels=5``). Output: ``(B, 256 * H/64 * W/64)`` flattened patch scores (one score
per channel and cell of the 1/64-resolution map, each seeing a large patch of the input),
trained with the hinge loss. Like the reference, every conv (the last included) is followed
by LeakyReLU(0.2). H and W should be multiples of 64 for an exact 1/64 map.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from .registry import register_discriminator

WIDTHS = (64, 128, 256, 256, 256, 256)


@register_discriminator("sn_patchgan")
class SNPatchGAN(nn.Module):
    """in_channels: 5 (RGB + mask + sketch) by default, 4 without a sketch channel.
    base: width of the first conv; later convs use the reference's multiples (1,2,4,4,4,4)."""

    def __init__(self, in_channels: int = 5, base: int = 64) -> None:
        super().__init__()
        widths = [base * w // WIDTHS[0] for w in WIDTHS]
        layers: list[nn.Module] = []
        for out_ch in widths:
            layers += [spectral_norm(nn.Conv2d(in_channels, out_ch, 5, stride=2, padding=2)), nn.LeakyReLU(0.2)]
            in_channels = out_ch
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).flatten(1)
