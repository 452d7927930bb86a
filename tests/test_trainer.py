"""Trainer: configuration and CLI, checkpoints, the loop (loss goes down, exact resume, NaN
guard, bad files, early stop), export -> deep engine, fine-tune and evaluate.

Loop mechanics run on a tiny two-stage generator registered here (fast); the DeepFill v2
recipe itself is exercised in ``test_trainer_deepfill.py``.
"""

from __future__ import annotations

import dataclasses
import json
import random
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from inpaint_studio import precision
from PIL import Image
from torch import nn

from inpaint_studio import networks
from inpaint_studio.networks import InpaintGenerator
from trainer import losses
from trainer.__main__ import main
from trainer.checkpoint import (CheckpointError, capture_rng, load_checkpoint, restore_rng,
                                save_checkpoint)
from trainer.config import TrainConfig
from trainer.loop import train
from trainer.recipes import Recipe, get_recipe, register_recipe

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny convolutions run far faster on one thread than on two threads that wait for each
    other on a busy 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# --- a tiny architecture, so loop tests take a second -------------------------------------


class TinyTwoStage(InpaintGenerator):
    """Two 2-layer conv nets: coarse on the masked input, refine on the composite."""

    stage_names = ("coarse", "refined")
    uses_sketch = True

    def __init__(self, width: int = 8):
        super().__init__()
        self.coarse = nn.Sequential(nn.Conv2d(5, width, 3, padding=1), nn.ELU(),
                                    nn.Conv2d(width, 3, 3, padding=1))
        self.refine = nn.Sequential(nn.Conv2d(4, width, 3, padding=1), nn.ELU(),
                                    nn.Conv2d(width, 3, 3, padding=1))

    def forward(self, image, mask, sketch=None):
        sketch = torch.zeros_like(mask) if sketch is None else sketch
        known = image * (1 - mask)
        coarse = torch.tanh(self.coarse(torch.cat([known, mask, sketch * mask], 1)))
        refined = torch.tanh(self.refine(torch.cat([coarse * mask + known, mask], 1)))
        return coarse, refined


if "test_tiny" not in networks.generator_names():
    networks.register_generator("test_tiny", "tiny test generator")(TinyTwoStage)
    networks.register_discriminator("test_tiny_d")(
        lambda: nn.Sequential(nn.utils.spectral_norm(nn.Conv2d(5, 8, 4, 2, 1)),
                              nn.LeakyReLU(0.2), nn.Conv2d(8, 1, 4, 2, 1), nn.Flatten()))

    @register_recipe("test_tiny")
    class TinyRecipe(Recipe):
        lr_g, lr_d, betas = 3e-3, 1e-3, (0.5, 0.999)
        poison_step: int | None = None  # make the G loss NaN at this call (NaN-guard test)
        calls = 0

        def build_generator(self, gen_args):
            return networks.build(self.arch, **gen_args)

        def build_discriminators(self):
            return nn.ModuleDict({"patch": networks.build_discriminator("test_tiny_d")})

        def run_generator(self, G, batch):
            return {"stages": tuple(G(batch["image"], batch["mask"], batch["sketch"]))}

        def _d_in(self, rgb, batch):
            return torch.cat([rgb, batch["mask"], batch["sketch"]], 1)

        def d_loss(self, D, batch, out):
            fake = out["stages"][-1] * batch["mask"] + batch["image"] * (1 - batch["mask"])
            both = torch.cat([self._d_in(batch["image"], batch), self._d_in(fake, batch)])
            real, fake = D["patch"](both).chunk(2)
            loss = losses.hinge_d_loss(real, fake)
            return loss, {"d": loss.detach()}

        def g_loss(self, D, batch, out):
            type(self).calls += 1
            coarse, refined = out["stages"]
            fake = refined * batch["mask"] + batch["image"] * (1 - batch["mask"])
            l1 = losses.l1(coarse, batch["image"]) + losses.l1(refined, batch["image"])
            total = l1 + 0.01 * losses.hinge_g_loss(D["patch"](self._d_in(fake, batch)))
            if type(self).calls == self.poison_step:
                total = total * float("nan")
            return total, {"g_total": total.detach(), "l1": l1.detach()}


def make_photos(folder: Path, n: int = 12, corrupt: bool = True, size=(56, 48)) -> Path:
    """Smooth, slightly different gradient photos (learnable in a few steps), plus a corrupt
    JPEG that the trainer must skip."""
    folder.mkdir(parents=True, exist_ok=True)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    for i in range(n):
        rgb = np.stack([128 + 90 * np.sin(xx / (6 + i)), 128 + 90 * np.cos(yy / (5 + i % 3)),
                        (xx + yy) * 255 / (h + w)], -1)
        Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)).save(folder / f"p{i:02d}.png")
    if corrupt:
        (folder / "zz_broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated, not a jpeg")
    return folder


def tiny_config(tmp_path: Path, **over) -> TrainConfig:
    photos = make_photos(tmp_path / "photos") if not (tmp_path / "photos").exists() \
        else tmp_path / "photos"
    values = dict(arch="test_tiny", data=[str(photos)], out=str(tmp_path / "run"), size=32,
                  batch_size=4, steps=20, workers=0, log_every=1, val_every=10, sample_every=10,
                  ckpt_every=10, val_count=2, deterministic=True, seed=3)
    values.update(over)
    return TrainConfig(**values)


def read_log(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


# --- configuration and command line -------------------------------------------------------


def test_help_mentions_every_option(capsys):
    for command in ("train", "finetune"):
        with pytest.raises(SystemExit) as exit_info:
            main([command, "--help"])
        assert exit_info.value.code == 0
        text = capsys.readouterr().out
        skipped = {"init", "export"} if command == "train" else set()
        for f in dataclasses.fields(TrainConfig):
            if f.name not in skipped:
                assert "--" + f.name.replace("_", "-") in text, (command, f.name)
        assert "mixed precision" in text
    for command, options in (("evaluate", ("--model", "--data", "--masks", "--pairs")),
                             ("export", ("--checkpoint", "--out", "--fp32"))):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = capsys.readouterr().out
        assert all(o in text for o in options)


def test_repeated_data_options_add_folders():
    # `--data a --data b` trains on both (argparse alone would keep b only, silently); one
    # `--data` with several folders still works, and the order is the command line's.
    import argparse

    from trainer.config import add_config_options, config_from_args

    parser = argparse.ArgumentParser()
    add_config_options(parser)
    assert config_from_args(parser.parse_args(["--data", "a", "--data", "b"])).data == ["a", "b"]
    assert config_from_args(parser.parse_args(["--data", "a", "b", "--data", "c"])).data == \
        ["a", "b", "c"]
    assert config_from_args(parser.parse_args(["--data", "a"])).data == ["a"]


def test_precision_option_is_an_alias_of_amp():
    # `--precision` takes the words of `inpaint-studio fill`; fp32 is the trainer's "off".
    import argparse

    from trainer.config import add_config_options, config_from_args

    parser = argparse.ArgumentParser()
    add_config_options(parser)
    for word, amp in (("fp32", "off"), ("bf16", "bf16"), ("auto", "auto"), ("fp16", "fp16")):
        cfg = config_from_args(parser.parse_args(["--data", "x", "--precision", word]))
        assert cfg.amp == amp, word
    assert config_from_args(parser.parse_args(["--data", "x", "--amp", "off"])).amp == "off"
    assert config_from_args(parser.parse_args(["--data", "x"])).amp == "auto"
    with pytest.raises(SystemExit):
        parser.parse_args(["--data", "x", "--precision", "off"])  # not one of its words


def test_config_json_round_trip_and_validation(tmp_path):
    cfg = TrainConfig(data=["a", "b"], gen_args={"cnum": 8}, size=64, amp="off")
    cfg.save(tmp_path / "config.json")
    assert TrainConfig.load(tmp_path / "config.json") == cfg
    with pytest.raises(ValueError, match="--size must be a positive multiple of 8"):
        dataclasses.replace(cfg, size=60).validate()
    with pytest.raises(ValueError, match="--gen-args must be a JSON object"):
        dataclasses.replace(cfg, gen_args=[1]).validate()
    with pytest.raises(ValueError, match="unknown configuration keys: bogus"):
        TrainConfig.from_json({**cfg.to_json(), "bogus": 1})


def test_attention_gamma_and_bn_options_are_validated():
    from inpaint_studio.layers.attention import ATTENTION_NAMES
    from trainer.config import ARCHITECTURES, ATTENTION_BLOCKS
    from trainer.recipes import recipe_names

    assert ATTENTION_BLOCKS == ATTENTION_NAMES  # --help lists exactly what the layers build
    assert set(ARCHITECTURES) == set(recipe_names()) - {"test_tiny"}  # and what trains
    cfg = TrainConfig(data=["a"], gen_args={"cnum": 8})
    assert cfg.generator_args() == {"cnum": 8}  # no attention key: same args as before
    se = dataclasses.replace(cfg, attention="danet")
    assert se.generator_args() == {"cnum": 8, "attention": "danet"}
    assert TrainConfig.split_generator_args(se.generator_args()) == ({"cnum": 8}, "danet")
    assert TrainConfig.split_generator_args({"cnum": 8, "attention": None}) == ({"cnum": 8}, "none")
    with pytest.raises(ValueError, match="with --attention, not inside --gen-args"):
        dataclasses.replace(cfg, gen_args={"attention": "se"}).validate()
    with pytest.raises(ValueError, match="--attention must be one of none, se, cbam, danet"):
        dataclasses.replace(cfg, attention="transformer").validate()
    with pytest.raises(ValueError, match=r"--discount-gamma must be in \(0, 1\], got 0.0"):
        dataclasses.replace(cfg, discount_gamma=0.0).validate()


def test_options_that_do_not_fit_the_architecture_stop_at_start(tmp_path, capsys):
    photos = make_photos(tmp_path / "few", n=3, corrupt=False)
    common = ["--data", str(photos), "--out", str(tmp_path / "r"), "--workers", "0"]
    assert main(["train", "--arch", "test_tiny", "--freeze-enc-bn", *common]) == 2
    assert "--freeze-enc-bn: generator 'test_tiny' has no encoder batch norm" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
    # Resuming keeps the saved network: an option that would build another one is refused.
    cfg = tiny_config(tmp_path, steps=1, val_every=0, sample_every=0)
    train(cfg)
    assert main(["train", "--resume", cfg.out, "--gen-args", '{"width": 4}']) == 2
    assert "is a test_tiny model with gen_args {}; --gen-args {'width': 4} cannot change it" \
        in capsys.readouterr().err
    assert load_checkpoint(cfg.out)["step"] == 1


def test_cli_reports_bad_input_in_one_line(tmp_path, capsys):
    assert main(["train", "--data", str(tmp_path / "nowhere"), "--arch", "test_tiny"]) == 2
    assert "nowhere" in capsys.readouterr().err
    assert main(["train", "--data", str(tmp_path), "--arch", "no_such_arch"]) == 2
    assert "no training recipe for architecture 'no_such_arch'" in capsys.readouterr().err
    assert main(["finetune", "--data", str(tmp_path)]) == 2
    assert "--init" in capsys.readouterr().err


def test_missing_vgg_weights_stops_at_start_with_the_vgg_message(tmp_path, capsys):
    photos = make_photos(tmp_path / "photos", n=3)
    assert get_recipe("pconv").needs_vgg
    code = main(["train", "--arch", "pconv", "--data", str(photos), "--out", str(tmp_path / "r"),
                 "--steps", "1", "--workers", "0"])
    err = capsys.readouterr().err
    assert code == 2
    assert "--vgg-weights" in err and "VGG-16" in err
    assert not (tmp_path / "r" / "last.pt").exists()


# --- checkpoints --------------------------------------------------------------------------


def test_rng_states_round_trip_through_a_weights_only_checkpoint(tmp_path):
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    save_checkpoint(tmp_path / "last.pt", {"generator": {}, "config": {}, "rng": capture_rng()})
    first = (random.random(), np.random.rand(), np.random.randn(), torch.rand(2).tolist())
    restore_rng(load_checkpoint(tmp_path)["rng"])
    again = (random.random(), np.random.rand(), np.random.randn(), torch.rand(2).tolist())
    assert first == again
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]  # no temp file left


def test_load_checkpoint_errors_name_the_file(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        load_checkpoint(tmp_path)
    (tmp_path / "last.pt").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="cannot read checkpoint .*last.pt"):
        load_checkpoint(tmp_path)
    torch.save({"something": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not an Inpaint Studio training checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


# --- the loop -----------------------------------------------------------------------------


def test_training_lowers_the_loss_and_writes_log_samples_checkpoints(tmp_path):
    cfg = tiny_config(tmp_path, steps=40, val_every=20, sample_every=20, ckpt_every=20)
    result = train(cfg)
    assert result.step == 40 and result.stopped == "steps"
    log = read_log(Path(cfg.out))
    l1 = [r["loss_l1"] for r in log if "loss_l1" in r]
    assert len(l1) == 40
    assert np.mean(l1[-5:]) < 0.7 * np.mean(l1[:5])
    val = [r["val_l1"] for r in log if "val_l1" in r]
    assert len(val) == 2 and val[1] < val[0]
    start = next(r for r in log if r.get("event") == "start")
    assert start["steps"] == 40 and start["photos"] == 13
    assert log[-1]["event"] == "done" and log[-1]["step"] == 40
    assert all(r["images_per_s"] > 0 for r in log if "images_per_s" in r)
    samples = sorted((Path(cfg.out) / "samples").glob("*.png"))
    assert [p.name for p in samples] == ["step_0000020.png", "step_0000040.png"]
    # masked input | coarse | refined | original, 2 validation rows of 32 px
    assert np.asarray(Image.open(samples[0])).shape == (2 * 32, 4 * 32, 3)
    run = Path(cfg.out)
    assert TrainConfig.load(run / "config.json") == cfg
    state = load_checkpoint(run)
    assert state["step"] == 40 and state["counters"]["images"] == 160
    assert (run / "best.pt").is_file()


def test_corrupt_photo_is_skipped_and_reported(tmp_path):
    cfg = tiny_config(tmp_path, steps=8, val_every=0, sample_every=0, ckpt_every=8)
    with pytest.warns(UserWarning, match="zz_broken.jpg"):
        train(cfg)
    log = read_log(Path(cfg.out))
    start = next(r for r in log if r.get("event") == "start")
    reported = set(start["val_skipped"])
    for r in log:
        if r.get("event") == "skipped_files":
            reported |= set(r["files"])
    assert [Path(p).name for p in reported] == ["zz_broken.jpg"]
    assert log[-1]["event"] == "done"


def test_killed_run_resumes_to_the_same_weights(tmp_path, capsys):
    cfg = tiny_config(tmp_path, steps=20, val_every=7, ckpt_every=10)
    train(dataclasses.replace(cfg, out=str(tmp_path / "whole")))

    class Killed(Exception):
        pass

    def kill_after_10(step: int) -> None:
        if step == 10:
            raise Killed

    part = str(tmp_path / "part")
    with pytest.raises(Killed):
        train(dataclasses.replace(cfg, out=part), on_step=kill_after_10)
    assert load_checkpoint(part)["step"] == 10
    assert read_log(Path(part))[-1]["event"] == "error"
    # Resume through the CLI, as a user would (options come from the saved configuration).
    capsys.readouterr()
    assert main(["train", "--resume", part]) == 0
    console = "".join(capsys.readouterr())
    # --amp auto follows the precision policy: bf16 on CPUs with native bf16, else off.
    amp = "off" if precision.resolve("auto", "cpu") == torch.float32 else "bfloat16"
    assert ("test_tiny: resuming at step 10 of 20 steps on 13 photos (2 held out for "
            f"validation), cpu, mixed precision {amp}") in console
    assert re.search(r"train: stopped after 20 steps \(all steps done\); best validation L1 "
                     r"0\.\d{4}; run folder ", console)
    whole, resumed = load_checkpoint(tmp_path / "whole"), load_checkpoint(part)
    assert resumed["step"] == 20
    for key in ("generator", "ema", "discriminators"):
        for name, tensor in whole[key].items():
            assert torch.equal(tensor, resumed[key][name]), (key, name)
    assert whole["opt_g"]["state"][0]["exp_avg"].equal(resumed["opt_g"]["state"][0]["exp_avg"])


def test_nonfinite_step_is_skipped_counted_and_leaves_weights_intact(tmp_path, monkeypatch):
    recipe = get_recipe("test_tiny")
    monkeypatch.setattr(recipe, "calls", 0)
    monkeypatch.setattr(recipe, "poison_step", 3)
    cfg = tiny_config(tmp_path, steps=3, val_every=0, sample_every=0, ckpt_every=2, ema_decay=0.0)
    train(cfg)
    log = read_log(Path(cfg.out))
    events = [r for r in log if r.get("event") == "nonfinite"]
    assert [e["step"] for e in events] == [3] and events[0]["skipped_total"] == 1
    state = load_checkpoint(cfg.out)
    assert state["counters"]["nonfinite"] == 1
    for name, tensor in state["generator"].items():
        assert torch.isfinite(tensor).all(), name
    # The skipped G update left G as it was after step 2: the EMA (decay 0) still equals it.
    for name, tensor in state["generator"].items():
        assert torch.equal(tensor, state["ema"][name]), name


def test_early_stop_keeps_the_best_checkpoint(tmp_path):
    # A negligible learning rate: validation never improves on the first (step 2), so
    # patience 2 stops at the third validation (step 6).
    cfg = tiny_config(tmp_path, steps=50, val_every=2, sample_every=0, ckpt_every=100,
                      early_stop=2, lr_g=1e-12, lr_d=1e-12)
    result = train(cfg)
    assert result.stopped == "early_stop" and result.step == 6
    assert load_checkpoint(Path(cfg.out) / "best.pt")["step"] == 2
    assert load_checkpoint(cfg.out)["step"] == 6


def test_a_run_stopped_by_time_validates_its_last_step(tmp_path):
    # --max-minutes so small that the first step is already over time: the run stops there,
    # and that step is validated and checkpointed although --val-every would not reach it.
    cfg = tiny_config(tmp_path, steps=50, val_every=40, sample_every=0, ckpt_every=100,
                      max_minutes=1e-6)
    result = train(cfg)
    assert result.stopped == "time" and result.step == 1
    validated = [r["step"] for r in read_log(Path(cfg.out)) if "val_l1" in r]
    assert validated == [1]
    assert result.best_val_l1 is not None
    assert load_checkpoint(cfg.out)["step"] == 1


# --- issue 13: bad input ends in one line; checkpoint fallbacks; resumed logs ----------------


@pytest.mark.parametrize("workers", [0, 1])
def test_only_unreadable_or_tiny_photos_end_in_one_error_line(tmp_path, capsys, workers):
    folder = tmp_path / "junk"
    folder.mkdir()
    for i in range(3):
        (folder / f"broken{i}.jpg").write_bytes(b"not a photo")
        Image.new("RGB", (4, 4)).save(folder / f"tiny{i}.png")
    code = main(["train", "--arch", "test_tiny", "--data", str(folder), "--out",
                 str(tmp_path / "run"), "--steps", "1", "--size", "32", "--batch-size", "2",
                 "--workers", str(workers)])
    err = capsys.readouterr().err
    assert code == 2
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: no readable photo in ")
    assert errors[0].endswith("check the data folders")
    assert "Traceback" not in err


def test_worker_wrapped_message_is_reduced_to_its_last_line():
    from trainer.__main__ import one_line

    wrapped = ValueError("Caught NoReadablePhotos in DataLoader worker process 0.\nOriginal "
                         "Traceback (most recent call last):\n  File \"x.py\", line 1\n"
                         "trainer.data.NoReadablePhotos: no readable photo in 51 tries")
    assert one_line(wrapped) == "no readable photo in 51 tries"
    assert one_line(ValueError("plain: message")) == "plain: message"


def test_zero_log_and_checkpoint_intervals_mean_only_at_the_end(tmp_path):
    cfg = tiny_config(tmp_path, steps=3, log_every=0, ckpt_every=0, val_every=0, sample_every=0)
    train(cfg)
    log = read_log(Path(cfg.out))
    assert [r["step"] for r in log if "loss_g_total" in r] == [3]
    assert [r["step"] for r in log if r.get("event") == "checkpoint"
            and r["path"].endswith("last.pt")] == [3]
    with pytest.raises(ValueError, match="--ckpt-every must be at least 0"):
        tiny_config(tmp_path, ckpt_every=-1).validate()


@pytest.mark.parametrize("model", ["missing", "corrupt"])
def test_evaluate_with_a_missing_or_corrupt_model_is_one_line(tmp_path, capsys, model):
    photos = make_photos(tmp_path / "photos", n=2, corrupt=False)
    path = tmp_path / "m.safetensors"
    if model == "corrupt":
        path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    assert main(["evaluate", "--model", str(path), "--data", str(photos)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot evaluate {path}: ") and err.count("\n") == 1


@pytest.fixture
def finished_run(tmp_path):
    """A 4-step run with last.pt and best.pt (validated at its end)."""
    cfg = tiny_config(tmp_path, steps=4, val_every=0, sample_every=0, ckpt_every=2)
    train(cfg)
    run = Path(cfg.out)
    assert (run / "best.pt").is_file() and (run / "last.pt").is_file()
    return run


def test_export_falls_back_to_last_when_best_is_unreadable_and_says_so(finished_run, tmp_path,
                                                                        capsys):
    (finished_run / "best.pt").write_bytes(b"torn checkpoint")
    out = tmp_path / "mine.safetensors"
    assert main(["export", "--checkpoint", str(finished_run), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert f"note: cannot read checkpoint {finished_run / 'best.pt'}: " in err
    assert err.rstrip().endswith(f"exporting {finished_run / 'last.pt'} (step 4) instead")
    from inpaint_studio.weights import read_metadata

    assert read_metadata(out).provenance["checkpoint"] == "last.pt"


def test_resume_on_an_unreadable_last_checkpoint_offers_best(finished_run, capsys):
    (finished_run / "last.pt").write_bytes(b"torn checkpoint")
    assert main(["train", "--resume", str(finished_run)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot read checkpoint {finished_run / 'last.pt'}: ")
    assert err.rstrip().endswith(f"{finished_run / 'best.pt'} (step 4) is readable: continue "
                                 f"from it with --resume {finished_run / 'best.pt'}")
    assert err.count("\n") == 1


def test_resumed_run_does_not_repeat_logged_steps(tmp_path):
    cfg = tiny_config(tmp_path, steps=6, ckpt_every=3, val_every=0, sample_every=0)

    class Killed(Exception):
        pass

    def kill_after_5(step: int) -> None:
        if step == 5:
            raise Killed

    with pytest.raises(Killed):
        train(cfg, on_step=kill_after_5)
    run = Path(cfg.out)
    with open(run / "log.jsonl", "a") as f:
        f.write('{"step": 5, "loss_g_to')  # a line torn by SIGKILL
    train(dataclasses.replace(cfg, resume=str(run)))
    log = read_log(run)  # every line parses
    assert [r["step"] for r in log if "loss_g_total" in r] == [1, 2, 3, 4, 5, 6]
    assert [r["step"] for r in log if r.get("event") == "error"] == [5]  # the kill stays recorded
