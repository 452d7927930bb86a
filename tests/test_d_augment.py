"""Random translation of the discriminator's input (trainer.d_augment) and its wiring into the
DeepFill v2 recipe (--d-translate); the recipe's feature-matching term (--fm-weight)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from trainer.config import TrainConfig
from trainer.d_augment import random_translate
from trainer.recipes import get_recipe


def _shifted(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """``x`` (C, H, W) moved down ``dy`` and right ``dx`` pixels, zeros where nothing came."""
    _, h, w = x.shape
    r = max(abs(dy), abs(dx))
    padded = F.pad(x, (r,) * 4)
    return padded[:, r - dy:r - dy + h, r - dx:r - dx + w]


def _which_shift(out: torch.Tensor, x: torch.Tensor, max_shift: int) -> tuple[int, int]:
    hits = [(dy, dx) for dy in range(-max_shift, max_shift + 1)
            for dx in range(-max_shift, max_shift + 1) if torch.equal(out, _shifted(x, dy, dx))]
    assert len(hits) == 1, hits
    return hits[0]


def test_each_sample_moves_whole_by_its_own_shift_within_the_range():
    g = torch.Generator().manual_seed(0)
    # Distinct values everywhere (all > 0), so a shift is identified without ambiguity.
    x = torch.rand(64, 3, 12, 10, generator=g) + 1
    out = random_translate(x, 3, generator=torch.Generator().manual_seed(1))
    assert out.shape == x.shape and out.dtype == x.dtype
    shifts = [_which_shift(o, s, 3) for o, s in zip(out, x)]
    # Every channel moved with its sample (checked by torch.equal on the whole sample above);
    # the shifts differ between samples and reach both signs of both axes.
    assert len(set(shifts)) > 20
    assert {min(s[0] for s in shifts), max(s[0] for s in shifts)} == {-3, 3}
    assert {min(s[1] for s in shifts), max(s[1] for s in shifts)} == {-3, 3}


def test_zero_shift_is_the_identity_and_a_negative_one_is_refused():
    x = torch.rand(2, 5, 8, 8)
    assert random_translate(x, 0) is x
    with pytest.raises(ValueError, match="max_shift must be at least 0, got -1"):
        random_translate(x, -1)


def test_translation_passes_gradients_back_and_keeps_dtype_and_memory_format():
    x = (torch.rand(2, 5, 16, 16) + 1).to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)
    out = random_translate(x, 4, generator=torch.Generator().manual_seed(0))
    assert out.dtype == torch.bfloat16 and out.is_contiguous(memory_format=torch.channels_last)
    out.float().sum().backward()
    # Each input pixel that stayed inside the frame gets gradient 1, the ones shifted out 0.
    kept = x.grad.float()
    assert set(kept.unique().tolist()) <= {0.0, 1.0}
    assert kept.sum() == out.detach().ne(0).sum() < x.numel()


class _Recorder(torch.nn.Module):
    """A stand-in discriminator that keeps every input it is shown and scores it 0."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[torch.Tensor] = []

    def forward(self, x):
        self.seen.append(x)
        return torch.zeros(x.shape[0], 4)


def _d_inputs_of_a_perfect_fill(cfg: TrainConfig, image: torch.Tensor, mask: torch.Tensor):
    """What the recipe's D loss and G loss show the discriminator for a fill equal to the photo:
    ``(seen, batch)``, ``seen`` = [D loss's real+fake batch, G loss's fake batch]."""
    recipe = get_recipe("deepfill_v2")(cfg, torch.device("cpu"), None)
    batch = {"image": image, "mask": mask, "sketch": torch.zeros_like(mask)}
    out = {"stages": (image.clone(), image.clone())}  # a perfect fill: composite == image
    recorder = _Recorder()
    D = torch.nn.ModuleDict({"patch": recorder})
    recipe.d_loss(D, batch, out)
    recipe.g_loss(D, batch, out)
    return recorder.seen, batch


def test_recipe_shows_the_discriminator_shifted_inputs_only_with_the_option():
    def d_inputs(d_translate: int):
        cfg = TrainConfig(arch="deepfill_v2", data=["x"], size=32, d_translate=d_translate)
        g = torch.Generator().manual_seed(0)
        image = torch.rand(2, 3, 32, 32, generator=g) * 2 - 1
        mask = torch.zeros(2, 1, 32, 32)
        mask[:, :, 8:20, 10:24] = 1
        return _d_inputs_of_a_perfect_fill(cfg, image, mask)

    (d_real_fake, g_fake), batch = d_inputs(0)
    unshifted = torch.cat([batch["image"], batch["mask"], batch["sketch"]], dim=1)
    assert torch.equal(d_real_fake, torch.cat([unshifted, unshifted])) and torch.equal(g_fake, unshifted)

    torch.manual_seed(5)
    (d_real_fake, g_fake), batch = d_inputs(6)
    unshifted = torch.cat([batch["image"], batch["mask"], batch["sketch"]], dim=1)
    for seen, source in zip([*d_real_fake, *g_fake], [*unshifted, *unshifted, *unshifted]):
        dy, dx = _which_shift(seen, source, 6)
        assert max(abs(dy), abs(dx)) <= 6
    assert not torch.equal(d_real_fake, torch.cat([unshifted, unshifted]))


def test_config_refuses_a_shift_of_half_the_crop_or_more():
    with pytest.raises(ValueError, match=r"--d-translate must be in \[0, 64\) for --size 128, got 64"):
        TrainConfig(data=["x"], size=128, d_translate=64).validate()
    with pytest.raises(ValueError, match="--d-translate"):
        TrainConfig(data=["x"], size=128, d_translate=-1).validate()
    TrainConfig(data=["x"], size=128, d_translate=32).validate()


def _fm_case(fm_weight: float, fill_error: float, gan_weight: float = 0.0):
    from inpaint_studio.networks import build_discriminator

    cfg = TrainConfig(arch="deepfill_v2", data=["x"], size=64, gan_weight=gan_weight,
                      fm_weight=fm_weight)
    recipe = get_recipe("deepfill_v2")(cfg, torch.device("cpu"), None)
    torch.manual_seed(2)
    D = torch.nn.ModuleDict({"patch": build_discriminator("sn_patchgan").eval()})
    image = torch.rand(2, 3, 64, 64) * 2 - 1
    mask = torch.zeros(2, 1, 64, 64)
    mask[:, :, 16:48, 16:48] = 1
    batch = {"image": image, "mask": mask, "sketch": torch.zeros_like(mask)}
    refined = (image + fill_error).requires_grad_(True)
    total, parts = recipe.g_loss(D, batch, {"stages": (image.clone(), refined)})
    return total, parts, refined


def test_feature_matching_is_zero_for_a_perfect_fill_and_pulls_a_wrong_one_back():
    total, parts, _ = _fm_case(0.5, 0.0)
    assert float(parts["g_fm"]) == 0.0 and total.item() == pytest.approx(0.0, abs=1e-6)
    total, parts, refined = _fm_case(0.5, 0.3)
    l1_only, no_fm, _ = _fm_case(0.0, 0.3)
    assert "g_fm" not in no_fm and float(parts["g_fm"]) > 0
    assert total.item() == pytest.approx(l1_only.item() + 0.5 * float(parts["g_fm"]), rel=1e-5)
    total.backward()
    # The term reaches the fill only through the hole (outside it the composite is the photo),
    # and on top of the L1's gradient there.
    grad = refined.grad
    assert grad[:, :, 16:48, 16:48].abs().sum() > 0
    with pytest.raises(ValueError, match="--fm-weight must be at least 0, got -1"):
        TrainConfig(data=["x"], fm_weight=-1).validate()


def test_with_feature_matching_the_gan_term_is_the_discriminators_score_of_the_fill():
    """FM and GAN together: the hinge term (read off the features' last block) equals the one
    computed without feature matching, so the total is the sum of the three terms."""
    both, parts, _ = _fm_case(0.5, 0.3, gan_weight=0.25)
    gan_only, gan_parts, _ = _fm_case(0.0, 0.3, gan_weight=0.25)
    torch.testing.assert_close(parts["g_hinge"], gan_parts["g_hinge"])
    assert both.item() == pytest.approx(gan_only.item() + 0.5 * float(parts["g_fm"]), rel=1e-5)


def _stripes(period: float, size: int = 256) -> torch.Tensor:
    """``(1, 1, size, size)`` vertical sine stripes of amplitude 1 and the given period (px)."""
    x = torch.arange(size, dtype=torch.float32)
    return torch.sin(2 * torch.pi * x / period).view(1, 1, 1, -1).expand(1, 1, size, size).contiguous()


def test_structure_view_keeps_structure_and_removes_a_lattice_of_a_few_pixels():
    from trainer.d_augment import structure_view

    x = torch.full((2, 5, 64, 96), 0.3)
    out = structure_view(x, 4)
    assert out.shape == (2, 5, 16, 24) and out.dtype == x.dtype
    torch.testing.assert_close(out, torch.full_like(out, 0.3))
    assert structure_view(x, 1) is x

    def amplitude(period: float) -> float:  # away from the reflected borders
        return structure_view(_stripes(period), 4)[0, 0, 32, 8:56].abs().max().item()

    # The generator's lattice (4-8 px cells) is gone or faint; a horizon-scale edge is kept.
    assert amplitude(5) < 0.02 and amplitude(8) < 0.25
    assert amplitude(16) > 0.45 and amplitude(32) > 0.8
    step = torch.zeros(1, 1, 64, 64)
    step[..., 32:] = 1
    row = structure_view(step, 4)[0, 0, 8]
    assert row[:6].max() < 0.01 and row[10:].min() > 0.99  # still a step, a cell or two wide
    with pytest.raises(ValueError, match="factor must be at least 1, got 0"):
        structure_view(x, 0)


def test_structure_view_passes_gradients_and_keeps_bf16():
    from trainer.d_augment import structure_view

    x = torch.rand(1, 5, 64, 64).to(torch.bfloat16).requires_grad_(True)
    out = structure_view(x, 2)
    assert out.dtype == torch.bfloat16 and out.shape == (1, 5, 32, 32)
    out.float().sum().backward()
    # Every input pixel feeds the view, and the weights (a normalised blur, then a mean) sum
    # to one per output pixel: the total gradient is the output's pixel count.
    assert (x.grad.float() > 0).all()
    assert x.grad.float().sum().item() == pytest.approx(5 * 32 * 32, rel=0.02)


def test_recipe_shows_the_discriminator_the_structure_view_with_d_scale():
    from trainer.d_augment import structure_view

    cfg = TrainConfig(arch="deepfill_v2", data=["x"], size=256, d_scale=4)
    cfg.validate()
    image = torch.rand(2, 3, 256, 256) * 2 - 1
    mask = torch.zeros(2, 1, 256, 256)
    mask[:, :, 64:192, 64:128] = 1
    (d_real_fake, g_fake), batch = _d_inputs_of_a_perfect_fill(cfg, image, mask)
    expected = structure_view(torch.cat([image, mask, batch["sketch"]], dim=1), 4)
    assert d_real_fake.shape == (4, 5, 64, 64)
    torch.testing.assert_close(d_real_fake, torch.cat([expected, expected]))
    torch.testing.assert_close(g_fake, expected)


def test_config_refuses_a_d_scale_that_leaves_too_few_pixels():
    with pytest.raises(ValueError, match="--d-scale must be 1, 2 or 4, got 3"):
        TrainConfig(data=["x"], size=256, d_scale=3).validate()
    with pytest.raises(ValueError, match="--d-scale 4 leaves the discriminator 32 px of a --size 128 crop"):
        TrainConfig(data=["x"], size=128, d_scale=4).validate()
    TrainConfig(data=["x"], size=128, d_scale=2).validate()
