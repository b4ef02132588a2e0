"""The harness itself: a deliberately broken cell shows up as a failing check with its console log linked."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from tests.faults.helpers import FAST_CELL
from tests.faults.qemu_dies_after import CELL_ENV

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.usefixtures("isolated_env")  # sub-sessions with their own TMPDIR/XDG_RUNTIME_DIR


def run_suites(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess, Path]:
    """``pytest suites/test_cmdline.py ARGS`` in its own session, with its own reports dir."""
    reports = tmp_path / "reports"
    run = subprocess.run([sys.executable, "-m", "pytest", "suites/test_cmdline.py", "-p", "no:cacheprovider", "-q",
                          "--katatest-reports", str(reports), *args],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    return run, reports


def write_matrix(tmp_path: Path, text: str) -> str:
    path = tmp_path / "matrix.toml"
    path.write_text(text)
    return str(path)


MATRIX = """
[matrices]
default = ["broken-cmdline"]

[cell.broken-cmdline]
description = "amd64 initrd cell whose expectation has a kernel parameter Kata never generates"
arch = "amd64"
rootfs = "initrd"
shared_fs = "virtio-9p"
block_driver = "virtio-blk"
variant = "harness-self-test"
expect = { cmdline_extra = "katatest.broken=1" }
"""


@pytest.mark.boot
def test_broken_expectation_fails_with_console_log_linked(tmp_path):
    run, reports = run_suites(tmp_path, "--katatest-matrix", write_matrix(tmp_path, MATRIX),
                              "--junitxml", str(tmp_path / "reports" / "junit.xml"))
    assert run.returncode == 1, run.stdout[-2000:] + run.stderr[-2000:]
    summary = json.loads((reports / "summary.json").read_text())
    (cell,) = [c for c in summary["cells"] if c["name"] == "broken-cmdline"]
    assert cell["outcome"] == "failed"
    assert cell["groups"]["cmdline"]["outcome"] == "failed"
    failing = [t for t in summary["tests"] if t["outcome"] == "failed"]
    assert [t["nodeid"].split("::")[1].split("[")[0] for t in failing] == ["test_guest_cmdline_equals_generated_append"]
    assert failing[0]["message"].startswith("AssertionError"), failing[0]["message"]
    assert "katatest.broken=1" in run.stdout, "the failure output shows the injected parameter"
    console = reports / "cells" / "broken-cmdline" / "console.log"
    assert console.is_file() and "KATATEST-READY" in console.read_text(errors="replace")
    html = (reports / "matrix.html").read_text()
    assert "cells/broken-cmdline/index.html" in html
    assert '<a href="console.log">console.log</a>' in (reports / "cells" / "broken-cmdline" / "index.html").read_text()
    assert '<span class="tag tag-release" data-dim="release">3.0.0</span>' in html  # the Kata release tag
    assert cell["dims"]["release"] == "3.0.0"
    junit = (reports / "junit.xml").read_text()
    assert 'katatest_cell' in junit and '<property name="katatest_kata_version" value="3.0.0"' in junit


BAD_ARGV_MATRIX = """
[matrices]
default = ["bogus-machine-option"]

[cell.bogus-machine-option]
arch = "amd64"
rootfs = "initrd"
shared_fs = "virtio-9p"
block_driver = "virtio-blk"
set = { "hypervisor.qemu.machine_accelerators" = "dump-guest-core=bogus" }
"""


@pytest.mark.boot
def test_argv_qemu_refuses_is_an_error_not_a_skip(tmp_path):
    """Only known Kata-vs-QEMU gaps become skipped findings; a config QEMU refuses otherwise errors."""
    run, reports = run_suites(tmp_path, "--katatest-matrix", write_matrix(tmp_path, BAD_ARGV_MATRIX))
    assert run.returncode == 1, run.stdout[-2000:]
    summary = json.loads((reports / "summary.json").read_text())
    (cell,) = summary["cells"]
    assert cell["outcome"] == "error"
    assert "dump-guest-core" in cell["groups"]["cmdline"]["message"]
    assert (reports / "cells" / "bogus-machine-option" / "qemu-stderr.log").is_file()


@pytest.mark.boot
def test_installed_kata_config_is_the_base_of_host_arch_cells(tmp_path):
    """--kata-config: the installed config's keys reach the booted amd64 guest; arm64 cells keep Kata's own."""
    if platform.machine() != "x86_64":
        pytest.skip("the installed config in this test is an amd64 one; this host is not amd64")
    installed = tmp_path / "configuration-qemu.toml"
    shipped = (ROOT / "katatest" / "data" / "base" / "configuration-qemu-amd64.toml").read_text()
    installed.write_text(shipped.replace('kernel_params = ""', 'kernel_params = "katatest.installed=1"'))
    run, reports = run_suites(tmp_path, "-k", "amd64-initrd-9p-blk or arm64-initrd", "--kata-config", str(installed))
    assert run.returncode == 0, run.stdout[-2000:]
    assert "katatest.installed=1" in (reports / "cells" / "amd64-initrd-9p-blk" / "argv.txt").read_text()
    assert "katatest.installed=1" not in (reports / "cells" / "arm64-initrd" / "argv.txt").read_text()


@pytest.mark.boot
def test_qemu_gone_after_the_last_check_fails_the_cell(tmp_path, monkeypatch):
    """A cell's only check passes, then its QEMU dies (``tests.faults.qemu_dies_after``): that cell fails at its
    test's teardown naming it, instead of passing on a VM that did not outlive its checks; the next cell (its
    guest set up while the dead one is let go) passes."""
    monkeypatch.setenv(CELL_ENV, FAST_CELL)
    run, reports = run_suites(tmp_path, "-k", f"{FAST_CELL} and test_guest_cmdline_equals_generated_append",
                              "-p", "tests.faults.qemu_dies_after")
    assert run.returncode == 1, run.stdout[-2000:] + run.stderr[-2000:]
    assert "QEMU did not outlive the cell's checks" in run.stdout, run.stdout[-3000:]
    summary = json.loads((reports / "summary.json").read_text())
    outcomes = {c["name"]: c["outcome"] for c in summary["cells"] if c["name"].startswith(FAST_CELL)}
    assert outcomes == {FAST_CELL: "error", f"{FAST_CELL}@4.1.0": "passed"}, outcomes
    (dead,) = [t for t in summary["tests"] if t["outcome"] != "passed" and "cmdline" in t["nodeid"]]
    assert f"[{FAST_CELL}]" in dead["nodeid"] and "did not outlive" in dead["message"], dead
