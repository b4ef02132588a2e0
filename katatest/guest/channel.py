"""Host side of the guest command channel: a unix socket to the guest console (QEMU chardev socket)."""

from __future__ import annotations

import os
import select
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from katatest.guest import protocol
from katatest.guest.errors import GuestChannelError, GuestPanic, GuestTimeout
from katatest.guest.protocol import CommandResult

DEFAULT_TIMEOUT = 120.0
TRANSFER_SLACK = 10.0  # host waits this much longer than the guest-side command timeout
MAX_BUFFER = 64 << 20
RESEND_FIRST = 1.0  # seconds of silence before a request (or the missing chunk) is asked for again
RESEND_MAX = 4.0
# damaged copies of one chunk before the reply counts as unrecoverable (the deadline bounds it anyway). 8 was too
# few: on a console that damages about half the copies of a 24 KiB chunk (the lossy tests: 1-7 of 5-11 copies
# per run), nine damaged copies in a row ended a run in ~1 of 15 (measured, legacy serial and virtconsole)
MAX_DAMAGED = 32


@dataclass
class ChannelStats:
    """How much recovery the channel needed: commands run, requests sent again, damaged chunks."""

    commands: int = 0
    request_resends: int = 0
    damaged_chunks: int = 0
    silent_pokes: int = 0  # chunks asked for again after silence (a lost KTNEED, or a lost chunk)

    def record(self, sends: int, pokes: int, reply: protocol.Reply) -> None:
        self.commands += 1
        self.request_resends += sends - 1
        self.silent_pokes += pokes
        self.damaged_chunks += sum(reply.corrupt.values())


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
        self.stats = ChannelStats()
        self.resend_first, self.resend_max = RESEND_FIRST, RESEND_MAX  # seconds of silence before a resend
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
            sock.settimeout(max(min(deadline - time.monotonic(), 1.0), 0.01))
            try:
                sock.connect(str(self.socket_path))
                sock.settimeout(None)
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
    def _send(self, data: bytes, deadline: float, what: str) -> None:
        """Write ``data`` by ``deadline``, reading the console meanwhile (neither side's buffer may fill)."""
        assert self._sock is not None
        view = memoryview(data)
        while view:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise GuestTimeout(f"console socket send of {what} blocked until the deadline; "
                                   f"console tail:\n{self.console_tail()}")
            readable, writable, _ = select.select([self._sock], [self._sock], [], min(remaining, 0.25))
            if readable:
                self._receive(0)
            if not writable:
                self._check_alive()
                continue
            try:
                sent = self._sock.send(view, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError as exc:
                self._check_alive(grace=1.0)
                raise GuestChannelError(f"console socket send failed: {exc}") from None
            view = view[sent:]

    def _receive(self, wait: float) -> int:
        """Receive what arrives within ``wait`` seconds into the buffer and the log; how many bytes came."""
        assert self._sock is not None
        readable, _, _ = select.select([self._sock], [], [], max(wait, 0))
        if not readable:
            self._check_alive()
            return 0
        try:
            chunk = self._sock.recv(1 << 16, socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return 0
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
        return len(chunk)

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
        """The last console lines received (for error reports); says so when the console printed nothing."""
        text = bytes(self._tail).decode(errors="replace").replace("\r", "")
        tail = [line for line in text.splitlines()[-lines:]]
        return "\n".join(tail) if any(line.strip() for line in tail) else "(the console printed nothing)"

    # -- protocol ---------------------------------------------------------------------------------
    def wait_ready(self, timeout: float | None = None, deadline: float | None = None) -> str:
        """Wait until the guest init answers; returns the console device it serves (e.g. ``hvc0``).

        Everything (connecting, every send, the banner) happens by ``deadline`` (monotonic), or within
        ``timeout`` seconds from now. Until the banner or a pong arrives, a ping goes out every ``resend_first``
        seconds (a banner or pong can be lost or damaged like any frame)."""
        if deadline is None:
            deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        limit = max(deadline - time.monotonic(), 0)
        self.connect(limit)
        ping_id = protocol.new_id()
        pong = protocol.pong_re(ping_id)
        next_ping = 0.0
        try:
            while time.monotonic() < deadline:
                if time.monotonic() >= next_ping:
                    self._send(protocol.ping_line(ping_id), deadline, "a ping")
                    next_ping = time.monotonic() + self.resend_first
                self._receive(min(0.25, max(min(deadline, next_ping) - time.monotonic(), 0)))
                ready = protocol.ready_console(self._buf)
                if ready:
                    self.console = ready
                if ready or pong.search(self._buf):
                    self._buf.clear()
                    if self.console is None:
                        remaining = max(deadline - time.monotonic(), 1.0)
                        self.console = self.run("cat /run/katatest/console", timeout=remaining
                                                ).stdout.decode().strip()
                    return self.console
        except GuestTimeout:
            pass
        raise GuestTimeout(f"guest init not ready after {limit:.0f}s; console tail:\n{self.console_tail()}")

    def ping(self, timeout: float = 10.0) -> float:
        """One KTPING/KTPONG round trip in seconds (the console's floor: the guest init answers without running
        anything). A lost ping or pong is sent again after ``resend_first`` s of silence; past ``timeout`` it
        fails (GuestTimeout naming the ping), it never waits forever."""
        ping_id = protocol.new_id()
        pong = protocol.pong_re(ping_id)
        deadline = time.monotonic() + timeout
        self._buf.clear()
        started = time.perf_counter()
        sends = 0
        while time.monotonic() < deadline:
            self._send(protocol.ping_line(ping_id), deadline, "a ping")
            sends += 1
            quiet_until = min(time.monotonic() + self.resend_first, deadline)
            while time.monotonic() < quiet_until:
                self._receive(min(0.05, max(quiet_until - time.monotonic(), 0)))
                if pong.search(self._buf):
                    self._buf.clear()
                    return time.perf_counter() - started
        raise GuestTimeout(f"ping {ping_id}: no pong within {timeout:.0f}s (sent {sends}x); console tail:\n"
                           f"{self.console_tail()}")

    def run(self, cmd: str | Sequence[str], stdin: bytes = b"", timeout: float | None = None) -> CommandResult:
        """Run ``cmd`` (shell text, or an argv list) in the guest; stdout/stderr come back byte-exact.

        The guest kills the command after ``timeout`` s (exit 137); the host gives up TRANSFER_SLACK
        later. Lost or damaged frames are asked for again: resends back off from RESEND_FIRST to
        RESEND_MAX seconds of silence, and a chunk that keeps arriving damaged fails after MAX_DAMAGED.
        """
        limit = self.timeout if timeout is None else timeout
        self._check_alive()
        self.connect()
        text = protocol.script_text(cmd)
        request_id = protocol.new_id()
        try:
            request = protocol.request_frame(request_id, cmd, stdin, int(limit + 0.999))
        except ValueError as exc:
            raise GuestChannelError(f"{text!r}: {exc}") from None
        deadline = time.monotonic() + limit + TRANSFER_SLACK
        self._buf.clear()  # nothing of this request can have arrived before it was sent
        reply = protocol.Reply(request_id)
        self._send(request, deadline, f"the request {text!r}")
        sends, pokes, backoff = 1, 0, self.resend_first
        asked: dict[int, int] = {}  # chunk -> copies asked for and not yet arrived
        quiet_until = time.monotonic() + backoff
        while time.monotonic() < deadline:
            # wake at the resend time, not a quarter second after it; bytes still arriving are no silence
            # (asking for a chunk again while it streams puts two in flight, which can overrun the console)
            if self._receive(min(0.25, max(min(deadline, quiet_until) - time.monotonic(), 0))):
                quiet_until = max(quiet_until, time.monotonic() + backoff)
            progress, damaged = reply.feed(self._buf)
            try:
                result = reply.result()
            except ValueError as exc:
                raise GuestChannelError(f"garbled reply to {text!r}: {exc}") from None
            if result is not None:
                self.stats.record(sends, pokes, reply)
                return result
            for seq in damaged:
                if reply.corrupt[seq] > MAX_DAMAGED:
                    raise GuestChannelError(f"reply to {text!r}: chunk {seq} arrived damaged "
                                            f"{reply.corrupt[seq]} times; console tail:\n{self.console_tail()}")
            if progress or damaged:
                backoff = self.resend_first
                for seq in damaged:  # a copy asked for came, damaged
                    asked[seq] = max(asked.get(seq, 0) - 1, 0)
                wanted = reply.missing()
                # one copy of a chunk on the way at a time: every damaged copy asking for another would put
                # several in flight, and the console drops what its socket cannot take (more damage)
                if (reply.meta is not None or damaged) and not asked.get(wanted):
                    self._send(protocol.need_line(request_id, wanted), deadline, "a resend request")
                    asked[wanted] = 1
            elif time.monotonic() >= quiet_until:  # silence: the request or a reply frame was lost
                if reply.accepted:
                    wanted = reply.missing()
                    self._send(protocol.need_line(request_id, wanted), deadline, "a resend request")
                    asked[wanted] = 1  # what was asked before is lost
                    pokes += 1
                else:
                    self._send(request, deadline, f"the request {text!r}")
                    sends += 1
                backoff = min(backoff * 2, self.resend_max)
            else:
                continue
            quiet_until = time.monotonic() + backoff
        state = (f"request sent {sends}x, {'accepted' if reply.accepted else 'never accepted'}, "
                 f"{len(reply.chunks)}/{reply.meta.nchunks if reply.meta else '?'} chunks")
        raise GuestTimeout(f"no reply to {text!r} within {limit + TRANSFER_SLACK:.0f}s ({state}); "
                           f"console tail:\n{self.console_tail()}")

    def check_output(self, cmd: str | Sequence[str], timeout: float | None = None) -> str:
        """stdout of a command that must succeed, decoded, trailing newline stripped."""
        result = self.run(cmd, timeout=timeout)
        if result.exit_status != 0:
            raise GuestChannelError(f"{protocol.script_text(cmd)!r} exited {result.exit_status}: "
                                    f"{result.stderr.decode(errors='replace').strip()}")
        return result.stdout.decode(errors="replace").rstrip("\n")


