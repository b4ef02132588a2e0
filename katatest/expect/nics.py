"""The NICs as QEMU and the guest see them: QEMU's own pairing of MAC, netdev and PCI address (QMP), and the
guest's MAC at each PCI address (sysfs), so a check can match the two instead of reading the argv back."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

QOM_CONTAINERS = ("/machine/peripheral-anon", "/machine/peripheral")


@dataclass(frozen=True)
class QemuNic:
    """One virtio-net device of the running QEMU: its QOM path, MAC, netdev and PCI address ('' off PCI)."""

    path: str
    mac: str
    netdev: str
    pci: str  # "0000:BB:SS.F"


def _bridge_buses(qmp: Any) -> dict[str, int]:
    """qdev id of each PCI bridge -> the number of the bus behind it (query-pci)."""
    out: dict[str, int] = {}

    def walk(devices: list[dict]) -> None:
        for dev in devices:
            bridge = dev.get("pci_bridge")
            if bridge:
                if dev.get("qdev_id"):
                    out[dev["qdev_id"]] = bridge["bus"]["secondary"]
                walk(bridge.get("devices", []))

    for bus in qmp.execute("query-pci"):
        walk(bus["devices"])
    return out


def _bus_number(bus_path: str, bridges: dict[str, int]) -> int:
    """The number of the PCI bus at QOM ``bus_path``: the root bus is 0, a bridge's is its secondary bus."""
    for container in QOM_CONTAINERS:
        if bus_path.startswith(container + "/"):
            owner = bus_path[len(container) + 1:].split("/")[0]
            if owner in bridges:
                return bridges[owner]
            raise LookupError(f"PCI bus {bus_path}: its bridge {owner!r} is not in query-pci")
    return 0


def qemu_nics(qmp: Any) -> list[QemuNic]:
    """Every virtio-net device QEMU runs, with the MAC, netdev and PCI address it really has (qom-get)."""
    bridges = _bridge_buses(qmp)
    nics = []
    for container in QOM_CONTAINERS:
        for child in qmp.execute("qom-list", {"path": container}):
            if not child["type"].startswith("child<virtio-net"):
                continue
            path = f"{container}/{child['name']}"

            def get(prop: str, path: str = path) -> Any:
                return qmp.execute("qom-get", {"path": path, "property": prop})

            pci = ""
            if "-pci" in child["type"]:
                devfn = int(get("addr"))
                pci = f"0000:{_bus_number(get('parent_bus'), bridges):02x}:{devfn >> 3:02x}.{devfn & 7}"
            nics.append(QemuNic(path, str(get("mac")).lower(), str(get("netdev")), pci))
    return nics


GUEST_NICS = ("for i in /sys/class/net/*; do [ -e $i/device/driver ] || continue; "
              "[ $(basename $(readlink $i/device/driver)) = virtio_net ] || continue; "
              "echo $(basename $(readlink -f $i/device/..)) $(cat $i/address) $(basename $i); done")


def guest_nics(run: Callable[[str], str]) -> dict[str, tuple[str, str]]:
    """The guest's virtio-net interfaces by the PCI address of their device: (MAC, interface name); an MMIO
    device is keyed by its platform device name. ``run(cmd) -> stdout`` runs a guest command (checked)."""
    out = {}
    for line in run(GUEST_NICS).splitlines():
        address, mac, name = line.split()
        out[address] = (mac.lower(), name)
    return out
