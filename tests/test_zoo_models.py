"""The model zoo as a whole: every registered generator runs at 64x64 and 256x256, every
zoo recipe's losses are finite and train the networks, the attention option works in every
zoo generator, and the DeepFill v1 local-critic crops and discount weights are right."""

from __future__ import annotations

import math

import pytest
import torch

from inpaint_studio.networks import build, generator_names
from trainer.config import TrainConfig

from .lively import lively

# Cheap arguments per architecture (defaults for any architecture not listed).
SMALL_ARGS = {
    "deepfill_v1": {"cnum": 8},
    "deepfill_v2": {"cnum": 8},
    "csa": {"cnum": 8, "depth": 6},
    "pconv": {"cnum": 8, "depth": 6},
}
ZOO_RECIPES = ("deepfill_v1", "csa", "pconv")
ZOO_ARGS_64 = {"deepfill_v1": {"cnum": 8}, "csa": {"cnum": 8, "depth": 4}, "pconv": {"cnum": 8, "depth": 4}}


def _batch(b: int, size: int, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(b, 3, size, size, generator=g) * 2 - 1
    mask = torch.zeros(b, 1, size, size)
    mask[0, :, size // 8: size // 2, size // 4: size * 3 // 4] = 1
    mask[-1, :, size // 2: size * 7 // 8, size // 8: size // 3] = 1
    return {"image": image, "mask": mask, "sketch": torch.zeros(b, 1, size, size)}


# A fresh initialisation makes constants of these generators: DeepFill v2's gates damp the
# signal to ~1e-7, DeepFill v1's output is its biases (hole change < 1e-5 between photos).
# Weight gains (std * sqrt(fan_in)) that keep them responsive without saturating tanh.
LIVELY_GAIN = {"deepfill_v2": 2.2, "deepfill_v1": 1.2, "csa": 1.0, "pconv": 1.0}


def responsive(name: str, **args) -> torch.nn.Module:
    """The generator ``name`` with weights whose output depends on its input."""
    torch.manual_seed(0)
    return lively(build(name, **args), gain=LIVELY_GAIN.get(name, 1.0))


@pytest.mark.parametrize("name", generator_names())
@pytest.mark.parametrize("size", [64, 256])
def test_every_registered_generator_runs_without_nan(name, size):
    net = responsive(name, **SMALL_ARGS.get(name, {})).eval()
    batch = _batch(1, size)
    other = _batch(1, size, seed=1)
    with torch.no_grad():
        outs = net(batch["image"], batch["mask"], batch["sketch"])
        other_outs = net(other["image"], batch["mask"], batch["sketch"])
    assert len(outs) == len(net.stage_names)
    hole = batch["mask"].bool().expand(1, 3, size, size)
    for out, other_out in zip(outs, other_outs):
        assert out.shape == (1, 3, size, size)
        assert torch.isfinite(out).all()
        assert out.min() >= -1.0 and out.max() <= 1.0
        # A model, not a constant: the output varies and follows the photo around the hole.
        assert out.std() > 0.02 and (out.abs() > 0.99).float().mean() < 0.5
        assert (out - other_out).abs()[hole].mean() > 0.01


@pytest.mark.parametrize("name", [n for n in ZOO_RECIPES if n in generator_names()])
@pytest.mark.parametrize("attention", ["se", "cbam", "danet"])
def test_zoo_generators_take_an_attention_block(name, attention):
    torch.manual_seed(0)
    net = build(name, attention=attention, **ZOO_ARGS_64[name])
    assert any(type(m).__name__ in ("SqueezeExcitation", "CBAM", "DualAttention") for m in net.modules())
    batch = _batch(2, 64)
    outs = net(batch["image"], batch["mask"])
    sum(o.mean() for o in outs).backward()
    assert all(torch.isfinite(o).all() for o in outs)


@pytest.fixture(scope="module")
def random_vgg_path(tmp_path_factory):
    """A VGG-16 weights file with random weights in torchvision's naming (no ImageNet file
    in tests)."""
    from safetensors.torch import save_file

    from inpaint_studio.networks.vgg import _CONVS

    g = torch.Generator().manual_seed(0)
    state = {}
    for index, cin, cout in _CONVS:
        state[f"features.{index}.weight"] = torch.randn(cout, cin, 3, 3, generator=g) * math.sqrt(2 / (9 * cin))
        state[f"features.{index}.bias"] = torch.zeros(cout)
    path = tmp_path_factory.mktemp("vgg") / "vgg16_random.safetensors"
    save_file(state, str(path))
    return path


@pytest.fixture(scope="module")
def random_vgg(random_vgg_path):
    from inpaint_studio.networks.vgg import VGG16Features

    return VGG16Features(random_vgg_path)


@pytest.mark.slow
@pytest.mark.parametrize("arch", ZOO_RECIPES)
def test_recipe_losses_are_finite_and_reach_every_network(arch, random_vgg):
    if arch not in generator_names():
        pytest.skip(f"{arch} generator not available")
    from trainer.recipes import get_recipe

    torch.manual_seed(0)
    cfg = TrainConfig(size=64)
    recipe = get_recipe(arch)(cfg, torch.device("cpu"), random_vgg if get_recipe(arch).needs_vgg else None)
    G = recipe.build_generator(ZOO_ARGS_64[arch])
    D = recipe.build_discriminators()
    batch = _batch(2, 64)

    if len(D):
        with torch.no_grad():
            out = recipe.run_generator(G, batch)
        d_loss, d_parts = recipe.d_loss(D, batch, out)
        assert torch.isfinite(d_loss) and all(math.isfinite(float(v)) for v in d_parts.values())
        d_loss.backward()
        for name, d in D.items():
            grads = [p.grad for p in d.parameters() if p.requires_grad]
            assert any(g is not None and g.abs().sum() > 0 for g in grads), name
        D.zero_grad()

    out = recipe.run_generator(G, batch)
    assert len(out["stages"]) == len(G.stage_names)
    g_loss, g_parts = recipe.g_loss(D, batch, out)
    assert torch.isfinite(g_loss) and all(math.isfinite(float(v)) for v in g_parts.values())
    g_loss.backward()
    # Every trainable tensor, not just the first: a stage cut off from the loss shows here.
    silent = [name for name, p in G.named_parameters()
              if p.requires_grad and (p.grad is None or not p.grad.abs().sum() > 0)]
    assert not silent, silent


def test_pconv_recipe_freezes_encoder_bn_when_asked(random_vgg):
    from trainer.recipes import get_recipe

    for frozen in (False, True):
        recipe = get_recipe("pconv")(TrainConfig(size=64, freeze_enc_bn=frozen), torch.device("cpu"), random_vgg)
        G = recipe.build_generator({"cnum": 8, "depth": 4})
        recipe.prepare_generator(G)
        G.train()
        assert G.encoder[1].norm.training is not frozen and G.decoder[0].norm.training
        assert G.encoder[1].norm.weight.requires_grad is not frozen


def test_hole_boxes_and_crops_follow_each_samples_hole():
    from trainer.recipes.deepfill_v1 import crop_resize, hole_boxes

    mask = torch.zeros(3, 1, 16, 16)
    mask[0, :, 2:6, 3:11] = 1
    mask[1, :, 9, 1] = 1
    mask[1, :, 12, 14] = 1  # free-form: two blobs, one box around both
    boxes = hole_boxes(mask)
    assert boxes.tolist() == [[2, 3, 6, 11], [9, 1, 13, 15], [0, 0, 16, 16]]
    image = torch.arange(256.0).view(1, 1, 16, 16).repeat(3, 1, 1, 1)
    square = torch.tensor([[4.0, 4.0, 12.0, 12.0]] * 3)
    crop = crop_resize(image, square, 8, mode="nearest")
    assert torch.equal(crop[0, 0], image[0, 0, 4:12, 4:12])
    half = crop_resize(image, torch.tensor([[0.0, 0.0, 16.0, 16.0]] * 3), 8)
    # Bilinear halving at pixel-edge alignment averages 2x2 blocks.
    assert torch.allclose(half[0, 0], image[0, 0].view(8, 2, 8, 2).mean(dim=(1, 3)))


def test_spatial_discount_weights_match_gamma_power_distance():
    from trainer.losses import spatial_discount

    mask = torch.zeros(1, 1, 5, 7)
    mask[0, 0, 1:4, 1:6] = 1
    w = spatial_discount(mask, gamma=0.9)
    assert w[0, 0, 0, 0] == 1.0  # known
    assert w[0, 0, 2, 1].item() == pytest.approx(0.9)  # next to the known column 0
    assert w[0, 0, 2, 3].item() == pytest.approx(0.9**2, rel=1e-4)  # centre: 2 px from known


def test_deepfill_v1_recipe_rejects_sizes_its_local_critic_cannot_take():
    from trainer.recipes import get_recipe

    with pytest.raises(ValueError, match="multiple of 32"):
        get_recipe("deepfill_v1")(TrainConfig(size=72), torch.device("cpu"), None)


def test_deepfill_v1_streams_coarse_before_refining_and_ignores_hole_values():
    torch.manual_seed(0)
    net = build("deepfill_v1", cnum=8).eval()
    batch = _batch(1, 64)
    image, mask = batch["image"], batch["mask"]
    calls = []
    net.refine_conv.register_forward_hook(lambda *a: calls.append("refine"))
    stream = net.stages(image, mask)
    name, coarse = next(stream)
    assert name == "coarse" and calls == []  # the refine net has not run yet
    name, refined = next(stream)
    assert name == "refined" and calls == ["refine"]
    scrambled = torch.where(mask.bool(), torch.rand_like(image), image)
    with torch.no_grad():
        again = net(scrambled, mask)
    assert torch.allclose(again[0], coarse, atol=1e-5) and torch.allclose(again[1], refined, atol=1e-5)


def test_deepfill_v1_recipe_discounts_with_the_configured_gamma():
    from trainer.recipes import get_recipe

    recipe_cls = get_recipe("deepfill_v1")
    assert recipe_cls(TrainConfig(size=64), torch.device("cpu"), None).gamma == 0.99  # the paper's
    assert recipe_cls(TrainConfig(size=64, discount_gamma=0.9), torch.device("cpu"), None).gamma == 0.9
    with pytest.raises(ValueError, match=r"--discount-gamma must be in \(0, 1\], got 1.5"):
        recipe_cls(TrainConfig(size=64, discount_gamma=1.5), torch.device("cpu"), None)


def test_csa_step_runs_vgg_on_the_ground_truth_once(random_vgg):
    from trainer.recipes import get_recipe

    batch = _batch(2, 64)
    inputs: list[torch.Tensor] = []
    hook = random_vgg.register_forward_pre_hook(lambda module, args: inputs.append(args[0]))
    try:
        torch.manual_seed(0)
        recipe = get_recipe("csa")(TrainConfig(size=64), torch.device("cpu"), random_vgg)
        G = recipe.build_generator(ZOO_ARGS_64["csa"])
        D = recipe.build_discriminators()
        out = recipe.run_generator(G, batch)
        assert inputs == []  # validation runs the generator only: no VGG pass at all
        detached = {**out, "stages": tuple(s.detach() for s in out["stages"])}
        d_loss, _ = recipe.d_loss(D, batch, detached)
        g_loss, parts = recipe.g_loss(D, batch, out)
    finally:
        hook.remove()
    gt_passes = [x for x in inputs if x.shape == batch["image"].shape and torch.equal(x, batch["image"])]
    assert len(gt_passes) == 1
    assert len(inputs) == 3  # ground truth once, the composite once for D and once for G
    assert torch.isfinite(d_loss) and torch.isfinite(g_loss) and parts["consistency"] > 0
    g_loss.backward()
    assert all(p.grad is None for p in random_vgg.parameters())  # VGG stays frozen


@pytest.mark.slow
def test_pconv_finetune_keeps_encoder_bn_frozen_from_init_and_resume(tmp_path, random_vgg_path):
    from inpaint_studio.weights import save_model
    from trainer.__main__ import main
    from trainer.checkpoint import load_checkpoint
    from trainer.loop import train

    from .test_trainer import make_photos

    torch.manual_seed(0)
    base = build("pconv", cnum=8, depth=4)
    with torch.no_grad():  # non-default statistics, so that a BN in train mode would move them
        for name, buf in base.named_buffers():
            if name.endswith("running_mean"):
                buf.uniform_(-0.5, 0.5)
    init = save_model(tmp_path / "base.safetensors", base, metadata={"title": "base"}).path
    cfg = TrainConfig(arch="pconv", gen_args={"cnum": 8, "depth": 4}, init=str(init),
                      data=[str(make_photos(tmp_path / "photos", n=6, corrupt=False))],
                      out=str(tmp_path / "run"), size=32, batch_size=2, steps=2, workers=0,
                      val_count=1, val_every=0, sample_every=0, freeze_enc_bn=True,
                      vgg_weights=str(random_vgg_path), ema_decay=0.0, lr_g=1e-3)
    train(cfg)
    assert main(["train", "--resume", cfg.out, "--steps", "3"]) == 0
    state = load_checkpoint(cfg.out)
    assert state["step"] == 3
    start = base.state_dict()
    encoder_bn = [k for k in start if k.startswith("encoder.") and ".norm." in k]
    decoder_stats = [k for k in start if k.startswith("decoder.") and k.endswith("running_mean")]
    assert encoder_bn and decoder_stats
    for key in encoder_bn:  # statistics and affine parameters as loaded
        assert torch.equal(state["generator"][key], start[key]), key
    assert any(not torch.equal(state["generator"][k], start[k]) for k in decoder_stats)


@pytest.mark.parametrize("arch", ["pconv", "csa"])
def test_vgg_recipes_refuse_to_start_without_vgg(arch):
    from trainer.recipes import get_recipe

    assert get_recipe(arch).needs_vgg
    with pytest.raises(ValueError, match=f"the {arch} recipe needs VGG-16 features \\(--vgg-weights\\)"):
        get_recipe(arch)(TrainConfig(size=64), torch.device("cpu"), None)
