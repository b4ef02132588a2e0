"""Process helpers: parent-death signals, subreapers and /proc inspection."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36

_libc = ctypes.CDLL(None, use_errno=True)


def _prctl(option: int, arg: int) -> None:
    if _libc.prctl(option, arg, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def die_with_parent(sig: int = signal.SIGKILL) -> None:
    """In a child (``preexec_fn``): receive ``sig`` when the thread that forked us exits."""
    _prctl(PR_SET_PDEATHSIG, int(sig))


def become_subreaper() -> None:
    """Orphaned descendants (e.g. a daemonized QEMU) are reparented to this process."""
    _prctl(PR_SET_CHILD_SUBREAPER, 1)


def start_time(pid: int) -> int | None:
    """The process start time in clock ticks (with the pid, identifies a process across pid reuse)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as fh:
            stat = fh.read()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def alive(pid: int, started: int | None = None) -> bool:
    """Whether ``pid`` exists, is not a zombie and (if given) has the same start time."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return False
    if fields[0] in ("Z", "X"):
        return False
    return started is None or int(fields[19]) == started


def owner_token(pid: int | None = None) -> str:
    """``pid:starttime`` of a process (default: this one)."""
    pid = os.getpid() if pid is None else pid
    return f"{pid}:{start_time(pid)}"


def token_alive(token: str) -> bool:
    pid, _, started = token.partition(":")
    try:
        return alive(int(pid), int(started))
    except ValueError:
        return False


@dataclass(frozen=True)
class ProcInfo:
    pid: int
    cmdline: list[str]
    environ: dict[str, str]


def _read_nul_list(path: str) -> list[str]:
    try:
        with open(path, "rb") as fh:
            return [p.decode(errors="replace") for p in fh.read().split(b"\0") if p]
    except OSError:
        return []


def processes() -> Iterator[ProcInfo]:
    """Every live (non-zombie) process readable in /proc, with argv and environment."""
    for name in os.listdir("/proc"):
        if not name.isdigit() or not alive(int(name)):
            continue
        env = dict(item.partition("=")[::2] for item in _read_nul_list(f"/proc/{name}/environ"))
        yield ProcInfo(int(name), _read_nul_list(f"/proc/{name}/cmdline"), env)


def host_pid(ns_pid: int, in_ns_of: int) -> int | None:
    """The pid (in our namespace) of the process that is ``ns_pid`` inside the pid namespace of ``in_ns_of``."""
    try:
        target_ns = os.readlink(f"/proc/{in_ns_of}/ns/pid")
    except OSError:
        return None
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            if os.readlink(f"/proc/{name}/ns/pid") != target_ns:
                continue
            with open(f"/proc/{name}/status", encoding="utf-8") as fh:
                nspid = next((line.split()[1:] for line in fh if line.startswith("NSpid:")), [])
        except OSError:
            continue
        if nspid and int(nspid[-1]) == ns_pid:
            return int(name)
    return None


def kill(pid: int, sig: int = signal.SIGKILL) -> None:
    """Signal ``pid``, ignoring a process that is already gone."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
