"""The file descriptors QEMU inherits at fixed numbers, as Kata hands them over (``vhostfd=3``, ``fds=5``, ...).

A launch plan lists them as ``InheritedFd`` entries; the supervisor opens each one (or takes it from its owner)
and places it at its number in QEMU just before exec. Kinds:

- ``device``: open ``path`` read-write (``/dev/vhost-vsock``, ``/dev/vhost-net``, ``/dev/tapN``);
- ``unix-listener``: bind and listen on the unix socket ``path`` (Kata's QMP socket passed as a listening fd);
- ``passed``: an fd the owner opened itself (a tap queue opened in the pod's network namespace), handed to the
  supervisor through ``pass_fds`` as ``owner_fd``.
"""

from __future__ import annotations

import fcntl
import os
import socket
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass

KINDS = ("device", "unix-listener", "passed")
HIGH_FD = 100  # sources live at >= 100 so dup2 onto QEMU's low numbers never clobbers another source


@dataclass(frozen=True)
class InheritedFd:
    """One fd QEMU finds open at ``target``; ``reason`` says which argv argument names it."""

    target: int
    kind: str
    reason: str
    path: str | None = None
    owner_fd: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"inherited fd {self.target}: unknown kind {self.kind!r}")
        if self.target < 3:
            raise ValueError(f"inherited fd {self.target}: 0-2 are QEMU's stdio")

    def to_json(self) -> dict:
        return asdict(self)


def check_unique(entries: Iterable[InheritedFd]) -> list[InheritedFd]:
    """The entries, refusing two that claim the same fd number."""
    seen: dict[int, InheritedFd] = {}
    for e in entries:
        if e.target in seen:
            raise ValueError(f"fd {e.target} claimed twice: {seen[e.target].reason} and {e.reason}")
        seen[e.target] = e
    return sorted(seen.values(), key=lambda e: e.target)


def keep_passed_private(entries: Iterable[dict]) -> None:
    """In the supervisor: its copies of the owner's ``passed`` fds stop being inheritable, so neither
    virtiofsd nor QEMU gets a stray copy; QEMU receives each one only at its target (``placer``)."""
    for entry in entries:
        if entry.get("kind") == "passed" and entry.get("owner_fd") is not None:
            os.set_inheritable(int(entry["owner_fd"]), False)


def _high(fd: int) -> int:
    return fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, HIGH_FD)


def open_source(entry: dict) -> int:
    """Open one entry (as JSON, in the supervisor): a close-on-exec fd >= HIGH_FD."""
    kind = entry["kind"]
    if kind == "passed":
        return _high(int(entry["owner_fd"]))
    if kind == "device":
        fd = os.open(entry["path"], os.O_RDWR | os.O_CLOEXEC)
        try:
            return _high(fd)
        finally:
            os.close(fd)
    if kind == "unix-listener":
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(entry["path"])
            listener.listen()
            return _high(listener.fileno())
        finally:
            listener.close()
    raise ValueError(f"unknown inherited fd kind {kind!r}")


def open_all(entries: list[dict]) -> dict[int, int]:
    """target -> opened source fd for every entry; on failure closes what it opened and re-raises."""
    opened: dict[int, int] = {}
    try:
        for entry in entries:
            opened[int(entry["target"])] = open_source(entry)
    except BaseException:
        close_all(opened)
        raise
    return opened


def close_all(opened: dict[int, int]) -> None:
    for fd in opened.values():
        os.close(fd)


def placer(opened: dict[int, int]) -> Callable[[], None] | None:
    """A ``preexec_fn`` that dup2s every source onto its target (dup2 clears close-on-exec)."""
    if not opened:
        return None

    def place() -> None:
        for target, fd in opened.items():
            os.dup2(fd, target)
    return place
