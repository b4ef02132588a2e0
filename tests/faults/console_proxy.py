"""A lossy console: a unix-socket proxy between the harness and QEMU's console socket that drops,
corrupts, duplicates and delays bytes in both directions (seeded, so a failure can be replayed)."""

from __future__ import annotations

import random
import re
import select
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class FaultRates:
    """Faults per byte forwarded (``per_byte``: a drop, corruption or duplication, equally likely), and
    the chance that a forwarded read is held back up to ``max_delay_s``."""

    per_byte: float = 0.0
    delay: float = 0.0
    max_delay_s: float = 0.05
    header: float = 0.0  # chance that a forwarded read holding a frame's header line gets one field byte damaged
    first_chunk_header: bool = False  # the first reply chunk's header is damaged whatever the chance


@dataclass
class FaultCounts:
    dropped: int = 0
    corrupted: int = 0
    duplicated: int = 0
    delayed: int = 0
    headers: int = 0  # header lines damaged

    @property
    def total(self) -> int:
        return self.dropped + self.corrupted + self.duplicated + self.headers


HEADER = re.compile(rb"(KTCHUNK|KTACC|KTPONG|KTREQ|KTNEED|KTCEND|KTPING|KATATEST-READY)( [^\n]*)")


def damage_header(data: bytes, rng: random.Random, counts: FaultCounts, kind: bytes = b"") -> bytes:
    """One byte of one frame header's fields in ``data`` deleted, doubled or replaced by a plausible one (a
    digit or a hex letter: '10' may become '0', '1' may become '0'); ``data`` unchanged when it holds none."""
    headers = [h for h in HEADER.finditer(data) if not kind or h.group(1) == kind]
    if not headers:
        return data
    line = rng.choice(headers)
    at = rng.randrange(line.start(2) + 1, line.end(2)) if line.end(2) > line.start(2) + 1 else line.start(2)
    kind = rng.choice(("delete", "double", "digit", "hex"))
    if kind == "delete":
        out = data[:at] + data[at + 1:]
    elif kind == "double":
        out = data[:at + 1] + data[at:]
    else:
        pool = b"0123456789" if kind == "digit" else b"0123456789abcdef"
        out = data[:at] + bytes([rng.choice([c for c in pool if c != data[at]])]) + data[at + 1:]
    counts.headers += 1
    return out


@dataclass
class LossyConsole:
    """Listens on ``front``; the first client is joined to ``back``. Use as a context manager."""

    front: Path
    back: Path
    to_guest: FaultRates
    to_host: FaultRates
    seed: int = 0
    counts: dict[str, FaultCounts] = field(default_factory=lambda: {"to_guest": FaultCounts(),
                                                                     "to_host": FaultCounts()})

    def __enter__(self) -> LossyConsole:
        self._gaps: dict[int, int | None] = {}
        self._stop = threading.Event()
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(str(self.front))
        self._listener.listen(1)
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self._listener.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self._listener], [], [], 0.02)
            if ready:
                break
        else:
            return
        client, _ = self._listener.accept()
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        for _ in range(200):  # QEMU creates its socket on start
            try:
                upstream.connect(str(self.back))
                break
            except OSError:
                time.sleep(0.05)
        rngs = {"to_guest": random.Random(self.seed * 2 + 1), "to_host": random.Random(self.seed * 2)}
        routes = {client: (upstream, "to_guest", self.to_guest), upstream: (client, "to_host", self.to_host)}
        try:
            while not self._stop.is_set():
                ready, _, _ = select.select(list(routes), [], [], 0.02)
                for src in ready:
                    data = src.recv(1 << 16)
                    if not data:
                        return
                    dst, name, rates = routes[src]
                    dst.sendall(self._mangle(data, rates, rngs[name], self.counts[name]))
        except OSError:
            return
        finally:
            client.close()
            upstream.close()

    def _mangle(self, data: bytes, rates: FaultRates, rng: random.Random, counts: FaultCounts) -> bytes:
        forced = rates.first_chunk_header and not counts.headers and b"KTCHUNK " in data
        if forced or (rates.header and rng.random() < rates.header):
            data = damage_header(data, rng, counts, b"KTCHUNK" if forced else b"")
        return self._mangle_bytes(data, rates, rng, counts)

    def _mangle_bytes(self, data: bytes, rates: FaultRates, rng: random.Random, counts: FaultCounts) -> bytes:
        """Faults at byte offsets drawn from a geometric distribution: a stream sees ``per_byte`` of them."""
        out = bytearray()
        pos = 0
        while pos < len(data):
            gap = self._gaps.get(id(counts))
            if gap is None:
                gap = int(rng.expovariate(rates.per_byte)) if rates.per_byte > 0 else 1 << 62
            if pos + gap >= len(data):
                self._gaps[id(counts)] = gap - (len(data) - pos)
                out += data[pos:]
                break
            out += data[pos:pos + gap]
            pos += gap
            self._gaps[id(counts)] = None
            span = rng.randint(1, 24)
            kind = rng.choice(("drop", "corrupt", "duplicate"))
            if kind == "drop":
                pos += span
                counts.dropped += 1
            elif kind == "corrupt":
                out.append(data[pos] ^ (1 << rng.randrange(8)))
                pos += 1
                counts.corrupted += 1
            else:
                out += data[pos:pos + span] * 2
                pos += span
                counts.duplicated += 1
        if rng.random() < rates.delay:
            time.sleep(rng.uniform(0, rates.max_delay_s))
            counts.delayed += 1
        return bytes(out)
