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


def test_dialog_runs_the_trainer_and_reports_the_end(qtbot, data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("INPAINT_STUDIO_RESOURCES", str(tmp_path / "no_shipped_models"))
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


def test_start_from_any_model_file_or_from_scratch_with_docs_and_an_estimate(qtbot, data_dir, tmp_path, monkeypatch):
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QLabel

    from inpaint_studio.ui import train_dialog
    from inpaint_studio.ui.train_dialog import BROWSE, SCRATCH, export_arguments, scratch_arguments, time_left

    monkeypatch.setenv("INPAINT_STUDIO_RESOURCES", str(tmp_path / "no_shipped_models"))
    elsewhere = tmp_path / "downloads" / "someone_elses.safetensors"
    elsewhere.parent.mkdir()
    elsewhere.write_bytes(b"x")
    monkeypatch.setattr(train_dialog.QFileDialog, "getOpenFileName",
                        staticmethod(lambda *a, **k: (str(elsewhere), "")))
    dialog = FinetuneDialog(python=sys.executable)
    qtbot.addWidget(dialog)
    dialog.show()
    box = dialog.base_model
    # No model ships: the list still offers another file and a start from scratch.
    assert box.findData(BROWSE) >= 0 and box.findData(SCRATCH) >= 0
    assert box.currentData() == BROWSE  # nothing shipped in this test's folders
    box.setFocus()
    QTest.keyClick(box, Qt.Key.Key_Down)  # From scratch
    assert box.currentData() == SCRATCH
    assert "100,000 steps" in dialog.hint.text() and "this machine" in dialog.hint.text()
    QTest.keyClick(box, Qt.Key.Key_Up)  # Another model file… opens the (patched) file dialog
    assert box.currentData() == str(elsewhere) and box.currentText() == elsewhere.name
    assert box.findData(BROWSE) >= 0  # still offered for a further file
    docs = dialog.findChild(QLabel, "docs_link")
    assert "README.md" in docs.text() and docs.openExternalLinks()
    assert scratch_arguments(Path("/p"), Path("/r"), 50)[:5] == ["-m", "trainer", "train", "--arch", "deepfill_v2"]
    assert export_arguments(Path("/r")) == ["-m", "trainer", "export", "--checkpoint", "/r"]
    assert time_left(100, 0.5) == "about 50 s"
    assert time_left(1000, 3.0) == "about 50 min"
    assert time_left(1000, 6.0) == "about 1 h 40 min"
    assert time_left(100_000, 6.0) == "about 6.9 days"


def test_finetune_sits_under_tools(window):
    tools = [m for m in window.menuBar().actions() if m.text() == "&Tools"][0].menu()
    file_menu = [m for m in window.menuBar().actions() if m.text() == "&File"][0].menu()
    assert window.actions.finetune in tools.actions()
    assert window.actions.finetune not in file_menu.actions()
