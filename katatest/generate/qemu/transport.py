"""Virtio transports and the device names they imply (govmm's VirtioTransport)."""

from __future__ import annotations

PCI = "pci"
MMIO = "mmio"

_SUFFIX = {PCI: "-pci", MMIO: "-device"}


def virtio_name(base: str, transport: str) -> str:
    """``virtio-blk`` + pci -> ``virtio-blk-pci``; + mmio -> ``virtio-blk-device``."""
    return base + _SUFFIX[transport]


def disable_modern(transport: str, disable: bool) -> list[str]:
    """The ``disable-modern=`` option; only PCI devices carry it."""
    if transport != PCI:
        return []
    return ["disable-modern=true" if disable else "disable-modern=false"]
