"""Provenance: arguments (and config fields) that remember which config keys / host facts produced them."""

from __future__ import annotations

from dataclasses import dataclass, field

from katatest.errors import ConfigError
from katatest.kata.hypervisor_config import KataConfig
from katatest.kata.toml_schema import HYPERVISOR_KEYS

Sources = tuple[str, ...]


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



class FieldSources:
    """Look up the provenance the loader recorded, falling back to the TOML key of ``table``.

    The fallback must name a real key of ``[hypervisor.*]``: a field the loader recorded nothing for and whose
    name is no TOML key (runtime state such as ``boot_from_template``) raises MissingProvenance instead of
    inventing a source."""

    def __init__(self, cfg: KataConfig, table: str) -> None:
        self.sources = cfg.sources
        self.table = table  # e.g. "hypervisor.clh"

    def __call__(self, *names: str) -> Sources:
        """Sources of one or more ``HypervisorConfig`` fields, merged in order."""
        merged: list[str] = []
        for name in names:
            recorded = self.sources.get(f"hypervisor.{name}")
            if recorded is None and name not in HYPERVISOR_KEYS:
                raise MissingProvenance(f"HypervisorConfig field {name!r}: the loader recorded no source and "
                                        f"{self.table}.{name} is no configuration key")
            merged.extend(recorded if recorded is not None else (f"{self.table}.{name}",))
        return tuple(dict.fromkeys(merged))
