"""A check group's reads in one round trip (``katatest.guest.reads``), against katatest's real guest init served
on the host (busybox sh, as in the guest): every command's status, stdout and stderr come back exactly as one
round trip each would bring them, and a reply that cannot be framed is an error, never a wrong value."""

from __future__ import annotations

from pathlib import Path

import pytest

from katatest.guest.channel import GuestChannel
from katatest.guest.errors import GuestChannelError
from katatest.guest.protocol import CommandResult
from katatest.guest.reads import NotRead, batch_script, parse_batch, read_together
from tests.faults.stdio_guest import StdioGuest

COMMANDS = (
    "echo out; echo err >&2; exit 3",         # a status, both streams
    "printf 'no newline'",                   # output without a trailing newline
    "printf '\\n\\n'; printf '\\n' >&2",    # only newlines, as the framing's own
    "head -c 300 /dev/zero | tr '\\0' '\\377'",  # binary bytes
    "cat",                                   # stdin is /dev/null, not the batch
    "true",                                  # nothing at all
    "test -e /nonexistent",                  # a failing test
    "echo $X; X=set",                        # each command in its own subshell
    "echo again: $X",
    "echo c # a comment at the end",         # the subshell's closing parenthesis survives it
)


@pytest.fixture
def channel(tmp_path: Path):
    with StdioGuest(tmp_path / "guest.sock", tmp_path) as _, \
            GuestChannel(tmp_path / "guest.sock", tmp_path / "console.log", timeout=20) as channel:
        channel.wait_ready(timeout=20)
        yield channel


def test_reads_together_equal_each_command_run_alone(channel: GuestChannel) -> None:
    reads = read_together(channel, COMMANDS)
    assert channel.stats.commands == 1
    for cmd in COMMANDS:
        assert reads.run(cmd) == channel.run(cmd), cmd
    assert reads.run(COMMANDS[0]) == CommandResult(3, b"out\n", b"err\n")
    assert reads.run(COMMANDS[3]).stdout == b"\xff" * 300
    assert reads.stdout("echo again: $X") == "again:\n"
    assert not reads.ok("test -e /nonexistent") and reads.ok("true")
    assert reads.data(COMMANDS[3]) == b"\xff" * 300  # bytes as they came, unlike text()
    with pytest.raises(GuestChannelError, match="exited 3: err"):
        reads.text(COMMANDS[0])
    with pytest.raises(GuestChannelError, match="exited 3: err"):
        reads.data(COMMANDS[0])


def test_a_command_not_read_is_an_error_naming_it(channel: GuestChannel) -> None:
    reads = read_together(channel, ["true", "true"])  # duplicates are read once
    with pytest.raises(NotRead, match="'cat /proc/cmdline' was not among the commands read"):
        reads.run("cat /proc/cmdline")


def test_output_holding_the_boundary_is_garbled_not_misread() -> None:
    """A command that prints the boundary's framing cannot shift the other commands' outputs silently."""
    boundary = "KTBfixed"
    script = batch_script(["true", "true"], boundary)
    assert script.count("( true\n) < /dev/null") == 2
    forged = f"\n{boundary} o 0\n\n{boundary} e 0 0\n\n{boundary} e 1 0\n\n{boundary} o 1\n\n{boundary} e 1 0\n" \
             f"\n{boundary} end\n".encode()
    with pytest.raises(GuestChannelError, match="garbled"):
        parse_batch(forged, 2, boundary)
    with pytest.raises(GuestChannelError, match="garbled"):  # cut short: no end frame
        parse_batch(f"\n{boundary} o 0\nx\n{boundary} e 0 0\n".encode(), 1, boundary)
    assert parse_batch(f"\n{boundary} o 0\nx\n{boundary} e 0 7\ny\n{boundary} end\n".encode(), 1, boundary) == \
        [CommandResult(7, b"x", b"y")]
