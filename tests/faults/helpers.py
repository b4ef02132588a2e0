"""Fault-test helpers: a fast cell's config, built assets, pytest subprocesses and leftover checks."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from katatest.assets.cache import GuestAssets, asset_status, ensure_assets
from katatest.host import facts as hostfacts
from katatest.host.facts import HostFacts
from katatest.launch.proc import ProcInfo, alive
from katatest.launch.sweep import katatest_processes, marked_dirs
from katatest.launch.vm import MARKER_ENV, OWNER_ENV, OWNER_FILE
from katatest.matrix.cell_config import cell_document, cell_facts
from katatest.matrix.model import load_matrix

ROOT = Path(__file__).resolve().parents[2]
FAST_CELL = "amd64-initrd-9p-blk"  # initrd + 9p: no virtiofsd, smallest boot
FS_CELL = "amd64-initrd-virtiofs-scsi"
READY = b"KATATEST-READY"


def built_assets(arch: str = "amd64") -> GuestAssets:
    """The cached guest assets, or skip: fault tests never start a kernel build."""
    missing = [s.name for s in asset_status(arch) if s.state not in ("built", "override")]
    if missing:
        pytest.skip(f"{arch} guest assets not built ({', '.join(missing)}); run `katatest assets build`")
    return ensure_assets(arch, progress=lambda line: None)


def cell_config(name: str, kernel_params: str | None = None,
                **qemu_keys: Any) -> tuple[dict[str, Any], HostFacts, HostFacts]:
    """(document, cell facts, host facts) of matrix cell ``name``, with extra hypervisor.qemu keys."""
    cell = load_matrix().cells[name]
    document = cell_document(cell)
    qemu = document["hypervisor"]["qemu"]
    if kernel_params is not None:
        qemu["kernel_params"] = kernel_params
    qemu.update(qemu_keys)
    host = hostfacts.detect()
    return document, cell_facts(cell, host), host


def owner_pid(proc_or_token: ProcInfo | str) -> int:
    token = proc_or_token if isinstance(proc_or_token, str) else proc_or_token.environ.get(OWNER_ENV, "")
    try:
        return int(token.split(":", 1)[0])
    except ValueError:
        return -1


def leftovers(owners: Iterable[int]) -> list[str]:
    """katatest processes and marked runtime/run dirs (sockets live inside) owned by ``owners``."""
    pids = set(owners)
    out = [f"process {p.pid} {' '.join(p.cmdline[:1])}" for p in katatest_processes() if owner_pid(p) in pids]
    for path in marked_dirs():
        with contextlib.suppress(OSError):
            if owner_pid((path / OWNER_FILE).read_text().strip()) in pids:
                out.append(f"dir {path}")
    return out


def processes_left(owners: Iterable[int], seconds: float) -> list[str]:
    """katatest processes of ``owners`` still alive after waiting up to ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        left = [entry for entry in leftovers(owners) if entry.startswith("process")]
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.1)


def children(pid: int) -> list[int]:
    """Descendants of ``pid`` (xdist workers of a pytest controller, ...)."""
    parents: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                ppid = int(Path(f"/proc/{name}/stat").read_text().rsplit(")", 1)[1].split()[2])
                parents.setdefault(ppid, []).append(int(name))
    seen, todo = {pid}, [pid]
    while todo:  # some containers show processes as their own parent: never revisit
        kids = [k for k in parents.get(todo.pop(), []) if k not in seen]
        seen.update(kids)
        todo += kids
    return sorted(seen - {pid})


def pytest_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--katatest-arch", "amd64", *args]


def run_pytest(cwd: Path, *args: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    """``python -m pytest ARGS`` in ``cwd`` as a session of its own: ``env`` (an ``isolated_env``) without
    this session's PYTEST_* variables, katatest importable from the checkout."""
    env = {k: v for k, v in env.items() if not k.startswith(("PYTEST_", "COV_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def spawn_pytest(args: list[str], reports: Path, env: dict[str, str] | None = None,
                 **popen: Any) -> subprocess.Popen:
    """A pytest run of the suites in its own session (Ctrl-C goes to its process group)."""
    cmd = pytest_cmd("--katatest-reports", str(reports), *args)
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, **(env or {})}, start_new_session=True, **popen)


def wait_for_vm(run: subprocess.Popen, ready: bool, timeout: float = 240.0) -> ProcInfo:
    """The QEMU of ``run`` (owned by it or one of its workers), once started or (``ready``) serving."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if run.poll() is not None:
            raise AssertionError(f"pytest exited {run.returncode} before its guest was up:\n{run.stdout.read()}")
        family = {run.pid, *children(run.pid)}
        for proc in katatest_processes():
            if owner_pid(proc) in family and "qemu-system" in " ".join(proc.cmdline[:1]):
                log = Path(proc.environ[MARKER_ENV]) / "console.log"
                if not ready or (log.exists() and READY in log.read_bytes()):
                    return proc
        time.sleep(0.2)
    raise AssertionError(f"no {'ready ' if ready else ''}guest of pytest {run.pid} within {timeout:.0f}s")


def gone_within(pids: Iterable[int], seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    live = [p for p in pids if alive(p)]
    while live and time.monotonic() < deadline:
        time.sleep(0.05)
        live = [p for p in live if alive(p)]
    return live


def finish(run: subprocess.Popen, timeout: float = 300.0) -> str:
    """Wait for a pytest run (killing its group if it hangs); its output."""
    try:
        out, _ = run.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(run.pid, signal.SIGKILL)
        out, _ = run.communicate()
        raise AssertionError(f"pytest run hung for {timeout:.0f}s:\n{out}") from None
    return out
