"""Coherent semantic attention (Liu et al., "Coherent Semantic Attention for Image
Inpainting", ICCV 2019), with 1x1 feature patches.

Given features ``f`` and a hole mask at the same resolution, the layer rewrites every hole
position in two steps:

1. Search (vectorised over the batch and all positions): each hole feature ``m_i`` is matched
   to its most similar known ("context") feature ``mbar_i`` by cosine similarity; the
   similarity is ``D_max_i``.
2. Generation (sequential over hole positions in raster order, vectorised over the batch):
   the first hole position becomes its match, ``m'_1 = mbar_1``; every later one mixes its
   match with the previously generated patch::

       D_ad_i = cos(m_i, m'_{i-1})
       m'_i   = (D_ad_i * m'_{i-1} + D_max_i * mbar_i) / (D_ad_i + D_max_i)

   Similarities are clamped at 0 before mixing (a negative cosine would make the "normalised"
   weights leave [0, 1]); when both are 0 the patch is its match alone.

Known positions pass through unchanged. Everything is differentiable (plain tensor ops), so
losses on the output reach the features that produced it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

_EPS = 1e-8


def mask_to_grid(mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Downscale a hole mask ``(B, 1, H, W)`` to ``size`` so that a cell is a hole when any
    pixel it covers is (max pooling); the same size passes through. Returns float {0, 1}."""
    if tuple(mask.shape[-2:]) == tuple(size):
        return (mask > 0.5).to(mask.dtype)
    return (F.adaptive_max_pool2d(mask.float(), size) > 0.5).to(mask.dtype)


class CoherentSemanticAttention(nn.Module):
    """``forward(features, mask) -> features``.

    * ``features``: ``(B, C, H, W)``.
    * ``mask``: ``(B, 1, h, w)`` with 1 = hole, at the feature resolution or any larger one
      (reduced by :func:`mask_to_grid`).
    * returns ``(B, C, H, W)``: hole positions generated as described in the module docstring,
      known positions equal to the input. A sample without a hole, or without any known
      position to copy from, is returned unchanged.

    ``search_budget_mb`` bounds the memory of the cosine-score block (rows of the
    ``(HW, HW)`` similarity matrix are computed in chunks).
    """

    def __init__(self, search_budget_mb: float = 256.0) -> None:
        super().__init__()
        self.search_budget_mb = search_budget_mb

    def search(
        self, flat: torch.Tensor, hole: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """For every position, its best known match and the cosine of it.

        flat: ``(B, N, C)`` features; hole: ``(B, N)`` bool. Returns ``match`` ``(B, N, C)``
        (raw, not normalised, context features) and ``d_max`` ``(B, N)``.
        """
        b, n, c = flat.shape
        unit = F.normalize(flat.float(), dim=-1, eps=_EPS)
        rows = max(1, int(self.search_budget_mb * 2**20 / (4 * b * n)))
        best_score, best_index = [], []
        for start in range(0, n, rows):
            scores = torch.bmm(unit[:, start:start + rows], unit.transpose(1, 2))  # (B, r, N)
            scores = scores.masked_fill(hole[:, None, :], float("-inf"))
            score, index = scores.max(dim=-1)
            best_score.append(score)
            best_index.append(index)
        d_max = torch.cat(best_score, dim=1)
        index = torch.cat(best_index, dim=1)
        match = torch.gather(flat, 1, index[..., None].expand(b, n, c))
        return match, d_max.to(flat.dtype)

    def forward(self, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, c, h, w = features.shape
        hole = mask_to_grid(mask, (h, w)).flatten(1) > 0.5  # (B, N)
        has_context = (~hole).any(dim=1)
        hole = hole & has_context[:, None]
        if not bool(hole.any()):
            return features
        flat = features.flatten(2).transpose(1, 2)  # (B, N, C)
        match, d_max = self.search(flat, hole)

        # Hole positions of each sample in raster order, padded to the longest list.
        counts = hole.sum(dim=1)
        longest = int(counts.max())
        order = torch.sort(
            torch.where(hole, torch.arange(h * w, device=hole.device), h * w), dim=1
        ).values[:, :longest]
        live = torch.arange(longest, device=hole.device)[None, :] < counts[:, None]  # (B, L)
        order = torch.where(live, order, 0)

        def steps(t: torch.Tensor) -> torch.Tensor:  # (B, N, ...) -> (L, B, ...) in order
            idx = order.view(b, longest, *([1] * (t.dim() - 2))).expand(b, longest, *t.shape[2:])
            return torch.gather(t, 1, idx).transpose(0, 1)

        # unbind (not indexing per step): its backward stacks the step gradients once instead
        # of materialising a full-size zero gradient for every step.
        current_unit = steps(F.normalize(flat, dim=-1, eps=_EPS)).unbind(0)
        matches = steps(match).unbind(0)
        d_maxes = steps(d_max.clamp(min=0)).unbind(0)
        lives = live.t().unbind(0)

        generated = []
        previous = matches[0]
        for t in range(longest):
            if t == 0:
                patch = matches[0]
            else:
                prev_norm = previous.norm(dim=-1).clamp(min=_EPS)
                d_ad = ((current_unit[t] * previous).sum(dim=-1) / prev_norm).clamp(min=0)
                weight_sum = d_ad + d_maxes[t]
                mixed = (d_ad[:, None] * previous + d_maxes[t][:, None] * matches[t]) / (
                    weight_sum.clamp(min=_EPS)[:, None]
                )
                patch = torch.where((weight_sum > _EPS)[:, None], mixed, matches[t])
                # A sample whose holes are exhausted keeps its last patch (it is not written).
                patch = torch.where(lives[t][:, None], patch, previous)
            generated.append(patch)
            previous = patch

        out = flat.clone()
        batch_index = torch.arange(b, device=flat.device)[:, None].expand(b, longest)
        out[batch_index[live], order[live]] = torch.stack(generated, dim=1)[live]
        return out.transpose(1, 2).reshape(b, c, h, w)
