"""Arguments that remember where they came from (provenance)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Arg:
    """One argv element plus the config keys / host facts that produced it.

    Sources are strings such as ``hypervisor.qemu.default_memory`` (a config key),
    ``host.host_mem_mib`` (a host fact) or ``kata.fixed`` (a constant of Kata's code).
    """

    value: str
    sources: tuple[str, ...] = field(default_factory=tuple)


def values(args: list[Arg]) -> list[str]:
    """The plain argv strings of ``args``."""
    return [a.value for a in args]


def option(flag: str, value: str, *sources: str) -> list[Arg]:
    """A ``-flag value`` pair, both sides sharing the same sources."""
    return [Arg(flag, tuple(sources)), Arg(value, tuple(sources))]
