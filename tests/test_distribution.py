"""One boot per cell for any ``-n`` (issue 9): the plugin picks xdist's ``loadgroup`` unless ``--dist`` says
otherwise, and with another mode says so once and still boots a cell at most once per worker (the guest pool).
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from katatest.fixtures.guest_pool import GuestPool

from katatest.report.summary import load
from tests.faults.helpers import FAST_CELL, FS_CELL, built_assets, run_pytest

WARNING = "katatest: --dist "

# --- which workers run a group's tests (no guest needed) --------------------------------------------------

GROUPS_TEST = """
import os
from pathlib import Path
import pytest

@pytest.mark.parametrize("i", range(6))
@pytest.mark.parametrize("g", [pytest.param(g, marks=pytest.mark.xdist_group(g)) for g in "abc"])
def test_where(g, i):
    Path(os.environ["KT_RECORDS"], f"{g}-{i}").write_text(os.environ.get("PYTEST_XDIST_WORKER", "main"))
"""


def _groups_project(tmp_path: Path) -> tuple[Path, Path]:
    project, records = tmp_path / "project", tmp_path / "records"
    project.mkdir()
    records.mkdir()
    (project / "pytest.ini").write_text("[pytest]\n")
    (project / "test_groups.py").write_text(GROUPS_TEST)
    return project, records


def _workers_by_group(records: Path) -> dict[str, set[str]]:
    out: dict[str, set[str]] = defaultdict(set)
    for path in records.iterdir():
        out[path.name.split("-")[0]].add(path.read_text())
    return dict(out)


def test_plain_n_runs_each_group_in_one_worker(tmp_path: Path, isolated_env: dict[str, str]) -> None:
    """``-n 2`` without ``--dist``: xdist alone would ``load``-balance a group's tests over both workers."""
    project, records = _groups_project(tmp_path)
    run = run_pytest(project, "-n", "2", env={**isolated_env, "KT_RECORDS": str(records)})
    assert run.returncode == 0, run.stdout + run.stderr
    workers = _workers_by_group(records)
    assert sorted(workers) == ["a", "b", "c"] and all(len(w) == 1 for w in workers.values()), workers
    assert set().union(*workers.values()) <= {"gw0", "gw1"}
    assert WARNING not in run.stdout


@pytest.mark.parametrize("args", [["--dist", "load"], ["--dist=worksteal"], ["-d"]], ids=["load", "worksteal", "-d"])
def test_an_explicit_other_mode_is_kept_and_said_once(tmp_path: Path, isolated_env: dict[str, str],
                                                      args: list[str]) -> None:
    project, records = _groups_project(tmp_path)
    run = run_pytest(project, "-n", "2", *args, env={**isolated_env, "KT_RECORDS": str(records)})
    assert run.returncode == 0, run.stdout + run.stderr
    warnings = [line for line in run.stdout.splitlines() if line.startswith(WARNING)]
    mode = "load" if args == ["-d"] else args[-1].split("=")[-1]
    assert len(warnings) == 1 and warnings[0].startswith(f"{WARNING}{mode} spreads"), run.stdout
    assert len(list(records.iterdir())) == 18


def test_explicit_dist_no_is_honoured_and_said(tmp_path: Path, isolated_env: dict[str, str]) -> None:
    """``-n 2 --dist no``: kept as asked (xdist then balances the tests, as load), with one line saying that a
    cell boots once per worker that gets its tests."""
    project, records = _groups_project(tmp_path)
    run = run_pytest(project, "-n", "2", "--dist", "no", env={**isolated_env, "KT_RECORDS": str(records)})
    assert run.returncode == 0, run.stdout + run.stderr
    warnings = [line for line in run.stdout.splitlines() if line.startswith(WARNING)]
    assert len(warnings) == 1 and warnings[0].startswith("katatest: --dist no with -n"), run.stdout
    assert "boots that cell once" in warnings[0]
    assert len(list(records.iterdir())) == 18


def test_a_test_missing_from_the_group_files_is_an_error() -> None:
    from katatest.fixtures.distribution import MissingGroup, scope_of
    groups = {"t.py::a[c1]": "c1", "t.py::plain": None}
    assert scope_of(groups, "t.py::a[c1]") == "c1" and scope_of(groups, "t.py::plain") is None
    with pytest.raises(MissingGroup, match="t.py::b.c2. is in no worker's group file"):
        scope_of(groups, "t.py::b[c2]")


def test_explicit_loadgroup_says_nothing(tmp_path: Path, isolated_env: dict[str, str]) -> None:
    project, records = _groups_project(tmp_path)
    run = run_pytest(project, "-n", "2", "--dist", "loadgroup", env={**isolated_env, "KT_RECORDS": str(records)})
    assert run.returncode == 0 and WARNING not in run.stdout, run.stdout
    assert all(len(w) == 1 for w in _workers_by_group(records).values())


# --- the pool: one boot per cell whatever the order ------------------------------------------------------


class FakeBoots:
    """Boot context managers that count entries and exits (and can fail)."""

    def __init__(self, fail: BaseException | None = None) -> None:
        self.entered: list[str] = []
        self.exited: list[str] = []
        self.fail = fail

    def __call__(self, name: str):
        @contextmanager
        def boot():
            self.entered.append(name)
            if self.fail is not None:
                raise self.fail
            yield f"guest-{name}-{len(self.entered)}"
            self.exited.append(name)
        return boot


def test_pool_keeps_a_cell_that_may_return_and_boots_it_once() -> None:
    boots = FakeBoots()
    pool = GuestPool(lambda name: True)  # --dist load: any cell may come back
    seen = []
    for name in ["a", "b", "a", "b", "a"]:  # interleaved, as a worker may get them
        seen.append(pool.get(name, boots(name)))
        pool.release(name)
    assert boots.entered == ["a", "b"] and seen == ["guest-a-1", "guest-b-2", "guest-a-1", "guest-b-2", "guest-a-1"]
    assert boots.exited == []
    pool.close()
    assert sorted(boots.exited) == ["a", "b"]


def test_pool_stops_a_cell_that_cannot_return_at_once() -> None:
    boots = FakeBoots()
    pool = GuestPool(lambda name: False)  # loadgroup: a cell's tests come together
    pool.get("a", boots("a"))
    pool.release("a")
    assert boots.exited == ["a"]
    pool.get("b", boots("b"))
    pool.close()
    assert boots.exited == ["a", "b"]


def test_pool_never_retries_a_failed_or_skipped_boot() -> None:
    for error in (RuntimeError("QEMU exited"), pytest.skip.Exception("cannot boot here: no SEV")):
        boots = FakeBoots(fail=error)
        pool = GuestPool(lambda name: True)
        for _ in range(3):
            with pytest.raises(type(error)) as info:
                pool.get("sev", boots("sev"))
            assert info.value is error
            pool.release("sev")
        assert boots.entered == ["sev"] and pool.boots == {"sev": 1}
        pool.close()


def test_pool_does_not_remember_an_interrupt_and_closes_everything_despite_errors() -> None:
    boots = FakeBoots(fail=KeyboardInterrupt())
    pool = GuestPool(lambda name: True)
    with pytest.raises(KeyboardInterrupt):
        pool.get("a", boots("a"))
    boots.fail = None
    assert pool.get("a", boots("a")) == "guest-a-2"  # asked again after an interrupt: a real new boot

    @contextmanager
    def broken_teardown():
        yield "guest-b"
        raise RuntimeError("teardown failed")

    pool.get("b", broken_teardown)
    with pytest.raises(RuntimeError, match="teardown failed"):
        pool.close()
    assert boots.exited == ["a"]  # a was stopped although b's teardown failed


# --- real guests: count the boots a run makes --------------------------------------------------------------

MATRIX = f"""
[matrices]
default = ["{FAST_CELL}", "{FS_CELL}"]

[cell.{FAST_CELL}]
arch = "amd64"
rootfs = "initrd"
shared_fs = "virtio-9p"
block_driver = "virtio-blk"

[cell.{FS_CELL}]
arch = "amd64"
rootfs = "initrd"
shared_fs = "virtio-fs"
block_driver = "virtio-scsi"
"""

CONFTEST = """
import pytest

@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items):
    # the worst order for one boot per cell: the two cells' tests alternate
    items.sort(key=lambda item: (item.callspec.params["n"], item.callspec.params["cell"].name))
"""

BOOTS_TEST = """
import json, os, uuid
from pathlib import Path
import pytest

@pytest.mark.parametrize("n", range(4))
def test_boot_id(guest, cell, n):
    boot_id = guest.channel.check_output("cat /proc/sys/kernel/random/boot_id").strip()
    record = {"cell": cell.name, "worker": os.environ.get("PYTEST_XDIST_WORKER", "main"), "boot_id": boot_id}
    Path(os.environ["KT_RECORDS"], uuid.uuid4().hex).write_text(json.dumps(record))
"""


def _boots_run(tmp_path: Path, env: dict[str, str], *args: str) -> tuple[str, list[dict], Path]:
    """A run of 4 tests per cell, alternating cells; each test records its guest's kernel boot id (random per
    boot: the guest's own count of how often it was booted)."""
    project, records, reports = tmp_path / "project", tmp_path / "records", tmp_path / "reports"
    for path in (project, records):
        path.mkdir()
    (project / "pytest.ini").write_text("[pytest]\n")
    (project / "conftest.py").write_text(CONFTEST)
    (project / "test_boots.py").write_text(BOOTS_TEST)
    (project / "matrix.toml").write_text(MATRIX)
    run = run_pytest(project, "--katatest-matrix", str(project / "matrix.toml"), "--katatest-reports",
                     str(reports), "-rs", *args, env={**env, "KT_RECORDS": str(records)}, timeout=900)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    return run.stdout, [json.loads(p.read_text()) for p in records.iterdir()], reports


def _boot_ids(records: list[dict], *keys: str) -> dict[Any, set[str]]:
    """Distinct guest boot ids by ``keys`` (one key: by its value; several: by their tuple)."""
    out: dict[Any, set[str]] = defaultdict(set)
    for r in records:
        out[r[keys[0]] if len(keys) == 1 else tuple(r[k] for k in keys)].add(r["boot_id"])
    return dict(out)


@pytest.mark.boot
@pytest.mark.parametrize("workers", ["2", "3"])
def test_plain_n_boots_each_cell_once(tmp_path: Path, isolated_env: dict[str, str], workers: str) -> None:
    """``-n 2`` or ``-n 3`` alone (issue 9: 18-21 QEMU launches for 12 cells): one guest boot per cell in the
    whole run."""
    built_assets()
    out, records, reports = _boots_run(tmp_path, isolated_env, "-n", workers)
    per_cell = _boot_ids(records, "cell")
    assert FAST_CELL in per_cell and len(records) == 4 * len(per_cell), (records, out[-2000:])
    if os.geteuid() == 0:
        assert FS_CELL in per_cell, out[-2000:]
    assert {cell: len(ids) for cell, ids in per_cell.items()} == {cell: 1 for cell in per_cell}, per_cell
    assert all(len({r["worker"] for r in records if r["cell"] == cell}) == 1 for cell in per_cell)
    assert {r["worker"] for r in records} <= {f"gw{i}" for i in range(int(workers))}
    booted = {c.name: c.boots for c in load(reports / "summary.json").cells if c.booted}
    assert booted == {cell: 1 for cell in per_cell} and WARNING not in out  # the report counts the same


@pytest.mark.boot
def test_explicit_dist_load_warns_once_and_boots_a_cell_once_per_worker(tmp_path: Path,
                                                                        isolated_env: dict[str, str]) -> None:
    """``--dist load`` with the cells' tests alternating: the guest pool keeps each worker's guests up."""
    built_assets()
    out, records, reports = _boots_run(tmp_path, isolated_env, "-n", "2", "--dist", "load")
    per_worker = _boot_ids(records, "cell", "worker")
    assert all(len(ids) == 1 for ids in per_worker.values()), per_worker
    assert len([line for line in out.splitlines() if line.startswith(WARNING)]) == 1, out[-3000:]
    summary = {c.name: c.boots for c in load(reports / "summary.json").cells if c.booted}
    workers = defaultdict(set)
    for cell, worker in per_worker:
        workers[cell].add(worker)
    assert summary == {cell: len(w) for cell, w in workers.items()}, (summary, per_worker)


@pytest.mark.boot
def test_without_xdist_interleaved_cells_boot_once(tmp_path: Path, isolated_env: dict[str, str]) -> None:
    """No xdist, the cells' tests alternating: each cell boots once (kept while a test of it is still to come)."""
    built_assets()
    out, records, _ = _boots_run(tmp_path, isolated_env, "-p", "no:xdist")
    per_cell = _boot_ids(records, "cell")
    assert FAST_CELL in per_cell and all(len(ids) == 1 for ids in per_cell.values()), (per_cell, out[-2000:])

