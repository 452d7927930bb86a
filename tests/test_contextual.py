"""Contextual attention: agreement with a straightforward per-sample implementation, patch
copying, per-sample masks, chunking, masking of hole patches, capture, autocast, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from inpaint_studio.layers.contextual import ContextualAttention


def straightforward(f, b, mask, ksize=3, rate=2, fuse_k=3, scale=10.0, fuse=True):
    """The layer's semantics written the direct way: one sample at a time, matching as a
    convolution with the normalised key patches, propagation on the 4-D score tensor, and
    reconstruction as a transposed convolution with the raw 2*rate patches, divided by 4."""
    outs = []
    _, c, h, w = f.shape
    pad, top, half = ksize // 2, rate // 2, fuse_k // 2
    for i in range(f.shape[0]):
        fi, bi = f[i : i + 1, :, ::rate, ::rate], b[i : i + 1, :, ::rate, ::rate]
        gh, gw = bi.shape[-2:]
        keys = F.unfold(bi, ksize, padding=pad)
        keys = keys / keys.norm(dim=1, keepdim=True).clamp_min(1e-4)
        keys = keys[0].t().reshape(gh * gw, c, ksize, ksize)
        s = F.conv2d(fi, keys, padding=pad)[0].reshape(gh, gw, gh, gw).permute(2, 3, 0, 1)
        if fuse:
            for dims in ((1, 3), (0, 2)):  # along x, then along y: query and key shift together
                padded = F.pad(s, (half,) * 8)
                total = torch.zeros_like(s)
                for d in range(-half, half + 1):
                    idx = [slice(half, half + n) for n in s.shape]
                    for dim in dims:
                        idx[dim] = slice(half + d, half + d + s.shape[dim])
                    total = total + padded[tuple(idx)]
                s = total
        hole = torch.zeros(1, 1, gh, gw) if mask is None else F.max_pool2d((mask[i : i + 1] > 0.5).float(), rate)
        invalid = F.max_pool2d(hole, ksize, 1, pad).flatten() > 0
        logits = (s.reshape(gh * gw, gh * gw) * scale).masked_fill(invalid[None], float("-inf"))
        attn = torch.zeros_like(logits) if invalid.all() else torch.softmax(logits, -1)
        attn = attn.t().reshape(1, gh * gw, gh, gw)
        raw = F.unfold(F.pad(b[i : i + 1], (top, rate - top, top, rate - top)), 2 * rate, stride=rate)
        raw = raw[0].t().reshape(gh * gw, c, 2 * rate, 2 * rate)
        outs.append(F.conv_transpose2d(attn, raw, stride=rate)[:, :, top : top + h, top : top + w] / 4)
    return torch.cat(outs)


def _masks(batch, h, w):
    mask = torch.zeros(batch, 1, h, w)
    mask[0, :, 3:9, 4:11] = 1
    if batch > 1:
        mask[1, :, h - 5 :, : w // 2] = 1
    return mask


def _layer(rows=None, batch=2, grid=(9, 9)):
    """A layer whose budget makes query blocks of ``rows`` grid rows for this batch and grid
    (None: the default budget); rows_per_block counts 5 block rows + 12 carried and halo rows."""
    layer = ContextualAttention()
    if rows is not None:
        row_bytes = 4 * batch * grid[1] * grid[0] * grid[1]
        layer.memory_budget_mb = row_bytes * (5 * rows + 12) / 2**20
    return layer


@pytest.mark.parametrize("rate", [1, 2, 3])
@pytest.mark.parametrize("fuse", [True, False])
def test_matches_straightforward_implementation(rate, fuse):
    torch.manual_seed(rate)
    f = torch.randn(2, 6, 6 * rate, 9 * rate)
    b = f if fuse else torch.randn_like(f)
    mask = _masks(2, *f.shape[-2:])
    with torch.no_grad():
        out = ContextualAttention(rate=rate, fuse=fuse)(f, b, mask)
    torch.testing.assert_close(out, straightforward(f, b, mask, rate=rate, fuse=fuse), atol=1e-5, rtol=1e-5)


def test_wider_propagation_window_matches():
    torch.manual_seed(1)
    f = torch.randn(1, 4, 16, 20)
    mask = _masks(1, 16, 20)
    with torch.no_grad():
        out = ContextualAttention(fuse_k=5)(f, f, mask)
    torch.testing.assert_close(out, straightforward(f, f, mask, fuse_k=5), atol=1e-5, rtol=1e-5)


def test_chunked_equals_unchunked_with_fuse():
    torch.manual_seed(2)
    f = torch.randn(2, 12, 18, 18)
    mask = _masks(2, 18, 18)
    whole = _layer()
    assert whole.rows_per_block(2, 9, 9) == 9
    with torch.no_grad():
        expected = whole(f, f, mask)
        for rows in (1, 2, 4):
            layer = _layer(rows)
            assert layer.rows_per_block(2, 9, 9) == rows
            torch.testing.assert_close(layer(f, f, mask), expected, atol=1e-5, rtol=0)


def test_gradients_match_straightforward_and_do_not_depend_on_chunks():
    torch.manual_seed(3)
    f = torch.randn(2, 4, 12, 16, requires_grad=True)
    mask = _masks(2, 12, 16)
    (expected,) = torch.autograd.grad(straightforward(f, f, mask).square().sum(), f)
    for rows in (1, None):
        layer = _layer(rows, grid=(6, 8))
        (grad,) = torch.autograd.grad(layer(f, f, mask).square().sum(), f)
        torch.testing.assert_close(grad, expected, atol=1e-4 * expected.abs().max().item(), rtol=1e-4)


def _twin_scene():
    """Random features whose hole (feature rows/cols 4..11) holds an exact copy of the known
    block at rows 4..11, cols 16..23 (grid cells 2..5 and 8..11), the unique best match."""
    g = torch.Generator().manual_seed(7)
    f = torch.randn(1, 8, 16, 32, generator=g)
    f[:, :, 4:12, 4:12] = f[:, :, 4:12, 16:24]
    mask = torch.zeros(1, 1, 16, 32)
    mask[:, :, 4:12, 4:12] = 1
    return f, mask


def test_hole_copies_its_known_twin():
    f, mask = _twin_scene()
    with torch.no_grad():
        out = ContextualAttention()(f, f, mask)
    # inner hole pixels: all four pastes come from queries matched to the twin
    torch.testing.assert_close(out[:, :, 6:10, 6:10], f[:, :, 6:10, 18:22], atol=1e-4, rtol=1e-4)


def test_capture_peaks_at_the_twin_and_sums_to_one():
    f, mask = _twin_scene()
    layer = ContextualAttention()
    layer.capture_topk = 5
    with torch.no_grad():
        layer(f, f, mask)
    capture = layer.last_capture
    assert capture.grid_shape == (8, 16)
    assert capture.hole[0, 2:6, 2:6].all() and capture.hole.sum() == 16
    for y, x in [(3, 3), (4, 2), (2, 5)]:
        heat = capture.heatmap(y, x)
        assert heat.dtype == np.float32 and heat.shape == (8, 16)
        assert heat.sum() == pytest.approx(1.0, abs=1e-5)
        assert np.unravel_index(heat.argmax(), heat.shape) == (y, x + 6)
        assert capture.kept_mass(y, x) > 0.99
    with pytest.raises(IndexError):
        capture.heatmap(8, 0)


def test_hole_patches_never_receive_weight():
    torch.manual_seed(4)
    f = torch.randn(2, 5, 16, 16)
    mask = _masks(2, 16, 16)
    layer = ContextualAttention()
    layer.capture_topk = 64  # every key
    with torch.no_grad():
        layer(f, f, mask)
    capture = layer.last_capture
    for sample in range(2):
        hole = torch.from_numpy(capture.hole[sample]).float()[None, None]
        invalid = (F.max_pool2d(hole, 3, 1, 1) > 0).numpy()[0, 0]
        assert 0 < invalid.sum() < invalid.size
        for y in range(8):
            for x in range(8):
                heat = capture.heatmap(y, x, sample)
                assert heat[invalid].max() == 0.0
                assert heat.sum() == pytest.approx(1.0, abs=1e-5)


def test_per_sample_masks_in_a_batch():
    torch.manual_seed(5)
    f = torch.randn(2, 6, 16, 20)
    mask = _masks(2, 16, 20)
    layer = ContextualAttention()
    with torch.no_grad():
        together = layer(f, f, mask)
        apart = torch.cat([layer(f[i : i + 1], f[i : i + 1], mask[i : i + 1]) for i in range(2)])
        swapped = layer(f, f, mask.flip(0))
    torch.testing.assert_close(together, apart, atol=1e-6, rtol=1e-6)
    assert not torch.allclose(together, swapped, atol=1e-3)  # the masks really differ per sample


def test_sample_without_valid_patch_gives_zeros():
    torch.manual_seed(6)
    f = torch.randn(2, 4, 8, 8)
    mask = torch.zeros(2, 1, 8, 8)
    mask[1] = 1
    with torch.no_grad():
        out = ContextualAttention()(f, f, mask)
    assert out[1].abs().max() == 0
    torch.testing.assert_close(out[0:1], straightforward(f[0:1], f[0:1], mask[0:1]), atol=1e-5, rtol=1e-5)


def test_precision_bf16_autocast_keeps_scores_propagation_and_softmax_in_fp32():
    """Precision: bf16 (8 significant bits, unit roundoff u = 2**-9). Inputs are
    bf16-representable, so the only bf16 roundings left are the attention weights (relative u)
    and the reconstruction's output (relative u): the error bound is 2 * u = 2**-8 of the
    output scale; 2**-7 leaves room for the bf16 matrix product's summation. Scores rounded
    to bf16 before the x10 softmax (the old behaviour) err by ~6 % of the scale (0.31 here)."""
    torch.manual_seed(8)
    f = torch.randn(1, 96, 64, 64).relu().bfloat16().float()
    mask = torch.zeros(1, 1, 64, 64)
    mask[..., 16:40, 20:44] = 1
    with torch.no_grad():
        expected = ContextualAttention()(f, f, mask)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = ContextualAttention()(f, f, mask)
    assert out.dtype == torch.bfloat16
    scale = expected.abs().max()
    assert scale > 1
    assert (out.float() - expected).abs().max() < 2**-7 * scale


def test_bad_inputs_are_explained():
    layer = ContextualAttention()
    f = torch.randn(1, 4, 8, 8)
    with pytest.raises(ValueError, match="one shape"):
        layer(f, torch.randn(1, 4, 8, 10))
    with pytest.raises(ValueError, match="multiple of rate"):
        layer(torch.randn(1, 4, 9, 8), torch.randn(1, 4, 9, 8))
    with pytest.raises(ValueError, match="feature resolution"):
        layer(f, f, torch.zeros(1, 1, 32, 32))
    with pytest.raises(ValueError, match="stride 1"):
        ContextualAttention(stride=2)


def test_row_range_computes_only_those_rows_exactly():
    torch.manual_seed(9)
    f = torch.randn(2, 5, 24, 20)
    mask = _masks(2, 24, 20)
    expected = straightforward(f, f, mask)
    for rows in (None, 2):
        with torch.no_grad():
            out = _layer(rows, grid=(12, 10))(f, f, mask, rows=(7, 15))
        # widened to grid rows 3..7, i.e. feature rows 6..16
        torch.testing.assert_close(out[:, :, 6:16], expected[:, :, 6:16], atol=1e-5, rtol=1e-5)
        assert out[:, :, :6].abs().max() == 0 and out[:, :, 16:].abs().max() == 0


def _hole_window(mask, reach):
    """Feature rows and columns of the batch's holes widened by ``reach``, as the refine net
    asks for them."""
    ys = torch.nonzero(mask.amax(dim=(0, 1, 3)) > 0).flatten()
    xs = torch.nonzero(mask.amax(dim=(0, 1, 2)) > 0).flatten()
    return (int(ys[0]) - reach, int(ys[-1]) + 1 + reach), (int(xs[0]) - reach, int(xs[-1]) + 1 + reach)


def _hole_scenes():
    """(name, mask (B, 1, 24, 32)): a small box, a tall strip at the left border, a wide strip
    at the bottom, two holes in different columns, and per-sample holes of a batch."""
    scenes = []
    for name, boxes in [
        ("box", [(0, 9, 14, 12, 19)]),
        ("left strip", [(0, 2, 20, 0, 3)]),
        ("bottom strip", [(0, 21, 24, 5, 27)]),
        ("two columns", [(0, 5, 9, 3, 6), (0, 14, 18, 24, 28)]),
        ("per sample", [(0, 3, 6, 20, 25), (1, 16, 20, 2, 7)]),
    ]:
        mask = torch.zeros(2, 1, 24, 32)
        for sample, y0, y1, x0, x1 in boxes:
            mask[sample, :, y0:y1, x0:x1] = 1
        scenes.append((name, mask))
    return scenes


@pytest.mark.parametrize("name, mask", _hole_scenes(), ids=[n for n, _ in _hole_scenes()])
def test_row_and_column_window_keeps_every_value_inside_it(name, mask):
    torch.manual_seed(10)
    f = torch.randn(2, 5, 24, 32)
    expected = straightforward(f, f, mask)
    rows, cols = _hole_window(mask, reach=1)
    y0, y1 = max(rows[0] // 2 * 2, 0), min(-(-rows[1] // 2) * 2, 24)  # widened to grid cells
    x0, x1 = max(cols[0] // 2 * 2, 0), min(-(-cols[1] // 2) * 2, 32)
    inside = torch.zeros(24, 32, dtype=torch.bool)
    inside[y0:y1, x0:x1] = True
    assert not inside.all()  # the window really leaves something out
    for block_rows in (None, 1, 3):
        with torch.no_grad():
            out = _layer(block_rows, grid=(12, 16))(f, f, mask, rows=rows, cols=cols)
        torch.testing.assert_close(out[..., inside], expected[..., inside], atol=1e-5, rtol=1e-5)
        assert out[..., ~inside].abs().max() == 0
        hole = mask[:, 0].bool()
        torch.testing.assert_close(out.permute(1, 0, 2, 3)[:, hole], expected.permute(1, 0, 2, 3)[:, hole],
                                   atol=1e-5, rtol=1e-5)


def test_empty_window_gives_zeros_and_an_empty_capture():
    torch.manual_seed(11)
    f = torch.randn(1, 4, 8, 8)
    layer = ContextualAttention()
    layer.capture_topk = 3
    with torch.no_grad():
        out = layer(f, f, _masks(1, 8, 8)[:, :, :8, :8], rows=(2, 6), cols=(4, 4))
    assert out.abs().max() == 0
    assert layer.last_capture.weights.shape == (1, 16, 3) and layer.last_capture.weights.max() == 0


def test_capture_inside_a_column_window_matches_the_full_capture():
    f, mask = _twin_scene()
    layer = ContextualAttention()
    layer.capture_topk = 4
    with torch.no_grad():
        layer(f, f, mask)
        full = layer.last_capture
        layer(f, f, mask, rows=(2, 14), cols=(2, 14))
    windowed = layer.last_capture
    grid = lambda a: a.reshape(1, 8, 16, 4)  # noqa: E731
    np.testing.assert_allclose(grid(windowed.weights)[:, 1:7, 1:7], grid(full.weights)[:, 1:7, 1:7], atol=1e-6)
    np.testing.assert_array_equal(grid(windowed.indices)[:, 2:6, 2:6], grid(full.indices)[:, 2:6, 2:6])
    assert grid(windowed.weights)[:, :, 8:].max() == 0
