"""The result of rendering a Kata configuration: what the runtime would launch and send."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from katatest.generate.plumbing import NetPlumbing
from katatest.generate.provenance import Arg, values


@dataclass
class Rendered:
    """VMM argv, optional shared-fs daemon argv and optional VM config JSON, all with provenance."""

    hypervisor: str
    argv: list[Arg]
    daemon: list[Arg] | None = None
    vmconfig: dict[str, Any] | None = None
    # JSON pointer (e.g. "/memory/size") -> config keys / host facts that produced the field.
    vmconfig_sources: dict[str, tuple[str, ...]] = field(default_factory=dict)
    release: str = "3.0.0"  # the Kata release whose behaviour was reproduced (katatest.kata.releases)
    # The pod network endpoints the argv names, in argv order: what the launcher must plumb and hand over.
    network: tuple[NetPlumbing, ...] = ()
    # Arguments another release would pass and this one leaves out, with the release behaviour that drops them
    # (e.g. -daemonize <- release.qemu.daemonize): what ``katatest diff-releases`` attributes a removal to.
    omitted: list[Arg] = field(default_factory=list)
    # What katatest assumed about the host where the argv depends on it (``explain`` prints each as a note).
    assumptions: list[str] = field(default_factory=list)

    @property
    def binary(self) -> str:
        return self.argv[0].value

    def argv_values(self) -> list[str]:
        return values(self.argv)

    def daemon_values(self) -> list[str] | None:
        return None if self.daemon is None else values(self.daemon)
