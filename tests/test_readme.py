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
