"""Arguments that remember where they came from (provenance)."""

from __future__ import annotations

from dataclasses import dataclass, field

from katatest.errors import ConfigError


class MissingProvenance(AssertionError):
    """A generator bug: an argument or JSON field emitted without the keys / facts that produced it.

    Constants of Kata's code say so with ``kata.fixed``; nothing is defaulted to it silently."""


@dataclass(frozen=True)
class Arg:
    """One argv element plus the config keys / host facts that produced it.

    Sources are strings such as ``hypervisor.qemu.default_memory`` (a config key),
    ``host.host_mem_mib`` (a host fact) or ``kata.fixed`` (a constant of Kata's code).
    """

    value: str
    sources: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if not self.sources or not all(isinstance(s, str) and s for s in self.sources):
            raise MissingProvenance(f"argument {self.value!r} emitted without sources {self.sources!r}")


def values(args: list[Arg]) -> list[str]:
    """The plain argv strings of ``args``."""
    return [a.value for a in args]


def option(flag: str, value: str, *sources: str) -> list[Arg]:
    """A ``-flag value`` pair, both sides sharing the same sources."""
    return [Arg(flag, tuple(sources)), Arg(value, tuple(sources))]


def check_exec_safe(args: list[Arg], source: str = "") -> None:
    """Reject an argv ``execve`` cannot take (Go's exec fails with EINVAL on a NUL byte)."""
    for index, arg in enumerate(args):
        if "\0" in arg.value:
            keys = [s for s in arg.sources if not s.startswith(("host.", "kata."))] or list(arg.sources)
            where = f" (from {', '.join(keys)})" if len(keys) > 1 else ""
            raise ConfigError(keys[0] if keys else "", f"argument {index} contains a NUL character: the process "
                              f"could not be started (exec: invalid argument){where}", source)
