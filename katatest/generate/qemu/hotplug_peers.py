"""QEMU's side of the hot-plug model's QMP connection: a vector's recorded replies, or katatest's own model of
QEMU's answers (``katatest.launch.qmp.QmpPeer`` is the third peer: a running QEMU)."""

from __future__ import annotations

import json
from typing import Protocol

from katatest.generate.options import option_values, props
from katatest.generate.qemu.hotplug_ops import HotplugError


class Replies:
    """A vector's ``.replies``: per section, QEMU's answers in order (``<`` lines; ``@``/``!`` skipped)."""

    def __init__(self, text: str, source: str = "replies") -> None:
        self.sections: list[list[dict]] = []
        for number, line in enumerate(text.splitlines(), 1):
            if line.startswith("# "):
                self.sections.append([])
            elif line.startswith("< "):
                if not self.sections:
                    raise HotplugError(f"{source}:{number}: a reply before the first section header")
                try:
                    self.sections[-1].append(json.loads(line[2:]))
                except ValueError as err:
                    raise HotplugError(f"{source}:{number}: not JSON: {err}") from None
        self._section = -1
        self._next = 0

    def enter(self, section: int) -> None:
        self._section, self._next = section, 0

    def answer(self, line: str) -> dict:
        replies = self.sections[self._section] if 0 <= self._section < len(self.sections) else []
        if self._next >= len(replies):
            raise HotplugError(f"replies: section {self._section} has no reply for {line}")
        reply = replies[self._next]
        self._next += 1
        return reply


class ModelQemu:
    """katatest's model of QEMU's answers: success for every command; ``query-hotpluggable-cpus`` from
    ``-smp``; ``query-memory-devices`` from the DIMMs added; injected failures (``!fail CMD``) as QEMU's
    ``GenericError``."""

    def __init__(self, argv: list[str], arch: str) -> None:
        smp = props(next(iter(option_values(argv, "-smp")), "1"))
        self.cpus = int(smp.get("", "1"))
        self.max_cpus = int(smp.get("maxcpus", self.cpus))
        self.arch = arch
        self.cpu_slots = [None] * self.max_cpus  # qom-path per possible CPU (None: free)
        for i in range(self.cpus):
            self.cpu_slots[i] = f"/machine/unattached/device[{i}]"
        self.memory: list[dict] = []
        self.failing: list[tuple[str, dict]] = []

    def fail_next(self, command: str, match: dict) -> None:
        self.failing.append((command, match))

    def answer(self, line: str) -> dict:
        obj = json.loads(line)
        command, args = obj["execute"], obj.get("arguments", {})
        for index, (cmd, match) in enumerate(self.failing):
            if cmd == command and all(str(args.get(k)) == v for k, v in match.items()):
                del self.failing[index]
                return {"error": {"class": "GenericError", "desc": "katatest model: injected failure"}}
        if command == "query-hotpluggable-cpus":
            driver = "host-x86_64-cpu" if self.arch == "amd64" else "host-arm-cpu"
            out = []
            for socket in reversed(range(self.max_cpus)):
                entry = {"props": {"core-id": 0, "thread-id": 0, "node-id": 0, "socket-id": socket},
                         "vcpus-count": 1, "type": driver}
                if self.cpu_slots[socket]:
                    entry["qom-path"] = self.cpu_slots[socket]
                out.append(entry)
            return {"return": out}
        if command == "device_add" and args.get("driver", "").startswith("host-"):
            self.cpu_slots[int(args.get("socket-id", 0))] = f"/machine/peripheral/{args['id']}"
        if command == "query-memory-devices":
            return {"return": list(self.memory)}
        if command == "device_add" and args.get("driver") == "pc-dimm":
            slot = max((d["data"]["slot"] for d in self.memory), default=-1) + 1
            self.memory.append({"type": "dimm", "data": {"slot": slot, "addr": 0, "id": args["id"]}})
        return {"return": {}}


class Peer(Protocol):
    """QEMU's side of the QMP connection: recorded ``Replies``, ``ModelQemu``, or a running QEMU
    (``katatest.launch.qmp.QmpPeer``)."""

    def answer(self, line: str) -> dict: ...
