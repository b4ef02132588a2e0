"""A check group's read-only guest commands, run in one round trip of the console channel.

Each command runs in a subshell of one guest script; its stdout, stderr and exit status come back framed by a
random boundary, so the group's checks read the guest's answers without a round trip each (about 30 ms under
TCG, most of it the channel's own forks)."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from katatest.guest.channel import GuestChannel
from katatest.guest.errors import GuestChannelError
from katatest.guest.protocol import CommandResult


class NotRead(KeyError):
    """A check asked for a command its group did not read."""


@dataclass(frozen=True)
class GuestReads:
    """The guest's answers to a fixed set of commands, taken together (``read_together``)."""

    results: Mapping[str, CommandResult]

    def run(self, cmd: str) -> CommandResult:
        try:
            return self.results[cmd]
        except KeyError:
            raise NotRead(f"{cmd!r} was not among the commands read (add it to the group's reads)") from None

    def ok(self, cmd: str) -> bool:
        """Whether ``cmd`` exited 0 (``test -e PATH`` and the like)."""
        return self.run(cmd).exit_status == 0

    def stdout(self, cmd: str) -> str:
        """stdout of ``cmd``, decoded, whatever its exit status (``ls DIR 2>/dev/null`` of a missing DIR)."""
        return self.run(cmd).stdout.decode(errors="replace")

    def data(self, cmd: str) -> bytes:
        """stdout of a command that must have succeeded, as bytes (GuestChannelError naming it otherwise)."""
        result = self.run(cmd)
        if result.exit_status != 0:
            raise GuestChannelError(f"{cmd!r} exited {result.exit_status}: "
                                    f"{result.stderr.decode(errors='replace').strip()}")
        return result.stdout

    def text(self, cmd: str) -> str:
        """stdout of a command that must have succeeded, decoded, trailing newline stripped."""
        return self.data(cmd).decode(errors="replace").rstrip("\n")


def batch_script(commands: list[str], boundary: str) -> str:
    """One guest script that runs each command in a subshell (stdin from /dev/null) and frames its output:
    ``\\n<boundary> o <i>\\n`` stdout ``\\n<boundary> e <i> <status>\\n`` stderr, and a closing
    ``\\n<boundary> end\\n``."""
    lines = [f"E=${{TMPDIR:-/tmp}}/{boundary}.err"]
    for index, cmd in enumerate(commands):
        lines += [f"printf '\\n%s o %d\\n' {boundary} {index}",
                  f"( {cmd}\n) < /dev/null 2> \"$E\"",
                  f"printf '\\n%s e %d %d\\n' {boundary} {index} $?",
                  "[ -s \"$E\" ] && cat \"$E\""]
    lines += ["rm -f \"$E\"", f"printf '\\n%s end\\n' {boundary}"]
    return "\n".join(lines) + "\n"


def parse_batch(payload: bytes, count: int, boundary: str) -> list[CommandResult]:
    """The commands' results from the batch script's output; GuestChannelError when the frames are not
    exactly o/e for each command in order and the end."""
    marker = re.compile(rb"\n" + boundary.encode() + rb" (o \d+|e \d+ \d+|end)\n")
    parts = marker.split(payload)
    # split gives: text before the first marker, then (marker fields, text after it) pairs
    got, texts = [f.decode() for f in parts[1::2]], parts[2::2]
    shape = [" ".join(g.split()[:2]) for g in got]
    wanted = [item for i in range(count) for item in (f"o {i}", f"e {i}")] + ["end"]
    if parts[0] or shape != wanted or texts[-1] != b"":
        raise GuestChannelError(f"batched reads came back garbled: frames {shape[:6]} for {count} commands "
                                "(a command's output may hold the boundary)")
    results = []
    for i in range(count):
        status = int(got[2 * i + 1].split()[2])
        results.append(CommandResult(status, texts[2 * i], texts[2 * i + 1]))
    return results


def read_together(channel: GuestChannel, commands: Iterable[str], timeout: float | None = None) -> GuestReads:
    """Run ``commands`` in order in one round trip (each sees what the ones before it did)."""
    unique = list(dict.fromkeys(commands))
    boundary = "KTB" + secrets.token_hex(12)
    result = channel.run(batch_script(unique, boundary), timeout=timeout)
    if result.exit_status != 0:
        raise GuestChannelError(f"batched reads exited {result.exit_status}: "
                                f"{result.stderr.decode(errors='replace').strip()}")
    return GuestReads(dict(zip(unique, parse_batch(result.stdout, len(unique), boundary), strict=True)))
