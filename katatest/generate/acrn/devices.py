"""acrn-dm's ``-s <slot>,...`` devices (``acrn_arch_base.go``) and their PCI slot allocation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from katatest.generate.provenance import Arg

GVTG_RESERVED_SLOT = 2  # acrnGVTgReservedSlot: slot 2 is kept for GVT-g
BLOCK_POOL_SIZE = 8  # AcrnBlkDevPoolSz: dummy disks stand in for hotplug, which ACRN lacks
DUMMY_DISK = "nodisk"
Sources = tuple[str, ...]


@dataclass(frozen=True)
class HostBridge:
    sources: Sources = ("kata.fixed",)

    def params(self, slot: int) -> list[str]:
        return ["-s", f"{slot}:0,hostbridge"]


@dataclass(frozen=True)
class LPC:
    """The LPC bridge with COM1 on stdio."""

    sources: Sources = ("kata.fixed",)

    def params(self, slot: int) -> list[str]:
        return ["-s", f"{slot}:0,lpc", "-lcom1,stdio"]


@dataclass(frozen=True)
class SocketConsole:
    """A virtio-console port on a unix socket (``@`` marks the console port, not a serial one)."""

    name: str
    path: str
    console_port: bool
    sources: Sources

    def params(self, slot: int) -> list[str]:
        marker = "@" if self.console_port else ""
        return ["-s", f"{slot},virtio-console,{marker}socket:{self.name}={self.path}"]


@dataclass(frozen=True)
class VirtioBlk:
    path: str
    sources: Sources

    def params(self, slot: int) -> list[str]:
        return ["-s", f"{slot},virtio-blk,{self.path}"]


class Device(Protocol):
    """What every acrn-dm device offers: its ``-s`` arguments for a slot, and their sources."""

    sources: Sources

    def params(self, slot: int) -> list[str]: ...


def device_args(devices: list[Device]) -> list[Arg]:
    """``Config.appendDevices``: consecutive slots from 0, skipping the GVT-g slot."""
    args: list[Arg] = []
    slot = 0
    for device in devices:
        if slot == GVTG_RESERVED_SLOT:
            slot += 1
        args += [Arg(value, device.sources) for value in device.params(slot)]
        slot += 1
    return args
