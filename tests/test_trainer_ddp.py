"""A 2-process DDP run on the CPU (gloo), launched by torchrun as a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from trainer.checkpoint import load_checkpoint

from .test_trainer import make_photos

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_two_process_ddp_trains_and_only_rank0_writes(tmp_path):
    photos = make_photos(tmp_path / "photos", n=10, corrupt=False, size=(80, 72))
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "trainer", "train", "--arch", "deepfill_v2", "--gen-args", '{"cnum": 4}',
           "--data", str(photos), "--out", str(run), "--size", "64", "--batch-size", "2",
           "--steps", "4", "--workers", "0", "--log-every", "1", "--val-every", "2",
           "--sample-every", "2", "--ckpt-every", "2", "--val-count", "2", "--device", "cpu"]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("train: stopped after 4 steps") == 1  # rank 0 reports, rank 1 not

    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    starts = [r for r in log if r.get("event") == "start"]
    assert len(starts) == 1 and starts[0]["world_size"] == 2
    # One line per step: a second writer would duplicate them.
    assert [r["step"] for r in log if "loss_g_total" in r] == [1, 2, 3, 4]
    assert [r["step"] for r in log if "val_l1" in r] == [2, 4]
    assert sum(r.get("event") == "done" for r in log) == 1
    assert sorted(p.name for p in (run / "samples").iterdir()) == [
        "step_0000002.png", "step_0000004.png"]
    assert sorted(p.name for p in run.iterdir()) == [
        "best.pt", "config.json", "last.pt", "log.jsonl", "samples"]
    state = load_checkpoint(run)
    assert state["step"] == 4 and state["world_size"] == 2
    assert state["counters"]["images"] == 4 * 2 * 2  # steps x batch x processes
