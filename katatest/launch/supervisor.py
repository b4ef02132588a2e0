"""Per-VM supervisor: starts virtiofsd and QEMU as Kata does and makes sure neither outlives its owner.

Run as ``python -m katatest.launch.supervisor SPEC.json``, normally as PID 1 of a fresh PID namespace
(``unshare --pid --fork --kill-child``): the daemonized QEMU reparents to it, and when it exits the kernel
kills everything left in the namespace. Without a namespace it makes itself a child subreaper instead.
Two QEMU modes: ``-daemonize`` (Kata 3.0.0; ready when the parent exits 0 and the pidfile names the daemon) and
foreground (Kata 3.30+, ``spec['foreground']``; QEMU is our child, ready when its QMP socket answers a command;
it also gets SIGKILL should the supervisor itself die).
The owner holds the write end of a "lifeline" pipe; EOF on it (owner exited or was SIGKILLed) means kill
everything and exit. Status goes to stdout as JSON lines: ``started`` (host pids) or ``failed``.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time

from katatest.launch import fds
from katatest.launch.proc import become_subreaper, die_with_parent, host_pid, kill


def _emit(**event: object) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def start_virtiofsd(spec: dict) -> subprocess.Popen:
    """Create the vhost-user listening socket ourselves and pass it as fd 3, as Kata's virtiofsd.go does."""
    opened = fds.open_all([{"target": 3, "kind": "unix-listener", "path": spec["vhost_fs_socket"]}])
    try:
        with open(spec["daemon_log"], "ab") as log:
            return subprocess.Popen(spec["daemon_argv"], stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                    close_fds=False, preexec_fn=fds.placer(opened))
    finally:
        fds.close_all(opened)


def start_qemu(spec: dict) -> int:
    """Run QEMU's daemonizing parent to completion; its exit status, stderr in ``spec['qemu_stderr']``.

    Every fd of ``spec['inherit']`` is opened here and placed at its number in QEMU (see ``launch.fds``)."""
    opened = fds.open_all(spec.get("inherit", []))
    try:
        with open(spec["qemu_stderr"], "wb") as err:
            proc = subprocess.Popen(spec["qemu_argv"], stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                                    close_fds=False, preexec_fn=fds.placer(opened))
            return proc.wait(timeout=spec.get("start_timeout", 60))
    finally:
        fds.close_all(opened)


def start_qemu_foreground(spec: dict) -> subprocess.Popen:
    """Start QEMU as our own child (no ``-daemonize``), the inherited fds placed, dying with us."""
    opened = fds.open_all(spec.get("inherit", []))
    place = fds.placer(opened)

    def prepare() -> None:
        if place:
            place()
        die_with_parent()
    try:
        with open(spec["qemu_stderr"], "wb") as err:
            return subprocess.Popen(spec["qemu_argv"], stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                                    close_fds=False, preexec_fn=prepare)
    finally:
        fds.close_all(opened)


def wait_qmp_ready(proc: subprocess.Popen, path: str, timeout: float) -> str:
    """Wait until QEMU answers a command on its QMP socket ``path`` ('' then), or say why not.

    The greeting alone proves little: QEMU's monitor thread sends it before the machine is built (a missing
    -bios still makes QEMU exit after it). A command's reply comes from the main loop, i.e. once QEMU runs,
    which is what a ``-daemonize`` parent's exit means. One connection, closed at the end, so the owner's QMP
    client is the next one QEMU accepts."""
    deadline = time.monotonic() + timeout
    sock: socket.socket | None = None
    received = b""
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return f"QEMU exited ({proc.returncode}) before its QMP socket answered"
            try:
                if sock is None:
                    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                    sock.settimeout(0.2)
                    sock.connect(path)
                data = sock.recv(4096)
            except (TimeoutError, BlockingIOError):
                continue
            except OSError:
                if sock is not None:
                    sock.close()
                    sock = None
                time.sleep(0.05)
                continue
            if not data:  # QEMU closed it: it is exiting (the next poll says so) or refused us
                time.sleep(0.05)
                continue
            greeted = b'"QMP"' in received
            received += data
            if not greeted and b'"QMP"' in received:
                sock.sendall(b'{"execute": "qmp_capabilities"}\n')
            elif greeted and b'"return"' in received.split(b'"QMP"', 1)[1]:
                return ""
        return f"QMP socket {path} did not answer within {timeout:.0f}s"
    finally:
        if sock is not None:
            sock.close()


def _start_foreground(spec: dict) -> tuple[int, int | None, str]:
    """(rc, QEMU pid, why not ready) for a foreground QEMU: rc 0 once QMP answered, else QEMU's status."""
    proc = start_qemu_foreground(spec)
    why = wait_qmp_ready(proc, spec["qmp_socket"], spec.get("start_timeout", 60))
    if not why:
        return 0, proc.pid, ""
    rc = proc.poll()
    return (rc if rc else 1), (proc.pid if rc is None else None), why


def _read_pid(path: str | None, timeout: float = 5.0) -> int | None:
    deadline = time.monotonic() + timeout
    while path and time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError), open(path, encoding="utf-8") as fh:
            return int(fh.read().strip())
        time.sleep(0.05)
    return None


def _last_line(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            lines = [line.strip() for line in fh if line.strip()]
    except OSError:
        return "no log"
    return lines[-1] if lines else "no log"


def _reap() -> list[int]:
    gone = []
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return gone
        if pid == 0:
            return gone
        gone.append(pid)


def _terminate(pids: list[int], grace: float) -> None:
    for pid in pids:
        kill(pid, signal.SIGTERM if grace else signal.SIGKILL)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_exists(p) for p in pids):
        _reap()
        time.sleep(0.05)
    for pid in pids:
        kill(pid, signal.SIGKILL)
    _reap()


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _host(pid: int | None) -> int | None:
    """Our pid as the owner sees it (procfs is the host's, so readlink /proc/self gives the host pid)."""
    if pid is None:
        return None
    if os.getpid() != 1:
        return pid
    return host_pid(pid, int(os.readlink("/proc/self")))


def supervise(spec: dict, lifeline: int) -> int:
    if os.getpid() != 1:
        become_subreaper()
    stop = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    daemon = None
    if spec.get("daemon_argv"):
        try:
            daemon = start_virtiofsd(spec)
        except OSError as exc:
            _emit(event="failed", stage="virtiofsd", error=str(exc))
            return 1
    try:
        if spec.get("foreground"):
            rc, qemu, why = _start_foreground(spec)
        else:
            rc = start_qemu(spec)
            qemu, why = (_read_pid(spec.get("pidfile")) if rc == 0 else None), ""
    except (OSError, subprocess.TimeoutExpired) as exc:
        _emit(event="failed", stage="qemu", error=str(exc))
        _terminate([daemon.pid] if daemon else [], 1.0)
        return 1
    if rc != 0 and daemon is not None and daemon.poll() not in (None, 0):  # 0: QEMU connected, then left
        _emit(event="failed", stage="virtiofsd", rc=rc, error=f"virtiofsd exited ({daemon.returncode}) before "
              f"QEMU could connect: {_last_line(spec['daemon_log'])}")
        _terminate([qemu] if qemu else [], 1.0)
        return 1
    if rc != 0 or qemu is None:
        _emit(event="failed", stage="qemu", rc=rc,
              error=why or ("QEMU exited" if rc else "QEMU wrote no pidfile"))
        _terminate(([qemu] if qemu else []) + ([daemon.pid] if daemon else []), 1.0)
        return 1
    _emit(event="started", qemu_pid=_host(qemu), virtiofsd_pid=_host(daemon.pid if daemon else None),
          supervisor_pid=int(os.readlink("/proc/self")))
    children = [qemu] + ([daemon.pid] if daemon else [])
    grace = 2.0
    while not stop:
        ready, _, _ = select.select([lifeline], [], [], 0.2)
        if ready and not os.read(lifeline, 4096):
            grace = 0.0  # owner is gone: no courtesy, SIGKILL everything now
            break
        _reap()
        if not _exists(qemu):
            break  # QEMU quit: take virtiofsd down with it, as Kata's stopSandbox does
    _terminate([p for p in children if _exists(p)], grace)
    return 0


def main(argv: list[str]) -> int:
    with open(argv[1], encoding="utf-8") as fh:
        spec = json.load(fh)
    lifeline = int(spec["lifeline_fd"])
    os.set_inheritable(lifeline, False)
    fds.keep_passed_private(spec.get("inherit", []))
    return supervise(spec, lifeline)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
