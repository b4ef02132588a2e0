"""Find and remove what dead katatest owners left behind: marked QEMU/virtiofsd/supervisor processes,
private runtime dirs and the network namespaces such a dir records (``launch.network``). Only leftovers
whose owner process is gone are touched (others may be running VMs), and only those of the sweeper's own
:class:`Scope` (its TMPDIR and XDG_RUNTIME_DIR): concurrent sessions given their own dirs never see each
other's leftovers."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from katatest.launch.network import delete_netns, orphaned_netns, remove_recorded_netns
from katatest.launch.proc import ProcInfo, alive, kill, processes, token_alive
from katatest.launch.vm import (
    MARKER_ENV,
    OWNER_ENV,
    OWNER_FILE,
    RUN_ROOT_PREFIX,
    RUNTIME_PARENT,
    RUNTIME_PREFIX,
    SCOPE_FILE,
    runtime_parent,
    scope_key,
)

LEGACY_SCOPE = scope_key({})  # dirs marked before they carried a scope file: those of the default environment


def _tempdir_of(environ: Mapping[str, str]) -> str:
    """The temp dir a process with ``environ`` uses (tempfile's rule, short of probing writability)."""
    for name in ("TMPDIR", "TEMP", "TMP"):
        value = environ.get(name, "")
        if value and os.path.isdir(value):
            return os.path.abspath(value)
    return "/tmp"


@dataclass(frozen=True)
class Scope:
    """What one environment's sweeps may touch: the marked dirs and processes of owners that ran with the
    same TMPDIR and XDG_RUNTIME_DIR (``key``; dirs carry it in a scope file, processes in their inherited
    environment), looked for where such owners put them (``parents``: runtime dirs; ``tempdir``: run roots)."""

    key: str
    parents: tuple[str, ...]
    tempdir: str

    @classmethod
    def of(cls, environ: Mapping[str, str] | None = None) -> Scope:
        """The scope of ``environ`` (default: this process, whose temp dir is tempfile's)."""
        env = os.environ if environ is None else environ
        tempdir = os.path.abspath(tempfile.gettempdir() if environ is None else _tempdir_of(environ))
        return cls(scope_key(env), tuple(sorted({RUNTIME_PARENT, runtime_parent(env), tempdir})), tempdir)

    def holds(self, proc: ProcInfo) -> bool:
        """Whether ``proc`` was started by an owner of this scope."""
        return scope_key(proc.environ) == self.key

    def holds_dir(self, path: Path) -> bool:
        try:
            key = (path / SCOPE_FILE).read_text()
        except FileNotFoundError:
            key = LEGACY_SCOPE
        except OSError:
            return False
        return key == self.key


@dataclass
class SweepReport:
    killed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # what could not be removed (kept recorded for a later sweep)

    def __bool__(self) -> bool:
        return bool(self.killed or self.removed or self.failed)

    def summary(self) -> str:
        if not self:
            return "nothing left behind"
        return "; ".join([f"killed {p}" for p in self.killed] + [f"removed {d}" for d in self.removed]
                         + [f"COULD NOT REMOVE {f}" for f in self.failed])


def katatest_processes(include_live_owners: bool = True, scope: Scope | None = None) -> list[ProcInfo]:
    """Processes started by a katatest VirtualMachine (they carry the marker in their environment), of
    ``scope`` only when given."""
    out = []
    for proc in processes():
        if proc.pid == os.getpid() or MARKER_ENV not in proc.environ:
            continue
        if scope is not None and not scope.holds(proc):
            continue
        if include_live_owners or not token_alive(proc.environ.get(OWNER_ENV, "")):
            out.append(proc)
    return out


def marked_dirs(scope: Scope | None = None) -> list[Path]:
    """Runtime dirs (``/tmp/kt-*``, or under a non-root user's XDG_RUNTIME_DIR) and run roots
    (``$TMPDIR/katatest-*``) of ``scope`` (default: this process's)."""
    scope = scope or Scope.of()
    found = [p for parent in scope.parents for p in Path(parent).glob(f"{RUNTIME_PREFIX}*")]
    found += Path(scope.tempdir).glob(f"{RUN_ROOT_PREFIX}*")
    return sorted(p for p in set(found) if _ours(p) and scope.holds_dir(p))


def _ours(path: Path) -> bool:
    """A real directory of this user (other users' private dirs are neither readable nor ours to remove)."""
    try:
        st = path.lstat()
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid()


def leftover_runtime_dirs(include_live_owners: bool = False, scope: Scope | None = None) -> list[Path]:
    """Marked dirs whose owner is gone (or all of them with ``include_live_owners``)."""
    out = []
    for path in marked_dirs(scope):
        try:
            token = (path / OWNER_FILE).read_text().strip()
        except OSError:
            continue
        if token and (include_live_owners or not token_alive(token)):
            out.append(path)
    return out


def sweep(include_live_owners: bool = False, scope: Scope | None = None) -> SweepReport:
    """Kill orphaned katatest processes and remove orphaned runtime dirs of ``scope`` (default: this
    process's); say what was done."""
    scope = scope or Scope.of()
    report = SweepReport()
    victims = katatest_processes(include_live_owners, scope)
    for proc in victims:
        kill(proc.pid, signal.SIGKILL)
        report.killed.append(f"{proc.pid} {' '.join(proc.cmdline[:1])}")
    deadline = time.monotonic() + 5
    while victims and time.monotonic() < deadline:
        victims = [p for p in victims if alive(p.pid)]
        time.sleep(0.05)
    for path in leftover_runtime_dirs(include_live_owners, scope):
        gone, failed = remove_recorded_netns(path)
        report.removed += [f"netns {name}" for name in gone]
        if failed:  # keep the record: a later sweep tries again
            report.failed += [f"netns {why}" for why in failed]
            continue
        shutil.rmtree(path, ignore_errors=True)
        report.removed.append(str(path))
    gone, failed = delete_netns(orphaned_netns())  # recorded by runs under another TMPDIR
    report.removed += [f"netns {name}" for name in gone]
    report.failed += [f"netns {why}" for why in failed]
    return report
