"""Import hygiene of the CLI (issue 9, item 6): ``render``, ``explain`` and ``lint`` run on the standard library
alone (tomli below 3.11); ``boot`` and ``doctor`` without their packages are one line naming the package and the
set-up command. Each case runs ``python -m katatest`` in a subprocess whose imports of anything but the
standard library and katatest are refused."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from katatest.conformance.vectors import normalise

REPO = Path(__file__).resolve().parent.parent
NAMED = REPO / "tests" / "data" / "conformance" / "kata-3.0.0" / "named"
DEFAULT = NAMED / "default.toml"
DEFAULT_FLAGS = shlex.split((NAMED / "default.flags").read_text())
SHIPPED = REPO / "katatest" / "data" / "base" / "configuration-qemu-amd64.toml"

# Run as ``python -c BLOCKER ARGS``: refuse every third-party import, then run ``python -m katatest ARGS``.
BLOCKER = r"""
import importlib.abc, runpy, sys
THIRD_PARTY = {"testinfra", "qemu", "pytest", "_pytest", "xdist", "hypothesis", "pluggy"}
ALLOWED = {"katatest", "tomli"}
STDLIB = getattr(sys, "stdlib_module_names", None)

def refused(name):
    top = name.partition(".")[0]
    if top in ALLOWED:
        return False
    return top in THIRD_PARTY or (STDLIB is not None and top not in STDLIB and top not in sys.builtin_module_names)

class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if refused(name):
            raise ModuleNotFoundError(f"No module named {name!r} (refused by the test)", name=name)
        return None

already = sorted(n for n in sys.modules if n.partition(".")[0] in THIRD_PARTY)
if already:
    raise SystemExit(f"imported before the blocker: {already}")
sys.meta_path.insert(0, Refuse())
sys.argv[0] = "katatest"
runpy.run_module("katatest", run_name="__main__", alter_sys=True)
"""


def run_blocked(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", BLOCKER, *args], capture_output=True, text=True, cwd=REPO,
                          timeout=60)


def test_render_needs_only_the_standard_library() -> None:
    proc = run_blocked("render", str(DEFAULT), *DEFAULT_FLAGS)
    assert (proc.returncode, proc.stderr) == (0, "")
    assert normalise(proc.stdout.splitlines()) == normalise((NAMED / "default.argv").read_text().splitlines())


@pytest.mark.parametrize("args", [["explain", str(DEFAULT), *DEFAULT_FLAGS],
                                  ["explain", str(DEFAULT), *DEFAULT_FLAGS, "--virtiofsd"],
                                  ["render", str(SHIPPED), "--format", "json"],
                                  ["lint", str(SHIPPED)],
                                  ["--help"], ["boot", "--help"]])
def test_generation_commands_need_only_the_standard_library(args: list[str]) -> None:
    proc = run_blocked(*args)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout and proc.stderr == ""


@pytest.mark.parametrize(("args", "package"), [(["boot", str(SHIPPED)], "pytest-testinfra"),
                                               (["boot", str(SHIPPED), "--host-cpus", "2", "--", "true"],
                                                "pytest-testinfra"),
                                               (["doctor"], "qemu.qmp")])
def test_missing_dependency_is_one_line(args: list[str], package: str) -> None:
    proc = run_blocked(*args)
    lines = proc.stderr.splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert lines[0].startswith(f"katatest: {args[0]} needs the Python package {package}"), lines[0]
    assert lines[0].endswith("bash scripts/setup.sh"), lines[0]
    assert proc.stdout == ""


def test_only_the_chosen_subcommand_is_imported() -> None:
    """``render`` never imports the launcher, the assets builder, the report or the guest channel."""
    probe = ("import sys, katatest.cli as c\n"
             "c.main(['render', sys.argv[1], '--format', 'shell'])\n"
             "print(' '.join(sorted(m for m in sys.modules if m.startswith('katatest.'))), file=sys.stderr)\n")
    proc = subprocess.run([sys.executable, "-c", probe, str(DEFAULT)], capture_output=True, text=True,
                          cwd=REPO, timeout=60)
    assert proc.returncode == 0, proc.stderr
    loaded = set(proc.stderr.split())
    assert "katatest.cli.render" in loaded
    for heavy in ("katatest.guest.boot", "katatest.cli.boot", "katatest.cli.lint", "katatest.launch", "katatest.guest",
                  "katatest.assets", "katatest.report"):
        assert heavy not in loaded, sorted(loaded)
