"""Host side of the guest command channel: a unix socket to the guest console (QEMU chardev socket)."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from katatest.guest import protocol
from katatest.guest.errors import GuestChannelError, GuestPanic, GuestTimeout
from katatest.guest.protocol import CommandResult

DEFAULT_TIMEOUT = 120.0
PING_INTERVAL = 1.0
TRANSFER_SLACK = 30.0  # host waits this much longer than the guest-side command timeout
MAX_BUFFER = 64 << 20


class GuestChannel:
    """Commands to katatest's guest init over the console socket; every console byte goes to ``log_path``.

    ``is_alive`` (e.g. ``lambda: proc.poll() is None``) lets waits fail fast when QEMU has exited.
    """

    def __init__(self, socket_path: str | os.PathLike, log_path: str | os.PathLike,
                 timeout: float = DEFAULT_TIMEOUT, is_alive: Callable[[], bool] | None = None) -> None:
        self.socket_path = Path(socket_path)
        self.log_path = Path(log_path)
        self.timeout = timeout
        self.is_alive = is_alive
        self.console: str | None = None
        self._sock: socket.socket | None = None
        self._buf = bytearray()
        self._tail = bytearray()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed by close()

    # -- connection -------------------------------------------------------------------------------
    def _check_alive(self, grace: float = 0.0) -> None:
        """Raise "the VM exited" if QEMU is gone (waiting up to ``grace`` s for a dying QEMU to go)."""
        if self.is_alive is None:
            return
        deadline = time.monotonic() + grace
        while self.is_alive():
            if time.monotonic() >= deadline:
                return
            time.sleep(0.05)
        raise GuestChannelError(f"the VM exited; console tail:\n{self.console_tail()}")

    def connect(self, timeout: float | None = None) -> None:
        """Connect to the console socket, retrying until it exists (QEMU creates it on start)."""
        if self._sock is not None:
            return
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        last: OSError | None = None
        while time.monotonic() < deadline:
            self._check_alive()
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect(str(self.socket_path))
                self._sock = sock
                return
            except OSError as exc:
                sock.close()
                last = exc
                time.sleep(0.1)
        raise GuestTimeout(f"cannot connect to console socket {self.socket_path}: {last}")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if not self._log.closed:
            self._log.close()

    def __enter__(self) -> GuestChannel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- raw I/O ----------------------------------------------------------------------------------
    def _send(self, data: bytes) -> None:
        assert self._sock is not None
        self._sock.settimeout(self.timeout)
        try:
            self._sock.sendall(data)
        except OSError as exc:
            self._check_alive(grace=1.0)
            raise GuestChannelError(f"console socket send failed: {exc}") from None

    def _receive(self, wait: float) -> None:
        """Receive what arrives within ``wait`` seconds into the buffer and the log."""
        assert self._sock is not None
        self._sock.settimeout(max(wait, 0.01))
        try:
            chunk = self._sock.recv(1 << 16)
        except socket.timeout:
            self._check_alive()
            return
        except OSError as exc:
            self._check_alive(grace=1.0)
            raise GuestChannelError(f"console socket failed: {exc}; tail:\n{self.console_tail()}") from None
        if not chunk:
            self._check_alive(grace=1.0)
            raise GuestChannelError(f"console closed (VM gone?); console tail:\n{self.console_tail()}")
        self._log.write(chunk)
        self._log.flush()
        window = bytes(self._tail[-64:]) + chunk
        self._tail = (self._tail + chunk)[-16384:]
        if any(marker in window for marker in protocol.PANIC_MARKERS):
            self._drain_after_panic()
            raise GuestPanic(f"guest kernel panic; console tail:\n{self.console_tail()}")
        self._buf += chunk
        if len(self._buf) > MAX_BUFFER:
            del self._buf[: len(self._buf) - MAX_BUFFER]

    def _drain_after_panic(self, seconds: float = 1.0) -> None:
        """Collect the rest of the panic report (stack, 'end Kernel panic') for the log."""
        deadline = time.monotonic() + seconds
        while self._sock is not None and time.monotonic() < deadline:
            self._sock.settimeout(0.2)
            try:
                chunk = self._sock.recv(1 << 16)
            except OSError:
                continue
            if not chunk:
                break
            self._log.write(chunk)
            self._tail = (self._tail + chunk)[-16384:]
        self._log.flush()

    def console_tail(self, lines: int = 40) -> str:
        """The last console lines received (for error reports)."""
        text = bytes(self._tail).decode(errors="replace").replace("\r", "")
        return "\n".join(text.splitlines()[-lines:])

    # -- protocol ---------------------------------------------------------------------------------
    def wait_ready(self, timeout: float | None = None) -> str:
        """Wait until the guest init answers; returns the console device it serves (e.g. ``hvc0``)."""
        limit = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        self.connect(limit)
        ping_id = protocol.new_id()
        pong = protocol.pong_re(ping_id)
        next_ping = 0.0
        while time.monotonic() < deadline:
            if time.monotonic() >= next_ping:
                self._send(protocol.ping_line(ping_id))
                next_ping = time.monotonic() + PING_INTERVAL
            self._receive(min(0.25, deadline - time.monotonic()))
            ready = protocol.READY_RE.search(self._buf)
            if ready:
                self.console = ready.group(1).decode()
            if ready or pong.search(self._buf):
                self._buf.clear()
                if self.console is None:
                    self.console = self.run("cat /run/katatest/console").stdout.decode().strip()
                return self.console
        raise GuestTimeout(f"guest init not ready after {limit:.0f}s; console tail:\n{self.console_tail()}")

    def run(self, cmd: str | Sequence[str], stdin: bytes = b"", timeout: float | None = None) -> CommandResult:
        """Run ``cmd`` (shell text, or an argv list) in the guest; stdout/stderr come back byte-exact."""
        limit = self.timeout if timeout is None else timeout
        self._check_alive()
        self.connect()
        request_id = protocol.new_id()
        self._send(protocol.request_line(request_id, cmd, stdin, int(limit + 0.999)))
        deadline = time.monotonic() + limit + TRANSFER_SLACK
        end, wait = protocol.end_re(request_id), protocol.wait_re(request_id)
        acked: set[int] = set()
        scanned = 0  # markers are only searched for in data not scanned yet (plus an overlap)
        while time.monotonic() < deadline:
            self._receive(min(0.5, max(deadline - time.monotonic(), 0.01)))
            start = max(0, scanned - 128)
            scanned = len(self._buf)
            for match in wait.finditer(self._buf, start):
                chunk = int(match.group(1))
                if chunk not in acked:
                    acked.add(chunk)
                    self._send(protocol.ack_line(request_id, chunk))
            done = end.search(self._buf, start)
            if done:
                try:
                    result = protocol.parse_response(request_id, bytes(self._buf[: done.end()]))
                except ValueError as exc:
                    raise GuestChannelError(f"garbled reply to {protocol.script_text(cmd)!r}: {exc}") from None
                del self._buf[: done.end()]
                assert result is not None
                return result
        raise GuestTimeout(f"no reply to {protocol.script_text(cmd)!r} within {limit + TRANSFER_SLACK:.0f}s; "
                           f"console tail:\n{self.console_tail()}")

    def check_output(self, cmd: str | Sequence[str], timeout: float | None = None) -> str:
        """stdout of a command that must succeed, decoded, trailing newline stripped."""
        result = self.run(cmd, timeout=timeout)
        if result.exit_status != 0:
            raise GuestChannelError(f"{protocol.script_text(cmd)!r} exited {result.exit_status}: "
                                    f"{result.stderr.decode(errors='replace').strip()}")
        return result.stdout.decode(errors="replace").rstrip("\n")


