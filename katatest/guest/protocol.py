"""The line protocol spoken with katatest's guest init over the console (see katatest/data/guest/init).

Host -> guest: ``KTPING <id>`` and ``KTREQ <id> <timeout-s> <base64 script> <n>`` followed by exactly
``n`` bytes of base64 stdin (no newline).
Guest -> host: ``KATATEST-READY v1 console=<dev>`` once at start, ``KTPONG <id>``, and per request
``KTBEGIN <id>`` / base64 stdout / ``KTSEP <id>`` / base64 stderr / ``KTEND <id> <status> <n-out> <n-err>``,
pausing after each output chunk with ``KTWAIT <id> <n>`` until the host answers ``KTACK <id> <n>``.
"""

from __future__ import annotations

import base64
import re
import shlex
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

READY_RE = re.compile(rb"KATATEST-READY v1 console=(\S+)\r?\n")
PANIC_MARKERS = (b"Kernel panic - not syncing", b"end Kernel panic")
_B64_LINE = re.compile(rb"^[A-Za-z0-9+/=]*$")
B64_WIDTH = 76


@dataclass(frozen=True)
class CommandResult:
    """What a guest command produced: exit status (137 when the guest-side timeout killed it)."""

    exit_status: int
    stdout: bytes
    stderr: bytes

    @property
    def succeeded(self) -> bool:
        return self.exit_status == 0


def new_id() -> str:
    return uuid.uuid4().hex[:16]


def script_text(cmd: str | Sequence[str]) -> str:
    """A shell command string as is; an argv list quoted into one."""
    return cmd if isinstance(cmd, str) else shlex.join(cmd)


def ping_line(request_id: str) -> bytes:
    return f"\nKTPING {request_id}\n".encode()


def pong_re(request_id: str) -> re.Pattern[bytes]:
    return re.compile(rb"KTPONG " + request_id.encode() + rb"\b")


def request_line(request_id: str, cmd: str | Sequence[str], stdin: bytes, timeout: int) -> bytes:
    """The request: its line, then the base64 stdin as a counted block."""
    script = base64.b64encode(script_text(cmd).encode())
    data = base64.b64encode(stdin)
    return b"\nKTREQ %s %d %s %d\n%s" % (request_id.encode(), max(0, int(timeout)), script, len(data), data)


def wait_re(request_id: str) -> re.Pattern[bytes]:
    return re.compile(rb"KTWAIT " + request_id.encode() + rb" (\d+)\r?\n")


def ack_line(request_id: str, chunk: int) -> bytes:
    return f"KTACK {request_id} {chunk}\n".encode()


def end_re(request_id: str) -> re.Pattern[bytes]:
    return re.compile(rb"\nKTEND " + request_id.encode() + rb" (\d+) (\d+) (\d+)\r?\n")


def _decode_block(block: bytes) -> bytes:
    lines = [ln.strip(b"\r ") for ln in block.split(b"\n")]
    return base64.b64decode(b"".join(ln for ln in lines if ln and _B64_LINE.match(ln)))


def _trailing_block(text: bytes, expected: int) -> bytes | None:
    """The shortest run of base64 lines ending ``text`` that decodes to exactly ``expected`` bytes."""
    if expected == 0:
        return b""
    block: list[bytes] = []
    for line in reversed(text.split(b"\n")):
        stripped = line.strip(b"\r ")
        if not stripped:
            continue
        # busybox base64 wraps at 76 columns: only the block's last line may be shorter
        if not _B64_LINE.match(stripped) or (block and len(stripped) != B64_WIDTH) or len(stripped) > B64_WIDTH:
            return None
        block.insert(0, stripped)
        try:
            data = base64.b64decode(b"".join(block))
        except ValueError:
            continue
        if len(data) >= expected:
            return data if len(data) == expected else None
    return None


def parse_response(request_id: str, text: bytes) -> CommandResult | None:
    """The result if ``text`` holds the complete response to ``request_id``, else None.

    Raises ValueError when the response is complete but its sizes do not match (garbled transfer).
    """
    end = end_re(request_id).search(text)
    if end is None:
        return None
    rid = request_id.encode()
    begin = text.rfind(b"KTBEGIN " + rid + b"\n", 0, end.start())
    sep = text.rfind(b"\nKTSEP " + rid + b"\n", 0, end.start())
    status, n_out, n_err = (int(g) for g in end.groups())
    if sep < 0:
        raise ValueError(f"response {request_id}: markers missing or out of order")
    if begin < 0 or sep < begin:
        # QEMU's virtconsole drops console output it cannot write at once: a lost KTBEGIN line is
        # recoverable when the byte count proves the stdout lines just before KTSEP are all of it.
        stdout = _trailing_block(text[:sep], n_out)
        if stdout is None:
            raise ValueError(f"response {request_id}: markers missing or out of order")
    else:
        stdout = _decode_block(text[begin + len(rid) + 9: sep])
    stderr = _decode_block(text[sep + len(rid) + 8: end.start()])
    if (len(stdout), len(stderr)) != (n_out, n_err):
        raise ValueError(f"response {request_id}: got {len(stdout)}/{len(stderr)} bytes of stdout/stderr, "
                         f"guest sent {n_out}/{n_err}")
    return CommandResult(status, stdout, stderr)
