"""What the discriminator sees of an image: a random translation (DiffAugment-style; Zhao et
al., "Differentiable Augmentation for Data-Efficient GAN Training", NeurIPS 2020), and a
low-passed, down-sampled view for a structure-scale discriminator (:func:`structure_view`).

Why the translation: SN-PatchGAN's six stride-2 convolutions see the image on a fixed grid.
With the GAN term on, the generator learned a faint 5-8 px crosshatch that this grid rewards
(docs/training.md, A/B 12 and leg 13). Shifting each sample by a random whole number of pixels before the
discriminator, on the real and the fake side and in the generator's loss alike, puts that grid
at a new phase every time, so no fixed-phase pattern pays. The shift is differentiable (a
gather), so the generator's gradient flows through it. Measured: it did not remove that
lattice (A/B 13); the lattice is not tied to D's phase.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def random_translate(x: Tensor, max_shift: int, generator: torch.Generator | None = None) -> Tensor:
    """Shift each sample of ``x`` (``(N, C, H, W)``, any dtype and device) by its own random
    ``(dy, dx)``, each uniform in ``[-max_shift, max_shift]`` pixels, filling the uncovered
    border with zeros (mid-grey for images in ``[-1, 1]``, "known" for a mask channel). All
    channels of a sample move together, so an image keeps its mask and sketch aligned.
    ``max_shift`` 0 returns ``x`` itself. Returns a tensor of ``x``'s shape, dtype and
    memory format."""
    if max_shift < 0:
        raise ValueError(f"max_shift must be at least 0, got {max_shift}")
    if max_shift == 0:
        return x
    n, _, h, w = x.shape
    shifts = torch.randint(-max_shift, max_shift + 1, (2, n, 1, 1), device=x.device,
                           generator=generator)
    # Output pixel (i, j) reads padded pixel (i + max_shift - dy, j + max_shift - dx).
    rows = torch.arange(h, device=x.device).view(1, h, 1) + max_shift - shifts[0]
    cols = torch.arange(w, device=x.device).view(1, 1, w) + max_shift - shifts[1]
    padded = torch.nn.functional.pad(x, (max_shift,) * 4)
    batch = torch.arange(n, device=x.device).view(n, 1, 1)
    # Advanced indexing on dims 0, 2, 3 puts the channels last: (N, H, W, C).
    out = padded.permute(0, 2, 3, 1)[batch, rows, cols]
    out = out.permute(0, 3, 1, 2)
    if x.is_contiguous(memory_format=torch.channels_last):
        return out.contiguous(memory_format=torch.channels_last)
    return out.contiguous()


def structure_view(x: Tensor, factor: int) -> Tensor:
    """``x`` (``(N, C, H, W)``, any float dtype) low-passed by a Gaussian of ``factor / 2`` px
    (reflected borders) and area-averaged ``factor`` times: ``(N, C, H // factor, W // factor)``
    in ``x``'s dtype. ``factor`` 1 returns ``x`` itself; a constant image stays that constant.

    Why: asked for detail by any loss, the generator draws a lattice of 4-8 px cells within a
    few hundred steps (docs/training.md, A/B 12-19), while what its fills lack first is
    structure: edges 20-40 px wide where the photo has a horizon. Behind this view the
    discriminator judges structure and cannot see the cells: at ``factor`` 4 a 32 px period
    keeps 0.87 of its amplitude, a 16 px one 0.55, an 8 px one 0.18, a 5 px one 0.01. Both
    steps are linear, so the generator's gradient flows through them."""
    if factor < 1:
        raise ValueError(f"factor must be at least 1, got {factor}")
    if factor == 1:
        return x
    sigma = factor / 2
    radius = math.ceil(3 * sigma)
    # Made on x's device: a host-built kernel would be a host-to-device copy on every
    # discriminator call of a GPU run.
    offsets = torch.arange(-radius, radius + 1, device=x.device, dtype=torch.float32)
    taps = torch.exp(-0.5 * (offsets / sigma) ** 2)
    taps = (taps / taps.sum()).to(x.dtype)
    channels = x.shape[1]
    blurred = F.pad(x, (radius,) * 4, mode="reflect")
    blurred = F.conv2d(blurred, taps.view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)
    blurred = F.conv2d(blurred, taps.view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)
    return F.avg_pool2d(blurred, factor)
