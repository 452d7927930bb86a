"""DeepFill v2 generator and SN-PatchGAN: registry, size, stages, sketch, masking, precision."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from inpaint_studio.networks import build, build_discriminator
from inpaint_studio.networks.deepfill_v2 import DECODER_REACH, SEAM_CELLS, DeepFillV2Generator, decoder_window
from inpaint_studio.networks.sn_patchgan import BinomialBlur, SNPatchGAN

SIZE = 64


def _lively(model: nn.Module) -> nn.Module:
    """Stand-in for trained weights. A fresh generator (Glorot init, like the reference) damps
    its signal to ~1e-7 through 17 gated layers, which would make every comparison below
    trivially close; these weights keep activations around 0.1 without saturating tanh."""
    for conv in model.modules():
        if isinstance(conv, nn.Conv2d):
            nn.init.normal_(conv.weight, std=2.2 / math.sqrt(conv.weight[0].numel()))
            nn.init.normal_(conv.bias, std=0.1)
    return model


@pytest.fixture(scope="module")
def model() -> DeepFillV2Generator:
    """A narrow (cnum 16) generator keeps these tests fast; width does not change behaviour."""
    torch.manual_seed(0)
    return _lively(build("deepfill_v2", cnum=16)).eval()


@pytest.fixture(scope="module", params=["nearest", "bilinear"])
def either_model(request) -> DeepFillV2Generator:
    """As ``model``, once per up-sampling mode (the decoders' reach depends on it)."""
    torch.manual_seed(0)
    return _lively(build("deepfill_v2", cnum=16, upsample=request.param)).eval()


def _inputs(batch=1, size=SIZE):
    g = torch.Generator().manual_seed(1)
    image = torch.rand(batch, 3, size, size, generator=g) * 2 - 1
    mask = torch.zeros(batch, 1, size, size)
    mask[:, :, 16:40, 20:48] = 1
    return image, mask


def _run(model, *args):
    with torch.no_grad():
        return model(*args)


def test_registry_builds_it_with_its_arguments():
    m = build("deepfill_v2", cnum=16, use_sketch=False)
    assert isinstance(m, DeepFillV2Generator)
    assert m.arch == "deepfill_v2" and m.arch_args == {"cnum": 16, "use_sketch": False}
    assert m.stage_names == ("coarse", "refined") and m.multiple == 8 and not m.uses_sketch
    assert m.coarse_net.encoder[0].conv.in_channels == 5


def test_parameter_count_is_the_papers():
    full = build("deepfill_v2")
    count = sum(p.numel() for p in full.parameters())
    assert abs(count - 4.1e6) / 4.1e6 < 0.03  # 4,053,678: the reference's ~4.05 M
    assert full.coarse_net.encoder[0].conv.in_channels == 6  # RGB, ones, mask, sketch


def test_fresh_generator_uses_glorot_init_and_zero_bias():
    conv = build("deepfill_v2", cnum=16).refine_net.decoder[0].conv
    bound = math.sqrt(6 / (conv.weight[0].numel() + conv.weight[:, 0].numel()))
    assert conv.weight.abs().max() <= bound and conv.weight.abs().max() > 0.9 * bound
    assert conv.bias.abs().max() == 0


def test_output_shapes_and_range(model):
    image, mask = _inputs(batch=2)
    coarse, refined = _run(model, image, mask)
    for out in (coarse, refined):
        assert out.shape == (2, 3, SIZE, SIZE)
        assert out.min() >= -1 and out.max() <= 1
    assert not torch.equal(coarse, refined)


def test_stages_yield_coarse_before_refining(model):
    image, mask = _inputs()
    refine_calls = []
    handle = model.refine_net.register_forward_hook(lambda *a: refine_calls.append(1))
    try:
        with torch.no_grad():
            stages = model.stages(image, mask)
            name, coarse = next(stages)
            assert name == "coarse" and refine_calls == []
            name, refined = next(stages)
            assert name == "refined" and refine_calls == [1]
    finally:
        handle.remove()
    expected = _run(model, image, mask)
    torch.testing.assert_close(coarse, expected[0])
    torch.testing.assert_close(refined, expected[1])


def test_pixels_under_the_hole_are_ignored(model):
    image, mask = _inputs()
    scribbled = torch.where(mask.bool(), torch.rand_like(image), image)
    for a, b in zip(_run(model, image, mask), _run(model, scribbled, mask)):
        torch.testing.assert_close(a, b)


def test_refine_input_is_coarse_composited_into_known_pixels(model):
    image, mask = _inputs()
    seen = []
    handle = model.refine_net.register_forward_pre_hook(lambda mod, args: seen.append(args[0]))
    try:
        coarse, _ = _run(model, image, mask)
    finally:
        handle.remove()
    torch.testing.assert_close(seen[0], torch.where(mask.bool(), coarse, image))


def test_sketch_in_the_hole_changes_the_fill_and_outside_does_not(model):
    image, mask = _inputs()
    lines = torch.zeros_like(mask)
    lines[:, :, 28, :] = 1  # a horizontal line crossing the hole and the known area
    outside = lines * (1 - mask)
    plain = _run(model, image, mask)
    guided = _run(model, image, mask, lines)
    for a, b in zip(plain, guided):
        assert (b - a).abs().max() > 1e-4
    for a, b in zip(plain, _run(model, image, mask, outside)):
        torch.testing.assert_close(a, b)  # the sketch only enters as sketch * mask
    for a, b in zip(plain, _run(model, image, mask, torch.zeros_like(mask))):
        torch.testing.assert_close(a, b)  # None means all zeros


def test_attention_capture_through_the_generator(model):
    image, mask = _inputs()
    assert model.attention_source() is None
    model.capture_attention(4)
    try:
        _run(model, image, mask)
        source = model.attention_source()
    finally:
        model.capture_attention(0)
    assert source.grid_shape == (SIZE // 8, SIZE // 8)
    # image pixel (30, 30) is in the hole; its grid cell is (30 // 8, 30 // 8)
    assert source.hole[0, 30 // 8, 30 // 8]
    heat = source.heatmap(30 // 8, 30 // 8)
    assert heat.sum() == pytest.approx(1.0, abs=1e-5)
    _run(model, image, mask)
    assert model.attention_source() is None  # capture off again


#: Gated layers on the longest path through the generator: coarse encoder 10 + decoder 7,
#: refine encoder 10 + decoder 7 (each conv rounds its input and its output).
DEPTH = 34


def _autocast_tolerance(dtype: torch.dtype) -> float:
    """Max abs error of an autocast run against fp32, outputs in [-1, 1]: each of DEPTH
    layers adds at most two roundings (its input and its output) of relative size u, the
    unit roundoff (2**-9 for bf16's 8 significant bits, 2**-12 for fp16's 11), on values of
    order 1; linear accumulation gives 2 * DEPTH * u (bf16 0.133, fp16 0.0166). Measured:
    bf16 0.057 with AMX kernels, 0.043 with AVX2 ones."""
    unit_roundoff = {torch.bfloat16: 2.0**-9, torch.float16: 2.0**-12}[dtype]
    return 2 * DEPTH * unit_roundoff


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_precision_autocast_on_cpu_matches_fp32(model, dtype):
    """Precision: the autocast dtype (bf16 or fp16) against fp32; see _autocast_tolerance."""
    image, mask = _inputs()
    expected = _run(model, image, mask)
    assert expected[1].std() > 0.05  # the comparison means something
    with torch.autocast("cpu", dtype=dtype):
        got = _run(model, image, mask)
    for e, g in zip(expected, got):
        assert g.dtype == dtype
        assert (g.float() - e).abs().max() < _autocast_tolerance(dtype)
        # and on average far better than the worst case: no systematic drift
        assert (g.float() - e).abs().mean() < _autocast_tolerance(dtype) / 8


def test_precision_bf16_inference_keeps_every_layer_in_bf16(model):
    """Precision: bf16 autocast, inference path (bands, in-place gating): every gated layer
    emits bf16 and channels_last, so no activation round-trips through fp32 (which would
    double activation memory and add a conversion per layer)."""
    from inpaint_studio.layers.gated import GatedConv2d

    m = build("deepfill_v2", cnum=16).eval()
    m.load_state_dict(model.state_dict())
    m = m.to(memory_format=torch.channels_last)
    seen = []
    hooks = [layer.register_forward_hook(lambda mod, args, out: seen.append(out))
             for layer in m.modules() if isinstance(layer, GatedConv2d)]
    image, mask = _inputs()
    try:
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            m(image.contiguous(memory_format=torch.channels_last), mask)
    finally:
        for hook in hooks:
            hook.remove()
    assert len(seen) >= 34
    assert {out.dtype for out in seen} == {torch.bfloat16}
    assert all(out.is_contiguous(memory_format=torch.channels_last) for out in seen)


def test_channels_last_gives_the_same_result(model):
    image, mask = _inputs()
    expected = _run(model, image, mask)
    m = build("deepfill_v2", cnum=16).eval()
    m.load_state_dict(model.state_dict())
    m = m.to(memory_format=torch.channels_last)
    got = _run(m, image.to(memory_format=torch.channels_last), mask.to(memory_format=torch.channels_last))
    for e, g in zip(expected, got):
        torch.testing.assert_close(g, e, atol=1e-5, rtol=1e-4)


def test_optional_attention_block_and_bad_arguments():
    m = build("deepfill_v2", cnum=16, attention="se").eval()
    image, mask = _inputs()
    refined = _run(m, image, mask)[1]
    assert refined.shape == (1, 3, SIZE, SIZE) and torch.isfinite(refined).all()
    assert sum(p.numel() for p in m.refine_net.merge_attention.parameters()) > 0
    with pytest.raises(ValueError, match="unknown attention"):
        build("deepfill_v2", attention="nope")
    with pytest.raises(ValueError, match="cnum"):
        build("deepfill_v2", cnum=10)
    with pytest.raises(ValueError, match="upsample must be one of"):
        build("deepfill_v2", upsample="bicubic")


def test_bilinear_model_takes_the_nearest_models_weights_and_changes_its_fill(model):
    """The up-sampling mode is not in the weights: a model can be fine-tuned across it."""
    bilinear = build("deepfill_v2", cnum=16, upsample="bilinear").eval()
    bilinear.load_state_dict(model.state_dict())  # strict: same names and shapes
    image, mask = _inputs()
    near, bil = _run(model, image, mask)[1], _run(bilinear, image, mask)[1]
    assert (near - bil)[mask.expand_as(near).bool()].abs().mean() > 1e-3


def test_bad_inputs_are_explained(model):
    image, mask = _inputs()
    with pytest.raises(ValueError, match="multiple of 8"):
        model(image[..., :60], mask[..., :60])
    with pytest.raises(ValueError, match="mask must be"):
        model(image, mask[:, :, :32])
    with pytest.raises(ValueError, match="sketch must be"):
        model(image, mask, mask[:, :, :32])


@pytest.mark.slow
def test_training_step_reaches_every_parameter():
    torch.manual_seed(2)
    m = build("deepfill_v2", cnum=8)
    image, mask = _inputs(batch=2, size=32)
    coarse, refined = m(image, mask, torch.zeros_like(mask))
    (coarse.abs().mean() + refined.abs().mean()).backward()
    starved = [n for n, p in m.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert starved == []


# ---------------------------------------------------------------------------- SN-PatchGAN


def test_sn_patchgan_shapes():
    d = build_discriminator("sn_patchgan")
    assert isinstance(d, SNPatchGAN)
    assert d(torch.randn(2, 5, 128, 192)).shape == (2, 256 * 2 * 3)
    assert build_discriminator("sn_patchgan", in_channels=4)(torch.randn(1, 4, 64, 64)).shape == (1, 256)
    convs = [m for m in d.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 128, 256, 256, 256, 256]
    assert all(c.kernel_size == (5, 5) and c.stride == (2, 2) for c in convs)


def test_binomial_blur_keeps_flat_images_and_removes_the_finest_checkerboard():
    blur = BinomialBlur()
    flat = torch.full((1, 2, 9, 9), 0.7)
    torch.testing.assert_close(blur(flat), flat)
    # A +-1 checkerboard (the 2 px period a stride-2 conv folds onto DC) is cancelled inside the
    # image, where the 3x3 window does not reach the replicated border.
    yy, xx = torch.meshgrid(torch.arange(8), torch.arange(8), indexing="ij")
    board = ((yy + xx) % 2 * 2 - 1).float().view(1, 1, 8, 8)
    assert blur(board)[..., 1:-1, 1:-1].abs().max() == 0
    bf16 = blur(board.to(torch.bfloat16))
    assert bf16.dtype == torch.bfloat16 and bf16.shape == board.shape


def test_sn_patchgan_blur_loads_the_same_weights_and_low_passes_the_input():
    """--d-blur resumes from a discriminator trained without it (same state dict), gives the
    same shapes, and is blind to a fine checkerboard that the plain network responds to."""
    torch.manual_seed(4)
    plain = build_discriminator("sn_patchgan").eval()
    blurred = build_discriminator("sn_patchgan", blur=True).eval()
    assert blurred.state_dict().keys() == plain.state_dict().keys()
    blurred.load_state_dict(plain.state_dict())
    x = torch.rand(1, 5, 128, 128)
    yy, xx = torch.meshgrid(torch.arange(128), torch.arange(128), indexing="ij")
    board = 0.2 * ((yy + xx) % 2 * 2 - 1).float()
    with torch.no_grad():
        assert blurred(x).shape == plain(x).shape == (1, 1024)
        x_board = x + board
        plain_change = (plain(x_board) - plain(x)).abs().mean()
        blurred_change = (blurred(x_board) - blurred(x)).abs().mean()
    assert blurred_change < 0.1 * plain_change


@pytest.mark.parametrize("blur", [False, True])
def test_sn_patchgan_features_are_the_blocks_outputs_ending_in_the_score(blur):
    torch.manual_seed(5)
    d = build_discriminator("sn_patchgan", blur=blur).eval()
    x = torch.randn(2, 5, 128, 64)
    with torch.no_grad():
        feats = d.features(x)
        score = d(x)
    assert [tuple(f.shape) for f in feats] == [
        (2, w, 128 // 2 ** i, 64 // 2 ** i) for i, w in enumerate(d_widths(d), start=1)]
    torch.testing.assert_close(feats[-1].flatten(1), score)


def d_widths(d: SNPatchGAN) -> list[int]:
    return [m.out_channels for m in d.modules() if isinstance(m, torch.nn.Conv2d)]


def test_sn_patchgan_is_spectrally_normalised():
    """Scaling a conv's raw weight does not change the output: it is divided by its norm."""
    torch.manual_seed(3)
    d = build_discriminator("sn_patchgan").eval()
    x = torch.randn(1, 5, 64, 64)
    with torch.no_grad():
        before = d(x)
        first = d.body[0]
        first.parametrizations.weight.original.mul_(10)
        after = d(x)
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-6)
    assert np.isfinite(after.numpy()).all()


# fp32, same weights: windowed and whole-map convs differ only in summation order.
WINDOW_TOL = dict(atol=1e-5, rtol=1e-5)


def _stages_with_both_scopes(model, image, mask):
    """(coarse, refined) with attention and decoders everywhere (the reference), and with the
    "hole" scope."""
    expected = _run(model, image, mask)
    model.attention_scope = "hole"
    try:
        got = _run(model, image, mask)
    finally:
        model.attention_scope = "all"
    return expected, got


@pytest.mark.slow
def test_hole_scope_keeps_every_hole_pixel(either_model):
    model = either_model
    image, mask = _inputs(batch=1, size=128)  # hole rows 16..39, columns 20..47
    (expected_coarse, expected), (got_coarse, got) = _stages_with_both_scopes(model, image, mask)
    # the hole and the HD layer's seam band (up to 4 px around it) are exact in both stages, up
    # to fp32 rounding (a conv over a smaller window may sum in another order; a pixel outside
    # the decoders' reach would be off by ~1e-2)
    kept = F.max_pool2d(mask, 9, stride=1, padding=4).bool().expand_as(got)
    torch.testing.assert_close(got[kept], expected[kept], **WINDOW_TOL)
    torch.testing.assert_close(got_coarse[kept], expected_coarse[kept], **WINDOW_TOL)
    assert expected_coarse[:, :, 80:].abs().min() > 0  # the reference's far rows are not 0 ...
    # ... while the hole scope decoded only the hole's window: hole cells 4..9 (rows) and
    # 5..11 (columns) widened by the decoder's reach + SEAM_CELLS (5 cells for nearest: rows
    # < 60, columns < 68; 6 for bilinear)
    reach = model.coarse_net.decoder_reach + SEAM_CELLS
    assert reach == {"nearest": 5, "bilinear": 6}[model.coarse_net.decoder[2].upsample]
    rows, cols = 4 * (10 + reach), 4 * (12 + reach)
    assert torch.count_nonzero(got_coarse[:, :, rows:]) == 0
    assert torch.count_nonzero(got[:, :, :, cols:]) == 0
    assert got_coarse[:, :, :rows, :cols].abs().min() > 0
    with pytest.raises(ValueError, match="attention_scope"):
        model.attention_scope = "near"


@pytest.mark.slow
def test_hole_scope_with_per_sample_holes_in_different_columns(either_model):
    model = either_model
    image, _ = _inputs(batch=2, size=128)
    mask = torch.zeros(2, 1, 128, 128)
    mask[0, :, 16:40, 8:24] = 1
    mask[0, :, 80:96, 100:120] = 1  # a second hole far to the right, other rows
    mask[1, :, 60:72, 48:64] = 1
    expected, got = _stages_with_both_scopes(model, image, mask)
    hole = F.max_pool2d(mask, 9, stride=1, padding=4).bool().expand_as(got[0])
    for e, g in zip(expected, got):
        torch.testing.assert_close(g[hole], e[hole], **WINDOW_TOL)


def test_decoder_window_widens_the_hole_cells_and_clips_to_the_map():
    cells = torch.zeros(1, 1, 32, 32)
    cells[:, :, 10:12, 2:30] = 1
    reach = DECODER_REACH + SEAM_CELLS
    assert decoder_window(cells) == (10 - reach, 12 + reach, 0, 32)
    assert decoder_window(torch.zeros(2, 1, 32, 32)) is None


def test_fast_inference_path_equals_the_training_path(either_model, monkeypatch):
    """Pins the inference speed-ups (in-place gating, row bands, channels_last, Gram-matrix
    matching) to the plain autograd computation the weights were trained with."""
    model = either_model
    image, mask = _inputs()
    with torch.enable_grad():
        expected = [t.detach() for t in model(image, mask)]
    assert expected[1].std() > 0.05  # the comparison means something
    monkeypatch.setattr("inpaint_studio.layers.gated.BAND_ELEMENTS", 4096)  # several bands per layer
    fast = build("deepfill_v2", cnum=16, upsample=model.coarse_net.decoder[2].upsample).eval()
    fast.load_state_dict(model.state_dict())
    fast = fast.to(memory_format=torch.channels_last)
    with torch.inference_mode():
        got = fast(image.contiguous(memory_format=torch.channels_last), mask)
    for e, g in zip(expected, got):
        torch.testing.assert_close(g, e, atol=2e-5, rtol=1e-4)
