"""Contextual attention (Yu et al., "Generative Image Inpainting with Contextual Attention",
2018; the refine net of DeepFill v1 and v2): every feature position borrows features from the
known background patches that look most like its neighbourhood.

Semantics (the reference implementation's, with the differences listed below):

1. Foreground ``f`` and background ``b`` (``(B, C, H, W)``) are downscaled by ``rate`` (nearest:
   pixel ``(rate*i, rate*j)``) to the *matching grid* ``(Hg, Wg) = (H/rate, W/rate)``.
2. Keys: every ``ksize x ksize`` background patch of the grid (zero padded), L2-normalised
   (norm clamped at 1e-4). Queries: the raw foreground patches. Score = dot product, i.e. the
   cosine similarity scaled by the query's norm.
3. A key patch is *valid* when none of its grid cells holds a hole pixel.
4. Attention propagation (``fuse``): the score of (query q, key k) becomes the sum over
   ``d in [-fuse_k//2, fuse_k//2]`` of score(q + d, k + d), first along x, then along y: a
   match is rewarded when its neighbours match with the same offset.
5. Softmax with ``softmax_scale`` over the valid keys of each query. Scores, propagation and
   softmax are float32 always (bf16 scores err by ~0.2 after the x10 softmax scale).
6. Reconstruction: the transposed convolution of the attention map with the *raw*
   (full-resolution) ``2*rate x 2*rate`` background patches at stride ``rate``, divided by 4
   (every output pixel receives four pastes).

Differences from the reference, on purpose:

* Batched with a per-sample mask (the reference uses sample 0's mask for the whole batch).
* The mask is downscaled by max pooling, not nearest sampling: a grid cell counts as hole when
  any of its ``rate x rate`` pixels is, so a valid key's raw 4x4 patch never holds a hole pixel.
* The softmax really is restricted to the valid keys (the reference zeroes invalid scores
  before the softmax, so they still take weight from the valid ones), and a sample without
  any valid key gets all-zero attention (its output is zero).
* Propagation pads with zeros at the grid borders; the reference convolves the flattened
  score matrix, so a row's last column is treated as the neighbour of the next row's first.

Speed and memory: matching and reconstruction are batched matrix products over all samples.
Matching multiplies grid *pixels*, not patches: the Gram matrix ``G(p, r) = f(p) . b(r)``
(``C`` multiply-adds per entry instead of ``C * ksize**2``) is summed over the patch offsets
``o`` by joint shifts, ``sum_o G(q + o, k + o)``, then divided by the key patch norms, which is
the patch dot product (zero padding included) at a ninth of the arithmetic. The
reconstruction is done per output phase (``rate**2`` sub-grids) with the attention summed
over its neighbour shifts first, which is 4x fewer multiply-adds than pasting 4x4 patches.
Inference may ask for a window of output rows and columns only (the outputs near the hole);
each stage then computes just the query columns the next one needs (reconstruction: the
output columns +-1; propagation: +-``fuse_k // 2`` more; patch sums: +-``ksize // 2`` more), so
every value inside the window is the full computation's.
Queries are processed in blocks of grid rows sized from ``memory_budget_mb``; the rows that
propagation and reconstruction need from the neighbouring blocks are carried over rather than
recomputed, so a chunked run does exactly the arithmetic of an unchunked one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class AttentionCapture:
    """The strongest attention weights of one forward pass, per query position.

    Coordinates are those of the matching grid: image pixel ``(Y, X)`` lies in feature pixel
    ``(Y // s, X // s)`` for a network whose attention runs at stride ``s`` (4 in DeepFill
    v2), which lies in grid cell ``(Y // (s * rate), X // (s * rate))``. Query and key grids
    are the same grid (self-attention over one feature map).

    indices: ``int32 (B, Hg*Wg, k)`` raster index ``ky * Wg + kx`` of the ``k`` heaviest keys
        of each query (raster order ``qy * Wg + qx``).
    weights: ``float32 (B, Hg*Wg, k)`` their softmax weights (sum <= 1; the rest is spread
        over the keys not kept).
    hole: ``bool (B, Hg, Wg)`` grid cells holding a hole pixel (queries worth asking about).
    rate: the layer's downscale factor from feature pixels to grid cells.
    """

    indices: np.ndarray
    weights: np.ndarray
    hole: np.ndarray
    rate: int

    @property
    def grid_shape(self) -> tuple[int, int]:
        return self.hole.shape[1], self.hole.shape[2]

    def _query(self, y: int, x: int, sample: int) -> int:
        h, w = self.grid_shape
        if not (0 <= y < h and 0 <= x < w):
            raise IndexError(f"grid position ({y}, {x}) outside the {h}x{w} matching grid")
        if not 0 <= sample < self.indices.shape[0]:
            raise IndexError(f"sample {sample} outside a batch of {self.indices.shape[0]}")
        return y * w + x

    def heatmap(self, y: int, x: int, sample: int = 0) -> np.ndarray:
        """``float32 (Hg, Wg)`` map of where grid cell ``(y, x)`` borrowed from: the kept
        weights renormalised to sum to 1 (all zeros when the sample had no valid key)."""
        q = self._query(y, x, sample)
        h, w = self.grid_shape
        heat = np.zeros(h * w, np.float32)
        np.add.at(heat, self.indices[sample, q], self.weights[sample, q])
        total = heat.sum()
        if total > 0:
            heat /= total
        return heat.reshape(h, w)

    def kept_mass(self, y: int, x: int, sample: int = 0) -> float:
        """How much of the true attention of ``(y, x)`` the kept top-k weights hold (0..1)."""
        return float(self.weights[sample, self._query(y, x, sample)].sum())


class _Workspace:
    """Scratch tensors for one forward pass.

    Without autograd the same buffers are reused from block to block (fresh multi-megabyte
    allocations cost page faults that rival the arithmetic); with autograd every request
    gets a fresh tensor, since a buffer overwritten in place would corrupt saved activations.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.reuse = not torch.is_grad_enabled()
        self._buffers: dict[str, torch.Tensor] = {}

    def take(self, name: str, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
        numel = int(np.prod(shape))
        if not self.reuse:
            return torch.empty(shape, dtype=dtype, device=self.device)
        buf = self._buffers.get(name)
        if buf is None or buf.dtype != dtype or buf.numel() < numel:
            buf = torch.empty(numel, dtype=dtype, device=self.device)
            self._buffers[name] = buf
        return buf[:numel].view(shape)

    def bmm_into(self, a: torch.Tensor, b: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        if self.reuse:
            return torch.bmm(a, b, out=out)
        out.copy_(torch.bmm(a, b))
        return out

    def scale_(self, x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
        """``x * factor`` (broadcast), in place without autograd."""
        return x.mul_(factor) if self.reuse else x * factor

    def softmax_(self, x: torch.Tensor, invalid: torch.Tensor) -> None:
        """Softmax over the last dim of float32 ``x`` where ``invalid`` (broadcastable to
        ``x``) is False, written back into ``x``; invalid entries and rows without a valid
        entry get 0."""
        floor = torch.finfo(torch.float32).min
        x.masked_fill_(invalid, floor)
        if not self.reuse:
            x.copy_(torch.softmax(x, dim=-1))
            x.masked_fill_(invalid, 0.0)
            return
        # exp() of arguments far below zero takes a slow path (10x slower); weights under
        # exp(-80) ~ 2e-35 are clamped there, invalid ones zeroed after.
        x.sub_(x.amax(dim=-1, keepdim=True)).clamp_(min=-80.0).exp_()
        x.masked_fill_(invalid, 0.0)
        x.div_(x.sum(dim=-1, keepdim=True).clamp_(min=1e-30))


def _add_joint_shift(
    dst: torch.Tensor, src: torch.Tensor, q_dim: int, k_dim: int, shift: int, q_offset: int = 0
) -> None:
    """``dst[q, k] += src[q + q_offset + shift, k + shift]`` along the paired query/key dims,
    where both indices fall inside ``src`` (zero contribution elsewhere)."""
    q_len, k_len = dst.shape[q_dim], dst.shape[k_dim]
    q_lo = max(0, -(q_offset + shift))
    q_hi = min(q_len, src.shape[q_dim] - q_offset - shift)
    k_lo, k_hi = max(0, -shift), min(k_len, k_len - shift)
    if q_hi <= q_lo or k_hi <= k_lo:
        return
    target = dst.narrow(q_dim, q_lo, q_hi - q_lo).narrow(k_dim, k_lo, k_hi - k_lo)
    target.add_(
        src.narrow(q_dim, q_lo + q_offset + shift, q_hi - q_lo).narrow(k_dim, k_lo + shift, k_hi - k_lo)
    )


def _keep_tail(buf: torch.Tensor, length: int, keep: int) -> None:
    """Move rows ``[length - keep, length)`` of the rows-first ``buf`` to its front."""
    if keep == 0 or length == keep:
        return
    tail = buf[length - keep : length]
    buf[:keep].copy_(tail.clone() if length < 2 * keep else tail)


class ContextualAttention(nn.Module):
    """Contextual attention with attention propagation; see the module docstring.

    ksize: matching patch size on the grid (odd). stride: must be 1 (as in every DeepFill).
    rate: downscale from features to the matching grid; raw patches are ``2*rate`` wide.
    fuse_k: propagation window (odd); fuse: whether to propagate.
    softmax_scale: multiplies the scores before the softmax.
    memory_budget_mb: bound on the score buffers of one forward pass (inputs, keys and output
        come on top); query rows are processed in blocks that fit.
    capture_topk: when > 0, each forward stores an :class:`AttentionCapture` with this many
        keys per query in ``last_capture`` (else ``last_capture`` is None).
    """

    def __init__(
        self,
        ksize: int = 3,
        stride: int = 1,
        rate: int = 2,
        fuse_k: int = 3,
        softmax_scale: float = 10.0,
        fuse: bool = True,
        memory_budget_mb: float = 768.0,
    ) -> None:
        super().__init__()
        if ksize % 2 != 1 or fuse_k % 2 != 1:
            raise ValueError(f"ksize and fuse_k must be odd, got {ksize} and {fuse_k}")
        if stride != 1:
            raise ValueError(f"only stride 1 is supported (every DeepFill uses 1), got {stride}")
        if rate < 1:
            raise ValueError(f"rate must be >= 1, got {rate}")
        if memory_budget_mb <= 0:
            raise ValueError(f"memory_budget_mb must be positive, got {memory_budget_mb}")
        self.ksize = ksize
        self.rate = rate
        self.fuse_k = fuse_k
        self.fuse = fuse
        self.softmax_scale = softmax_scale
        self.memory_budget_mb = memory_budget_mb
        self.capture_topk = 0
        self.last_capture: AttentionCapture | None = None

    def extra_repr(self) -> str:
        return (
            f"ksize={self.ksize}, rate={self.rate}, fuse_k={self.fuse_k}, fuse={self.fuse}, "
            f"softmax_scale={self.softmax_scale}, memory_budget_mb={self.memory_budget_mb}"
        )

    # ------------------------------------------------------------------ public API

    def forward(
        self,
        foreground: torch.Tensor,
        background: torch.Tensor,
        mask: torch.Tensor | None = None,
        rows: tuple[int, int] | None = None,
        cols: tuple[int, int] | None = None,
    ) -> torch.Tensor:
        """Reconstruct ``foreground`` from ``background`` patches.

        foreground, background: ``(B, C, H, W)`` features of the same shape; H and W multiples
            of ``rate``.
        mask: ``(B, 1, H, W)`` at the *feature* resolution, 1 (or True) = hole; None = no hole.
            Callers holding an image-resolution mask max-pool it down first.
        rows: optional feature-row range ``[lo, hi)`` whose output is wanted (widened to whole
            grid rows); other rows are left zero and cost nothing. Inference uses it to skip
            queries far from the hole, whose output is composited away anyway.
        cols: the same for feature columns ``[lo, hi)``; outside the rows x cols window the
            output is zero.
        Returns ``(B, C, H, W)``: every position rebuilt from valid background patches.

        Under autocast the scores, their propagation and the softmax are computed in fp32
        whatever the autocast dtype; only the reconstruction (attention times raw patches)
        runs in the autocast dtype, and the output has that dtype.
        """
        self._check(foreground, background, mask)
        device_type = foreground.device.type
        dtype = foreground.dtype
        if torch.is_autocast_enabled(device_type):
            dtype = torch.get_autocast_dtype(device_type)
        with torch.autocast(device_type, enabled=False):
            return self._attend(foreground.to(dtype), background.to(dtype), mask, rows, cols)

    def rows_per_block(self, batch: int, grid_h: int, grid_w: int, query_w: int | None = None) -> int:
        """Query grid rows per block so that the score buffers stay within the budget.

        About five buffers of a block's rows are alive at once (Gram matrix and scores,
        patch sums, propagated scores, attention, shifted attention) plus a few carried and
        halo rows, at 4 bytes per score. query_w: query columns per row (default all grid_w).
        """
        row_bytes = 4 * batch * (grid_w if query_w is None else query_w) * grid_h * grid_w
        rows = int(self.memory_budget_mb * 2**20 // row_bytes - 12) // 5
        return max(1, min(grid_h, rows))

    # ------------------------------------------------------------------ internals

    def _check(self, f: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None) -> None:
        if f.dim() != 4 or f.shape != b.shape:
            raise ValueError(
                f"foreground and background must be (B, C, H, W) of one shape, got "
                f"{tuple(f.shape)} and {tuple(b.shape)}"
            )
        h, w = f.shape[-2:]
        if h % self.rate or w % self.rate:
            raise ValueError(f"feature size {h}x{w} is not a multiple of rate {self.rate}")
        if mask is not None and (mask.dim() != 4 or mask.shape[1] != 1 or mask.shape[0] != f.shape[0]
                                 or mask.shape[-2:] != f.shape[-2:]):
            raise ValueError(
                f"mask must be (B, 1, H, W) = ({f.shape[0]}, 1, {h}, {w}) at the feature "
                f"resolution, got {tuple(mask.shape)}"
            )

    def _grid_hole(self, mask: torch.Tensor | None, f: torch.Tensor) -> torch.Tensor:
        """``bool (B, 1, Hg, Wg)``: grid cells holding any hole pixel."""
        b, _, h, w = f.shape
        if mask is None:
            return torch.zeros(b, 1, h // self.rate, w // self.rate, dtype=torch.bool, device=f.device)
        hole = (mask > 0.5).float()
        return F.max_pool2d(hole, self.rate, self.rate) > 0

    def _phase_groups(self, b: torch.Tensor) -> list[tuple[int, int, list[tuple[int, int]], torch.Tensor]]:
        """Raw background sampled per output phase, grouped by neighbour shift.

        Output pixel ``(rate*m + a, rate*n + c)`` is ``sum_k A'[(m, n), k] * b[rate*k + (a, c)]``
        where ``A'`` is the attention plus its copy shifted jointly (query and key) by
        ``(sy, 0)``, ``(0, sx)`` and ``(sy, sx)``; ``sy`` is -1 for phases ``a`` before the
        patch centre and +1 after (likewise ``sx``). Returns ``(sy, sx, phases, B)`` with ``B``
        ``(batch, Hg*Wg, C * len(phases))``, pre-divided by the 4 pastes per pixel.
        """
        r, pad_top = self.rate, self.rate // 2
        shift = [-1 if a + pad_top < r else 1 for a in range(r)]
        groups = []
        for sy in (-1, 1):
            for sx in (-1, 1):
                phases = [(a, c) for a in range(r) for c in range(r) if shift[a] == sy and shift[c] == sx]
                if not phases:
                    continue
                mats = [b[:, :, a::r, c::r].flatten(2).transpose(1, 2) for a, c in phases]
                groups.append((sy, sx, phases, (torch.cat(mats, dim=2) / 4).contiguous()))
        return groups

    def _attend(
        self,
        f: torch.Tensor,
        b: torch.Tensor,
        mask: torch.Tensor | None,
        rows: tuple[int, int] | None,
        cols: tuple[int, int] | None,
    ) -> torch.Tensor:
        batch, channels, height, width = f.shape
        r, pad = self.rate, self.ksize // 2
        grid_f = f[:, :, ::r, ::r]
        grid_b = b[:, :, ::r, ::r]
        gh, gw = grid_b.shape[-2:]
        n_keys = gh * gw
        # Matching runs in float32 whatever the dtype: its nine-term patch sums would lose the
        # precision a single low-precision matrix product keeps with its fp32 accumulator.
        pixels_f = grid_f.float()
        pixels_b = grid_b.float().flatten(2)  # (B, C, N)
        # 1 / L2 norm of each key's ksize x ksize patch (zero padded), clamped like the reference
        energy = F.avg_pool2d(pixels_b.view(grid_b.shape).pow(2).sum(1, keepdim=True), self.ksize, 1, pad,
                              count_include_pad=True)
        inv_norm = (energy * self.ksize**2).sqrt().clamp_min(1e-4).reciprocal().flatten(1)  # (B, N)

        hole = self._grid_hole(mask, f)
        invalid = F.max_pool2d(hole.float(), self.ksize, 1, pad).flatten(1) > 0  # (B, N)
        groups = self._phase_groups(b)

        capture = None
        topk = min(self.capture_topk, n_keys)
        if topk > 0:
            capture = (
                torch.zeros(batch, gh * gw, topk, dtype=torch.int32),
                torch.zeros(batch, gh * gw, topk, dtype=torch.float32),
            )

        ws = _Workspace(f.device)
        halo = self.fuse_k // 2 if self.fuse else 0
        # grid rows of output [o_lo, o_hi), of attention [a_lo, a_hi), of scores [s_lo, s_hi)
        o_lo, o_hi = (0, gh) if rows is None else (max(rows[0] // r, 0), min(-(-rows[1] // r), gh))
        a_lo, a_hi = max(o_lo - 1, 0), min(o_hi + 1, gh)
        s_lo, s_hi = max(a_lo - halo, 0), min(a_hi + halo, gh)
        # query columns: of output [oc0, oc1), attention and T [ac0, ac1), scores and patch
        # sums [sc0, sc1), Gram matrix [gc0, gc1); each stage needs its successor's +- reach
        oc0, oc1 = (0, gw) if cols is None else (max(cols[0] // r, 0), min(-(-cols[1] // r), gw))
        ac0, ac1 = max(oc0 - 1, 0), min(oc1 + 1, gw)
        sc0, sc1 = max(ac0 - halo, 0), min(ac1 + halo, gw)
        gc0, gc1 = max(sc0 - pad, 0), min(sc1 + pad, gw)
        alloc = torch.empty if (o_lo, o_hi, oc0, oc1) == (0, gh, 0, gw) else torch.zeros
        out = alloc(batch, channels, height, width, dtype=f.dtype, device=f.device)
        if o_hi <= o_lo or oc1 <= oc0:
            s_hi = s_lo  # nothing wanted: no block runs
        block = self.rows_per_block(batch, gh, gw, gc1 - gc0)
        # Row windows carried between blocks, laid out rows-first ``(rows, B, qx, ky, kx)`` so
        # that the rows kept at a buffer's front stay put when the next block reuses it:
        # propagated scores T of grid rows [t_start, t_end), attention A of [a_start, a_end).
        # Output rows below o_next are written.
        t_start = t_end = s_lo
        a_start = a_end = a_lo
        o_next = o_lo
        t_win = a_win = None
        for s0 in range(s_lo, s_hi, block):
            s1 = min(s0 + block, s_hi)
            # 1. scores of query rows [s0, s1): pixel Gram matrix of grid rows [g0, g1), summed
            # over the patch offsets along x, then y, divided by the key norms; then propagated
            # along x and appended to the T window
            g0, g1 = max(s0 - pad, 0), min(s1 + pad, gh)
            gram = ws.take("gram", (batch, (g1 - g0) * (gc1 - gc0), n_keys), torch.float32)
            ws.bmm_into(pixels_f[:, :, g0:g1, gc0:gc1].flatten(2).transpose(1, 2), pixels_b, gram)
            gram = gram.view(batch, g1 - g0, gc1 - gc0, gh, gw).transpose(0, 1)
            patch_x = ws.take("patch_x", (g1 - g0, batch, sc1 - sc0, gh, gw), torch.float32)
            patch_x.copy_(gram[:, :, sc0 - gc0 : sc1 - gc0])
            for d in range(1, pad + 1):
                _add_joint_shift(patch_x, gram, 2, 4, -d, sc0 - gc0)
                _add_joint_shift(patch_x, gram, 2, 4, d, sc0 - gc0)
            scores = ws.take("gram", (s1 - s0, batch, sc1 - sc0, gh, gw), torch.float32)  # Gram is spent
            scores.copy_(patch_x[s0 - g0 : s1 - g0])
            for d in range(1, pad + 1):
                _add_joint_shift(scores, patch_x, 0, 3, -d, s0 - g0)
                _add_joint_shift(scores, patch_x, 0, 3, d, s0 - g0)
            scores = ws.scale_(scores, inv_norm.view(1, batch, 1, gh, gw))
            kept_t = t_end - t_start
            # fp32 like the scores: the propagated sum feeds a x10 softmax, where a bf16
            # rounding (8 bits) of T would move the weights by several percent
            t_new = ws.take("t", (kept_t + s1 - s0, batch, ac1 - ac0, gh, gw), torch.float32)
            if t_win is not None:
                t_new[:kept_t].copy_(t_win[:kept_t])
            fresh = t_new[kept_t:]
            fresh.copy_(scores[:, :, ac0 - sc0 : ac1 - sc0])
            for d in range(1, halo + 1):
                _add_joint_shift(fresh, scores, 2, 4, -d, ac0 - sc0)
                _add_joint_shift(fresh, scores, 2, 4, d, ac0 - sc0)
            t_win, t_end = t_new, s1

            # 2. attention of rows [a_end, a_stop): propagated along y, masked softmax
            a_stop = a_hi if s1 == s_hi else min(s1 - halo, a_hi)
            if a_stop > a_end:
                kept_a = a_end - a_start
                a_new = ws.take("a", (kept_a + a_stop - a_end, batch, ac1 - ac0, gh, gw), torch.float32)
                if a_win is not None:
                    a_new[:kept_a].copy_(a_win[:kept_a])
                fresh_a = a_new[kept_a:]
                offset = a_end - t_start
                fresh_a.copy_(t_win[offset : offset + a_stop - a_end])
                for d in range(1, halo + 1):
                    _add_joint_shift(fresh_a, t_win, 0, 3, -d, offset)
                    _add_joint_shift(fresh_a, t_win, 0, 3, d, offset)
                flat = fresh_a.view(-1, batch, ac1 - ac0, n_keys)
                flat.mul_(self.softmax_scale)
                ws.softmax_(flat, invalid[None, :, None, :])
                if capture is not None:
                    self._capture_rows(capture, flat, a_end, ac0, (gh, gw))
                a_win, a_start, a_end = a_new, a_end - kept_a, a_stop
                # the next attention rows need T rows from a_end - halo on
                keep_from = max(a_end - halo, t_start)
                _keep_tail(t_win, t_end - t_start, t_end - keep_from)
                t_start = keep_from

            # 3. output rows [o_next, o_stop): phase-wise reconstruction from A
            o_stop = o_hi if a_end == a_hi else min(a_end - 1, o_hi)
            if o_stop > o_next:
                self._reconstruct(ws, a_win, a_start, ac0, o_next, o_stop, (oc0, oc1), groups, out, f.dtype)
                keep_from = max(o_stop - 1, a_start)
                _keep_tail(a_win, a_end - a_start, a_end - keep_from)
                a_start, o_next = keep_from, o_stop

        self.last_capture = None
        if capture is not None:
            self.last_capture = AttentionCapture(
                indices=capture[0].numpy(), weights=capture[1].numpy(),
                hole=hole[:, 0].cpu().numpy(), rate=r,
            )
        return out

    def _reconstruct(
        self,
        ws: _Workspace,
        a_win: torch.Tensor,
        a_start: int,
        a_col: int,
        o0: int,
        o1: int,
        out_cols: tuple[int, int],
        groups: list[tuple[int, int, list[tuple[int, int]], torch.Tensor]],
        out: torch.Tensor,
        dtype: torch.dtype,
    ) -> None:
        """Write grid rows ``[o0, o1)`` x grid columns ``out_cols`` of ``out`` (feature pixels)
        from the attention window ``a_win`` (rows-first, grid rows from ``a_start``, query
        columns from ``a_col``; it holds every existing row of ``o0 - 1 .. o1`` and column of
        ``out_cols[0] - 1 .. out_cols[1]``)."""
        batch, channels = out.shape[:2]
        r = self.rate
        c0, c1 = out_cols
        n_keys = a_win.shape[3] * a_win.shape[4]
        n, width = o1 - o0, c1 - c0
        offset = o0 - a_start
        attention = a_win.transpose(0, 1)  # (B, rows, qx, ky, kx)
        for sy in (-1, 1):
            if not any(g[0] == sy for g in groups):
                continue
            shifted_y = ws.take("gram", (batch, n, *a_win.shape[2:]), dtype)
            shifted_y.copy_(attention[:, offset : offset + n])
            _add_joint_shift(shifted_y, attention, 1, 3, sy, offset)
            for gy, sx, phases, raw in groups:
                if gy != sy:
                    continue
                shifted = ws.take("shifted", (batch, n, width, *a_win.shape[3:]), dtype)
                shifted.copy_(shifted_y[:, :, c0 - a_col : c1 - a_col])
                _add_joint_shift(shifted, shifted_y, 2, 4, sx, c0 - a_col)
                pasted = ws.take("pasted", (batch, n * width, raw.shape[2]), dtype)
                ws.bmm_into(shifted.view(batch, n * width, n_keys), raw, pasted)
                pasted = pasted.view(batch, n, width, len(phases), channels)
                for i, (a, c) in enumerate(phases):
                    out[:, :, r * o0 + a : r * o1 : r, r * c0 + c : r * c1 : r] = pasted[:, :, :, i].permute(0, 3, 1, 2)

    @staticmethod
    def _capture_rows(
        capture: tuple[torch.Tensor, torch.Tensor], attention: torch.Tensor, row: int, col: int,
        grid: tuple[int, int],
    ) -> None:
        """Store the top-k of ``attention`` (rows-first ``(rows, B, cols, keys)``, grid rows
        from ``row``, columns from ``col``) into the ``(B, Hg*Wg, k)`` capture."""
        topk = capture[0].shape[-1]
        with torch.no_grad():
            weights, indices = attention.detach().topk(topk, dim=-1)
        rows, cols = slice(row, row + attention.shape[0]), slice(col, col + attention.shape[2])
        capture[0].view(-1, *grid, topk)[:, rows, cols] = indices.transpose(0, 1).to(torch.int32).cpu()
        capture[1].view(-1, *grid, topk)[:, rows, cols] = weights.transpose(0, 1).float().cpu()
