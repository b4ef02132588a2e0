"""Find and remove what dead katatest owners left behind: marked QEMU/virtiofsd/supervisor processes and
private runtime dirs. Only leftovers whose owner process is gone are touched (others may be running VMs)."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from katatest.launch.proc import ProcInfo, alive, kill, processes, token_alive
from katatest.launch.vm import MARKER_ENV, OWNER_ENV, OWNER_FILE, RUN_ROOT_PREFIX, RUNTIME_PREFIX, runtime_parents


@dataclass
class SweepReport:
    killed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.killed or self.removed)

    def summary(self) -> str:
        if not self:
            return "nothing left behind"
        return "; ".join([f"killed {p}" for p in self.killed] + [f"removed {d}" for d in self.removed])


def katatest_processes(include_live_owners: bool = True) -> list[ProcInfo]:
    """Processes started by a katatest VirtualMachine (they carry the marker in their environment)."""
    out = []
    for proc in processes():
        if proc.pid == os.getpid() or MARKER_ENV not in proc.environ:
            continue
        if include_live_owners or not token_alive(proc.environ.get(OWNER_ENV, "")):
            out.append(proc)
    return out


def marked_dirs() -> list[Path]:
    """Runtime dirs (``/tmp/kt-*``, or under a non-root user's XDG_RUNTIME_DIR) and run roots
    (``$TMPDIR/katatest-*``) that carry an owner file."""
    found = [p for parent in runtime_parents() for p in Path(parent).glob(f"{RUNTIME_PREFIX}*")]
    found += Path(tempfile.gettempdir()).glob(f"{RUN_ROOT_PREFIX}*")
    return sorted(p for p in set(found) if _ours(p))


def _ours(path: Path) -> bool:
    """A real directory of this user (other users' private dirs are neither readable nor ours to remove)."""
    try:
        st = path.lstat()
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid()


def leftover_runtime_dirs(include_live_owners: bool = False) -> list[Path]:
    """Marked dirs whose owner is gone (or all of them with ``include_live_owners``)."""
    out = []
    for path in marked_dirs():
        try:
            token = (path / OWNER_FILE).read_text().strip()
        except OSError:
            continue
        if token and (include_live_owners or not token_alive(token)):
            out.append(path)
    return out


def sweep(include_live_owners: bool = False) -> SweepReport:
    """Kill orphaned katatest processes and remove orphaned runtime dirs; say what was done."""
    report = SweepReport()
    victims = katatest_processes(include_live_owners)
    for proc in victims:
        kill(proc.pid, signal.SIGKILL)
        report.killed.append(f"{proc.pid} {' '.join(proc.cmdline[:1])}")
    deadline = time.monotonic() + 5
    while victims and time.monotonic() < deadline:
        victims = [p for p in victims if alive(p.pid)]
        time.sleep(0.05)
    for path in leftover_runtime_dirs(include_live_owners):
        shutil.rmtree(path, ignore_errors=True)
        report.removed.append(str(path))
    return report
