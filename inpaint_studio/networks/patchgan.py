"""Discriminators of CSA (Liu et al., ICCV 2019): a 70x70 PatchGAN on images and a
feature-patch discriminator on VGG-16 features. Both output a map of unbounded patch scores,
used with the relativistic average LSGAN loss. Spectral norm on every conv (as the CSA
reference's discriminators) instead of batch norm, so scores of real and fake batches do not
depend on each other's statistics.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from .registry import register_discriminator


def _sn_conv(in_ch: int, out_ch: int, stride: int) -> nn.Module:
    return spectral_norm(nn.Conv2d(in_ch, out_ch, 4, stride=stride, padding=1))


class PatchGan70(nn.Module):
    """pix2pix's 70x70 PatchGAN: 4x4 convs, strides 2, 2, 2, 1, 1, widths cnum, 2cnum, 4cnum,
    8cnum, 1; LeakyReLU(0.2). Each output cell sees a 70x70 input patch.

    Input ``(B, in_channels, H, W)`` (default: RGB, as the CSA reference); output ``(B, 1, H/8 - 2, W/8 - 2)``.
    """

    def __init__(self, in_channels: int = 3, cnum: int = 64) -> None:
        super().__init__()
        widths = (cnum, 2 * cnum, 4 * cnum, 8 * cnum)
        strides = (2, 2, 2, 1)
        layers: list[nn.Module] = []
        ch = in_channels
        for width, stride in zip(widths, strides):
            layers += [_sn_conv(ch, width, stride), nn.LeakyReLU(0.2)]
            ch = width
        layers.append(_sn_conv(ch, 1, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class FeaturePatchDiscriminator(nn.Module):
    """CSA's feature-patch discriminator: patch scores on a VGG-16 feature map.

    Input ``(B, in_channels, h, w)``: VGG-16 ``relu3_3`` features of the image (256 channels
    at 1/4 resolution; the recipe computes them with the frozen VGG). Two stride-2 4x4 convs
    then two stride-1 ones (widths 2cnum, 4cnum, 8cnum, 1), LeakyReLU(0.2). Output
    ``(B, 1, h/4 - 2, w/4 - 2)``.
    """

    def __init__(self, in_channels: int = 256, cnum: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(
            _sn_conv(in_channels, 2 * cnum, 2), nn.LeakyReLU(0.2),
            _sn_conv(2 * cnum, 4 * cnum, 2), nn.LeakyReLU(0.2),
            _sn_conv(4 * cnum, 8 * cnum, 1), nn.LeakyReLU(0.2),
            _sn_conv(8 * cnum, 1, 1),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features)


register_discriminator("patchgan70")(PatchGan70)
register_discriminator("feature_patch")(FeaturePatchDiscriminator)
