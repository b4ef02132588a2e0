"""matrix.html in real headless Chromium: the DOM has the matrix, the screenshot is a real picture."""

from __future__ import annotations

import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from katatest.report import html
from katatest.report.summary import build_summary
from tests.test_report import DIMS, synthetic_tests

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (scripts/setup.sh installs it)")

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync")


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    reports = tmp_path_factory.mktemp("reports")
    (reports / "cells" / "arm64-initrd").mkdir(parents=True)
    (reports / "cells" / "arm64-initrd" / "argv.txt").write_text("/usr/bin/qemu-system-aarch64\n")
    summary = build_summary(synthetic_tests(), DIMS, {"arm64-initrd": ["argv.txt"]}, wall_time_s=42.0,
                            environment={"accel": {"verdict": "kvm", "reason": "/dev/kvm usable"}})
    return html.write(summary, reports / "matrix.html", reports)


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / "profile"
    cmd = [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


def _png(path: Path) -> tuple[int, int, bytes]:
    """(width, height, decompressed scanlines) of a PNG, with only the standard library."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, size = 8, b"", (0, 0)
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            size = struct.unpack(">II", body[:8])
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    return size[0], size[1], zlib.decompress(idat)


def test_dom_has_the_matrix(page, tmp_path):
    run = _chromium(tmp_path, "--dump-dom", page.as_uri())
    dom = run.stdout
    assert run.returncode == 0 and '<table id="matrix">' in dom, run.stderr[-2000:]
    for cell in DIMS:
        assert f'data-cell="{cell}"' in dom
    assert dom.count('class="cell-row') == len(DIMS)
    assert 'class="group outcome-failed"' in dom and 'class="group outcome-skipped"' in dom
    assert 'id="accel"' in dom and "Acceleration: KVM" in dom
    assert 'href="cells/arm64-initrd/argv.txt"' in dom


def test_screenshot_is_a_real_picture(page, tmp_path):
    shot = tmp_path / "shot.png"
    run = _chromium(tmp_path, f"--screenshot={shot}", "--window-size=1400,900", page.as_uri())
    assert shot.is_file(), run.stderr[-2000:]
    width, height, pixels = _png(shot)
    assert (width, height) == (1400, 900)
    assert shot.stat().st_size > 20_000, "screenshot suspiciously small (blank page?)"
    assert len(set(pixels)) > 50, "screenshot has almost no distinct colour values (blank page?)"
