"""The reporting layer: outcomes, summary.json, matrix.html, shard merging, and the pytest plugin end to end."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path
from types import SimpleNamespace

import pytest

from katatest.cli import main
from katatest.report import artifacts, html
from katatest.report.merge import MergeError, merge
from katatest.report.outcomes import combine_phases, phase_outcome, worst
from katatest.report.summary import TestResult, build_summary, load, save
from katatest.report.terminal import lines

DIMS = {
    "amd64-nvdimm-virtiofs-scsi": {"arch": "amd64", "protection": "none", "rootfs": "image-nvdimm",
                                   "shared_fs": "virtio-fs", "block_driver": "virtio-scsi",
                                   "variant": "legacy-serial"},
    "arm64-initrd": {"arch": "arm64", "protection": "none", "rootfs": "initrd", "shared_fs": "virtio-fs",
                     "block_driver": "virtio-blk", "variant": "default"},
    "amd64-sev": {"arch": "amd64", "protection": "sev", "rootfs": "initrd", "shared_fs": "none",
                  "block_driver": "virtio-scsi", "variant": "default"},
}


def _t(cell, group, outcome, message="", name="t"):
    return TestResult(f"suites/test_{group}.py::test_{name}[{cell}]", outcome, 0.5, message, cell, group)


def synthetic_tests() -> list[TestResult]:
    a, arm, sev = DIMS
    return [
        _t(a, "cmdline", "passed"), _t(a, "cmdline", "skipped", "no pmem", name="u"), _t(a, "qmp", "passed"),
        _t(arm, "cmdline", "failed", "AssertionError: console=ttyAMA0 missing"), _t(arm, "cmdline", "passed", name="u"),
        _t(arm, "devices", "passed"),
        _t(sev, "qmp", "error", "setup: QEMU exited: sev-guest unsupported"), _t(sev, "devices", "skipped", "no SEV"),
        TestResult("tests/test_x.py::test_plain", "passed", 0.1),
    ]


def _report(when, outcome, longrepr=None, wasxfail=None):
    r = SimpleNamespace(when=when, passed=outcome == "passed", failed=outcome == "failed",
                        skipped=outcome == "skipped", longrepr=longrepr)
    if wasxfail is not None:
        r.wasxfail = wasxfail
    return r


# --- outcomes ---------------------------------------------------------------------------------------------


def test_worst_follows_the_precedence():
    assert worst(["skipped", "passed"]) == "passed"
    assert worst(["passed", "error", "skipped"]) == "error"
    assert worst(["error", "failed"]) == "failed"
    assert worst(["skipped"]) == "skipped"
    assert worst([]) is None


def test_phase_messages():
    crash = SimpleNamespace(reprcrash=SimpleNamespace(message="AssertionError: bad argv\nassert 1 == 2"))
    assert phase_outcome(_report("call", "failed", crash)) == ("failed", "AssertionError: bad argv")
    assert phase_outcome(_report("setup", "failed", "long\nE   RuntimeError: boom\nmore")) == \
        ("error", "setup: RuntimeError: boom")
    assert phase_outcome(_report("setup", "skipped", ("f.py", 3, "Skipped: no KVM"))) == ("skipped", "no KVM")
    assert phase_outcome(_report("call", "skipped", ["f.py", 3, "Skipped: list form"])) == ("skipped", "list form")
    assert phase_outcome(_report("call", "skipped", None, wasxfail="known bug")) == ("skipped", "xfail: known bug")
    assert phase_outcome(_report("call", "passed")) == ("passed", "")


def test_combine_phases():
    assert combine_phases({"setup": ("error", "setup: x")}) == ("error", "setup: x")
    assert combine_phases({"setup": ("passed", ""), "call": ("failed", "f"), "teardown": ("error", "t")}) == \
        ("failed", "f")
    assert combine_phases({"call": ("passed", ""), "teardown": ("error", "t")}) == ("error", "t")
    assert combine_phases({"setup": ("skipped", "why")}) == ("skipped", "why")
    assert combine_phases({"setup": ("passed", ""), "???": ("error", "???: worker crashed")})[0] == "error"


# --- summary ----------------------------------------------------------------------------------------------


def test_summary_cells_groups_and_totals():
    s = build_summary(synthetic_tests(), DIMS, {"arm64-initrd": ["argv.txt"]}, wall_time_s=3.0, shard="1/2")
    assert [c.name for c in s.cells] == ["amd64-nvdimm-virtiofs-scsi", "amd64-sev", "arm64-initrd"]
    assert s.groups == ["cmdline", "devices", "qmp"]  # suite order, not alphabetical by accident
    a, sev, arm = s.cells
    assert (a.outcome, a.groups["cmdline"].outcome, a.groups["cmdline"].counts["skipped"]) == ("passed", "passed", 1)
    assert (arm.outcome, arm.groups["cmdline"].message) == ("failed", "AssertionError: console=ttyAMA0 missing")
    assert (sev.outcome, sev.groups["qmp"].outcome, sev.groups["devices"].message) == ("error", "error", "no SEV")
    assert arm.dims["block_driver"] == "virtio-blk" and arm.artifacts == ["argv.txt"]
    assert s.totals["tests"] == {"failed": 1, "error": 1, "passed": 5, "skipped": 2, "total": 9}
    assert s.totals["cells"] == {"failed": 1, "error": 1, "passed": 1, "skipped": 0, "total": 3}
    assert [t.nodeid for t in s.other_tests] == ["tests/test_x.py::test_plain"]
    assert s.shard == "1/2"


def test_summary_roundtrip(tmp_path):
    s = build_summary(synthetic_tests(), DIMS, environment={"accel": {"verdict": "kvm"}}, exit_status=1)
    save(s, tmp_path / "summary.json")
    again = load(tmp_path / "summary.json")
    assert again == s
    data = json.loads((tmp_path / "summary.json").read_text())
    assert set(data) >= {"cells", "groups", "tests", "totals", "wall_time_s", "started", "pytest_args",
                         "exit_status", "shard", "environment", "format"}


def test_artifacts_known_first_and_absent_dir(tmp_path):
    d = tmp_path / "cells" / "c1"
    d.mkdir(parents=True)
    for name in ("qmp-query-cpus.json", "console.log", "argv.txt", "zzz.txt"):
        (d / name).write_text("x")
    assert artifacts.cell_artifacts(tmp_path / "cells", "c1") == ["argv.txt", "console.log", "qmp-query-cpus.json",
                                                                  "zzz.txt"]
    assert artifacts.cell_artifacts(tmp_path / "cells", "nope") == []
    assert artifacts.scan(tmp_path / "cells") == {"c1": ["argv.txt", "console.log", "qmp-query-cpus.json",
                                                          "zzz.txt"]}


def test_terminal_lines():
    out = lines(build_summary(synthetic_tests(), DIMS, wall_time_s=12.25))
    assert out[0].startswith("wall time 12.2 s; 3 cells")
    assert re.match(r"arm64-initrd\s+FAILED\s+\d+\.\ds\s+cmdline:FAIL devices:pass$", out[3])


# --- html -------------------------------------------------------------------------------------------------


def _rows(page: str) -> dict[str, str]:
    return dict(re.findall(r'<tr class="cell-row [^"]*" id="[^"]*" data-cell="([^"]+)">(.*?)</tr>', page, re.S))


def test_html_matrix(tmp_path):
    s = build_summary(synthetic_tests(), DIMS, {"arm64-initrd": ["argv.txt", "gone.log"]}, wall_time_s=61.5,
                      environment={"accel": {"verdict": "tcg", "reason": "no /dev/kvm"}, "qemu": {"amd64": "7.2"}})
    (tmp_path / "cells" / "arm64-initrd").mkdir(parents=True)
    (tmp_path / "cells" / "arm64-initrd" / "argv.txt").write_text("-machine virt\n")
    page = html.write(s, tmp_path / "matrix.html", tmp_path).read_text()
    rows = _rows(page)
    assert set(rows) == set(DIMS)
    arm = rows["arm64-initrd"]
    assert 'class="group outcome-failed" data-group="cmdline" title="cmdline: 1 failed, 1 passed' in arm
    assert "FAIL<small>AssertionError: console=ttyAMA0 missing</small>" in arm  # visible, not only a tooltip
    assert 'href="cells/arm64-initrd/argv.txt"' in arm and "gone.log" not in arm  # only existing files
    assert 'data-group="qmp" title="not run">' in arm
    sev = rows["amd64-sev"]
    assert 'class="group outcome-skipped" data-group="devices" title="devices: 1 skipped\nno SEV"' in sev
    assert "skip<small>no SEV</small>" in sev and 'class="overall outcome-error"' in sev
    for dim in ("amd64", "sev", "initrd", "none", "virtio-scsi", "default"):
        assert f">{dim}</td>" in sev
    assert 'id="accel"' in page and "TCG \u2014 no /dev/kvm" in page and "accel-tcg" in page
    assert "wall time <b>61.5 s</b>" in page and "cells <b>3</b>" in page
    assert 'id="other"' in page and "tests/test_x.py::test_plain" in page
    assert "<script" not in page and not re.search(r'(src|href)="(https?:)?//', page)


def test_html_escapes_and_links_relative_to_the_page(tmp_path):
    t = [TestResult("a::b[c&d]", "failed", 1.0, "expected <argv> & got 'x'", "c&d", "cmdline")]
    s = build_summary(t, {}, {"c&d": ["argv.txt"]})
    page = html.render(s, "../reports/")
    assert "expected &lt;argv&gt; &amp; got" in page and "<argv>" not in page
    assert 'href="../reports/cells/c%26d/argv.txt"' in page


def test_html_without_cells():
    page = html.render(build_summary([TestResult("t::x", "passed", 0.1)]))
    assert 'id="no-cells"' in page and 'id="matrix"' not in page and 'id="accel"' not in page


# --- merge ------------------------------------------------------------------------------------------------


def _shards():
    tests = synthetic_tests()
    one = build_summary([t for t in tests if t.cell != "arm64-initrd"], DIMS, shard="1/3", wall_time_s=5.0,
                        started="2024-01-01T10:00:00+00:00", exit_status=1, environment={"accel": "kvm"})
    two = build_summary([t for t in tests if t.cell in ("arm64-initrd", None)], DIMS, shard="2/3",
                        wall_time_s=7.0, started="2024-01-01T09:59:00+00:00", exit_status=0)
    return one, two


def test_merge_joins_cells_and_recomputes_totals():
    one, two = _shards()
    m = merge([one, two], ["a", "b"])
    assert [c.name for c in m.cells] == sorted(DIMS)
    assert m.totals == build_summary(synthetic_tests(), DIMS).totals  # the plain test counted once
    assert (m.wall_time_s, m.started, m.exit_status) == (7.0, "2024-01-01T09:59:00+00:00", 1)
    assert m.environment == {"accel": "kvm"} and [s["name"] for s in m.shards] == ["a", "b"]
    assert m.warnings == ["missing shard(s): 3/3"]


def test_merge_refuses_a_cell_in_two_shards():
    one, _ = _shards()
    with pytest.raises(MergeError, match="cell amd64-nvdimm-virtiofs-scsi is in two shards: a and b"):
        merge([one, one], ["a", "b"])


def test_merge_cli_writes_summary_html_and_artifacts(tmp_path, capsys):
    dirs = []
    for i, s in enumerate(_shards(), 1):
        d = tmp_path / f"shard{i}"
        cell = s.cells[0].name
        (d / "cells" / cell).mkdir(parents=True)
        (d / "cells" / cell / "argv.txt").write_text(f"argv of {cell}\n")
        s.cell(cell).artifacts = ["argv.txt"]
        save(s, d / "summary.json")
        dirs.append(str(d))
    out = tmp_path / "merged"
    assert main(["report", "merge", str(out), *dirs]) == 0
    assert "3 cells" in capsys.readouterr().out
    merged = load(out / "summary.json")
    assert len(merged.cells) == 3 and (out / "cells" / "arm64-initrd" / "argv.txt").is_file()
    page = (out / "matrix.html").read_text()
    assert set(_rows(page)) == set(DIMS) and 'href="cells/arm64-initrd/argv.txt"' in page
    assert main(["report", "merge", str(tmp_path / "dup"), dirs[0], dirs[0]]) == 2
    assert "is in two shards" in capsys.readouterr().err


def test_html_cli(tmp_path):
    reports = tmp_path / "reports"
    s = build_summary(synthetic_tests(), DIMS, {"arm64-initrd": ["argv.txt"]})
    save(s, reports / "summary.json")
    (reports / "cells" / "arm64-initrd").mkdir(parents=True)
    (reports / "cells" / "arm64-initrd" / "argv.txt").write_text("x")
    assert main(["report", "html", str(reports / "summary.json")]) == 0
    assert (reports / "matrix.html").is_file()
    assert main(["report", "html", str(reports / "summary.json"), "-o", str(tmp_path / "pub" / "m.html")]) == 0
    assert 'href="../reports/cells/arm64-initrd/argv.txt"' in (tmp_path / "pub" / "m.html").read_text()
    assert main(["report", "html", str(tmp_path / "missing.json")]) == 2


# --- the plugin, end to end under pytest-xdist -----------------------------------------------------------

CONFTEST = """
import json
CELLS = json.loads({dims!r})

def pytest_collection_modifyitems(items):
    for item in items:
        cs = getattr(item, "callspec", None)
        if cs and "cname" in cs.params:
            c = cs.params["cname"]
            item.user_properties += [("katatest_cell", c),
                                     ("katatest_group", item.module.__name__.removeprefix("test_")),
                                     ("katatest_cell_dims", json.dumps(CELLS[c], sort_keys=True))]
"""

SUITES = {
    "test_cmdline.py": """
        import pytest
        @pytest.mark.parametrize("cname", {cells!r})
        def test_console(cname):
            assert cname != "arm64-initrd", "console=ttyAMA0 missing from kernel cmdline"
        """,
    "test_devices.py": """
        import pytest
        @pytest.mark.parametrize("cname", {cells!r})
        def test_scsi(cname):
            if cname == "amd64-sev":
                pytest.skip("host has no SEV")
        """,
    "test_qmp.py": """
        import pytest
        from fixtures.reporting import record_environment
        @pytest.fixture
        def guest(cname, request):
            record_environment(request.config, {{"accel": {{"verdict": "tcg", "reason": "no /dev/kvm"}}}})
            if cname == "amd64-sev":
                raise RuntimeError("QEMU exited: sev-guest unsupported")
        @pytest.mark.parametrize("cname", {cells!r})
        def test_status(cname, guest):
            pass
        """,
    "test_plain.py": """
        def test_plain():
            pass
        """,
}


def _pytest(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "COV_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parent.parent), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=300)


def _project(tmp_path: Path) -> None:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "conftest.py").write_text(CONFTEST.format(dims=json.dumps(DIMS)))
    for name, body in SUITES.items():
        (tmp_path / name).write_text(textwrap.dedent(body.format(cells=sorted(DIMS))))


def test_plugin_end_to_end_under_xdist(tmp_path):
    _project(tmp_path)
    cells = tmp_path / "out" / "cells" / "arm64-initrd"
    cells.mkdir(parents=True)
    (cells / "argv.txt").write_text("/usr/bin/qemu-system-aarch64\n")
    (cells / "console.log").write_text("Linux version\n")
    run = _pytest(tmp_path, "-n", "2", "--katatest-reports", "out", "--junitxml", "out/junit.xml")
    assert run.returncode == 1, run.stdout + run.stderr
    assert "katatest matrix" in run.stdout and re.search(r"arm64-initrd\s+FAILED", run.stdout), run.stdout

    s = load(tmp_path / "out" / "summary.json")
    assert {c.name: c.outcome for c in s.cells} == {"amd64-nvdimm-virtiofs-scsi": "passed", "amd64-sev": "error",
                                                    "arm64-initrd": "failed"}
    assert s.groups == ["cmdline", "devices", "qmp"]
    arm, sev = s.cell("arm64-initrd"), s.cell("amd64-sev")
    assert arm.groups["cmdline"].message == "AssertionError: console=ttyAMA0 missing from kernel cmdline"
    assert arm.artifacts == ["argv.txt", "console.log"] and arm.dims == DIMS["arm64-initrd"]
    assert sev.groups["qmp"].message == "setup: RuntimeError: QEMU exited: sev-guest unsupported"
    assert (sev.groups["devices"].outcome, sev.groups["devices"].message) == ("skipped", "host has no SEV")
    assert s.totals["tests"] == {"failed": 1, "error": 1, "passed": 7, "skipped": 1, "total": 10}
    assert [t.nodeid for t in s.other_tests] == ["test_plain.py::test_plain"]
    assert s.exit_status == 1 and s.shard is None and "-n" in s.pytest_args and s.wall_time_s > 0
    assert s.environment == {"accel": {"verdict": "tcg", "reason": "no /dev/kvm"}}  # from a worker
    assert all(t.duration_s >= 0 for t in s.tests) and s.started

    page = (tmp_path / "out" / "matrix.html").read_text()
    rows = _rows(page)
    assert set(rows) == set(DIMS)
    assert 'class="group outcome-failed" data-group="cmdline"' in rows["arm64-initrd"]
    assert 'class="group outcome-error" data-group="qmp"' in rows["amd64-sev"]
    assert 'class="group outcome-skipped" data-group="devices"' in rows["amd64-sev"]
    assert 'href="cells/arm64-initrd/console.log"' in rows["arm64-initrd"] and "accel-tcg" in page

    # JUnit (pytest's own, xunit2 by default) carries the cell and group as testcase properties.
    case = next(c for c in ET.parse(tmp_path / "out" / "junit.xml").iter("testcase")
                if c.get("name") == "test_console[arm64-initrd]")
    props = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert props["katatest_cell"] == "arm64-initrd" and props["katatest_group"] == "cmdline"
    assert json.loads(props["katatest_cell_dims"]) == DIMS["arm64-initrd"]


def test_plugin_writes_nothing_for_runs_without_cells(tmp_path):
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_plain.py").write_text("def test_plain():\n    pass\n")
    run = _pytest(tmp_path, "-p", "no:xdist")
    assert run.returncode == 0, run.stdout + run.stderr
    assert not (tmp_path / "reports").exists() and "katatest matrix" not in run.stdout
    run = _pytest(tmp_path, "-p", "no:xdist", "--katatest-reports", "explicit")
    assert load(tmp_path / "explicit" / "summary.json").totals["other"]["passed"] == 1
