"""SN-PatchGAN discriminator (DeepFill v2): six 5x5 stride-2 spectral-normalised convs.

Input: ``(B, in_channels, H, W)``, by default RGB in [-1, 1] + mask (1 = hole) + sketch
(``in_channels=5``). Output: ``(B, 256 * H/64 * W/64)`` flattened patch scores (one score
per channel and cell of the 1/64-resolution map, each seeing a large patch of the input),
trained with the hinge loss. Like the reference, every conv (the last included) is followed
by LeakyReLU(0.2). H and W should be multiples of 64 for an exact 1/64 map.

``blur=True`` (not in the reference) low-passes each conv's input with a fixed binomial
[1, 2, 1] x [1, 2, 1] / 16 filter before its stride-2 sampling, the anti-aliasing of Zhang,
"Making Convolutional Networks Shift-Invariant Again" (ICML 2019) and of StyleGAN2's
discriminator. Why: a stride-2 conv folds a 4-8 px pattern into coarser frequencies, and a
generator trained against it learned such a crosshatch (docs/training.md, A/B 12, leg 13;
the blur did not remove it, A/B 13). The filter has no parameters, so a discriminator's
weights load either way.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from .registry import register_discriminator

WIDTHS = (64, 128, 256, 256, 256, 256)


@register_discriminator("sn_patchgan")
class SNPatchGAN(nn.Module):
    """in_channels: 5 (RGB + mask + sketch) by default, 4 without a sketch channel.
    base: width of the first conv; later convs use the reference's multiples (1,2,4,4,4,4)."""

    def __init__(self, in_channels: int = 5, base: int = 64, blur: bool = False) -> None:
        super().__init__()
        widths = [base * w // WIDTHS[0] for w in WIDTHS]
        layers: list[nn.Module] = []
        for out_ch in widths:
            layers += [spectral_norm(nn.Conv2d(in_channels, out_ch, 5, stride=2, padding=2)), nn.LeakyReLU(0.2)]
            in_channels = out_ch
        self.body = nn.Sequential(*layers)
        # Outside ``body``, so the layers keep their indices (and state-dict keys) either way.
        self.blur = BinomialBlur() if blur else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)[-1].flatten(1)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Each conv block's output (after its LeakyReLU), ``(B, width_i, H / 2**i, W / 2**i)``
        for i = 1..6; the last, flattened, is :meth:`forward`'s score."""
        out = []
        for layer in self.body:
            x = layer(self.blur(x)) if self.blur is not None and isinstance(layer, nn.Conv2d) else layer(x)
            if isinstance(layer, nn.LeakyReLU):
                out.append(x)
        return out


class BinomialBlur(nn.Module):
    """Fixed depthwise [1, 2, 1] x [1, 2, 1] / 16 low-pass, stride 1, replicate padding:
    ``(B, C, H, W) -> (B, C, H, W)``, any float dtype. A constant image passes unchanged. The
    kernel is a non-persistent buffer, so state dicts are those of the unblurred network."""

    def __init__(self) -> None:
        super().__init__()
        taps = torch.tensor([1.0, 2.0, 1.0])
        self.register_buffer("kernel", (torch.outer(taps, taps) / 16).view(1, 1, 3, 3),
                             persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels = x.shape[1]
        weight = self.kernel.to(x.dtype).expand(channels, 1, 3, 3)
        return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), weight, groups=channels)
