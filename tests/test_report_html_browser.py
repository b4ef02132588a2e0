"""matrix.html in real headless Chromium: the DOM has the matrix, the screenshot is a real picture, and the
layout holds for the default and the full matrix at 1600 px (no horizontal scroll, dense rows, the default
matrix's every row on one 1600x1000 screen). Screenshots stay in the test's report directory."""

from __future__ import annotations

import shutil
import struct
import zlib
from pathlib import Path

import pytest

from katatest.matrix.model import DEFAULT_MATRIX_FILE, load_matrix
from katatest.report import browser, html
from katatest.report.summary import Boot, TestResult, build_summary
from tests.test_report import DIMS, synthetic_tests

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (scripts/setup.sh installs it)")
GROUPS = ("generation", "cmdline", "devices", "rootfs", "shared_fs", "topology", "qmp", "network", "hotplug")
MAX_ROW_PX = 28


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    reports = tmp_path_factory.mktemp("reports")
    (reports / "cells" / "arm64-initrd").mkdir(parents=True)
    (reports / "cells" / "arm64-initrd" / "argv.txt").write_text("/usr/bin/qemu-system-aarch64\n")
    summary = build_summary(synthetic_tests(), DIMS, {"arm64-initrd": ["argv.txt"]}, wall_time_s=42.0,
                            environment={"accel": {"verdict": "kvm", "reason": "/dev/kvm usable"}})
    return html.write(summary, reports / "matrix.html", reports)


def matrix_page(reports: Path, name: str) -> Path:
    """The page of a run of matrix ``name`` with real cell names and dimensions: every group of every cell
    run, some failing, some generation-only with Kata-length reasons, artifacts on disk."""
    cells = load_matrix(DEFAULT_MATRIX_FILE).named(name)
    tests, boots, artifacts = [], {}, {}
    for index, cell in enumerate(cells):
        skip = "" if index % 5 != 4 else ("cannot boot here [qemu-lacks]: Kata 3.0.0 on QEMU 11.1: QEMU lacks device "
                                          "virtio-blk-pci property scsi (QEMU 11.1.3 (amd64 guests): device "
                                          "virtio-blk-pci has no property scsi)")
        boots[cell.name] = Boot("skipped", skip) if skip else Boot("booted", "", 1)
        for group in GROUPS:
            outcome = "skipped" if skip and group != "generation" else "failed" if index % 9 == 3 else "passed"
            message = skip if outcome == "skipped" else "AssertionError: " + "x" * 200 if outcome == "failed" else ""
            tests += [TestResult(f"suites/test_{group}.py::test_{n}[{cell.name}]", outcome, 0.4, message, cell.name,
                                 group) for n in range(3)]
        (reports / "cells" / cell.name).mkdir(parents=True)
        for artifact in ("argv.txt", "console.log", "qemu.stderr", "qmp-pci.json"):
            (reports / "cells" / cell.name / artifact).write_text("x\n")
        artifacts[cell.name] = ["argv.txt", "console.log", "qemu.stderr", "qmp-pci.json"]
    dims = {c.name: c.dims for c in cells}
    summary = build_summary(tests, dims, artifacts, boots, wall_time_s=101.5,
                            environment={"accel": {"verdict": "tcg", "reason": "KVM guest took 1.44 s, TCG 0.07 s"}},
                            pytest_args=["suites", "-n", "2", "--junitxml=reports/junit.xml"])
    return html.write(summary, reports / "matrix.html", reports)


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
    run = browser.run_chromium("--dump-dom", page.as_uri())
    dom = run.stdout
    assert run.returncode == 0 and '<table id="matrix">' in dom, run.stderr[-2000:]
    for cell in DIMS:
        assert f'data-cell="{cell}"' in dom
    assert dom.count('class="cell-row') == len(DIMS)
    assert 'data-outcome="failed"><a class="outcome-failed" href="#problem-0"' in dom
    assert 'data-outcome="skipped"><span class="outcome-skipped"' in dom
    assert 'id="accel"' in dom and "Acceleration: KVM" in dom
    assert 'href="cells/arm64-initrd/index.html"' in dom


def test_screenshot_is_a_real_picture(page):
    shot = browser.screenshot(page, page.parent / "matrix.png", 1600, 1000)
    width, height, pixels = _png(shot)
    assert (width, height) == (1600, 1000)
    assert shot.stat().st_size > 20_000, "screenshot suspiciously small (blank page?)"
    assert len(set(pixels)) > 50, "screenshot has almost no distinct colour values (blank page?)"


@pytest.mark.parametrize(("name", "min_rows", "one_screen"), [("default", 30, True), ("full", 60, False)])
def test_the_matrix_layout_at_1600_px(tmp_path, name: str, min_rows: int, one_screen: bool):
    """No horizontal scroll and rows of at most 28 px for both matrices; the default one's every row on one
    1600x1000 screen. The screenshot stays in the report directory."""
    page = matrix_page(tmp_path, name)
    layout = browser.measure(page, 1600, 1000)
    assert layout.rows == len(load_matrix(DEFAULT_MATRIX_FILE).named(name)) >= min_rows
    assert not layout.scrolls_horizontally, layout
    assert layout.max_row_height <= MAX_ROW_PX, layout
    assert layout.every_row_on_screen or not one_screen, layout
    assert browser.screenshot(page, tmp_path / f"matrix-{name}.png").stat().st_size > 20_000


def test_a_too_wide_page_is_measured_as_one(tmp_path):
    """The measurement can fail: a page wider than the window scrolls sideways, and tall rows are seen."""
    page = tmp_path / "wide.html"
    page.write_text('<!DOCTYPE html><html><body><div style="width:2400px">wide</div><table id="matrix"><tbody>'
                    '<tr><td style="height:60px">tall</td></tr></tbody></table></body></html>')
    layout = browser.measure(page, 1600, 1000)
    assert layout.scrolls_horizontally and layout.max_row_height >= 60 and layout.rows == 1
