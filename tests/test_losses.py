"""Training losses on hand-computed examples."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from trainer import losses as L


def t(values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32)


def test_l1_and_hole_valid_l1_by_hand():
    out = t([[[[1.0, 0.0], [0.5, -1.0]]]])  # (1, 1, 2, 2)
    gt = t([[[[0.0, 0.0], [0.0, 1.0]]]])
    mask = t([[[[1.0, 0.0], [0.0, 1.0]]]])
    assert L.l1(out, gt).item() == pytest.approx((1 + 0 + 0.5 + 2) / 4)
    # hole |diff| = 1 + 2 over 4 elements, valid |diff| = 0.5 over 4 elements
    assert L.hole_valid_l1(out, gt, mask, 6.0, 1.0).item() == pytest.approx(6 * 3 / 4 + 0.5 / 4)
    assert L.hole_valid_l1(out, gt, mask, 0.0, 1.0).item() == pytest.approx(0.5 / 4)


def _brute_force_distance(hole: np.ndarray) -> np.ndarray:
    known = np.argwhere(~hole)
    dist = np.zeros(hole.shape, np.float64)
    for y, x in np.argwhere(hole):
        dist[y, x] = np.sqrt(((known - (y, x)) ** 2).sum(1)).min()
    return dist


def test_spatial_discount_is_gamma_to_the_distance_per_sample():
    rng = np.random.default_rng(0)
    holes = np.zeros((2, 1, 12, 15), bool)
    holes[0, 0, 2:10, 3:13] = True
    holes[1, 0] = rng.random((12, 15)) < 0.7
    weights = L.spatial_discount(torch.from_numpy(holes).float(), gamma=0.9)
    assert weights.shape == (2, 1, 12, 15) and weights.dtype == torch.float32
    for i in range(2):
        expected = 0.9 ** _brute_force_distance(holes[i, 0])
        np.testing.assert_allclose(weights[i, 0].numpy(), expected, rtol=1e-4)
    assert torch.all(weights[torch.from_numpy(~holes)] == 1)
    # Centre of the 8x10 box is 4 px from the nearest known pixel.
    assert weights[0, 0, 5, 7].item() == pytest.approx(0.9**4, rel=1e-4)


def test_spatial_discount_of_an_all_hole_sample_uses_the_image_border():
    weights = L.spatial_discount(torch.ones(1, 1, 5, 5), gamma=0.5)[0, 0]
    assert weights[0, 0].item() == pytest.approx(0.5)
    assert weights[2, 2].item() == pytest.approx(0.125)
    assert weights[1, 2].item() == pytest.approx(0.25)


def test_discounted_l1_weights_hole_pixels_only():
    mask = torch.zeros(1, 1, 6, 6)
    mask[..., 1:5, 1:5] = 1
    gt = torch.zeros(1, 3, 6, 6)
    out = torch.ones(1, 3, 6, 6)
    weights = L.spatial_discount(mask, 0.99)
    expected = (weights * mask).sum().item() / mask.sum().item()  # mean over hole elements
    assert L.discounted_l1(out, gt, mask).item() == pytest.approx(expected, rel=1e-5)
    assert L.discounted_l1(out, gt, mask, weights=weights).item() == pytest.approx(expected, rel=1e-5)
    changed_outside = out.clone()
    changed_outside[..., 0, :] = 7
    assert L.discounted_l1(changed_outside, gt, mask).item() == pytest.approx(expected, rel=1e-5)


def test_hinge_losses_on_known_logits():
    real, fake = t([2.0, 0.5]), t([-2.0, 0.5])
    # 0.5 * mean(relu(1 - [2, .5])) + 0.5 * mean(relu(1 + [-2, .5])) = 0.5*0.25 + 0.5*0.75
    assert L.hinge_d_loss(real, fake).item() == pytest.approx(0.5)
    assert L.hinge_g_loss(fake).item() == pytest.approx(0.75)
    assert L.hinge_d_loss(t([1.0, 3.0]), t([-1.0, -4.0])).item() == 0.0  # margins met


def test_wgan_losses_on_known_scores():
    assert L.wgan_d_loss(t([1.0, 3.0]), t([0.0, -2.0])).item() == pytest.approx(-1 - 2)
    assert L.wgan_g_loss(t([0.0, -2.0])).item() == pytest.approx(1.0)


class LinearCritic(torch.nn.Module):
    """D(x) = <w, x> per sample: its gradient is w everywhere."""

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x * self.weight).flatten(1).sum(1)


def test_wgan_gp_penalty_of_linear_critics():
    real, fake = torch.randn(4, 3, 8, 8), torch.randn(4, 3, 8, 8)
    w = torch.randn(1, 3, 8, 8)
    unit = LinearCritic(w / w.norm())
    penalty = L.wgan_gp_penalty(unit, real, fake)
    assert penalty.item() == pytest.approx(0.0, abs=1e-6)
    double = LinearCritic(2 * w / w.norm())
    penalty = L.wgan_gp_penalty(double, real, fake)
    assert penalty.item() == pytest.approx(1.0, rel=1e-5)  # (2 - 1)^2
    penalty.backward()
    assert double.weight.grad is not None and double.weight.grad.abs().sum() > 0


def test_wgan_gp_penalty_restricted_to_the_hole():
    w = torch.zeros(1, 1, 4, 4)
    w[..., :2, :] = 0.5  # norm over the top half = sqrt(8 * 0.25) = sqrt(2)
    w[..., 2:, :] = 5.0
    mask = torch.zeros(2, 1, 4, 4)
    mask[..., :2, :] = 1
    critic = LinearCritic(w)
    penalty = L.wgan_gp_penalty(critic, torch.randn(2, 1, 4, 4), torch.randn(2, 1, 4, 4), mask)
    assert penalty.item() == pytest.approx((2**0.5 - 1) ** 2, rel=1e-5)


def test_ralsgan_losses_on_known_logits():
    real, fake = t([1.0, 3.0]), t([0.0, -2.0])  # means 2 and -1
    # D: E[(r + 1 - 1)^2] + E[(f - 2 + 1)^2] = (1 + 9)/2 + (1 + 9)/2
    assert L.ralsgan_d_loss(real, fake).item() == pytest.approx(10.0)
    # G: E[(f - 2 - 1)^2] + E[(r + 1 + 1)^2] = (9 + 25)/2 + (9 + 25)/2
    assert L.ralsgan_g_loss(real, fake).item() == pytest.approx(34.0)
    assert L.ralsgan_d_loss(t([0.5, 0.5]), t([-0.5, -0.5])).item() == pytest.approx(0.0)
    assert L.ralsgan_g_loss(t([-0.5]), t([0.5])).item() == pytest.approx(0.0)


def test_perceptual_loss_sums_layer_means():
    a = {"x": torch.ones(1, 2, 2, 2), "y": torch.zeros(1, 4, 1, 1)}
    b = {"x": torch.zeros(1, 2, 2, 2), "y": torch.full((1, 4, 1, 1), 3.0)}
    assert L.perceptual_loss(a, b).item() == pytest.approx(1.0 + 3.0)
    assert L.perceptual_loss(list(a.values()), list(b.values())).item() == pytest.approx(4.0)
    with pytest.raises(ValueError, match="same named layers"):
        L.perceptual_loss(a, {"x": b["x"]})
    with pytest.raises(ValueError, match="shapes differ"):
        L.perceptual_loss([a["x"]], [b["y"]])


def test_gram_matrix_and_style_loss_on_a_small_case():
    feats = t([[[[1.0, 2.0]], [[3.0, 4.0]]]])  # (1, C=2, H=1, W=2)
    gram = L.gram_matrix(feats)
    # [[1*1 + 2*2, 1*3 + 2*4], [.., 3*3 + 4*4]] / (C*H*W = 4)
    assert torch.allclose(gram, t([[[5.0, 11.0], [11.0, 25.0]]]) / 4)
    zeros = torch.zeros_like(feats)
    assert L.style_loss([feats], [zeros]).item() == pytest.approx((5 + 11 + 11 + 25) / 4 / 4)
    assert L.style_loss([feats], [feats.flip(-1)]).item() == pytest.approx(0.0)  # order-free


def test_tv_loss_zero_on_constant_and_counts_pairs_in_the_dilated_hole():
    mask = torch.zeros(1, 1, 5, 5)
    mask[..., 2, 2] = 1
    assert L.tv_loss(torch.full((2, 3, 5, 5), 0.3), mask).item() == 0.0
    row = t([[[[0.0, 1.0, 1.0, 3.0]]]])  # (1, 1, 1, 4)
    everywhere = torch.ones(1, 1, 1, 4)
    assert L.tv_loss(row, everywhere).item() == pytest.approx((1 + 0 + 2) / 4)
    first = t([[[[1.0, 0.0, 0.0, 0.0]]]])
    # Dilated hole = pixels 0 and 1: only the pair (0, 1) counts.
    assert L.tv_loss(row, first).item() == pytest.approx(1 / 4)
    # A jump far from the hole costs nothing.
    img = torch.zeros(1, 1, 5, 5)
    img[..., :, 4] = 5
    assert L.tv_loss(img, mask).item() == 0.0


def test_consistency_loss_trains_both_features_and_not_the_target():
    target = torch.randn(2, 8, 4, 4, requires_grad=True)
    csa = torch.randn(2, 8, 4, 4, requires_grad=True)
    dec = torch.randn(2, 8, 4, 4, requires_grad=True)
    loss = L.consistency_loss(csa, dec, target)
    expected = ((csa - target) ** 2).mean() + ((dec - target) ** 2).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    loss.backward()
    assert csa.grad.abs().sum() > 0 and dec.grad.abs().sum() > 0
    assert target.grad is None
    with pytest.raises(ValueError, match="decoder_feat shape"):
        L.consistency_loss(csa, dec[:, :4], target)


def test_consistency_loss_with_a_mask_counts_hole_positions_only():
    target = torch.zeros(1, 2, 2, 2)
    csa = torch.zeros(1, 2, 2, 2)
    dec = torch.zeros(1, 2, 2, 2)
    csa[..., 0, 0] = 1.0  # under the hole
    dec[..., 1, 1] = 9.0  # outside it
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., 0, 0] = 1  # one pixel marks the whole top-left feature cell as hole
    loss = L.consistency_loss(csa, dec, target, mask)
    assert loss.item() == pytest.approx(1.0)  # 2 channels * 1^2 / (1 position * 2 channels)


# --- VGG-16 features (networks/vgg.py), the input of the perceptual/style/consistency losses


def _torchvision_vgg16_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights named and shaped like ``torchvision.models.vgg16().state_dict()`` up
    to conv4_3 (features.21); the later keys it also holds are present but tiny, since any
    loader must ignore them (keeps the test files small)."""
    gen = torch.Generator().manual_seed(seed)
    cfg = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512]
    state, index, cin = {}, 0, 3
    for v in cfg:
        if v == "M":
            index += 1
            continue
        state[f"features.{index}.weight"] = torch.randn(v, cin, 3, 3, generator=gen) * (2 / (9 * cin)) ** 0.5
        state[f"features.{index}.bias"] = torch.randn(v, generator=gen) * 0.01
        cin, index = v, index + 2
    for name in ("features.24.weight", "features.28.bias", "classifier.6.weight"):
        state[name] = torch.zeros(2, 2)
    return state


@pytest.fixture(scope="module")
def vgg_files(tmp_path_factory):
    from safetensors.torch import save_file

    folder = tmp_path_factory.mktemp("vgg")
    state = _torchvision_vgg16_state_dict()
    torch.save(state, folder / "vgg16.pth")
    save_file(state, str(folder / "vgg16.safetensors"))
    return folder, state


@pytest.mark.parametrize("name", ["vgg16.pth", "vgg16.safetensors"])
def test_vgg_loads_torchvision_names_and_normalises_inside(vgg_files, name):
    from inpaint_studio.networks.vgg import VGG16Features

    folder, state = vgg_files
    vgg = VGG16Features(folder / name)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    feats = vgg(x)
    assert list(feats) == ["relu1_2", "relu2_2", "relu3_3", "relu4_3"]
    assert [tuple(f.shape) for f in feats.values()] == [
        (2, 64, 32, 32), (2, 128, 16, 16), (2, 256, 8, 8), (2, 512, 4, 4)
    ]  # fmt: skip
    # relu1_2 by hand from the file's weights on the ImageNet-normalised [0, 1] image.
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    y = ((x + 1) / 2 - mean) / std
    y = torch.relu(torch.nn.functional.conv2d(y, state["features.0.weight"], state["features.0.bias"], padding=1))
    y = torch.relu(torch.nn.functional.conv2d(y, state["features.2.weight"], state["features.2.bias"], padding=1))
    assert torch.allclose(feats["relu1_2"], y, rtol=1e-4, atol=1e-4)


def test_vgg_is_frozen_but_passes_gradients_to_its_input(vgg_files):
    from inpaint_studio.networks.vgg import VGG16Features

    vgg = VGG16Features(vgg_files[0] / "vgg16.pth")
    assert all(not p.requires_grad for p in vgg.parameters())
    holder = torch.nn.ModuleDict({"vgg": vgg})
    holder.train()
    assert not vgg.training
    image = torch.zeros(1, 3, 16, 16, requires_grad=True)
    gt_feats = {k: v.detach() for k, v in vgg(torch.rand(1, 3, 16, 16)).items()}
    L.perceptual_loss(vgg(image), gt_feats).backward()
    assert image.grad is not None and image.grad.abs().sum() > 0


def test_vgg_without_weights_says_what_to_supply(tmp_path):
    from inpaint_studio.networks import generator_names
    from inpaint_studio.networks.vgg import VGG16Features, VGGWeightsMissing

    with pytest.raises(VGGWeightsMissing, match="--vgg-weights PATH.*vgg16"):
        VGG16Features(None)
    with pytest.raises(VGGWeightsMissing, match="missing.pth does not exist.*--vgg-weights"):
        VGG16Features(tmp_path / "missing.pth")
    assert not any("vgg" in name for name in generator_names())


def test_vgg_rejects_files_that_are_not_vgg16(tmp_path, vgg_files):
    from safetensors.torch import save_file

    from inpaint_studio.networks.vgg import VGG16Features

    state = dict(vgg_files[1])
    broken = {k: v for k, v in state.items() if k != "features.19.weight"}
    save_file(broken, str(tmp_path / "broken.safetensors"))
    with pytest.raises(ValueError, match="missing features.19.weight"):
        VGG16Features(tmp_path / "broken.safetensors")
    state["features.0.weight"] = torch.zeros(64, 1, 3, 3)
    save_file(state, str(tmp_path / "gray.safetensors"))
    with pytest.raises(ValueError, match=r"features.0.weight \(64, 1, 3, 3\) \(expected \(64, 3, 3, 3\)\)"):
        VGG16Features(tmp_path / "gray.safetensors")


def test_discounted_l1_weight_does_not_shrink_with_the_hole():
    # Issue 13: averaged over the whole image, a hole 16x smaller weighed 16x less, while the
    # known term is divided by the known share. Over the hole, a constant error of 1 with no
    # discount is 1 whatever the hole's size, as in the reference (mean over the local box).
    gt, out = torch.zeros(2, 3, 32, 32), torch.ones(2, 3, 32, 32)
    for size in (4, 16, 32):
        mask = torch.zeros(2, 1, 32, 32)
        mask[..., :size, :size] = 1
        assert L.discounted_l1(out, gt, mask, gamma=1.0).item() == pytest.approx(1.0)
    mask = torch.zeros(2, 1, 32, 32)
    mask[0, :, :4, :4] = 1  # one sample with a hole, one without: mean over the batch's hole
    assert L.discounted_l1(out, gt, mask, gamma=1.0).item() == pytest.approx(1.0)
    assert L.discounted_l1(out, gt, torch.zeros(2, 1, 32, 32)).item() == 0.0


def test_discounted_l1_matches_a_hand_computation():
    mask = torch.zeros(1, 1, 3, 4)
    mask[0, 0, 1, 1:3] = 1  # two hole pixels, each one pixel from the known ring
    out = torch.zeros(1, 2, 3, 4)
    out[0, 0, 1, 1], out[0, 1, 1, 2] = 0.5, 2.0
    gt = torch.zeros(1, 2, 3, 4)
    # weights 0.9 ** 1 at both hole pixels; 4 hole elements (2 pixels x 2 channels)
    expected = (0.5 * 0.9 + 2.0 * 0.9) / 4
    assert L.discounted_l1(out, gt, mask, gamma=0.9).item() == pytest.approx(expected)


def _texture(seed: int = 0, size: int = 64) -> torch.Tensor:
    """``(1, 3, size, size)`` random texture with mean about 0 and std 0.3."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(1, 3, size, size, generator=g) * 0.3


def _square_hole(size: int = 64, lo: int = 16, hi: int = 48) -> torch.Tensor:
    mask = torch.zeros(1, 1, size, size)
    mask[:, :, lo:hi, lo:hi] = 1
    return mask


def test_local_spectrum_loss_is_zero_for_the_photo_and_ignores_colour_offsets():
    gt, mask = _texture(), _square_hole()
    assert L.local_spectrum_loss(gt, gt, mask).item() == 0.0
    # Each window loses its mean: a colour shift is the L1's business, not this term's.
    assert L.local_spectrum_loss(gt + 0.4, gt, mask).item() == pytest.approx(0.0, abs=1e-4)
    # No window overlaps a hole: nothing to compare.
    assert L.local_spectrum_loss(gt * 0, gt, torch.zeros_like(mask)).item() == 0.0


def test_local_spectrum_loss_of_a_contrast_change_is_log_of_the_factor_both_ways():
    gt, mask = _texture(), torch.ones(1, 1, 64, 64)
    for factor in (2.0, 0.5):  # too much detail costs as much as too little
        loss = L.local_spectrum_loss(gt * factor, gt, mask, floor=1e-12)
        assert loss.item() == pytest.approx(math.log(2.0), rel=1e-3)


def test_local_spectrum_loss_is_phase_free_where_the_l1_is_not():
    """The photo's texture shifted by half its period costs the L1 most and this term
    almost nothing; a flat fill costs this term most."""
    y, x = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    stripes = torch.sin(2 * math.pi * (x + 0.5 * y) / 6).expand(1, 3, 64, 64) * 0.5
    shifted = torch.sin(2 * math.pi * (x + 3 + 0.5 * y) / 6).expand(1, 3, 64, 64) * 0.5
    mask = torch.ones(1, 1, 64, 64)
    flat = torch.zeros_like(stripes)
    spectral_shifted = L.local_spectrum_loss(shifted, stripes, mask).item()
    spectral_flat = L.local_spectrum_loss(flat, stripes, mask).item()
    assert spectral_shifted < 0.1 * spectral_flat
    assert L.l1(shifted, stripes).item() > L.l1(flat, stripes).item()


def test_local_spectrum_loss_reaches_only_windows_that_touch_the_hole():
    gt, mask = _texture(), _square_hole(64, 40, 48)
    # (A fill exactly flat everywhere would get no gradient: |F| has no direction at 0.)
    out = (0.1 * _texture(seed=1)).requires_grad_(True)
    L.local_spectrum_loss(out, gt, mask, window=16, stride=8, scales=(1,)).backward()
    grad = out.grad.abs().sum(dim=1)[0]
    # Windows start every 8 px; those overlapping rows/cols 40..47 cover 24..63.
    assert grad[24:, 24:].sum() > 0
    assert grad[:24].sum() == 0 and grad[:, :24].sum() == 0
