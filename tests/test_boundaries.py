"""The layering rule: only ``inpaint_studio/ui`` imports Qt, and nothing imports ``trainer``
except its own entry points."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parent.parent / "inpaint_studio"
QT_MODULES = ("PySide6", "PyQt5", "PyQt6", "shiboken6", "pytestqt")


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_only_ui_imports_qt():
    offenders = []
    for path in PKG.rglob("*.py"):
        if "ui" in path.relative_to(PKG).parts[:1]:
            continue
        bad = {m for m in _imported_modules(path) if m.split(".")[0] in QT_MODULES}
        if bad:
            offenders.append(f"{path.relative_to(PKG.parent)}: {sorted(bad)}")
    assert not offenders, "Qt imported outside inpaint_studio/ui: " + "; ".join(offenders)


def test_package_does_not_import_trainer():
    offenders = [
        str(path.relative_to(PKG.parent))
        for path in PKG.rglob("*.py")
        if any(m.split(".")[0] == "trainer" for m in _imported_modules(path))
    ]
    assert not offenders, f"inpaint_studio must not import trainer: {offenders}"


def test_core_imports_without_qt_loaded():
    import subprocess
    import sys

    code = (
        "import sys, inpaint_studio.engine, inpaint_studio.networks\n"
        "bad=[m for m in sys.modules if m.startswith(('PySide6','PyQt'))]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
