"""Small dialogs: preferences, error and confirmation boxes, the restore offer.

Message boxes go through these functions so tests can patch one place.
"""

from __future__ import annotations

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QMessageBox,
    QSpinBox,
    QWidget,
)

from ..engine import STRATEGIES
from .settings import Preferences

STRATEGY_TEXT = {
    "crop": "Crop around each hole (best for large photos)",
    "resize": "Resize the whole photo down",
    "full": "Whole photo at full size",
}


def show_error(parent: QWidget | None, title: str, text: str) -> None:
    QMessageBox.warning(parent, title, text)


def confirm(parent: QWidget | None, title: str, text: str, yes_text: str = "Yes") -> bool:
    box = QMessageBox(QMessageBox.Icon.Question, title, text, parent=parent)
    yes = box.addButton(yes_text, QMessageBox.ButtonRole.AcceptRole)
    box.addButton(QMessageBox.StandardButton.Cancel)
    box.exec()
    return box.clickedButton() is yes


def ask_restore(parent: QWidget | None) -> bool:
    """After a crash: restore the autosaved session?"""
    return QMessageBox.question(
        parent, "Restore session",
        "Inpaint Studio did not close cleanly last time.\nRestore the autosaved session "
        "(photo, mask, sketch and applied fills)?",
    ) == QMessageBox.StandardButton.Yes


def ask_discard_changes(parent: QWidget | None, lost: list[str]) -> bool:
    """Ask before dropping ``lost`` (phrases such as "the painted mask")."""
    listed = lost[0] if len(lost) == 1 else ", ".join(lost[:-1]) + " and " + lost[-1]
    return confirm(parent, "Discard changes?", f"This photo has {listed}. Discard them?", "Discard")


class PreferencesDialog(QDialog):
    """HD strategy and its parameters, autosave interval."""

    def __init__(self, prefs: Preferences, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Preferences")
        form = QFormLayout(self)
        self.strategy = QComboBox()
        for name in STRATEGIES:
            self.strategy.addItem(STRATEGY_TEXT.get(name, name), name)
        self.strategy.setCurrentIndex(max(0, self.strategy.findData(prefs.strategy)))
        self.crop_margin = self._spin(0, 1024, prefs.crop_margin, " px")
        self.resize_limit = self._spin(64, 8192, prefs.resize_limit, " px")
        self.autosave = self._spin(0, 3600, prefs.autosave_seconds, " s")
        self.autosave.setSpecialValueText("off")
        form.addRow("HD strategy", self.strategy)
        form.addRow("Context around a hole", self.crop_margin)
        form.addRow("Resize to (longer side)", self.resize_limit)
        form.addRow("Autosave every", self.autosave)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    @staticmethod
    def _spin(low: int, high: int, value: int, suffix: str) -> QSpinBox:
        spin = QSpinBox()
        spin.setRange(low, high)
        spin.setValue(value)
        spin.setSuffix(suffix)
        return spin

    def apply_to(self, prefs: Preferences) -> None:
        prefs.strategy = self.strategy.currentData()
        prefs.crop_margin = self.crop_margin.value()
        prefs.resize_limit = self.resize_limit.value()
        prefs.autosave_seconds = self.autosave.value()
