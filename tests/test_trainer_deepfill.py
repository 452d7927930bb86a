"""The DeepFill v2 recipe, and the real path from training to the app: export -> deep engine
fill, fine-tune -> exported model in the user's models folder, evaluate by hole-ratio bin."""

from __future__ import annotations

import math

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from inpaint_studio import paths
from inpaint_studio.engine.deep import DeepEngine
from inpaint_studio.engine.request import FillOptions, FillRequest
from inpaint_studio.weights import load_model, read_metadata
from trainer.__main__ import main
from trainer.config import TrainConfig
from trainer.export import export_checkpoint
from trainer.loop import train
from trainer.recipes import get_recipe

from .test_trainer import make_photos, read_log

# Small DeepFill v2 so a step takes a fraction of a second on one CPU thread.
GEN_ARGS = {"cnum": 8}


@pytest.fixture(autouse=True)
def one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def make_smooth_photos(folder: Path, n: int = 10) -> Path:
    """One palette, slow waves in different phases: a small DeepFill v2 learns to reproduce
    them within a few dozen steps, so the loss drop is clear above batch-to-batch noise."""
    folder.mkdir(parents=True)
    h, w = 80, 96
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    for i in range(n):
        rgb = np.array([150, 90, 60], np.float32) + 30 * np.sin(xx[..., None] / 30 + i) \
            + 20 * np.cos(yy[..., None] / 25)
        Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)).save(folder / f"s{i:02d}.png")
    return folder


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    """A short DeepFill v2 run at 64x64 (shared by the export/fine-tune/evaluate tests)."""
    root = tmp_path_factory.mktemp("df2")
    photos = make_smooth_photos(root / "photos")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    cfg = TrainConfig(arch="deepfill_v2", gen_args=GEN_ARGS, data=[str(photos)],
                      out=str(root / "run"), size=64, batch_size=4, steps=30, workers=0,
                      log_every=1, val_every=15, sample_every=15, ckpt_every=15, val_count=2,
                      lr_scale=10.0, seed=1)
    train(cfg)
    torch.set_num_threads(before)
    return Path(cfg.out)


def _batch(b: int = 2, size: int = 64) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    mask = torch.zeros(b, 1, size, size)
    mask[:, :, 16:40, 8:48] = 1
    sketch = (torch.rand(b, 1, size, size, generator=g) > 0.9).float() * mask
    return {"image": torch.rand(b, 3, size, size, generator=g) * 2 - 1, "mask": mask,
            "sketch": sketch}


def test_deepfill_v2_recipe_losses_follow_the_reference_formula():
    recipe = get_recipe("deepfill_v2")(None, torch.device("cpu"), None)
    assert recipe.lr_g == recipe.lr_d == 1e-4 and recipe.betas == (0.5, 0.999)
    G = recipe.build_generator(GEN_ARGS)
    D = recipe.build_discriminators()
    batch = _batch()
    out = recipe.run_generator(G, batch)
    coarse, refined = out["stages"]
    assert coarse.shape == refined.shape == (2, 3, 64, 64)

    seen = []

    class ConstantCritic(torch.nn.Module):
        """Records its input and answers a fixed logit per sample."""

        def forward(self, x):
            seen.append(x)
            return torch.full((x.shape[0], 4), 0.25)

    const = torch.nn.ModuleDict({"patch": ConstantCritic()})
    total, parts = recipe.g_loss(const, batch, out)
    expected = (refined - batch["image"]).abs().mean() + (coarse - batch["image"]).abs().mean()
    assert total.item() == pytest.approx(expected.item() - 0.25, abs=1e-5)  # hinge_g = -mean
    assert float(parts["g_hinge"]) == pytest.approx(-0.25)
    # D sees RGB composite + mask + sketch; outside the hole the composite is the truth.
    d_in = seen[0]
    assert d_in.shape == (2, 5, 64, 64)
    keep = batch["mask"].expand(-1, 3, -1, -1) == 0
    assert torch.equal(d_in[:, :3][keep], batch["image"][keep])
    assert torch.equal(d_in[:, 3:4], batch["mask"]) and torch.equal(d_in[:, 4:5], batch["sketch"])

    d_total, d_parts = recipe.d_loss(D, batch, {"stages": (coarse.detach(), refined.detach())})
    assert torch.isfinite(d_total) and d_total.requires_grad
    d_total.backward()
    assert all(p.grad is not None for p in D.parameters() if p.requires_grad)
    # Hinge D loss on constant logits: 0.5*relu(1-0.25) + 0.5*relu(1+0.25) = 1.0
    d_const, _ = recipe.d_loss(const, batch, out)
    assert d_const.item() == pytest.approx(1.0)


def test_spectral_weight_adds_the_local_spectrum_term_of_the_composite():
    """--spectral-weight W: total = the L1s + W * local_spectrum_loss(composite, photo, mask),
    reported as g_spectral; the term's gradient reaches the fill only in and next to the hole
    (the composite is the photo elsewhere), and a negative weight is refused."""
    from trainer import losses

    batch = _batch()
    torch.manual_seed(0)
    coarse = batch["image"] + 0.1 * torch.randn_like(batch["image"])
    refined = (0.5 * batch["image"]).requires_grad_(True)
    out = {"stages": (coarse, refined)}
    no_d = torch.nn.ModuleDict()

    def g_loss(weight):
        cfg = TrainConfig(arch="deepfill_v2", data=["x"], size=64, gan_weight=0.0,
                          spectral_weight=weight)
        return get_recipe("deepfill_v2")(cfg, torch.device("cpu"), None).g_loss(no_d, batch, out)

    plain, plain_parts = g_loss(0.0)
    total, parts = g_loss(0.5)
    composite = refined * batch["mask"] + batch["image"] * (1 - batch["mask"])
    expected = losses.local_spectrum_loss(composite, batch["image"], batch["mask"])
    assert "g_spectral" not in plain_parts and float(parts["g_spectral"]) > 0.1
    torch.testing.assert_close(parts["g_spectral"], expected.detach())
    assert total.item() == pytest.approx(plain.item() + 0.5 * expected.item(), rel=1e-5)
    spectral_grad, = torch.autograd.grad(total - plain, refined)
    assert spectral_grad[:, :, 16:40, 8:48].abs().sum() > 0
    outside = batch["mask"].expand_as(refined) == 0
    assert spectral_grad[outside].abs().max() < 1e-6
    with pytest.raises(ValueError, match="--spectral-weight must be at least 0, got -1"):
        TrainConfig(data=["x"], spectral_weight=-1).validate()


@pytest.mark.slow
def test_deepfill_v2_training_lowers_the_l1(trained_run):
    log = read_log(trained_run)
    l1 = [r["loss_l1_coarse"] + r["loss_l1_refined"] for r in log if "loss_l1_coarse" in r]
    assert len(l1) == 30
    assert np.mean(l1[-5:]) < 0.8 * np.mean(l1[:5]), l1
    assert all(np.isfinite(r["loss_d_hinge"]) for r in log if "loss_d_hinge" in r)


@pytest.mark.slow
def test_export_loads_in_the_deep_engine_and_fills(trained_run, tmp_path):
    card = export_checkpoint(trained_run, tmp_path / "mine.safetensors", title="Test model")
    assert card.dtype == "float16" and card.arch == "deepfill_v2" and card.arch_args == GEN_ARGS
    assert card.provenance["steps"] == 30 and card.provenance["photos"] == 10
    assert card.provenance["images_seen"] == 120
    assert card.provenance["checkpoint"] == "best.pt"
    assert set(card.metrics) == {"val_l1", "val_psnr", "val_ssim"}
    assert not any("patch" in name for name in card.tensors)  # no discriminator shipped
    assert json.loads((tmp_path / "mine.json").read_text())["title"] == "Test model"

    engine = DeepEngine(card.path, device="cpu")
    assert engine.availability()
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (72, 88, 3), dtype=np.uint8)
    mask = np.zeros((72, 88), np.uint8)
    mask[20:44, 30:60] = 255
    stages = list(engine.fill(FillRequest(image, mask, options=FillOptions(strategy="full"))))
    assert [s.name for s in stages] == ["coarse", "refined"]
    final = stages[-1].image
    assert final.shape == image.shape and final.dtype == np.uint8
    far = np.ones_like(mask, bool)
    far[12:52, 22:68] = False  # well outside the (slightly dilated) hole
    assert np.array_equal(final[far], image[far])
    assert not np.array_equal(final[mask > 0], image[mask > 0])


@pytest.mark.slow
def test_finetune_exports_into_the_user_models_folder(trained_run, tmp_path, data_dir):
    base = export_checkpoint(trained_run, tmp_path / "base.safetensors", title="Base").path
    photos = make_photos(tmp_path / "mine", n=6, corrupt=False, size=(80, 72))
    run = tmp_path / "ft"
    code = main(["finetune", "--init", str(base), "--data", str(photos), "--out", str(run),
                 "--size", "64", "--batch-size", "2", "--steps", "4", "--workers", "0",
                 "--val-every", "2", "--val-count", "1", "--title", "My photos"])
    assert code == 0
    saved = TrainConfig.load(run / "config.json")
    assert saved.arch == "deepfill_v2" and saved.gen_args == GEN_ARGS
    assert saved.lr_scale == 0.1 and saved.early_stop == 5  # fine-tune defaults
    exported = paths.user_models_dir() / "ft.safetensors"
    card = read_metadata(exported)
    assert card.title == "My photos"
    assert card.provenance["base_model"] == "Base"
    assert card.provenance["base_model_file"] == "base.safetensors"
    assert card.provenance["photos"] == 6 and card.provenance["steps"] == 4
    assert read_log(run)[-1] == {"event": "export", "step": 4, "path": str(exported)}


def test_attention_option_trains_and_travels_with_the_model(tmp_path, capsys):
    photos = make_photos(tmp_path / "photos", n=5, corrupt=False, size=(64, 64))
    run = tmp_path / "se"
    assert main(["train", "--arch", "deepfill_v2", "--gen-args", json.dumps(GEN_ARGS),
                 "--attention", "se", "--data", str(photos), "--out", str(run), "--size", "32",
                 "--batch-size", "2", "--steps", "1", "--workers", "0", "--val-count", "1",
                 "--sample-every", "0"]) == 0
    state = torch.load(run / "last.pt", weights_only=True)
    assert state["arch_args"] == {**GEN_ARGS, "attention": "se"}
    assert state["config"]["attention"] == "se" and state["config"]["gen_args"] == GEN_ARGS
    se_weights = [k for k in state["generator"] if "merge_attention" in k]
    assert se_weights, "no squeeze-and-excitation weights in the trained generator"
    card = export_checkpoint(run, tmp_path / "se.safetensors")
    assert card.arch_args == {**GEN_ARGS, "attention": "se"}
    # Fine-tuning keeps the model's block; asking for another one is an error, not ignored.
    capsys.readouterr()
    assert main(["finetune", "--init", str(card.path), "--data", str(photos),
                 "--attention", "cbam"]) == 2
    assert "with attention 'se'; --attention 'cbam' cannot change it" in capsys.readouterr().err


@pytest.mark.slow
def test_evaluate_reports_bins_through_the_engine(trained_run, tmp_path, capsys):
    model = export_checkpoint(trained_run, tmp_path / "m.safetensors").path
    photos = make_photos(tmp_path / "eval", n=3, corrupt=False, size=(64, 64))
    masks = tmp_path / "masks"
    masks.mkdir()
    for i, (h0, h1) in enumerate([(0, 10), (0, 22), (0, 40)]):  # 14 %, 28 %, 49 % holes
        m = np.zeros((32, 32), np.uint8)
        m[h0 // 2: h1 // 2 + 1, 4:28] = 255
        Image.fromarray(m).save(masks / f"m{i}.png")
    out_json = tmp_path / "eval.json"
    assert main(["evaluate", "--model", str(model), "--data", str(photos), "--masks", str(masks),
                 "--device", "cpu", "--json", str(out_json)]) == 0
    text = capsys.readouterr().out
    report = json.loads(out_json.read_text())
    assert len(report["cases"]) == 3
    ratios = [c["hole_ratio"] for c in report["cases"]]
    assert sorted(report["bins"]) == sorted({c["bin"] for c in report["cases"]})
    assert all(0 < c["hole_l1"] <= 1 and c["l1"] < c["hole_l1"] for c in report["cases"])
    assert report["overall"]["n"] == 3 and min(ratios) > 0.1
    assert "hole L1" in text and "all" in text


def test_deepfill_v1_several_d_steps_per_g_step_train_under_fp16(tmp_path):
    """Precision: fp16 with a gradient scaler (the AMP a GPU without bf16 gets). DeepFill v1
    takes several critic steps per generator step; one GradScaler update per optimizer step
    lets the critic's optimizer step each time (it stopped at step 0 with "unscale_() is being
    called after step()")."""
    photos = make_photos(tmp_path / "photos", n=6, corrupt=False, size=(64, 64))
    cfg = TrainConfig(arch="deepfill_v1", gen_args={"cnum": 8}, data=[str(photos)],
                      out=str(tmp_path / "v1"), size=32, batch_size=2, steps=2, workers=0,
                      val_every=0, sample_every=0, ckpt_every=0, val_count=1, amp="fp16")
    recipe = get_recipe("deepfill_v1")
    assert recipe.d_steps_per_g > 1
    result = train(cfg)
    assert result.step == 2
    state = torch.load(Path(cfg.out) / "last.pt", weights_only=True)
    assert state["scaler"] is not None
    # fp16 starts at scale 2**16 and halves on every overflowing update (no growth within
    # 2000 steps): each skipped update is one backoff, and only those skip an Adam step.
    backoffs = math.log2(65536 / state["scaler"]["scale"])
    assert backoffs == int(backoffs) and backoffs <= 2 * (recipe.d_steps_per_g + 1)
    assert state["counters"]["nonfinite"] <= backoffs
    # every other critic update was an Adam step (the unscale_ error stopped the first one)
    steps = {int(s["step"]) for s in state["opt_d"]["state"].values()}
    assert len(steps) == 1 and 2 * recipe.d_steps_per_g - backoffs <= steps.pop() <= 2 * recipe.d_steps_per_g
    for name, tensor in state["generator"].items():
        assert torch.isfinite(tensor).all(), name


# Tests that train the discriminator at _one_step_config's 32 px crops run in fp32 on every CPU:
# on AMX CPUs, bf16 there gives the discriminator's last 5x5 convolution (on a 1x1 map)
# non-finite weight gradients in oneDNN's backward, so its updates would be skipped; from 64 px
# crops on (the trainer's real sizes are 128 and 256) they are finite. These tests check
# bookkeeping, not bf16.
TINY_CROP_D_AMP = "off"


def _one_step_config(tmp_path: Path, photos: Path, **over) -> TrainConfig:
    """One DeepFill v2 step at 32 px, batch 2, logging every step, no validation or samples."""
    values = dict(arch="deepfill_v2", gen_args=GEN_ARGS, data=[str(photos)],
                  out=str(tmp_path / "run"), size=32, batch_size=2, steps=1, workers=0,
                  log_every=1, val_every=0, sample_every=0, ckpt_every=0, val_count=1, seed=3)
    values.update(over)
    return TrainConfig(**values)


@pytest.mark.parametrize("gan_weight", [0.0, 0.05])
def test_without_gan_term_the_discriminator_is_not_trained(tmp_path, gan_weight):
    """--gan-weight 0 skips D's update (about 40 % of a CPU step): its weights come out of the run
    bit for bit as they went in, while the generator still learns; any GAN weight trains D."""
    from trainer.checkpoint import load_checkpoint

    photos = make_smooth_photos(tmp_path / "photos", n=4)
    cfg = _one_step_config(tmp_path, photos, gan_weight=gan_weight, amp=TINY_CROP_D_AMP)
    recipe = get_recipe("deepfill_v2")(cfg, torch.device("cpu"), None)
    assert recipe.trains_discriminator is (gan_weight > 0)
    train(cfg)  # step 1 (D and G as any first step leaves them), then two more on resume
    first = load_checkpoint(tmp_path / "run" / "last.pt")
    assert main(["train", "--resume", cfg.out, "--steps", "3"]) == 0
    last = load_checkpoint(tmp_path / "run" / "last.pt")
    assert last["step"] == 3
    d_same = [torch.equal(first["discriminators"][k], v) for k, v in last["discriminators"].items()]
    assert d_same and all(d_same) is (gan_weight == 0)
    assert not all(torch.equal(first["generator"][k], v) for k, v in last["generator"].items())
    logged = [r for r in read_log(tmp_path / "run") if "loss_l1_refined" in r]
    assert len(logged) == 3 and all(("loss_d_hinge" in r) is (gan_weight > 0) for r in logged)




def test_a_resume_can_switch_the_up_sampling_but_not_the_weights_shapes(tmp_path, capsys):
    """--gen-args on a resume: another up-sampling mode keeps every weight's name and shape, so
    the run continues from the saved weights with bilinear decoders (and says so), and the
    exported model rebuilds them; a width change would need other weights and is refused."""
    from trainer.checkpoint import load_checkpoint

    photos = make_smooth_photos(tmp_path / "photos", n=4)
    cfg = _one_step_config(tmp_path, photos)
    train(cfg)
    first = load_checkpoint(tmp_path / "run" / "last.pt")
    assert main(["train", "--resume", cfg.out, "--gen-args", json.dumps({**GEN_ARGS, "cnum": 12})]) == 2
    assert "--gen-args {'cnum': 12} cannot change it" in capsys.readouterr().err
    bilinear = {**GEN_ARGS, "upsample": "bilinear"}
    assert main(["train", "--resume", cfg.out, "--steps", "2", "--gen-args", json.dumps(bilinear)]) == 0
    assert f"continues with gen_args {bilinear!r} (was {GEN_ARGS!r}; same weights)" in capsys.readouterr().err
    last = load_checkpoint(tmp_path / "run" / "last.pt")
    assert last["step"] == 2 and last["arch_args"]["upsample"] == "bilinear"
    assert last["generator"].keys() == first["generator"].keys()
    # one step from the saved weights, not from fresh ones: some moved, none far
    moved = max(float((last["generator"][k] - v).abs().max()) for k, v in first["generator"].items())
    assert 0 < moved < 0.05
    card = export_checkpoint(tmp_path / "run" / "last.pt", tmp_path / "bilinear.safetensors")
    assert card.arch_args["upsample"] == "bilinear"
    model, _ = load_model(card.path)
    assert model.refine_net.decoder[2].upsample == "bilinear"


def test_a_gan_phase_resumes_with_the_discriminator_blurred_and_its_inputs_shifted(tmp_path):
    """--d-blur and --d-translate on a resume: the discriminator trained without them loads
    (the blur has no weights), both options are recorded in the run's configuration, and both
    networks keep training with finite weights."""
    from trainer.checkpoint import load_checkpoint

    photos = make_smooth_photos(tmp_path / "photos", n=4)
    cfg = _one_step_config(tmp_path, photos, gan_weight=0.05, amp=TINY_CROP_D_AMP)
    train(cfg)
    first = load_checkpoint(tmp_path / "run" / "last.pt")
    assert main(["train", "--resume", cfg.out, "--steps", "3", "--d-blur", "--d-translate", "6"]) == 0
    last = load_checkpoint(tmp_path / "run" / "last.pt")
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["d_blur"] is True and saved["d_translate"] == 6 and last["step"] == 3
    assert last["discriminators"].keys() == first["discriminators"].keys()
    for net in ("discriminators", "generator"):
        assert not all(torch.equal(first[net][k], v) for k, v in last[net].items()), net
        assert all(torch.isfinite(v).all() for v in last[net].values() if v.is_floating_point()), net


def test_discriminator_warm_up_trains_d_alone_before_the_first_generator_step(tmp_path):
    """--d-warmup-steps N: on resuming into a GAN phase, D takes N updates on the generator's
    current fills before G's next update; G's optimizer sees only its own steps, and the
    images D read count as seen."""
    from trainer.checkpoint import load_checkpoint

    photos = make_smooth_photos(tmp_path / "photos", n=4)
    cfg = _one_step_config(tmp_path, photos, gan_weight=0.05, amp=TINY_CROP_D_AMP)
    train(cfg)
    first = load_checkpoint(tmp_path / "run" / "last.pt")
    assert main(["train", "--resume", cfg.out, "--steps", "2", "--d-warmup-steps", "3"]) == 0
    last = load_checkpoint(tmp_path / "run" / "last.pt")
    adam_steps = lambda opt: {int(s["step"]) for s in opt["state"].values()}  # noqa: E731
    assert adam_steps(first["opt_d"]) == {1} and adam_steps(first["opt_g"]) == {1}
    assert adam_steps(last["opt_d"]) == {1 + 3 + 1} and adam_steps(last["opt_g"]) == {2}
    assert last["counters"]["images"] - first["counters"]["images"] == 2 * (3 + 1)
    events = [r for r in read_log(tmp_path / "run") if r.get("event") == "d_warmup"]
    assert len(events) == 1 and events[0]["updates"] == 3 and events[0]["step"] == 1
    assert events[0]["nonfinite_skipped"] == 0
    # hinge losses of a discriminator that scores anything: positive, finite (updates 0 and 1
    # in the first half of 3, update 2 in the second)
    assert all(math.isfinite(events[0][k]) and events[0][k] > 0
               for k in ("loss_d_first_half", "loss_d_second_half"))


def test_discriminator_warm_up_skips_and_counts_non_finite_updates(tmp_path, monkeypatch):
    """A warm-up update whose loss is NaN changes no weight, leaves the logged means alone and
    counts in the run's ``nonfinite`` counter as the main loop's do; a warm-up in which every
    update is non-finite, or that has MAX_CONSECUTIVE_NONFINITE non-finite updates in a row,
    stops the run with a message."""
    from trainer.checkpoint import load_checkpoint

    photos = make_smooth_photos(tmp_path / "photos", n=4)
    cfg = _one_step_config(tmp_path, photos, gan_weight=0.05, amp=TINY_CROP_D_AMP)
    train(cfg)
    first = load_checkpoint(tmp_path / "run" / "last.pt")
    recipe_cls = get_recipe("deepfill_v2")
    d_loss, calls, poisoned = recipe_cls.d_loss, [], {0}

    def sometimes_nan(self, *args, **kwargs):
        loss, parts = d_loss(self, *args, **kwargs)
        calls.append(len(calls))
        return (loss * math.nan if calls[-1] in poisoned else loss), parts

    monkeypatch.setattr(recipe_cls, "d_loss", sometimes_nan)
    # Warm-up updates 0 (poisoned: skipped) and 1 in the first half, 2 in the second.
    assert main(["train", "--resume", cfg.out, "--steps", "2", "--d-warmup-steps", "3"]) == 0
    last = load_checkpoint(tmp_path / "run" / "last.pt")
    adam_steps = lambda opt: {int(s["step"]) for s in opt["state"].values()}  # noqa: E731
    assert adam_steps(last["opt_d"]) == {1 + 2 + 1}
    assert last["counters"]["nonfinite"] - first["counters"]["nonfinite"] == 1
    event = [r for r in read_log(tmp_path / "run") if r.get("event") == "d_warmup"][-1]
    assert event["nonfinite_skipped"] == 1
    assert all(math.isfinite(event[k]) and event[k] > 0
               for k in ("loss_d_first_half", "loss_d_second_half"))

    calls.clear()
    poisoned.update(range(100))
    with pytest.raises(FloatingPointError, match="warm-up diverged: all 2 updates"):
        main(["train", "--resume", cfg.out, "--steps", "3", "--d-warmup-steps", "2"])

    # One that diverges part-way stops under the main loop's consecutive rule, at its first
    # check (every MAX_CONSECUTIVE_NONFINITE updates), not at the end of the warm-up.
    import trainer.loop
    monkeypatch.setattr(trainer.loop, "MAX_CONSECUTIVE_NONFINITE", 2)
    calls.clear()
    poisoned.clear()
    poisoned.update(range(1, 100))
    with pytest.raises(FloatingPointError,
                       match="warm-up diverged: 3 consecutive updates .* by update 4 of 40"):
        main(["train", "--resume", cfg.out, "--steps", "3", "--d-warmup-steps", "40"])
    assert len(calls) == 4


def test_discriminator_warm_up_without_a_gan_term_is_skipped_and_says_so(tmp_path):
    photos = make_smooth_photos(tmp_path / "photos", n=4)
    cfg = _one_step_config(tmp_path, photos, gan_weight=0.0, d_warmup_steps=2)
    train(cfg)
    events = [r for r in read_log(tmp_path / "run") if r.get("event") == "d_warmup"]
    assert len(events) == 1 and events[0]["updates"] == 0 and "gan-weight" in events[0]["note"]
    with pytest.raises(ValueError, match="--d-warmup-steps must be at least 0"):
        TrainConfig(arch="deepfill_v2", data=[str(photos)], d_warmup_steps=-1).validate()


def test_train_only_freezes_every_other_generator_parameter_and_refuses_unknown_prefixes(
        tmp_path, capsys):
    """--train-only PREFIX... on a resume: the steps change the named parameters and only those
    (the optimiser gets no other; the checkpoint's Adam moments, for all of them, are dropped
    with a note); a prefix matching nothing is refused before any training."""
    from trainer.checkpoint import load_checkpoint

    photos = make_smooth_photos(tmp_path / "photos", n=4)
    prefixes = ["refine_net.decoder.4", "refine_net.decoder.6"]
    cfg = _one_step_config(tmp_path, photos, gan_weight=0.0)
    train(cfg)
    first = load_checkpoint(tmp_path / "run" / "last.pt")["generator"]
    capsys.readouterr()
    assert main(["train", "--resume", cfg.out, "--steps", "3", "--train-only", *prefixes]) == 0
    assert "its Adam starts afresh" in capsys.readouterr().err
    last = load_checkpoint(tmp_path / "run" / "last.pt")["generator"]
    changed = {k for k in first if not torch.equal(first[k], last[k])}
    assert changed and all(any(k.startswith(p) for p in prefixes) for k in changed)
    assert any(k.startswith("refine_net.decoder.6") for k in changed)

    bad = _one_step_config(tmp_path, photos, out=str(tmp_path / "bad"),
                           train_only=["refine_net.decoder.4", "refine.decoder"])
    with pytest.raises(ValueError, match="--train-only: no generator parameter starts with "
                                         "refine.decoder"):
        train(bad)


def test_d_steps_gives_the_discriminator_several_updates_per_generator_update(tmp_path):
    """--d-steps 3: each generator step follows three discriminator updates, each on its own
    batch, and the images seen count all three batches; 0 and negatives are the recipe's
    default and an error."""
    from trainer.checkpoint import load_checkpoint

    photos = make_smooth_photos(tmp_path / "photos", n=4)
    cfg = _one_step_config(tmp_path, photos, gan_weight=0.05, amp=TINY_CROP_D_AMP, d_steps=3,
                           steps=2)
    train(cfg)
    state = load_checkpoint(tmp_path / "run" / "last.pt")
    assert state["step"] == 2
    assert {int(s["step"]) for s in state["opt_d"]["state"].values()} == {6}
    assert {int(s["step"]) for s in state["opt_g"]["state"].values()} == {2}
    assert state["counters"]["images"] == 2 * 3 * cfg.batch_size
    with pytest.raises(ValueError, match=r"--d-steps must be at least 0 \(0 = the recipe's\), got -1"):
        TrainConfig(data=["x"], d_steps=-1).validate()


def test_freeze_coarse_freezes_exactly_the_coarse_network_and_needs_one():
    from inpaint_studio.networks import build
    from trainer.freeze import freeze_coarse

    G = build("deepfill_v2", **GEN_ARGS)
    frozen = freeze_coarse(G)
    coarse = {n for n, _ in G.named_parameters() if n.startswith("coarse")}
    assert coarse and frozen == sum(p.numel() for n, p in G.named_parameters() if n in coarse)
    assert all(p.requires_grad is (n not in coarse) for n, p in G.named_parameters())
    with pytest.raises(ValueError, match="--freeze-coarse: generator 'pconv' has no parameters named coarse"):
        freeze_coarse(build("pconv"))
