"""The op scripts of ``katatest hotplug`` (the hot-plug vectors' ``.ops`` vocabulary) and QMP lines as Kata
writes them."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from typing import Any

from katatest.errors import KatatestError


class HotplugError(KatatestError):
    """An op script or replies file katatest cannot use (one line naming the file and line)."""


def qmp_line(command: str, arguments: dict | None = None) -> str:
    """A command as Kata's Go ``json.Marshal`` of a map writes it: compact, keys sorted, no ASCII escaping."""
    obj: dict[str, Any] = {"execute": command}
    if arguments is not None:
        obj["arguments"] = arguments
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class Op:
    """One line of an op script."""

    line: str
    words: tuple[str, ...]

    @property
    def kind(self) -> str:
        return self.words[0]


def parse_ops(text: str, source: str = "ops") -> list[Op]:
    known = ("cpu", "mem", "block", "swap", "net", "!fail")
    ops = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            words = tuple(shlex.split(line))
        except ValueError as err:
            raise HotplugError(f"{source}:{number}: {err}") from None
        if words[0] not in known:
            raise HotplugError(f"{source}:{number}: unknown op {words[0]!r} (known: {', '.join(known)})")
        problem = _op_problem(words)
        if problem:
            raise HotplugError(f"{source}:{number}: {line.strip()!r}: {problem}")
        ops.append(Op(line, words))
    return ops


def _op_problem(words: tuple[str, ...]) -> str:
    """What is wrong with an op's words ('' when nothing)."""
    kind, rest = words[0], words[1:]
    if kind == "cpu":
        return "" if len(rest) == 1 and rest[0].lstrip("-").isdigit() else "expected cpu N (total vCPUs)"
    if kind == "mem":
        if not rest or not rest[0].lstrip("-").isdigit():
            return "expected mem MIB [block=B] [probe]"
        bad = [w for w in rest[1:] if w != "probe" and not (w.startswith("block=") and w[6:].isdigit())]
        return f"unknown mem option {bad[0]!r}" if bad else ""
    if kind == "block":
        if rest[:1] == ("del",):
            return "" if len(rest) == 2 else "expected block del NAME"
        if rest[:1] != ("add",) or len(rest) < 4:
            return "expected block add NAME PATH file=BYTES|dev [ro] [pmem] [discard] or block del NAME"
        source, options = rest[3], rest[4:]
        if source != "dev" and not (source.startswith("file=") and source[5:].isdigit()):
            return f"expected file=BYTES or dev, got {source!r}"
        bad = [w for w in options if w not in ("ro", "pmem", "discard")]
        return f"unknown block option {bad[0]!r}" if bad else ""
    if kind == "swap":
        return "" if not rest else "swap takes no arguments"
    if kind == "net":
        if rest[:1] == ("del",):
            return "" if len(rest) == 2 else "expected net del NAME"
        ok = rest[:1] == ("add",) and len(rest) in (2, 3) and all(w.startswith("mac=") for w in rest[2:])
        return "" if ok else "expected net add NAME [mac=M] or net del NAME"
    return "" if rest and all("=" in w for w in rest[1:]) else "expected !fail CMD [key=value ...]"
