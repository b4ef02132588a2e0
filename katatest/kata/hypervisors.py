"""The one table of the hypervisors Kata's Go runtime drives: name, config section, program, default binaries
and the generator that renders a configuration for it. Every other module looks hypervisors up here."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass(frozen=True)
class Hypervisor:
    """One VMM as Kata names and configures it."""

    name: str  # Kata's hypervisor type (``KataConfig.hypervisor_type``): qemu, clh, fc, acrn
    section: str  # its configuration table: ``[hypervisor.<section>]``
    program: str  # what its binary is called, for people
    generator: str  # ``module:function`` rendering a parsed config (``katatest.generate.render``), imported on use
    # The binary Kata's driver runs when ``path`` is empty, per arch (none: katautils' generic default applies).
    default_paths: dict[str, str] = field(default_factory=dict)

    @property
    def table(self) -> str:
        """The dotted name of its configuration table, the prefix of its keys' provenance."""
        return f"hypervisor.{self.section}"

    def render_function(self) -> Callable[..., Any]:
        """The generator entry point (imported now, so unused generators are never loaded)."""
        module, _, function = self.generator.partition(":")
        return getattr(importlib.import_module(module), function)


HYPERVISORS = (
    Hypervisor("qemu", "qemu", "qemu-system-*", "katatest.generate.qemu.generate:render_qemu",
               {"amd64": "/usr/bin/qemu-system-x86_64", "arm64": "/usr/bin/qemu-system-aarch64"}),
    Hypervisor("clh", "clh", "cloud-hypervisor", "katatest.generate.clh.generate:render_clh",
               {"amd64": "/usr/local/bin/cloud-hypervisor", "arm64": "/usr/local/bin/cloud-hypervisor"}),
    Hypervisor("fc", "firecracker", "firecracker", "katatest.generate.fc.generate:render_fc"),
    Hypervisor("acrn", "acrn", "acrn-dm", "katatest.generate.acrn.generate:render_acrn"),
)
NAMES = tuple(h.name for h in HYPERVISORS)
# Sections Kata's configuration knows whose hypervisor 3.0.0's Go runtime does not drive (the Rust runtime's).
UNDRIVEN_SECTIONS = ("dragonball",)

_BY_NAME = {h.name: h for h in HYPERVISORS}
_BY_SECTION = {h.section: h for h in HYPERVISORS}


def hypervisor(name: str) -> Hypervisor:
    """The hypervisor called ``name`` (one of :data:`NAMES`)."""
    return _BY_NAME[name]


def by_section(section: str) -> Hypervisor | None:
    """The hypervisor configured by ``[hypervisor.<section>]`` (None for any other section)."""
    return _BY_SECTION.get(section)


def qemu_paths() -> dict[str, str]:
    """Kata's QEMU binary per arch (what ``katatest doctor`` and the KVM probe look for)."""
    return dict(hypervisor("qemu").default_paths)
