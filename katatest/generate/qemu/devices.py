"""The devices and objects of a QEMU config, each rendering its own argv (govmm's Device types).

Every device carries ``sources``: the config keys / host facts that made Kata add it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from katatest.generate.qemu.transport import PCI, disable_modern, virtio_name

Sources = tuple[str, ...]


@dataclass
class Device:
    """Base: a device knows whether govmm would emit it and what it emits."""

    sources: Sources = ()

    def valid(self) -> bool:
        return True

    def params(self, transport: str) -> list[str]:
        raise NotImplementedError


@dataclass
class PCIBridge(Device):
    bus: str = ""
    id: str = ""
    chassis: int = 0
    addr: int = 0

    def valid(self) -> bool:
        return bool(self.bus and self.id)

    def params(self, transport: str) -> list[str]:
        opts = [f"pci-bridge,bus={self.bus},id={self.id},chassis_nr={self.chassis},shpc=off",
                f"addr={self.addr:x}", "io-reserve=4k", "mem-reserve=1m", "pref64-reserve=1m"]
        return ["-device", ",".join(opts)]


@dataclass
class VirtioSerial(Device):
    id: str = "serial0"
    disable_modern: bool = False

    def params(self, transport: str) -> list[str]:
        opts = [virtio_name("virtio-serial", transport), *disable_modern(transport, self.disable_modern),
                f"id={self.id}"]
        return ["-device", ",".join(opts)]


@dataclass
class ConsoleChardev(Device):
    """A console on a unix socket: ``virtconsole`` device, or the chardev behind a legacy serial."""

    legacy: bool = False
    device_id: str = "console0"
    id: str = "charconsole0"
    path: str = ""

    def valid(self) -> bool:
        return bool(self.id and self.path)

    def params(self, transport: str) -> list[str]:
        chardev = f"socket,id={self.id},path={self.path},server=on,wait=off"
        if self.legacy:
            return ["-chardev", chardev]
        return ["-device", f"virtconsole,chardev={self.id},id={self.device_id}", "-chardev", chardev]


@dataclass
class LegacySerial(Device):
    chardev: str = "charconsole0"

    def params(self, transport: str) -> list[str]:
        return ["-serial", f"chardev:{self.chardev}"]


@dataclass
class NvdimmImage(Device):
    """The guest image as an NVDIMM backed by a read-only (amd64) memory-backend-file."""

    mem_path: str = ""
    size: int = 0
    readonly: bool = True

    def valid(self) -> bool:
        return bool(self.mem_path and self.size)

    def params(self, transport: str) -> list[str]:
        dev = ["nvdimm", "id=nv0", "memdev=mem0"]
        obj = ["memory-backend-file", "id=mem0", f"mem-path={self.mem_path}", f"size={self.size}"]
        if self.readonly:
            obj.append("readonly=on")
            dev.append("unarmed=on")
        return ["-device", ",".join(dev), "-object", ",".join(obj)]


@dataclass
class BlockDevice(Device):
    id: str = ""
    file: str = ""
    disable_modern: bool = False
    share_rw: bool = False
    readonly: bool = False
    scsi_off: bool = True  # release.qemu.virtio_blk_scsi_off

    def valid(self) -> bool:
        return bool(self.id and self.file)

    def params(self, transport: str) -> list[str]:
        dev = [virtio_name("virtio-blk", transport), *disable_modern(transport, self.disable_modern),
               f"drive={self.id}", *(("scsi=off",) if self.scsi_off else ()), "config-wce=off"]
        if self.share_rw:
            dev.append("share-rw=on")
        dev.append(f"serial={self.id}")
        drive = [f"id={self.id}", f"file={self.file}", "aio=threads", "format=raw", "if=none"]
        if self.readonly:
            drive.append("readonly=on")
        return ["-device", ",".join(dev), "-drive", ",".join(drive)]


@dataclass
class IntelIommu(Device):
    def params(self, transport: str) -> list[str]:
        return ["-device", "intel-iommu,intremap=on,device-iotlb=on,caching-mode=on"]


@dataclass
class PVPanic(Device):
    def params(self, transport: str) -> list[str]:
        return ["-device", "pvpanic", "-no-shutdown"]


@dataclass
class SCSIController(Device):
    id: str = "scsi0"
    disable_modern: bool = False
    iothread: str = ""

    def params(self, transport: str) -> list[str]:
        opts = [f"{virtio_name('virtio-scsi', transport)},id={self.id}",
                *disable_modern(transport, self.disable_modern)]
        if self.iothread:
            opts.append(f"iothread={self.iothread}")
        return ["-device", ",".join(opts)]


@dataclass
class EPCObject(Device):
    size: int = 0

    def valid(self) -> bool:
        return self.size != 0

    def params(self, transport: str) -> list[str]:
        return ["-object", f"memory-backend-epc,id=epc0,size={self.size},prealloc=on"]


@dataclass
class TDXGuest(Device):
    device_id: str = "fd0"
    file: str = ""
    firmware_volume: str = ""

    def valid(self) -> bool:
        return bool(self.file)

    def params(self, transport: str) -> list[str]:
        dev = ["loader", f"id={self.device_id}", f"file={self.file}"]
        if self.firmware_volume:
            dev.append(f"config-firmware-volume={self.firmware_volume}")
        return ["-device", ",".join(dev), "-object", "tdx-guest,id=tdx"]


@dataclass
class TDXJsonGuest(Device):
    """TDX as a JSON tdx-guest object with the QGS socket (the firmware goes to -bios)."""

    file: str = ""
    qgs: str = "unix"  # release.qemu.tdx_qgs (port 0): the QGS unix socket, or vsock CID 2 port 4050
    qgs_port: int = 0  # tdx_quote_generation_service_socket_port: > 0 is vsock CID 2 on that port
    qgs_socket: str = "/var/run/tdx-qgs/qgs.socket"

    def valid(self) -> bool:
        return bool(self.file)

    def params(self, transport: str) -> list[str]:
        if self.qgs_port:
            socket = {"type": "vsock", "cid": "2", "port": str(self.qgs_port)}
        elif self.qgs == "unix":
            socket = {"type": "unix", "path": self.qgs_socket}
        else:
            socket = {"type": "vsock", "cid": "2", "port": "4050"}
        obj = {"qom-type": "tdx-guest", "id": "tdx", "quote-generation-socket": socket}
        return ["-object", json.dumps(obj, separators=(",", ":"))]


@dataclass
class RMEGuest(Device):
    """Arm CCA: the realm object (govmm's CCAGuest; the firmware goes to -bios)."""

    measurement_algo: str = "sha512"

    def params(self, transport: str) -> list[str]:
        return ["-object", f"rme-guest,id=rme0,measurement-algorithm={self.measurement_algo}"]


@dataclass
class SNPGuest(Device):
    file: str = ""
    cbitpos: int = 0
    reduced_phys_bits: int = 1  # hard-coded by Kata since 3.x
    id_block: str = ""
    id_auth: str = ""
    policy: int | None = None

    def valid(self) -> bool:
        return bool(self.file) and self.cbitpos != 0

    def params(self, transport: str) -> list[str]:
        obj = [f"sev-snp-guest,id=snp,cbitpos={self.cbitpos},reduced-phys-bits={self.reduced_phys_bits}",
               "kernel-hashes=on"]
        if self.id_block:
            obj.append(f"id-block={self.id_block}")
        if self.id_auth:
            obj.append(f"id-auth={self.id_auth}")
        if self.policy is not None:
            obj.append(f"policy={self.policy}")
        return ["-object", ",".join(obj)]


@dataclass
class SEVGuest(Device):
    file: str = ""
    cbitpos: int = 0
    reduced_phys_bits: int = 0

    def valid(self) -> bool:
        return bool(self.file) and self.cbitpos != 0 and self.reduced_phys_bits != 0

    def params(self, transport: str) -> list[str]:
        obj = f"sev-guest,id=sev,cbitpos={self.cbitpos},reduced-phys-bits={self.reduced_phys_bits}"
        return ["-object", obj, "-drive", f"if=pflash,format=raw,readonly=on,file={self.file}"]


@dataclass
class RngDevice(Device):
    id: str = "rng0"
    filename: str = ""

    def params(self, transport: str) -> list[str]:
        obj = ["rng-random", f"id={self.id}"]
        if self.filename:
            obj.append(f"filename={self.filename}")
        return ["-object", ",".join(obj), "-device", f"{virtio_name('virtio-rng', transport)},rng={self.id}"]


@dataclass
class PCIeRootPort(Device):
    id: str = ""
    bus: str = "pcie.0"
    chassis: str = "0"
    slot: str = "0"
    mem_reserve: str = ""
    pref64_reserve: str = ""
    addr: str = ""
    bus_reserve: str = ""
    io_reserve: str = ""

    def params(self, transport: str) -> list[str]:
        opts = [f"pcie-root-port,id={self.id}", f"bus={self.bus}", f"chassis={self.chassis}",
                f"slot={self.slot}", *([f"addr={self.addr}"] if self.addr else []), "multifunction=off"]
        if self.bus_reserve:
            opts.append(f"bus-reserve={self.bus_reserve}")
        if self.pref64_reserve:
            opts.append(f"pref64-reserve={self.pref64_reserve}")
        if self.mem_reserve:
            opts.append(f"mem-reserve={self.mem_reserve}")
        if self.io_reserve:
            opts.append(f"io-reserve={self.io_reserve}")
        return ["-device", ",".join(opts)]


@dataclass
class PCIePCIBridge(Device):
    """A pcie-pci-bridge nested on its own pcie-root-port (q35 with firmware)."""

    bus: str = ""
    id: str = ""

    def params(self, transport: str) -> list[str]:
        return ["-device", f"pcie-pci-bridge,bus={self.bus},id={self.id}"]


@dataclass
class PCIeSwitchUpstreamPort(Device):
    id: str = ""
    bus: str = ""

    def params(self, transport: str) -> list[str]:
        return ["-device", f"x3130-upstream,id={self.id},bus={self.bus}"]


@dataclass
class PCIeSwitchDownstreamPort(Device):
    id: str = ""
    bus: str = ""
    chassis: str = ""
    slot: str = ""

    def params(self, transport: str) -> list[str]:
        return ["-device", f"xio3130-downstream,id={self.id},bus={self.bus},chassis={self.chassis},slot={self.slot}"]


@dataclass
class Balloon(Device):
    """virtio-balloon with deflate-on-oom and free-page reporting (reclaim_guest_freed_memory)."""

    id: str = "balloon0"

    def params(self, transport: str) -> list[str]:
        opts = [virtio_name("virtio-balloon", transport), f"id={self.id}", "deflate-on-oom=on",
                *disable_modern(transport, False), "free-page-reporting=on"]
        return ["-device", ",".join(opts)]


@dataclass
class VhostVsock(Device):
    context_id: int = 3
    vhost_fd: int = 3
    disable_modern: bool = False
    bus: str = ""

    def valid(self) -> bool:
        return 3 <= self.context_id <= 2**32 - 1

    def params(self, transport: str) -> list[str]:
        opts = [("vhost-vsock-pci" if transport == PCI else "vhost-vsock-device"),
                *disable_modern(transport, self.disable_modern), f"vhostfd={self.vhost_fd}",
                f"id=vsock-{self.context_id}", f"guest-cid={self.context_id}"]
        if self.bus:
            opts.append(f"bus={self.bus}")
        return ["-device", ",".join(opts)]


@dataclass
class VhostUserFS(Device):
    chardev_id: str = ""
    socket_path: str = ""
    tag: str = ""
    cache_size_mib: int = 0
    queue_size: int = 0
    bus: str = ""

    def valid(self) -> bool:
        return bool(self.socket_path and self.chardev_id and self.tag)

    def params(self, transport: str) -> list[str]:
        dev = [("vhost-user-fs-pci" if transport == PCI else "vhost-user-fs-device"),
               f"chardev={self.chardev_id}", f"tag={self.tag}"]
        if self.queue_size:  # release.qemu.vhost_user_fs_queue_size, before cache-size
            dev.append(f"queue-size={self.queue_size}")
        if self.cache_size_mib:
            dev.append(f"cache-size={self.cache_size_mib}M")
        if self.bus:
            dev.append(f"bus={self.bus}")
        return ["-chardev", f"socket,id={self.chardev_id},path={self.socket_path}", "-device", ",".join(dev)]


@dataclass
class Virtio9P(Device):
    id: str = ""
    path: str = ""
    mount_tag: str = ""
    disable_modern: bool = False
    multidevs: str = ""

    def valid(self) -> bool:
        return bool(self.id and self.path and self.mount_tag)

    def params(self, transport: str) -> list[str]:
        dev = [virtio_name("virtio-9p", transport), *disable_modern(transport, self.disable_modern),
               f"fsdev={self.id}", f"mount_tag={self.mount_tag}"]
        fsdev = ["local", f"id={self.id}", f"path={self.path}", "security_model=none"]
        if self.multidevs:
            fsdev.append(f"multidevs={self.multidevs}")
        return ["-device", ",".join(dev), "-fsdev", ",".join(fsdev)]
