"""Fine-tune from the app: runs ``python -m trainer finetune ...`` in a QProcess and follows
its ``log.jsonl`` (progress bar, live loss figures) and ``samples/`` (latest preview).

When the process ends, ``finished_training`` tells the window to refresh its engine list
(the trainer exports the new model into the user's models folder).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from PySide6.QtCore import QProcess, QProcessEnvironment, Qt, QTimer, Signal
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from .. import paths
from .training_log import LogTail, TrainingProgress

PROJECT_ROOT = Path(__file__).resolve().parents[2]
BROWSE, SCRATCH = "__browse__", "__scratch__"  # special entries of "Start from"
SCRATCH_ARCH = "deepfill_v2"
SCRATCH_STEPS = 100_000  # what a usable model from scratch needs (the trainer's default)
DOCS_LINK = (f'<a href="{(PROJECT_ROOT / "README.md").as_uri()}">README, section Training</a>')


def available_base_models() -> list[Path]:
    """Model files a fine-tune can start from (shipped first, then the user's)."""
    found: list[Path] = []
    for folder in paths.model_search_dirs():
        if folder.is_dir():
            found.extend(sorted(folder.glob("*.safetensors")))
    return found


def finetune_arguments(base_model: Path, photos: Path, run_dir: Path, steps: int) -> list[str]:
    """Arguments after the Python executable for the trainer's ``finetune`` command."""
    return ["-m", "trainer", "finetune", "--init", str(base_model), "--data", str(photos),
            "--out", str(run_dir), "--steps", str(steps)]


def scratch_arguments(photos: Path, run_dir: Path, steps: int) -> list[str]:
    """Arguments for training :data:`SCRATCH_ARCH` from scratch on ``photos``."""
    return ["-m", "trainer", "train", "--arch", SCRATCH_ARCH, "--data", str(photos),
            "--out", str(run_dir), "--steps", str(steps)]


def export_arguments(run_dir: Path) -> list[str]:
    """Arguments exporting a from-scratch run into the user models folder (``finetune``
    exports by itself; ``train`` does not)."""
    return ["-m", "trainer", "export", "--checkpoint", str(run_dir)]


def time_left(steps_left: int, seconds_per_step: float) -> str:
    """``"about 3 h 20 min"``-style text for ``steps_left`` steps at ``seconds_per_step``."""
    seconds = max(0.0, steps_left * seconds_per_step)
    if seconds < 90:
        return f"about {seconds:.0f} s"
    minutes = seconds / 60
    if minutes < 90:
        return f"about {minutes:.0f} min"
    hours = minutes / 60
    if hours < 48:
        return f"about {int(hours)} h {int(minutes % 60)} min"
    return f"about {hours / 24:.1f} days"


def new_run_dir() -> Path:
    return paths.user_data_path() / "runs" / time.strftime("finetune-%Y%m%d-%H%M%S")


class FinetuneDialog(QDialog):
    """Pick a photo folder and a base model, run the trainer, watch it, cancel it."""

    finished_training = Signal(int)  # the trainer's exit code

    POLL_MS = 1000

    def __init__(self, parent: QWidget | None = None, python: str = sys.executable) -> None:
        super().__init__(parent)
        self.setWindowTitle("Fine-tune a model on your photos")
        self.resize(640, 560)
        self.python = python
        self.process: QProcess | None = None
        self.run_dir: Path | None = None
        self.tail: LogTail | None = None
        self.progress = TrainingProgress()
        self._shown_sample: Path | None = None

        self.folder = QLineEdit()
        self.folder.setPlaceholderText("A folder of your photos (searched recursively)")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        folder_row = QHBoxLayout()
        folder_row.addWidget(self.folder, 1)
        folder_row.addWidget(browse)
        self.base_model = QComboBox()
        for model in available_base_models():
            self.base_model.addItem(model.stem, str(model))
        self.base_model.addItem("Another model file…", BROWSE)
        self.base_model.addItem("From scratch (DeepFill v2, no model needed)", SCRATCH)
        self.base_model.setToolTip("The model to adapt: a shipped or fine-tuned *.safetensors "
                                   "file, any model file on disk, or nothing (from scratch)")
        self._last_choice = 0
        self.base_model.activated.connect(self._on_base_chosen)
        self.steps = QSpinBox()
        self.steps.setRange(10, 1_000_000)
        self.steps.setValue(2000)
        self.steps.setSingleStep(100)
        self.hint = QLabel()
        self.hint.setWordWrap(True)
        docs = QLabel(f"How training works, and what it needs: {DOCS_LINK}")
        docs.setOpenExternalLinks(True)
        docs.setObjectName("docs_link")

        form = QFormLayout()
        form.addRow("Photos", folder_row)
        form.addRow("Start from", self.base_model)
        form.addRow("Steps", self.steps)
        form.addRow(self.hint)
        form.addRow(docs)

        self.bar = QProgressBar()
        self.bar.setRange(0, self.steps.value())
        self.bar.setValue(0)
        self.figures = QLabel("Not started.")
        self.figures.setWordWrap(True)
        self.sample = QLabel()
        self.sample.setMinimumHeight(160)
        self.sample.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.console = QPlainTextEdit()
        self.console.setReadOnly(True)
        self.console.setMaximumBlockCount(500)
        self.start_button = QPushButton("Start")
        self.start_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel training")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        close = QPushButton("Close")
        close.clicked.connect(self.close)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        for b in (self.start_button, self.cancel_button, close):
            buttons.addWidget(b)

        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.bar)
        layout.addWidget(self.figures)
        layout.addWidget(self.sample, 1)
        layout.addWidget(self.console, 1)
        layout.addLayout(buttons)

        self._poll = QTimer(self)
        self._poll.setInterval(self.POLL_MS)
        self._poll.timeout.connect(self.poll)
        self._export_after: list[str] | None = None  # a from-scratch run exports at the end
        self._show_hint()

    @property
    def from_scratch(self) -> bool:
        return self.base_model.currentData() == SCRATCH

    def _on_base_chosen(self, index: int) -> None:
        if self.base_model.itemData(index) == BROWSE:
            path, _ = QFileDialog.getOpenFileName(self, "Model to start from", str(Path.home()),
                                                  "Models (*.safetensors);;All files (*)")
            if path:
                self.add_base_model(Path(path))
            else:
                self.base_model.setCurrentIndex(self._last_choice)
        self._last_choice = self.base_model.currentIndex()
        self._show_hint()

    def add_base_model(self, path: Path) -> None:
        """Offer ``path`` (any model file) as the start and select it."""
        index = self.base_model.findData(str(path))
        if index < 0:
            index = self.base_model.findData(BROWSE)
            self.base_model.insertItem(index, path.name, str(path))
        self.base_model.setCurrentIndex(index)
        self._last_choice = index

    def _show_hint(self) -> None:
        if self.from_scratch:
            self.steps.setValue(max(self.steps.value(), 20_000))
            self.hint.setText(
                f"From scratch, a usable model needs about {SCRATCH_STEPS:,} steps. The time "
                "left on this machine shows after the first steps; the model is exported into "
                "the engine list when the run ends.")
        else:
            self.hint.setText("Fine-tuning adapts the model to your photos in a few thousand "
                              "steps; the time left on this machine shows after the first steps.")

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Photo folder", self.folder.text() or str(Path.home()))
        if folder:
            self.folder.setText(folder)

    # ------------------------------------------------------------------ process
    def start(self) -> bool:
        """Validate the inputs and start the trainer; False (with the reason shown) if not."""
        photos = Path(self.folder.text().strip()).expanduser()
        model = self.base_model.currentData()
        if not self.folder.text().strip() or not photos.is_dir():
            self.figures.setText("Choose an existing photo folder first.")
            return False
        if not model or model == BROWSE:
            self.figures.setText("Choose a model file to start from, or From scratch.")
            return False
        self.run_dir = new_run_dir()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.tail = LogTail(self.run_dir / "log.jsonl")
        self.progress = TrainingProgress(total_steps=self.steps.value())
        self.bar.setRange(0, self.steps.value())
        self.bar.setValue(0)
        process = QProcess(self)
        process.setWorkingDirectory(str(PROJECT_ROOT))
        env = QProcessEnvironment.systemEnvironment()
        env.insert("PYTHONUNBUFFERED", "1")
        process.setProcessEnvironment(env)
        process.setProcessChannelMode(QProcess.ProcessChannelMode.MergedChannels)
        process.readyReadStandardOutput.connect(self._read_output)
        process.finished.connect(self._on_finished)
        process.errorOccurred.connect(self._on_error)
        self.process = process
        if model == SCRATCH:
            args = scratch_arguments(photos, self.run_dir, self.steps.value())
            self._export_after = export_arguments(self.run_dir)
        else:
            args = finetune_arguments(Path(model), photos, self.run_dir, self.steps.value())
            self._export_after = None
        self._t_start = time.monotonic()
        self.console.appendPlainText(f"$ {self.python} {' '.join(args)}")
        process.start(self.python, args)
        self.start_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.figures.setText("Starting…")
        self._poll.start()
        return True

    def cancel(self) -> None:
        """Stop the trainer: terminate, then kill if it has not stopped in 5 s."""
        if self.process is None or self.process.state() == QProcess.ProcessState.NotRunning:
            return
        self.console.appendPlainText("Cancelling…")
        self.process.terminate()
        QTimer.singleShot(5000, self._kill_if_running)

    def _kill_if_running(self) -> None:
        if self.process is not None and self.process.state() != QProcess.ProcessState.NotRunning:
            self.process.kill()

    def _read_output(self) -> None:
        if self.process is not None:
            text = bytes(self.process.readAllStandardOutput()).decode("utf-8", "replace")
            # tqdm redraws with carriage returns; keep the last redraw of each line.
            for line in text.replace("\r\n", "\n").split("\n"):
                line = line.rsplit("\r", 1)[-1].rstrip()
                if line:
                    self.console.appendPlainText(line)

    def _on_error(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart:
            self.figures.setText(f"Could not start {self.python}.")
            self._finish(-1)

    def _on_finished(self, exit_code: int, status: QProcess.ExitStatus) -> None:
        self.poll()
        crashed = status == QProcess.ExitStatus.CrashExit
        if exit_code == 0 and not crashed and self._export_after is not None:
            args, self._export_after = self._export_after, None
            self.figures.setText(f"Training done. {self.progress.summary()}\nExporting the model…")
            self.console.appendPlainText(f"$ {self.python} {' '.join(args)}")
            self.process.start(self.python, args)  # _on_finished runs again at its end
            return
        if exit_code == 0 and not crashed:
            self.bar.setValue(self.bar.maximum())
            self.figures.setText(f"Done. {self.progress.summary()}\nThe new model is in the engine list.")
        else:
            self.figures.setText(f"Training stopped (exit code {exit_code}). {self.progress.summary()}")
        self._finish(exit_code if not crashed else -1)

    def _finish(self, code: int) -> None:
        self._poll.stop()
        self.start_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.finished_training.emit(code)

    # ------------------------------------------------------------------ progress
    def poll(self) -> None:
        """Read new log lines and show the newest sample image."""
        if self.tail is None or self.run_dir is None:
            return
        records = self.tail.read_new()
        for record in records:
            self.progress.update(record)
        if records:
            if self.progress.total_steps:
                self.bar.setMaximum(self.progress.total_steps)
            self.bar.setValue(min(self.progress.step, self.bar.maximum()))
            self.figures.setText(self.progress.summary() + self._eta())
        samples = sorted((self.run_dir / "samples").glob("*.png"), key=lambda p: p.stat().st_mtime)
        if samples and samples[-1] != self._shown_sample:
            pixmap = QPixmap(str(samples[-1]))
            if not pixmap.isNull():
                self._shown_sample = samples[-1]
                self.sample.setPixmap(pixmap.scaled(self.sample.width(), max(160, self.sample.height()),
                                                    Qt.AspectRatioMode.KeepAspectRatio,
                                                    Qt.TransformationMode.SmoothTransformation))

    def _eta(self) -> str:
        """`` · about 40 min left`` from this machine's own pace so far (empty before the
        first steps)."""
        done, total = self.progress.step, self.progress.total_steps
        elapsed = time.monotonic() - getattr(self, "_t_start", time.monotonic())
        if done <= 0 or not total or done >= total or elapsed <= 0:
            return ""
        return f" · {time_left(total - done, elapsed / done)} left on this machine"

    def closeEvent(self, event) -> None:
        if self.process is not None and self.process.state() != QProcess.ProcessState.NotRunning:
            self.cancel()
            self.process.waitForFinished(6000)
        super().closeEvent(event)
