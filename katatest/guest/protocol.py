"""The framed protocol spoken with katatest's guest init over the console (see katatest/data/guest/init).

Every frame starts on a fresh line and every field of it is checked, so a byte lost, corrupted or duplicated
anywhere in either direction (headers included) is detected and the frame asked for again, never taken as a
value (the console is lossy: QEMU's virtconsole drops output the socket cannot take, and a UART path has no
end-to-end check at all). A frame whose only field is the id of the one frame awaited (``KTPONG``, ``KTACC``)
is checked by matching it byte for byte; every other frame carries an md5 over all of its fields (and data).

Host -> guest:
  ``KTPING <id>``                                  -> guest ``KTPONG <id>``
  ``KTREQ <id> <timeout-s> <script64> <n> <md5-stdin> <md5-line>`` then exactly ``n`` bytes of base64
  stdin. ``md5-line`` covers the fields before it, so a damaged line is dropped before its count is trusted.
  ``KTNEED <id> <seq> <md5>``: send chunk ``seq`` of the reply (a lost or corrupt chunk, or a poke after
  silence); the md5 covers ``KTNEED <id> <seq>``.
Guest -> host:
  ``KATATEST-READY v2 console=<dev> <md5>`` once at start (the md5 covers the text before it);
  ``KTACC <id>`` when a request arrived intact (again for a duplicate: a request never runs twice);
  ``KTCHUNK <id> <seq> <nchunks> <status> <n-out> <n-err> <n> <md5>`` + base64 lines + ``KTCEND <id> <seq>``:
  chunk ``seq`` (``n`` bytes) of stdout+stderr concatenated; the md5 covers the header line's fields before it
  (``<id> ... <n>`` and a newline) followed by the chunk's bytes, so a damaged status, count or size is a
  damaged chunk, asked for again. ``KTCEND`` must name the header's (checked) id and seq. The guest sends
  chunk 0 when the command ends and every later chunk only when asked, so at most one chunk is in flight.
"""

from __future__ import annotations

import base64
import hashlib
import re
import shlex
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

READY_RE = re.compile(rb"(KATATEST-READY v2 console=(\S+)) ([0-9a-f]{32})\r?\n")
PANIC_MARKERS = (b"Kernel panic - not syncing", b"end Kernel panic")
_B64_LINE = re.compile(rb"^[A-Za-z0-9+/=]+$")
MAX_STDIN = 4 << 20  # bytes; bigger inputs belong on the shared filesystem, not the console


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


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()  # noqa: S324 - a transfer checksum, not security


def script_text(cmd: str | Sequence[str]) -> str:
    """A shell command string as is; an argv list quoted into one."""
    return cmd if isinstance(cmd, str) else shlex.join(cmd)


def ping_line(request_id: str) -> bytes:
    return f"\nKTPING {request_id}\n".encode()


def pong_re(request_id: str) -> re.Pattern[bytes]:
    return re.compile(rb"KTPONG " + request_id.encode() + rb"\r?\n")


def request_frame(request_id: str, cmd: str | Sequence[str], stdin: bytes, timeout: int) -> bytes:
    """The request: its checksummed line, then the base64 stdin as a counted block."""
    if len(stdin) > MAX_STDIN:
        raise ValueError(f"stdin of {len(stdin)} bytes exceeds the console channel's {MAX_STDIN}")
    script = base64.b64encode(script_text(cmd).encode())
    data = base64.b64encode(stdin)
    fields = b"%s %d %s %d %s" % (request_id.encode(), max(0, int(timeout)), script, len(data),
                                  md5(data).encode())
    return b"\nKTREQ %s %s\n%s" % (fields, md5(fields + b"\n").encode(), data)


def ready_console(buf: bytes | bytearray) -> str | None:
    """The console device an intact ready banner in ``buf`` names (None when there is none intact)."""
    for match in READY_RE.finditer(buf):
        if md5(match.group(1)) == match.group(3).decode():
            return match.group(2).decode(errors="replace")
    return None


def need_line(request_id: str, seq: int) -> bytes:
    text = f"KTNEED {request_id} {seq}"
    return f"\n{text} {md5(text.encode())}\n".encode()


def accepted_re(request_id: str) -> re.Pattern[bytes]:
    return re.compile(rb"KTACC " + request_id.encode() + rb"\r?\n")


def chunk_header_re(request_id: str) -> re.Pattern[bytes]:
    return re.compile(rb"KTCHUNK " + request_id.encode()
                      + rb" (\d+) (\d+) (\d+) (\d+) (\d+) (\d+) ([0-9a-f]{32})\r?\n")


def chunk_end_re(request_id: str) -> re.Pattern[bytes]:
    return re.compile(rb"\nKTCEND " + request_id.encode() + rb" (\d+)\r?\n")


def decode_lines(block: bytes) -> bytes:
    """The bytes of a block of base64 lines; lines that are not base64 (kernel messages) are skipped."""
    lines = (ln.strip(b"\r ") for ln in block.split(b"\n"))
    return base64.b64decode(b"".join(ln for ln in lines if ln and _B64_LINE.match(ln)))


@dataclass(frozen=True)
class ChunkMeta:
    """The reply's shape, repeated in every chunk header."""

    nchunks: int
    status: int
    n_out: int
    n_err: int


@dataclass
class Reply:
    """Reassembles the chunks of one request's reply from the console byte stream."""

    request_id: str
    meta: ChunkMeta | None = None
    chunks: dict[int, bytes] = field(default_factory=dict)
    accepted: bool = False
    corrupt: dict[int, int] = field(default_factory=dict)  # seq -> corrupt copies seen

    def __post_init__(self) -> None:
        self._acc = accepted_re(self.request_id)
        self._head = chunk_header_re(self.request_id)
        self._end = chunk_end_re(self.request_id)
        self._marker = b"KTCHUNK " + self.request_id.encode() + b" "

    def feed(self, buf: bytearray) -> tuple[bool, list[int]]:
        """Consume complete frames from ``buf``: (progress made, seqs seen damaged)."""
        progress, damaged = False, []
        if not self.accepted and self._acc.search(buf):
            self.accepted = progress = True
        consumed = 0
        for end in self._end.finditer(buf):
            seq = int(end.group(1))
            ok = self._take(buf, seq, consumed, end.start())
            consumed = end.end()
            if ok is None:
                continue
            if ok:
                self.accepted = progress = True
            else:
                self.corrupt[seq] = self.corrupt.get(seq, 0) + 1
                damaged.append(seq)
        if consumed:
            del buf[:consumed]
        return progress, damaged

    def _take(self, buf: bytearray, seq: int, start: int, stop: int) -> bool | None:
        """Chunk ``seq`` ending at ``stop``: True if new and intact, False if damaged, None if a known copy."""
        if seq in self.chunks:
            return None
        at = buf.rfind(self._marker, start, stop)
        head = self._head.match(buf, at) if at >= 0 else None
        if head is None or int(head.group(1)) != seq:
            return False
        nchunks, status, n_out, n_err, size = (int(g) for g in head.groups()[1:6])
        try:
            data = decode_lines(bytes(buf[head.end():stop]))
        except ValueError:
            return False
        fields = b"%s %s\n" % (self.request_id.encode(), b" ".join(head.groups()[:6]))
        if len(data) != size or md5(fields + data) != head.group(7).decode() or seq >= nchunks:
            return False
        meta = ChunkMeta(nchunks, status, n_out, n_err)
        if self.meta is not None and meta != self.meta:
            return False
        self.meta = meta
        self.chunks[seq] = data
        return True

    def missing(self) -> int:
        """The first chunk not received yet (0 before anything arrived)."""
        seq = 0
        while seq in self.chunks:
            seq += 1
        return seq

    def result(self) -> CommandResult | None:
        """The command's result once every chunk is in; ValueError if they do not add up."""
        if self.meta is None or len(self.chunks) < self.meta.nchunks:
            return None
        payload = b"".join(self.chunks[i] for i in range(self.meta.nchunks))
        if len(payload) != self.meta.n_out + self.meta.n_err:
            raise ValueError(f"reply {self.request_id}: {len(payload)} bytes, guest announced "
                             f"{self.meta.n_out}+{self.meta.n_err}")
        return CommandResult(self.meta.status, payload[:self.meta.n_out], payload[self.meta.n_out:])
