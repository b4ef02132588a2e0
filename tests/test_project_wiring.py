"""The README's commands and CI stay in step."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _readme_commands() -> list[str]:
    return [line.strip() for line in (ROOT / "README.md").read_text().splitlines()
            if line.startswith("    bash scripts/setup.sh &&")]


def test_readme_has_the_two_commands():
    commands = _readme_commands()
    assert len(commands) == 2, commands
    assert any(" suites" in c for c in commands) and any(" tests" in c for c in commands)


def test_ci_runs_the_readme_test_command_verbatim():
    test_command = next(c for c in _readme_commands() if " tests" in c)
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert test_command in ci_lines
