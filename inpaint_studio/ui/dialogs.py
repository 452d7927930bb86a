"""Small dialogs: preferences, error and confirmation boxes, the restore offer.

Message boxes go through these functions so tests can patch one place.
"""

from __future__ import annotations

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QInputDialog,
    QMessageBox,
    QSpinBox,
    QWidget,
)

from ..engine import STRATEGIES
from .settings import PRECISIONS, TEXTURES, Preferences

OVERLAY_COLORS = (("#ff3030", "Red"), ("#30d0ff", "Cyan"), ("#40ff40", "Green"),
                  ("#ff40ff", "Magenta"), ("#ffe030", "Yellow"), ("#3050ff", "Blue"))
PRECISION_TEXT = {"auto": "Automatic (bf16 where the CPU or GPU is fast at it)",
                  "fp32": "Full precision (fp32)", "bf16": "bfloat16 (faster, slightly less exact)"}
TEXTURE_TEXT = {"none": "Off", "patchmatch": "PatchMatch texture after a deep model"}

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


def ask_restore(parent: QWidget | None, photo: str, saved_at: str) -> bool:
    """After a crash: restore the autosaved session of ``photo`` (a file name, or "a
    pasted image") saved at ``saved_at`` (a readable time)?"""
    return QMessageBox.question(
        parent, "Restore session",
        f"Inpaint Studio did not close cleanly last time.\nRestore {photo} as autosaved at "
        f"{saved_at} (photo, mask, sketch and applied fills)?",
    ) == QMessageBox.StandardButton.Yes


def _listed(lost: list[str]) -> str:
    return lost[0] if len(lost) == 1 else ", ".join(lost[:-1]) + " and " + lost[-1]


def ask_save_changes(parent: QWidget | None, lost: list[str], can_save: bool) -> str:
    """Before replacing or closing a photo with unsaved work: ``"save"``, ``"discard"`` or
    ``"cancel"``. ``can_save``: offer Save (the applied fills are what Save keeps; a mask or
    an unapplied result is not saved into the photo, and the text says so)."""
    text = f"This photo has {_listed(lost)}."
    if can_save:
        text += "\nSave writes the photo with its applied fills."
    box = QMessageBox(QMessageBox.Icon.Question, "Save changes?", text, parent=parent)
    save = box.addButton(QMessageBox.StandardButton.Save) if can_save else None
    discard = box.addButton("Discard", QMessageBox.ButtonRole.DestructiveRole)
    box.addButton(QMessageBox.StandardButton.Cancel)
    box.setDefaultButton(save or discard)
    box.exec()
    clicked = box.clickedButton()
    if save is not None and clicked is save:
        return "save"
    return "discard" if clicked is discard else "cancel"


def ask_pixels(parent: QWidget | None, title: str, label: str, value: int = 4) -> int | None:
    """A pixel amount typed by the user (1-500), or None when cancelled."""
    amount, ok = QInputDialog.getInt(parent, title, label, value, 1, 500, 1)
    return int(amount) if ok else None


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
        self.grow = self._spin(0, 64, prefs.grow_before_fill, " px")
        self.grow.setSpecialValueText("off")
        self.grow.setToolTip("The hole a fill receives is grown by this much, so no half-masked "
                             "fringe of the object is copied into it")
        self.fill_gaps = QCheckBox("Fill small unmasked islands inside the hole")
        self.fill_gaps.setChecked(prefs.fill_gaps_before_fill)
        self.overlay_color = QComboBox()
        for value, text in OVERLAY_COLORS:
            self.overlay_color.addItem(text, value)
        index = self.overlay_color.findData(prefs.overlay_color)
        if index < 0:
            self.overlay_color.addItem(prefs.overlay_color, prefs.overlay_color)
            index = self.overlay_color.count() - 1
        self.overlay_color.setCurrentIndex(index)
        self.overlay_opacity = self._spin(5, 100, prefs.overlay_opacity, " %")
        self.precision = QComboBox()
        for name in PRECISIONS:
            self.precision.addItem(PRECISION_TEXT[name], name)
        self.precision.setCurrentIndex(max(0, self.precision.findData(prefs.precision)))
        self.texture = QComboBox()
        for name in TEXTURES:
            self.texture.addItem(TEXTURE_TEXT[name], name)
        self.texture.setCurrentIndex(max(0, self.texture.findData(prefs.texture)))
        self.harmonise = QCheckBox("Match a deep fill's colours to the photo along the hole's edge")
        self.harmonise.setChecked(prefs.harmonise)
        form.addRow("HD strategy", self.strategy)
        form.addRow("Context around a hole", self.crop_margin)
        form.addRow("Resize to (longer side)", self.resize_limit)
        form.addRow("Grow the hole before a fill", self.grow)
        form.addRow("", self.fill_gaps)
        form.addRow("Mask colour", self.overlay_color)
        form.addRow("Mask opacity", self.overlay_opacity)
        form.addRow("Deep model precision", self.precision)
        form.addRow("Texture stage", self.texture)
        form.addRow("", self.harmonise)
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
        prefs.grow_before_fill = self.grow.value()
        prefs.fill_gaps_before_fill = self.fill_gaps.isChecked()
        prefs.overlay_color = self.overlay_color.currentData()
        prefs.overlay_opacity = self.overlay_opacity.value()
        prefs.precision = self.precision.currentData()
        prefs.texture = self.texture.currentData()
        prefs.harmonise = self.harmonise.isChecked()
