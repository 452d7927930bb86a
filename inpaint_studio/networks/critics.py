"""WGAN-GP critics of DeepFill v1 (Yu et al., CVPR 2018): a global critic on the whole image
and a local critic on the hole's bounding box resized to a fixed size.

Both: 5x5 stride-2 convs with LeakyReLU(0.2) (widths cnum, 2cnum, 4cnum, 4cnum for the global
critic and cnum, 2cnum, 4cnum, 8cnum for the local one, as the reference), then a linear layer
on the flattened map to one unbounded score per sample. No normalisation (the gradient
penalty assumes per-sample gradients, which batch norm would mix). The linear layer needs the
input size, given as ``image_size``.

Input: ``(B, in_channels, S, S)`` image in [-1, 1] (default RGB only, as the reference),
``S = image_size``. Output: ``(B, 1)``.
"""

from __future__ import annotations

import torch
from torch import nn

from .registry import register_discriminator


class WganCritic(nn.Module):
    """Stride-2 5x5 convs at ``widths`` then Linear to one score; see the module docstring."""

    def __init__(self, image_size: int, widths: tuple[int, ...], in_channels: int = 3) -> None:
        super().__init__()
        if image_size % 2 ** len(widths):
            raise ValueError(
                f"critic image_size {image_size} must be a multiple of {2 ** len(widths)}"
            )
        layers: list[nn.Module] = []
        ch = in_channels
        for width in widths:
            layers += [nn.Conv2d(ch, width, 5, stride=2, padding=2), nn.LeakyReLU(0.2)]
            ch = width
        self.features = nn.Sequential(*layers)
        side = image_size // 2 ** len(widths)
        self.score = nn.Linear(ch * side * side, 1)
        self.image_size = image_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (self.image_size, self.image_size):
            raise ValueError(
                f"critic built for {self.image_size}x{self.image_size}, got {tuple(x.shape[-2:])}"
            )
        return self.score(self.features(x).flatten(1))


@register_discriminator("wgan_global")
def global_critic(image_size: int = 256, cnum: int = 64, in_channels: int = 3) -> WganCritic:
    """DeepFill v1 global critic on the whole ``image_size`` image."""
    return WganCritic(image_size, (cnum, 2 * cnum, 4 * cnum, 4 * cnum), in_channels)


@register_discriminator("wgan_local")
def local_critic(image_size: int = 128, cnum: int = 64, in_channels: int = 3) -> WganCritic:
    """DeepFill v1 local critic on the hole crop resized to ``image_size`` (the reference: half
    the training size)."""
    return WganCritic(image_size, (cnum, 2 * cnum, 4 * cnum, 8 * cnum), in_channels)
