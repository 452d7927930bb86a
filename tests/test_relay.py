"""Relay state (trainer/relay.py): a small file from which a later run continues the shipped
model's weights and bookkeeping."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from safetensors.torch import load_file, save_file

from tests.test_trainer import read_log, tiny_config
from trainer.checkpoint import CheckpointError, load_checkpoint
from trainer.export import export_checkpoint
from trainer.loop import train
from trainer.relay import load_relay_state, save_relay_state


def _relay_of_a_run(tmp_path):
    cfg = tiny_config(tmp_path, steps=10, val_every=5, ckpt_every=10)
    train(cfg)
    shipped = tmp_path / "model.safetensors"
    export_checkpoint(tmp_path / "run" / "last.pt", shipped, fp16=True)
    relay = save_relay_state(tmp_path / "run", tmp_path / "model.train-state.safetensors")
    return cfg, shipped, relay


def test_relay_keeps_weights_counters_and_small_discriminator(tmp_path):
    _, shipped, relay = _relay_of_a_run(tmp_path)
    full = load_checkpoint(tmp_path / "run")
    state = load_relay_state(relay)
    assert state["step"] == full["step"] == 10
    assert state["counters"]["images"] == full["counters"]["images"] == 40
    for name, tensor in full["generator"].items():
        assert torch.equal(state["generator"][name], tensor), name  # raw generator kept fp32
    for name, tensor in full["discriminators"].items():
        if tensor.is_floating_point():
            assert torch.allclose(state["discriminators"][name], tensor, rtol=1e-3, atol=1e-4)
    assert all(v.dtype == torch.float16 for k, v in load_file(str(relay)).items()
               if k.startswith("discriminators.") and v.is_floating_point())
    # The EMA comes from the shipped (fp16) model beside it.
    for name, tensor in full["ema"].items():
        assert torch.allclose(state["ema"][name], tensor, rtol=1e-3, atol=1e-3), name
    assert state["opt_g"] is None and state["rng"] is None


def test_run_resumed_from_relay_continues_steps_and_images(tmp_path):
    cfg, _, relay = _relay_of_a_run(tmp_path)
    out = tmp_path / "next"
    result = train(dataclasses.replace(cfg, resume=str(relay), out=str(out), steps=14))
    assert result.step == 14
    resumed = load_checkpoint(out)
    assert resumed["counters"]["images"] == 40 + 4 * 4
    start = [e for e in read_log(out) if e.get("event") == "start"][0]
    assert start["resumed"] is True and start["step"] == 10
    # Training moved the weights on from the relayed ones.
    relayed = load_relay_state(relay)["generator"]
    assert any(not torch.equal(relayed[k], v) for k, v in resumed["generator"].items())


def test_foreign_safetensors_is_refused_with_its_name(tmp_path):
    foreign = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign), metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match="other.safetensors is not an Inpaint Studio relay"):
        load_relay_state(foreign)
    garbage = tmp_path / "garbage.train-state.safetensors"
    garbage.write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="cannot read relay state"):
        load_relay_state(garbage)


def test_resume_with_new_learning_rates_uses_them(tmp_path):
    """`--resume RUN --lr-g X` (e.g. to decay the rate for the end of a leg): the saved
    optimizer state must not put the old rate back."""
    cfg = tiny_config(tmp_path, steps=10, val_every=5, ckpt_every=10)
    train(cfg)
    train(dataclasses.replace(cfg, resume=str(tmp_path / "run"), steps=12, lr_g=1e-5, lr_d=2e-5))
    state = load_checkpoint(tmp_path / "run")
    assert state["step"] == 12
    assert state["opt_g"]["param_groups"][0]["lr"] == 1e-5
    assert state["opt_d"]["param_groups"][0]["lr"] == 2e-5
    assert [e["lr"] for e in read_log(tmp_path / "run") if e.get("step") == 12 and "lr" in e] == [1e-5]


def test_publish_adds_each_leg_to_the_legs_table_not_the_files_end(tmp_path):
    import importlib.util
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "scripts" / "publish_default_model.py"
    spec = importlib.util.spec_from_file_location("publish_default_model", script)
    publish = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(publish)
    curve = tmp_path / "learning_curve.md"
    publish.add_curve_row(curve, "| 1 | d | 10 | a | b | c | d | 332 |")  # created from the header
    curve.write_text(curve.read_text() + "\nNotes.\n\n| images | mean |\n|---|---|\n| 8 | 0.1 |\n")
    publish.add_curve_row(curve, "| 2 | d | 20 | a | b | c | d | 332 |")
    lines = curve.read_text().splitlines()
    legs = lines.index("| 1 | d | 10 | a | b | c | d | 332 |")
    assert lines[legs + 1] == "| 2 | d | 20 | a | b | c | d | 332 |"
    assert lines[-1] == "| 8 | 0.1 |" and lines[0].startswith("# Learning curve")


def test_publish_names_the_gpu_a_leg_trained_on(monkeypatch):
    # A leg trained on a lent GPU is published on a CPU: the card's row names the GPU (from
    # the checkpoint), not the CPU that ran the evaluation.
    import importlib.util
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "scripts" / "publish_default_model.py"
    spec = importlib.util.spec_from_file_location("publish_default_model", script)
    publish = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(publish)
    assert publish._hardware({"device_name": "NVIDIA H100 80GB HBM3", "world_size": 1}) == \
        "GPU, NVIDIA H100 80GB HBM3"
    assert publish._hardware({"device_name": "NVIDIA H200", "world_size": 2}) == "GPU, NVIDIA H200 x2"
    monkeypatch.setattr(publish.precision, "cpu_flags", lambda: {"avx2", "fma"})
    assert publish._hardware({"device_name": "CPU (x86_64, 2 cores)"}).startswith("CPU, ")
    assert publish._hardware({}).endswith("(avx2)")
