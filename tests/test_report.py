"""The reporting layer: outcomes, summary.json, matrix.html, shard merging, and the pytest plugin end to end."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
import textwrap
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from types import SimpleNamespace

import pytest

from katatest.cli import main
from katatest.host import facts as hostfacts
from katatest.launch.proc import owner_token
from katatest.launch.sweep import Scope, katatest_processes, marked_dirs
from katatest.launch.vm import (
    MARKER_ENV,
    OWNER_ENV,
    OWNER_FILE,
    RUN_ROOT_PREFIX,
    RUNTIME_PARENT,
    RUNTIME_PREFIX,
    SCOPE_FILE,
    make_runtime_dir,
    scope_key,
)
from katatest.report import artifacts, html
from katatest.report.merge import MergeError, merge
from katatest.report.outcomes import combine_phases, phase_outcome, worst
from katatest.report.summary import Boot, TestResult, boots_from_events, build_summary, load, save
from katatest.report.terminal import lines
from tests.faults.helpers import ROOT, run_pytest

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
    assert s.totals["cells"] == {"failed": 1, "error": 1, "partial": 0, "passed": 1, "generation-only": 0,
                                 "skipped": 0, "total": 3}
    assert s.totals["booted"]["total"] == 0 and not any(c.boot for c in s.cells)  # no boot events: unknown
    assert [t.nodeid for t in s.other_tests] == ["tests/test_x.py::test_plain"]
    assert s.shard == "1/2"


def test_a_group_that_did_not_run_makes_the_cell_partial(tmp_path):
    """A booted cell whose shared_fs group was skipped whole is not "passed": it is partial, naming the group,
    in the summary, the terminal table, the JUnit properties and the HTML matrix."""
    tests = [TestResult("s/test_a.py::t[c]", "passed", cell="c", group="cmdline"),
             TestResult("s/test_b.py::t[c]", "skipped", cell="c", group="shared_fs", message="no shared fs"),
             TestResult("s/test_b.py::u[c]", "skipped", cell="c", group="shared_fs", message="no shared fs"),
             TestResult("s/test_a.py::t[d]", "passed", cell="d", group="cmdline"),
             TestResult("s/test_b.py::t[d]", "skipped", cell="d", group="shared_fs", message="n/a"),
             TestResult("s/test_b.py::u[d]", "passed", cell="d", group="shared_fs")]
    s = build_summary(tests, boots={"c": Boot("booted", "", 1), "d": Boot("booted", "", 1)})
    c, d = s.cells
    assert (c.outcome, c.partial_groups) == ("partial", ["shared_fs"])
    assert (d.outcome, d.partial_groups) == ("passed", [])
    assert s.totals["cells"]["partial"] == 1
    assert "did not run: shared_fs: no shared fs" in "\n".join(lines(s))
    assert "did not run: shared_fs (no shared fs)" in html.render(s)


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


# --- honest outcomes: a cell whose guest never booted is generation-only --------------------------------

GEN = {"amd64-booted": {"arch": "amd64"}, "amd64-sev": {"arch": "amd64", "protection": "sev"},
       "amd64-tdx": {"arch": "amd64", "protection": "tdx"}}
SEV_WHY = "cannot boot here: no SEV hardware on this host (/sys/module/kvm_amd/parameters/sev says no)"


def generation_only_tests() -> list[TestResult]:
    """amd64-booted booted and passed; amd64-sev and amd64-tdx could not boot: their generation checks
    passed (tdx's golden did not) and their guest checks skipped in the guest fixture."""
    return [
        _t("amd64-booted", "generation", "passed"), _t("amd64-booted", "cmdline", "passed"),
        _t("amd64-sev", "generation", "passed"), _t("amd64-sev", "cmdline", "skipped", SEV_WHY),
        _t("amd64-tdx", "generation", "failed", "AssertionError: argv changed"),
        _t("amd64-tdx", "cmdline", "skipped", "cannot boot here: no TDX hardware"),
    ]


GEN_BOOTS = {"amd64-booted": Boot("booted", "", 1), "amd64-sev": Boot("skipped", SEV_WHY),
             "amd64-tdx": Boot("skipped", "cannot boot here: no TDX hardware")}


def test_boots_from_events_per_cell():
    events = [{"cell": "a", "state": "booted", "worker": "gw0"}, {"cell": "a", "state": "booted", "worker": "gw1"},
              {"cell": "b", "state": "skipped", "reason": "no SEV"}, {"cell": "c", "state": "error", "reason": "x"},
              {"cell": "d", "state": "skipped", "reason": "first"}, {"cell": "d", "state": "booted"}]
    boots = boots_from_events(events)
    assert boots["a"] == Boot("booted", "", 2)  # two workers booted it (--dist load)
    assert boots["b"] == Boot("skipped", "no SEV", 0) and boots["c"].state == "error"
    assert boots["d"].state == "booted" and boots["d"].count == 1


def test_a_cell_that_never_booted_is_generation_only_not_passed():
    s = build_summary(generation_only_tests(), GEN, boots=GEN_BOOTS, wall_time_s=5.0)
    booted, sev, tdx = s.cells
    assert (booted.outcome, booted.boot, booted.boots) == ("passed", "booted", 1)
    assert (sev.outcome, sev.boot, sev.boot_skip_reason) == ("generation-only", "skipped", SEV_WHY)
    assert (tdx.outcome, tdx.boot_skip_reason) == ("failed", "cannot boot here: no TDX hardware")  # a failure wins
    assert s.totals["cells"] == {"failed": 1, "error": 0, "partial": 0, "passed": 1, "generation-only": 1, "skipped": 0,
                                 "total": 3}
    assert s.totals["booted"] == {"failed": 0, "error": 0, "passed": 1, "skipped": 0, "total": 1}


def test_terminal_counts_booted_cells_apart_and_says_why_a_cell_did_not_boot():
    out = lines(build_summary(generation_only_tests(), GEN, boots=GEN_BOOTS, wall_time_s=5.0))
    assert out[0].startswith("wall time 5.0 s; 3 cells: 1 booted (1 passed), 2 not booted (1 failed, "
                             "1 generation-only); 6 tests"), out[0]
    assert out[1] == "booted cells, summed over workers: boot 0.0 s, checks 1.0 s, stop 0.0 s", out[1]
    assert re.match(r"amd64-booted\s+PASSED\s+\d+\.\ds \(boot 0\.0 \+ checks 1\.0 \+ stop 0\.0\)\s+"
                    r"generation:pass cmdline:pass$", out[2]), out[2]
    assert re.match(rf"amd64-sev\s+GEN-ONLY\s+\d+\.\ds\s+generation:pass cmdline:skip  \(not booted: "
                    rf"{re.escape(SEV_WHY)}\)$", out[3]), out[3]
    assert out[4].endswith("(not booted: cannot boot here: no TDX hardware)") and "FAILED" in out[4]


def test_phases_come_from_the_boot_events_and_survive_save_and_merge(tmp_path):
    """boot_s (guest ready for checks) and teardown_s per cell, summed over the processes that booted it;
    checks_s is the rest of the cell's test time."""
    events = [{"cell": "amd64-booted", "state": "booted", "boot_s": 2.5},
              {"cell": "amd64-booted", "state": "", "teardown_s": 0.25}]
    boots = boots_from_events(events)
    assert boots["amd64-booted"] == Boot("booted", "", 1, 2.5, 0.25)
    tests = [_t("amd64-booted", "cmdline", "passed"), _t("amd64-booted", "devices", "passed"),
             TestResult("suites/test_x.py::t[amd64-booted]", "passed", 3.0, "", "amd64-booted", "qmp")]
    s = build_summary(tests, {}, boots=boots)
    cell = s.cell("amd64-booted")
    assert (cell.duration_s, cell.boot_s, cell.teardown_s, cell.checks_s) == (4.0, 2.5, 0.25, 1.25)
    save(s, tmp_path / "summary.json")
    assert load(tmp_path / "summary.json").cell("amd64-booted").boot_s == 2.5
    assert merge([load(tmp_path / "summary.json")], ["only"]).cell("amd64-booted").checks_s == 1.25


def test_html_shows_generation_only_with_the_reason(tmp_path):
    s = build_summary(generation_only_tests(), GEN, boots=GEN_BOOTS)
    page = html.write(s, tmp_path / "matrix.html", tmp_path).read_text()
    rows = _rows(page)
    sev = rows["amd64-sev"]
    assert 'class="outcome outcome-generation-only" data-boot="skipped">gen-only</td>' in sev
    assert '<td class="why" title="not booted: cannot boot here: no SEV hardware' in sev  # visible, written once
    assert sev.count("no SEV hardware") == 2  # the why cell's text and its title, not once per group
    assert 'data-boot="booted"' in rows["amd64-booted"] and "outcome-passed" in rows["amd64-booted"]
    assert re.search(r'id="booted">booted <b>1</b> \(1 passed\)', page)
    assert re.search(r'id="not-booted">not booted <b>2</b>', page)
    assert "cells <b>3</b> (1 failed, 1 passed, 1 generation-only)" in page
    assert '<span class="outcome-generation-only" title="generation-only">gen-only</span>' in page  # legend
    assert list(rows) == ["amd64-tdx", "amd64-sev", "amd64-booted"]  # failing, then findings, then passed


def test_generation_only_survives_save_load_and_merge(tmp_path):
    s = build_summary(generation_only_tests(), GEN, boots=GEN_BOOTS, shard="1/1")
    save(s, tmp_path / "summary.json")
    again = load(tmp_path / "summary.json")
    assert again == s and again.cell("amd64-sev").boot_skip_reason == SEV_WHY
    merged = merge([again], ["only"])
    assert [(c.name, c.outcome, c.boot, c.boots) for c in merged.cells] == [
        ("amd64-booted", "passed", "booted", 1), ("amd64-sev", "generation-only", "skipped", 0),
        ("amd64-tdx", "failed", "skipped", 0)]
    assert merged.totals == s.totals


# --- html -------------------------------------------------------------------------------------------------


def _rows(page: str) -> dict[str, str]:
    """Each matrix row's HTML by cell, in page order."""
    return dict(re.findall(r'<tr class="cell-row [^"]*" id="[^"]*" data-cell="([^"]+)"[^>]*>(.*?)</tr>', page, re.S))


def test_html_matrix(tmp_path):
    s = build_summary(synthetic_tests(), DIMS, {"arm64-initrd": ["argv.txt", "gone.log"]}, wall_time_s=61.5,
                      environment={"accel": {"verdict": "tcg", "reason": "no /dev/kvm"}, "qemu": {"amd64": "7.2"}})
    (tmp_path / "cells" / "arm64-initrd").mkdir(parents=True)
    (tmp_path / "cells" / "arm64-initrd" / "argv.txt").write_text("-machine virt\n")
    page = html.write(s, tmp_path / "matrix.html", tmp_path).read_text()
    rows = _rows(page)
    assert set(rows) == set(DIMS)
    arm = rows["arm64-initrd"]
    assert list(rows)[2:] == ["amd64-nvdimm-virtiofs-scsi"]  # failing (and erroring) rows first
    # the failed group's square: its counts on hover, a link to the failing test's output
    assert ('data-group="cmdline" data-outcome="failed"><a class="outcome-failed" href="#problem-0" '
            'title="cmdline: 1 failed, 1 passed\nAssertionError: console=ttyAMA0 missing">') in arm
    assert re.search(r'<tr class="test outcome-failed" id="problem-0"><td>arm64-initrd</td><td>cmdline</td>'
                     r'.*console=ttyAMA0 missing</td></tr>', page)
    assert ('class="outcome outcome-failed" data-boot="">FAIL</td>\n<td class="why" title="cmdline: AssertionError: '
            'console=ttyAMA0 missing">cmdline: AssertionError: console=ttyAMA0 missing</td>') in arm  # visible once
    assert 'data-group="qmp" data-outcome="none"><span class="outcome-none" title="qmp: not run">' in arm
    assert 'href="cells/arm64-initrd/index.html"' in arm and ">files</a>" in arm  # one link: the listing
    listing = (tmp_path / "cells" / "arm64-initrd" / "index.html").read_text()
    assert '<a href="argv.txt">argv.txt</a>' in listing and "gone.log" not in listing  # only existing files
    assert 'href="../../matrix.html"' in listing
    sev = rows["amd64-sev"]
    assert ('data-group="devices" data-outcome="skipped"><span class="outcome-skipped" '
            'title="devices: 1 skipped\nno SEV">') in sev
    assert 'class="outcome outcome-error"' in sev and "qmp: setup: QEMU exited: sev-guest unsupported" in sev
    for dim in ("amd64", "sev", "initrd", "scsi"):
        assert f'">{dim}</span>' in sev
    assert 'title="arch=amd64, block_driver=virtio-scsi, protection=sev, rootfs=initrd, shared_fs=none' in sev
    assert 'data-cell="amd64-sev" data-release="" data-qemu="" data-arch="amd64"' in page
    assert '<select data-filter="arch"><option value="">all</option>' in page
    assert "<option>amd64</option><option>arm64</option>" in page
    assert 'id="accel"' in page and "TCG \u2014 no /dev/kvm" in page and "accel-tcg" in page
    assert "wall time <b>61.5 s</b>" in page and "cells <b>3</b>" in page
    assert 'id="other"' in page and "tests/test_x.py::test_plain" in page
    assert "<script src" not in page and not re.search(r'(src|href)="(https?:)?//', page)  # self-contained


def test_html_escapes_and_links_relative_to_the_page(tmp_path):
    t = [TestResult("a::b[c&d]", "failed", 1.0, "expected <argv> & got 'x'", "c&d", "cmdline")]
    s = build_summary(t, {}, {"c&d": ["argv.txt"]})
    page = html.render(s, "../reports/")
    assert "expected &lt;argv&gt; &amp; got" in page and "<argv>" not in page
    assert 'href="../reports/cells/c%26d/index.html"' in page


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
    assert set(_rows(page)) == set(DIMS) and 'href="cells/arm64-initrd/index.html"' in page
    assert '<a href="argv.txt">argv.txt</a>' in (out / "cells" / "arm64-initrd" / "index.html").read_text()
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
    assert 'href="../reports/cells/arm64-initrd/index.html"' in (tmp_path / "pub" / "m.html").read_text()
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
        from katatest.fixtures.reporting import record_environment
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


def _project(tmp_path: Path) -> None:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "conftest.py").write_text(CONFTEST.format(dims=json.dumps(DIMS)))
    for name, body in SUITES.items():
        (tmp_path / name).write_text(textwrap.dedent(body.format(cells=sorted(DIMS))))


def test_plugin_end_to_end_under_xdist(tmp_path, isolated_env):
    _project(tmp_path)
    cells = tmp_path / "out" / "cells" / "arm64-initrd"
    cells.mkdir(parents=True)
    (cells / "argv.txt").write_text("/usr/bin/qemu-system-aarch64\n")
    (cells / "console.log").write_text("Linux version\n")
    run = run_pytest(tmp_path, "-n", "2", "--katatest-reports", "out", "--junitxml", "out/junit.xml",
                     env=isolated_env)
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
    assert 'data-group="cmdline" data-outcome="failed"' in rows["arm64-initrd"]
    assert 'data-group="qmp" data-outcome="error"' in rows["amd64-sev"]
    assert 'data-group="devices" data-outcome="skipped"' in rows["amd64-sev"]
    assert 'href="cells/arm64-initrd/index.html"' in rows["arm64-initrd"] and "accel-tcg" in page
    assert 'href="console.log"' in (tmp_path / "out" / "cells" / "arm64-initrd" / "index.html").read_text()

    # JUnit (pytest's own, xunit2 by default) carries the cell and group as testcase properties.
    case = next(c for c in ET.parse(tmp_path / "out" / "junit.xml").iter("testcase")
                if c.get("name") == "test_console[arm64-initrd]")
    props = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert props["katatest_cell"] == "arm64-initrd" and props["katatest_group"] == "cmdline"
    assert json.loads(props["katatest_cell_dims"]) == DIMS["arm64-initrd"]


def test_plugin_writes_nothing_for_runs_without_cells(tmp_path, isolated_env):
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_plain.py").write_text("def test_plain():\n    pass\n")
    run = run_pytest(tmp_path, "-p", "no:xdist", env=isolated_env)
    assert run.returncode == 0, run.stdout + run.stderr
    assert not (tmp_path / "reports").exists() and "katatest matrix" not in run.stdout
    run = run_pytest(tmp_path, "-p", "no:xdist", "--katatest-reports", "explicit", env=isolated_env)
    assert load(tmp_path / "explicit" / "summary.json").totals["other"]["passed"] == 1


# --- honest outcomes end to end: the real guest fixture on cells that cannot boot here --------------------


def test_cells_that_cannot_boot_here_are_generation_only_end_to_end(tmp_path, isolated_env):
    """SEV and TDX cells on a host without them: the guest fixture skips (no QEMU is started), generation
    passes; the terminal, summary.json, JUnit and matrix.html say generation-only, with the reason."""
    if hostfacts.detect().guest_protection != "none":
        pytest.skip("this host has SEV or TDX: those cells would boot")
    out = tmp_path / "reports"
    run = run_pytest(ROOT, "suites/test_generation.py", "suites/test_cmdline.py", "-k", "amd64-sev or amd64-tdx",
                     "-p", "no:xdist", "--katatest-arch", "amd64", "--katatest-reports", str(out),
                     "--junitxml", str(out / "junit.xml"), env=isolated_env)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    s = load(out / "summary.json")
    assert {c.name: (c.outcome, c.boot) for c in s.cells} == {"amd64-sev": ("generation-only", "skipped"),
                                                              "amd64-tdx": ("generation-only", "skipped")}
    sev = s.cell("amd64-sev")
    why = sev.boot_skip_reason
    assert why.startswith("cannot boot here [no-tee-hardware]: no SEV hardware on this host"), why
    assert sev.groups["generation"].outcome == "passed" and sev.groups["cmdline"].outcome == "skipped"
    assert s.totals["booted"]["total"] == 0 and s.totals["cells"]["generation-only"] == 2
    assert "2 cells: 0 booted, 2 not booted (2 generation-only)" in run.stdout, run.stdout[-2000:]
    assert re.search(r"amd64-sev\s+GEN-ONLY\s.*\(not booted: cannot boot here \[no-tee-hardware\]: no SEV hardware",
                     run.stdout)

    cases = [c for c in ET.parse(out / "junit.xml").iter("testcase")
             if any(p.get("value") == "amd64-sev" for p in c.iter("property") if p.get("name") == "katatest_cell")]
    assert len(cases) >= 5, "the cell's generation and cmdline test cases"  # 3 generation + 2 cmdline
    for case in cases:  # generation test cases too, although they ran before the guest fixture skipped
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        assert props["katatest_cell_outcome"] == "generation-only", (case.get("name"), props)
        assert props["katatest_boot_skip_reason"] == sev.boot_skip_reason

    row = _rows((out / "matrix.html").read_text())["amd64-sev"]
    assert "outcome-generation-only" in row and "not booted: cannot boot here [no-tee-hardware]: no SEV hardware" in row


# --- isolated tests: a sub-session sees only its own TMPDIR and XDG_RUNTIME_DIR -------------------------


def test_a_sub_session_does_not_reap_what_another_tests_dead_owner_left(tmp_path, isolated_env):
    """A killed owner's dirs and its orphan in /tmp (tests/test_faults.py kills owners on purpose) are not a
    sub-session's business when it has its own dirs: it neither removes nor reports them (issue 9: this test's
    end-to-end sibling found ``swept_at_finish`` entries). The dead owner ran in a third scope of its own, not
    the machine's default one: any katatest run on this machine in the default scope (a developer's matrix
    run, another checkout's tests) would rightly reap leftovers planted there while this test runs."""
    dead = subprocess.Popen(["sleep", "30"])
    token = owner_token(dead.pid)
    dead.kill()
    dead.wait()
    (tmp_path / "other-tmp").mkdir()
    (tmp_path / "other-xdg").mkdir(mode=0o700)
    other = {**isolated_env, "TMPDIR": str(tmp_path / "other-tmp"), "XDG_RUNTIME_DIR": str(tmp_path / "other-xdg")}
    planted = [Path(tempfile.mkdtemp(prefix=RUNTIME_PREFIX, dir=RUNTIME_PARENT)),  # root's runtime dirs: in /tmp
               Path(tempfile.mkdtemp(prefix=RUN_ROOT_PREFIX, dir=other["TMPDIR"]))]
    orphan = subprocess.Popen(["sleep", "300"], env={**other, MARKER_ENV: str(planted[1]), OWNER_ENV: token})
    try:
        for path in planted:
            (path / OWNER_FILE).write_text(token)
            (path / SCOPE_FILE).write_text(scope_key(other))
        (tmp_path / "pytest.ini").write_text("[pytest]\n")
        (tmp_path / "test_plain.py").write_text("def test_plain():\n    pass\n")
        run = run_pytest(tmp_path, "-p", "no:xdist", "--katatest-reports", "out", env=isolated_env)
        assert run.returncode == 0, run.stdout + run.stderr
        assert "reaped" not in run.stdout, run.stdout
        assert not [k for k in load(tmp_path / "out" / "summary.json").environment if k.startswith("swept_at")]
        assert orphan.poll() is None, "the sub-session killed another scope's orphan"
        assert all(path.is_dir() for path in planted), "the sub-session removed another scope's dirs"
        assert set(planted) <= set(marked_dirs(Scope.of(other))), "planted where that scope's sweep looks"
        assert [p.pid for p in katatest_processes(scope=Scope.of(other))] == [orphan.pid]
    finally:
        orphan.kill()
        orphan.wait()
        for path in planted:
            shutil.rmtree(path, ignore_errors=True)


def test_sweep_scope_follows_tmpdir_and_xdg_runtime_dir(isolated_env):
    """Dirs and processes are the sweep's only in its own scope; another scope's are left alone, even in
    the same /tmp (a root owner's runtime dirs are there whatever its XDG_RUNTIME_DIR)."""
    here = Scope.of()
    assert here.tempdir == isolated_env["TMPDIR"] and Scope.of(isolated_env) == here
    other = Scope.of({"PATH": "/usr/bin"})
    assert other.tempdir == "/tmp" and other.key != here.key
    mine = Path(make_runtime_dir())
    theirs = Path(tempfile.mkdtemp(prefix=RUNTIME_PREFIX, dir=RUNTIME_PARENT))
    (theirs / OWNER_FILE).write_text("1:0")
    (theirs / SCOPE_FILE).write_text(other.key)
    try:
        assert mine in marked_dirs(here) and mine not in marked_dirs(other)
        assert theirs in marked_dirs(other) and theirs not in marked_dirs(here)
    finally:
        shutil.rmtree(mine, ignore_errors=True)
        shutil.rmtree(theirs, ignore_errors=True)
    proc = subprocess.Popen(["sleep", "60"], env={**isolated_env, MARKER_ENV: "x", OWNER_ENV: "1:0"})
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and proc.pid not in [p.pid for p in katatest_processes(scope=here)]:
            time.sleep(0.05)  # its environ is readable once it exec()ed sleep
        assert proc.pid in [p.pid for p in katatest_processes(scope=here)]
        assert proc.pid not in [p.pid for p in katatest_processes(scope=other)]
    finally:
        proc.kill()
        proc.wait()
