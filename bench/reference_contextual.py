"""A straightforward reference-style contextual attention, for the speed benchmark only.

Written the way the DeepFill v1/v2 reference code structures the layer (our own PyTorch code,
same algorithm and data flow), so that ``bench/speed_deep.py`` can swap it into the very same
generator and measure what batching, chunking and a cheaper fuse buy:

* a Python loop over the batch, one sample at a time;
* the full score matrix of every foreground position against every background patch, never
  chunked: ``(h*w) x (h*w)`` floats on the rate-downscaled grid;
* attention propagation as a 3x3 identity convolution over that whole matrix viewed as a
  one-channel image, once in raster order and once after transposing both grids (which is
  what makes its memory explode: the convolution unfolds the matrix);
* softmax over valid patches, reconstruction by a transposed convolution with the raw
  ``2*rate`` patches, divided by 4.

One deliberate difference: each sample uses its own mask (the reference applies sample 0's
mask to the whole batch), so the output can be checked against ours value for value.

Tensor conventions (as :class:`inpaint_studio.layers.contextual.ContextualAttention`):
foreground and background ``(B, C, H, W)`` features, mask ``(B, 1, H, W)`` at the feature
resolution, 1 = hole; output ``(B, C, H, W)``. H and W must be multiples of ``rate``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _patches(x: torch.Tensor, size: int, stride: int, pad: int) -> torch.Tensor:
    """``(C, H, W)`` -> ``(L, C, size, size)`` patches in raster order (zero padding)."""
    c = x.shape[0]
    cols = F.unfold(x[None], size, padding=pad, stride=stride)  # (1, C*size*size, L)
    return cols[0].t().reshape(-1, c, size, size)


class ReferenceContextualAttention(nn.Module):
    """Per-sample, unchunked contextual attention with convolution-based propagation."""

    def __init__(self, ksize: int = 3, stride: int = 1, rate: int = 2, fuse_k: int = 3,
                 softmax_scale: float = 10.0, fuse: bool = True):
        super().__init__()
        self.ksize, self.stride, self.rate = ksize, stride, rate
        self.fuse_k, self.softmax_scale, self.fuse = fuse_k, softmax_scale, fuse

    @classmethod
    def like(cls, layer: nn.Module) -> "ReferenceContextualAttention":
        """A reference layer with the hyper-parameters of ``layer`` (our ContextualAttention)."""
        return cls(
            ksize=layer.ksize, stride=getattr(layer, "stride", 1), rate=layer.rate, fuse_k=layer.fuse_k,
            softmax_scale=layer.softmax_scale, fuse=layer.fuse,
        )

    def _propagate(self, scores: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """``(h*w, h*w)`` scores (foreground rows, background columns, both raster order) ->
        the same after the identity-kernel convolution in both raster orders."""
        k = self.fuse_k
        eye = torch.eye(k, dtype=scores.dtype, device=scores.device)[None, None]
        y = F.conv2d(scores[None, None], eye, padding=k // 2)
        # Transpose both grids (column-major order), propagate again, transpose back.
        y = y.reshape(h, w, h, w).permute(1, 0, 3, 2).reshape(1, 1, w * h, w * h)
        y = F.conv2d(y, eye, padding=k // 2)
        return y.reshape(w, h, w, h).permute(1, 0, 3, 2).reshape(h * w, h * w)

    def forward(
        self,
        foreground: torch.Tensor,
        background: torch.Tensor,
        mask: torch.Tensor,
        rows: tuple[int, int] | None = None,
        cols: tuple[int, int] | None = None,
    ) -> torch.Tensor:
        """``rows`` and ``cols`` (ours: the feature window whose output is wanted) are accepted
        so the layer drops into the same generator, and ignored: the reference computes every
        position."""
        rate, k = self.rate, self.ksize
        outputs = []
        for i in range(foreground.shape[0]):  # the reference's loop over the batch
            raw = _patches(background[i], 2 * rate, rate * self.stride, rate // 2)
            f = F.interpolate(foreground[i : i + 1], scale_factor=1 / rate, mode="nearest")[0]
            b = F.interpolate(background[i : i + 1], scale_factor=1 / rate, mode="nearest")[0]
            m = F.interpolate(mask[i : i + 1].float(), scale_factor=1 / rate, mode="nearest")[0]
            h, w = f.shape[1:]
            weights = _patches(b, k, self.stride, k // 2)  # (L, C, k, k)
            norms = weights.flatten(1).norm(dim=1).clamp_min(1e-4)
            weights = weights / norms[:, None, None, None]
            valid = (_patches(m, k, self.stride, k // 2).flatten(1).mean(1) == 0).float()  # (L,)

            scores = F.conv2d(f[None], weights, padding=k // 2)[0]  # (L, h, w)
            scores = scores.reshape(-1, h * w).t()  # (h*w foreground, L background)
            if self.fuse:
                scores = self._propagate(scores, h, w)
            scores = scores * valid
            attention = torch.softmax(scores * self.softmax_scale, dim=1) * valid
            attention = attention.t().reshape(1, -1, h, w)  # (1, L, h, w)
            out = F.conv_transpose2d(attention, raw, stride=rate, padding=rate // 2)
            outputs.append(out / 4.0)
        return torch.cat(outputs, 0)


def swap_in_reference(model: nn.Module, layer_type: type) -> int:
    """Replace every ``layer_type`` submodule of ``model`` by a reference layer with the same
    hyper-parameters, in place. Returns how many were swapped."""
    swapped = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, layer_type):
                setattr(parent, name, ReferenceContextualAttention.like(child))
                swapped += 1
    return swapped
