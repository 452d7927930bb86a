"""The fine-tune dialog: command line, log tailing, progress, samples, end of run."""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path

from inpaint_studio import paths
from inpaint_studio.ui.train_dialog import FinetuneDialog, finetune_arguments
from inpaint_studio.ui.training_log import LogTail, TrainingProgress


def test_log_tail_reads_only_complete_new_lines(tmp_path):
    log = tmp_path / "log.jsonl"
    tail = LogTail(log)
    assert tail.read_new() == []  # not created yet
    log.write_text('{"event": "start", "step": 0}\n{"step": 10, "loss_g": 0.5')
    assert tail.read_new() == [{"event": "start", "step": 0}]
    with log.open("a") as f:
        f.write(', "images_per_s": 12.5}\nnot json\n{"step": 20, "val_l1": 0.07}\n')
    assert tail.read_new() == [{"step": 10, "loss_g": 0.5, "images_per_s": 12.5},
                               {"step": 20, "val_l1": 0.07}]
    assert tail.read_new() == []


def test_training_progress_summary():
    progress = TrainingProgress(total_steps=100)
    for record in ({"event": "start", "step": 0}, {"step": 10, "loss_g": 0.51234, "lr": 1e-5,
                   "images_per_s": 12.25}, {"step": 20, "val_l1": 0.0712, "val_psnr": 24.5}):
        progress.update(record)
    assert progress.step == 20 and progress.events == ["start"]
    text = progress.summary()
    assert text.startswith("step 20/100")
    assert "loss_g 0.5123" in text and "12.2 img/s" in text and "val_psnr 24.5" in text


def test_finetune_arguments():
    args = finetune_arguments(Path("/m/x.safetensors"), Path("/photos"), Path("/runs/r"), 300)
    assert args == ["-m", "trainer", "finetune", "--init", "/m/x.safetensors", "--data", "/photos",
                    "--out", "/runs/r", "--steps", "300"]


FAKE_TRAINER = """#!{python}
import json, sys, pathlib
args = sys.argv[1:]
assert args[:3] == ["-m", "trainer", "finetune"], args
out = pathlib.Path(args[args.index("--out") + 1])
steps = int(args[args.index("--steps") + 1])
(out / "samples").mkdir(parents=True, exist_ok=True)
from PIL import Image
Image.new("RGB", (64, 16), (200, 30, 30)).save(out / "samples" / "step_000010.png")
with open(out / "log.jsonl", "a") as f:
    f.write(json.dumps({{"event": "start", "step": 0}}) + "\\n")
    for step in range(10, steps + 1, 10):
        f.write(json.dumps({{"step": step, "loss_g": 1.0 / step, "images_per_s": 5.0}}) + "\\n")
    f.write(json.dumps({{"event": "done", "step": steps}}) + "\\n")
print("fake training done")
"""


def test_dialog_runs_the_trainer_and_reports_the_end(qtbot, data_dir, tmp_path):
    (paths.user_models_dir() / "base.safetensors").write_bytes(b"x")
    photos = tmp_path / "photos"
    photos.mkdir()
    fake = tmp_path / "fake_python"
    fake.write_text(FAKE_TRAINER.format(python=sys.executable))
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)

    dialog = FinetuneDialog(python=str(fake))
    qtbot.addWidget(dialog)
    assert dialog.base_model.currentText() == "base"
    assert not dialog.start()  # no folder chosen yet
    assert "photo folder" in dialog.figures.text()
    dialog.folder.setText(str(photos))
    dialog.steps.setValue(40)
    with qtbot.waitSignal(dialog.finished_training, timeout=20000) as ended:
        assert dialog.start()
    assert ended.args == [0]
    assert dialog.bar.value() == 40
    assert "step 40/40" in dialog.figures.text() and "Done" in dialog.figures.text()
    assert dialog.sample.pixmap() is not None and not dialog.sample.pixmap().isNull()
    assert "fake training done" in dialog.console.toPlainText()
    log = [json.loads(line) for line in (dialog.run_dir / "log.jsonl").read_text().splitlines()]
    assert log[-1]["event"] == "done"


def test_finished_training_refreshes_the_engine_list(window, monkeypatch):
    calls = []
    monkeypatch.setattr(window.service, "forget_engines", lambda: calls.append("forget"))
    monkeypatch.setattr(window.fill, "refresh_engines", lambda: calls.append("refresh"))
    window._on_training_done(0)
    assert calls == ["forget", "refresh"]
