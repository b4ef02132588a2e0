"""The console channel under damage anywhere, headers included: every command's exit status, stdout and stderr
arrive exactly, or the command fails loudly at its own timeout, naming it (never a wrong value).

The guest side is katatest's real guest init (``serve-stdio`` under busybox sh, as in the guest); between it and
the host's GuestChannel a seeded proxy drops, corrupts, duplicates and delays bytes in both directions and damages
header fields (a status '10' may lose its '1'). Each seed is one case; its number is in the test id."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from katatest.guest.channel import GuestChannel
from katatest.guest.errors import GuestChannelError
from katatest.guest.protocol import CommandResult
from tests.faults.console_proxy import FaultRates, LossyConsole
from tests.faults.stdio_guest import StdioGuest

SEEDS = range(200)
CHUNK = 24576  # the guest's chunk size: outputs past it take several chunks


def commands(rng: random.Random) -> list[tuple[str, bytes, CommandResult]]:
    """Commands with what they must return: stdin echoed with stderr and a two-digit status; a multi-chunk
    stdout with status 1; nothing at all."""
    stdin = rng.randbytes(rng.randrange(0, 3000))
    size = rng.choice((0, 1, 100, CHUNK - 1, CHUNK + 5, 2 * CHUNK + 77))
    return [
        ("cat; echo E >&2; exit 10", stdin, CommandResult(10, stdin, b"E\n")),
        (f"head -c {size} /dev/zero | tr '\\0' x; exit 1", b"", CommandResult(1, b"x" * size, b"")),
        ("true", b"", CommandResult(0, b"", b"")),
    ]


@pytest.mark.parametrize("seed", SEEDS)
def test_every_reply_is_exact_or_a_loud_failure(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    rates = FaultRates(per_byte=1 / 40000, delay=0.2, max_delay_s=0.01, header=0.25, first_chunk_header=True)
    with StdioGuest(tmp_path / "guest.sock", tmp_path) as _, \
            LossyConsole(tmp_path / "front.sock", tmp_path / "guest.sock", rates, rates, seed=seed) as proxy, \
            GuestChannel(tmp_path / "front.sock", tmp_path / "console.log", timeout=20) as channel:
        channel.resend_first, channel.resend_max = 0.003, 0.012
        channel.wait_ready(timeout=20)
        outcomes = []
        for cmd, stdin, expected in commands(rng):
            try:
                got = channel.run(cmd, stdin=stdin, timeout=15)
            except GuestChannelError as err:  # loud: it names the command
                assert repr(cmd) in str(err), f"seed {seed}: {err}"
                outcomes.append("failed")
                continue
            assert got == expected, f"seed {seed}: {cmd!r} came back as {got!r:.300}"
            outcomes.append("exact")
    faults = sum(c.total for c in proxy.counts.values())
    assert faults > 0, f"seed {seed}: no fault was injected"
    assert outcomes.count("exact") >= 2, f"seed {seed}: {outcomes} ({proxy.counts})"


def test_header_damage_is_caught(tmp_path: Path) -> None:
    """Without faults in the data, a status field damaged on the way is a resend, not a value: a fifth of the
    replies' reads get a header byte damaged, and the results are still exact."""
    rates = FaultRates()  # damage starts once the banner arrived
    quiet = FaultRates()
    with StdioGuest(tmp_path / "guest.sock", tmp_path) as _, \
            LossyConsole(tmp_path / "front.sock", tmp_path / "guest.sock", quiet, rates, seed=7) as proxy, \
            GuestChannel(tmp_path / "front.sock", tmp_path / "console.log", timeout=30) as channel:
        channel.resend_first, channel.resend_max = 0.003, 0.012
        channel.wait_ready(timeout=20)
        # a chunk is given up after MAX_DAMAGED damaged copies (by design); at 0.2 that is about 0.2**33 per chunk
        rates.header = 0.2
        for _ in range(20):
            assert channel.run("echo out; echo err >&2; exit 10", timeout=20) == CommandResult(10, b"out\n",
                                                                                                b"err\n")
    assert proxy.counts["to_host"].headers >= 5, proxy.counts


@pytest.mark.parametrize("seed", range(10))
def test_the_benchmark_ping_survives_the_lossy_console(tmp_path: Path, seed: int) -> None:
    """The benchmark's ping/pong path (GuestChannel.ping) resends a lost ping: it returns a round trip or fails
    loudly by its deadline, never hangs (bench/run.py once waited 9 minutes for a lost KTPONG)."""
    rates = FaultRates(per_byte=1 / 50, delay=0.2, max_delay_s=0.01, header=0.3)  # most frames get hit
    with StdioGuest(tmp_path / "guest.sock", tmp_path) as _, \
            LossyConsole(tmp_path / "front.sock", tmp_path / "guest.sock", FaultRates(), FaultRates(),
                         seed=seed) as proxy, \
            GuestChannel(tmp_path / "front.sock", tmp_path / "console.log", timeout=20) as channel:
        channel.resend_first = 0.03
        channel.wait_ready(timeout=20)
        proxy.to_guest.__dict__.update(rates.__dict__)
        proxy.to_host.__dict__.update(rates.__dict__)
        answered = 0
        for _ in range(5):
            try:
                assert 0 < channel.ping(timeout=3.0) < 3.5
                answered += 1
            except GuestChannelError as err:
                assert "ping" in str(err) and "no pong within 3s" in str(err)
        assert answered >= 1, f"seed {seed}: no ping answered"
