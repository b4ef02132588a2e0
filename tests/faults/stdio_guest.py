"""katatest's real guest init, serving its console protocol on a unix socket on the host (``init serve-stdio``
under busybox sh, with busybox's applets as in the guest): the channel's tests run against it without a VM."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest

INIT = Path(__file__).resolve().parents[2] / "katatest" / "data" / "guest" / "init"
APPLETS = ("sh", "cat", "dd", "md5sum", "base64", "wc", "timeout", "printf", "stty", "sleep", "mkdir", "head",
           "tr", "echo", "seq", "yes", "true", "false", "kill")


def busybox() -> str:
    path = shutil.which("busybox")
    if path is None:
        pytest.skip("busybox not installed (scripts/setup.sh installs busybox-static)")
    return path


@dataclass
class StdioGuest:
    """Listens on ``socket_path``; each connection gets a fresh ``init serve-stdio`` (use as a context manager)."""

    socket_path: Path
    work: Path
    procs: list[subprocess.Popen] = field(default_factory=list)

    def __enter__(self) -> StdioGuest:
        box = busybox()
        self.bin = self.work / "bin"
        self.bin.mkdir(parents=True, exist_ok=True)
        for applet in APPLETS:
            link = self.bin / applet
            if not link.exists():
                link.symlink_to(box)
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(str(self.socket_path))
        self._listener.listen(4)
        self._listener.settimeout(0.02)  # how soon __exit__ ends the accept loop
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        return self

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                continue
            state = self.work / f"state{len(self.procs)}"
            state.mkdir()
            self.procs.append(subprocess.Popen([str(self.bin / "sh"), str(INIT), "serve-stdio", str(state),
                                                str(self.bin)], stdin=conn, stdout=conn, stderr=conn,
                                               env={"PATH": str(self.bin)}, start_new_session=True))
            conn.close()

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self._listener.close()
        for proc in self.procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # the shell and whatever command it runs
            proc.wait(5)
