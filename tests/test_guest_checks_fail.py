"""The suites' guest checks can fail: they measure the booted guest, not the harness's own inputs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.usefixtures("isolated_env")  # sub-sessions with their own TMPDIR/XDG_RUNTIME_DIR

# Kata 3.0.0 accepts any msize_9p and its agent mounts with it; Linux 6.1's virtio 9p transport caps msize at
# 125 pages (512000), so the guest's own mount options disagree with the configuration.
MSIZE_MATRIX = """
[matrices]
default = ["msize-beyond-virtio"]

[cell.msize-beyond-virtio]
arch = "amd64"
rootfs = "initrd"
shared_fs = "virtio-9p"
block_driver = "virtio-blk"
variant = "harness-self-test"
set = { "hypervisor.qemu.msize_9p" = 1048576 }
"""


@pytest.mark.boot
def test_9p_msize_check_reads_the_guest_mount(tmp_path):
    (tmp_path / "matrix.toml").write_text(MSIZE_MATRIX)
    reports = tmp_path / "reports"
    run = subprocess.run([sys.executable, "-m", "pytest", "suites/test_shared_fs.py", "-p", "no:cacheprovider", "-q",
                          "--katatest-reports", str(reports), "--katatest-matrix", str(tmp_path / "matrix.toml")],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 1, run.stdout[-2000:] + run.stderr[-2000:]
    summary = json.loads((reports / "summary.json").read_text())
    failing = [t for t in summary["tests"] if t["outcome"] == "failed"]
    assert [t["nodeid"].split("::")[1].split("[")[0] for t in failing] == ["test_9p_msize_is_the_configured_one"]
    assert "msize=512000, msize_9p is 1048576" in run.stdout, run.stdout[-2000:]
    passed = [t for t in summary["tests"] if t["outcome"] == "passed"]
    assert any("test_kata_shared_is_mounted_with_the_configured_fs" in t["nodeid"] for t in passed)
