"""Random translation of the discriminator's input (DiffAugment-style; Zhao et al.,
"Differentiable Augmentation for Data-Efficient GAN Training", NeurIPS 2020).

Why: SN-PatchGAN's six stride-2 convolutions see the image on a fixed grid. With the GAN term
on, the generator learned a faint 5-8 px crosshatch that this grid rewards (docs/training.md,
A/B 12 and leg 13). Shifting each sample by a random whole number of pixels before the
discriminator, on the real and the fake side and in the generator's loss alike, puts that grid
at a new phase every time, so no fixed-phase pattern pays. The shift is differentiable (a
gather), so the generator's gradient flows through it. Measured: it did not remove that
lattice (A/B 13); the lattice is not tied to D's phase.
"""

from __future__ import annotations

import torch
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
