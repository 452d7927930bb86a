"""The README's set-up commands are the ones CI runs, and neither can pull CUDA packages."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    setup = text.split("## Set up", 1)[1].split("\n## ", 1)[0]
    return [block.strip() for block in re.findall(r"```bash\n(.*?)```", setup, flags=re.S)]


def test_readme_gives_exactly_two_setup_commands():
    commands = _readme_commands()
    assert len(commands) == 2, commands
    app, tests = commands
    assert "main.py" in app and "pytest" in tests


def test_ci_runs_the_readme_test_command_verbatim():
    test_command = _readme_commands()[1]
    ci_lines = (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert test_command in ci_lines


def test_setup_commands_install_the_cpu_torch_wheel_first():
    for command in _readme_commands():
        steps = [s.strip() for s in command.split("&&")]
        torch_steps = [i for i, s in enumerate(steps) if "torch" in s]
        assert torch_steps and "torch==2.13.0" in steps[torch_steps[0]], command
        project_install = next(i for i, s in enumerate(steps) if "pip install" in s and " -e " in s)
        assert torch_steps[0] < project_install, "torch must be installed before the project"


def test_torch_comes_from_pytorchs_cpu_index():
    # Plain PyPI resolves torch==2.13.0 to the CUDA build (about 20 nvidia/triton packages);
    # PyTorch's CPU index offers 2.13.0+cpu, which ranks above it (issue 13, item 10).
    for command in _readme_commands():
        torch_step = next(s.strip() for s in command.split("&&") if "torch==" in s)
        assert "https://download.pytorch.org/whl/cpu" in torch_step.split(), torch_step
        assert "--extra-index-url" in torch_step.split() or "--index-url" in torch_step.split()


def test_setup_says_how_to_run_headless_and_which_x11_libraries_qt_needs():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    setup = text.split("## Set up", 1)[1].split("\n## ", 1)[0]
    assert "QT_QPA_PLATFORM=offscreen" in setup
    # The ones Qt's own error does not name (it names xcb-cursor only).
    for package in ("libxcb-cursor0", "libxcb-icccm4", "libxcb-keysyms1", "libxkbcommon-x11-0"):
        assert package in setup, package
    assert "torch>=2.6" in setup
    pyproject = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    assert '"torch>=2.6"' in pyproject
