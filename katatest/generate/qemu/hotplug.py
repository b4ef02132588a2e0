"""What Kata sends over QMP after launch, op by op (``katatest hotplug``): vCPUs, memory (DIMMs, virtio-mem),
block devices (virtio-blk, virtio-scsi, nvdimm, pmem), swap and network devices.

A model of Kata's Go runtime hot-plug entry points (``qemu.ResizeVCPUs``, ``ResizeMemory``, the block driver's
attach/detach through ``hotplugBlockDevice``, swap) on the rendered sandbox: its ``-smp``, memory, bridges and
slots, SCSI controller, and the release's behaviours (``release.qemu.qmp_typed_values``: 3.30+ send booleans
and integers where 3.0.0 sends strings; ``release.qemu.blockdev_stat_file``: 3.30+ pick the ``file`` driver
for a regular file, 3.0.0 always ``host_device``). The ops come from ``hotplug_ops``; QEMU's side is a peer
(``hotplug_peers``: a vector's ``.replies`` or ``ModelQemu``; or a running QEMU). Output: the vectors' ``.qmp``
format. Kata's own hot-plug bugs are reproduced as Kata has them (README, "Kata's own hot-plug findings").
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from katatest.generate.options import option_values, props
from katatest.generate.qemu.hotplug_ops import HotplugError, Op, qmp_line
from katatest.generate.qemu.hotplug_peers import ModelQemu, Peer, Replies
from katatest.kata.hypervisor_config import KataConfig
from katatest.kata.releases import Release

BRIDGE_SLOTS = 30  # types.Bridge MaxCapacity of a PCI bridge: slots 01..1e
SCSI_CONTROLLER = "scsi0"
DEFAULT_BLOCK_MB = 128  # the guest's memory block size the agent reports, when the op does not say


@dataclass
class Bridge:
    """A PCI bridge of the argv and the slots Kata hot-plugged onto it (types.Bridge)."""

    id: str
    path: str  # the guest PCI path of the bridge ("02", or "02/00" nested behind a root port)
    devices: dict[int, str] = field(default_factory=dict)

    def add(self, device: str) -> int | None:
        slot = next((s for s in range(1, BRIDGE_SLOTS + 1) if s not in self.devices), None)
        if slot is not None:
            self.devices[slot] = device
        return slot

    def slot_of(self, device: str) -> int | None:
        """The slot ``device`` holds on this bridge (None: not on it)."""
        return next((slot for slot, owner in self.devices.items() if owner == device), None)

    def remove(self, device: str) -> bool:
        slot = self.slot_of(device)
        if slot is not None:
            del self.devices[slot]
        return slot is not None


def bridges_of(argv: list[str]) -> list[Bridge]:
    """The argv's hot-plug bridges in Kata's order, with their guest PCI paths."""
    devices = [props(d) for d in option_values(argv, "-device")]
    ports = {d.get("id"): d for d in devices if d.get("") == "pcie-root-port"}
    out = []
    for d in devices:
        if d.get("") not in ("pci-bridge", "pcie-pci-bridge") or not d.get("id"):
            continue
        addr = d.get("addr", "")
        if d.get("bus") in ports:  # nested behind a root port: the port's slot, then the bridge at 00
            out.append(Bridge(d["id"], f"{int(ports[d['bus']].get('addr', '0'), 16):02x}/{int(addr or '0', 16):02x}"))
        else:
            out.append(Bridge(d["id"], f"{int(addr or '0', 16):02x}"))
    return out


@dataclass
class Drive:
    """A block device Kata attached: its id, sandbox index and where it went."""

    name: str
    id: str
    index: int
    bridge: Bridge | None = None
    swap: bool = False
    pmem: bool = False


@dataclass
class Section:
    """One ``# N op`` section: the command lines Kata wrote, and each one's sources."""

    header: str
    lines: list[str] = field(default_factory=list)
    sources: list[tuple[str, ...]] = field(default_factory=list)


class KataHotplug:
    """Kata's hypervisor state across ops, and the QMP commands each op sends."""

    def __init__(self, cfg: KataConfig, argv: list[str], release: Release, arch: str, sandbox_id: str,
                 workdir: str, peer: Peer) -> None:
        self.hv = cfg.hypervisor
        self.argv = argv
        self.release = release
        self.arch = arch
        self.sandbox_id = sandbox_id
        self.workdir = workdir
        self.peer = peer
        self.typed = release.qemu.qmp_typed_values
        self.connected = False
        self.vcpus: list[str] = []
        self.hotplugged_mb = 0
        self.bridges = bridges_of(argv)
        self.drives: dict[str, Drive] = {}
        self.block_ops = 0
        self.swaps = 0
        self.net_adds = 0
        self.root_port_nics = 0
        self.nics: dict[str, tuple[str, str, Bridge | None]] = {}
        self.sections: list[Section] = []

    # -- QMP ------------------------------------------------------------------------------------------------
    def send(self, command: str, arguments: dict | None = None, *sources: str) -> dict:
        """Write a command (recorded with its sources: the op, the release behaviours, a reply it came from)
        and return QEMU's answer."""
        line = qmp_line(command, arguments)
        section = self.sections[-1]
        section.lines.append(line)
        typed = ("release.qemu.qmp_typed_values",) if arguments and self._has_typed(arguments) else ()
        section.sources.append(tuple(dict.fromkeys((f"op: {section.header.split(' ', 2)[2]}", *sources, *typed))))
        return self.peer.answer(line)

    @staticmethod
    def _has_typed(arguments: dict) -> bool:
        keys = ("share-rw", "num-queues", "mq", "socket-id", "core-id", "thread-id", "die-id")
        return any(k in arguments for k in keys)

    def ok(self, command: str, arguments: dict | None = None, *sources: str) -> bool:
        return "error" not in self.send(command, arguments, *sources)

    def qmp_setup(self) -> bool:
        """qmpSetup: a new connection and qmp_capabilities, once."""
        if self.connected:
            return True
        self.connected = self.ok("qmp_capabilities")
        return self.connected

    def value(self, typed: Any) -> Any:
        """A typed QMP value as this release writes it (3.0.0: strings, "on" for true)."""
        if self.typed:
            return typed
        return "on" if typed is True else str(typed)

    # -- the run --------------------------------------------------------------------------------------------
    def run(self, ops: list[Op]) -> list[Section]:
        """The boot section, then one section per op (none after a failed boot: the sandbox never started)."""
        if not self.boot():
            return self.sections
        for op in ops:
            self.run_op(op)
        return self.sections

    def boot(self) -> bool:
        """What Kata sends once QEMU runs: waitVM's negotiation, then setupVirtioMem with enable_virtio_mem."""
        self._section(0, "boot")
        self.send("qmp_capabilities")  # waitVM: connects, negotiates, closes again
        return not self.hv.virtio_mem or self._setup_virtio_mem()

    def run_op(self, op: Op) -> Section:
        """One op's section: the commands Kata sends for it."""
        self._section(len(self.sections), op.line)
        getattr(self, f"_op_{op.kind.lstrip('!')}")(op)
        return self.sections[-1]

    def drive(self, name: str) -> Drive | None:
        """The block device the ops attached as ``name`` (None: not attached)."""
        return self.drives.get(name)

    def _section(self, number: int, header: str) -> None:
        self.sections.append(Section(f"# {number} {header}"))
        if isinstance(self.peer, Replies):
            self.peer.enter(number)

    # -- ops ------------------------------------------------------------------------------------------------
    def _op_fail(self, op: Op) -> None:
        if isinstance(self.peer, ModelQemu):
            match = dict(w.split("=", 1) for w in op.words[2:])
            self.peer.fail_next(op.words[1], match)

    def _op_cpu(self, op: Op) -> None:
        wanted = int(op.words[1])
        current = self.hv.num_vcpus + len(self.vcpus)
        if wanted > current:
            self._add_cpus(wanted - current)
        elif wanted < current:
            amount = current - wanted
            if not self.qmp_setup() or amount > len(self.vcpus):
                return
            for _ in range(amount):
                if not self.ok("device_del", {"id": self.vcpus[-1]}):
                    return
                self.vcpus.pop()

    def _add_cpus(self, amount: int) -> None:
        if not self.qmp_setup():
            return
        current = self.hv.num_vcpus + len(self.vcpus)
        amount = min(amount, max(self.hv.default_max_vcpus - current, 0))
        if amount == 0:
            return
        reply = self.send("query-hotpluggable-cpus")
        if "error" in reply:
            return
        added = 0
        for cpu in reply["return"]:
            if cpu.get("qom-path"):
                continue
            p = cpu.get("props", {})
            args: dict[str, Any] = {"driver": cpu["type"], "id": f"cpu-{len(self.vcpus)}",
                                    "core-id": self.value(p.get("core-id", 0))}
            if self.arch != "arm64":
                args["socket-id"] = self.value(p.get("socket-id", 0))
                args["thread-id"] = self.value(p.get("thread-id", 0))
                if cpu["type"] == "host-x86_64-cpu":
                    args["die-id"] = self.value(p.get("die-id", 0))
            if not self.ok("device_add", args, "reply: query-hotpluggable-cpus (the next free slot)",
                           "state: hot-plugged vCPUs (the id)"):
                continue
            self.vcpus.append(args["id"])
            added += 1
            if added == amount:
                return

    def _setup_virtio_mem(self) -> bool:
        """setupVirtioMem at boot: one memory object of (max - base) MiB (a multiple of 4) behind a
        virtio-mem-pci on the first bridge slot; its requested size follows every ResizeMemory."""
        size_mb = (self.hv.default_max_memory_size - self.hv.memory_size) >> 2 << 2
        backend, path, share = self._memory_backend()
        if not self.qmp_setup():
            return False
        bridge = next((b for b in self.bridges if len(b.devices) < BRIDGE_SLOTS), None)
        if bridge is None:
            return False
        bus, addr = bridge.id, f"{bridge.add('virtiomem-dev'):02x}"  # taken on the bridge in any case
        if self._machine() == "virt" and self.release.qemu.virt_net_root_port:  # but plugged into rp<N>, 00
            bus, addr = f"rp{self.root_port_nics}", "00"
            self.root_port_nics += 1
        obj: dict[str, Any] = {"qom-type": backend, "id": "virtiomem", "size": (size_mb % 2**64) << 20}
        if path:
            obj["mem-path"] = path
        if share:
            obj["share"] = True
        if not self.ok("object-add", obj):
            bridge.remove("virtiomem-dev")
            return False
        if not self.ok("device_add", {"driver": "virtio-mem-pci", "id": "virtiomem0", "memdev": "virtiomem",
                                      "bus": bus, "addr": addr}):
            self.send("object-del", {"id": "virtiomem"})
            bridge.remove("virtiomem-dev")
            return False
        return True

    def _resize_virtio_mem(self, wanted: int) -> None:
        new_mb = wanted - self.hv.memory_size
        if new_mb < 0 and self.release.qemu.qmp_typed_values:
            return  # 3.30+: "cannot resize virtio-mem device to negative size"
        # 3.0.0 computes the size in uint32 MiB: below the base memory it wraps around to a huge request
        size = (new_mb % 2**32) << 20
        if self.ok("qom-set", {"path": "virtiomem0", "property": "requested-size", "value": size}):
            self.hotplugged_mb = new_mb

    def _op_mem(self, op: Op) -> None:
        wanted = int(op.words[1])
        block = DEFAULT_BLOCK_MB
        probe = "probe" in op.words[2:]
        for word in op.words[2:]:
            if word.startswith("block="):
                block = int(word.split("=", 1)[1])
        current = self.hv.memory_size + self.hotplugged_mb
        if not self.qmp_setup():
            return
        if self.hv.confidential_guest:
            return  # supportGuestMemoryHotplug: not for a confidential guest ("guest memory hotplug not supported")
        if self.hv.virtio_mem and current != wanted:
            self._resize_virtio_mem(wanted)
            return
        if wanted <= current:
            return  # hot-unplug: Kata sends nothing (not supported)
        add = min(wanted - current, max(self.hv.default_max_memory_size - current, 0))
        if block:
            add = -(-add // block) * block
        if add == 0:
            return
        reply = self.send("query-memory-devices")
        if "error" in reply:
            return
        devices = reply["return"]
        slot = max((d["data"]["slot"] for d in devices), default=-1) + 1 if devices else 0
        backend, path, share = self._memory_backend()
        why = ("reply: query-memory-devices (slot = the highest + 1)", "hypervisor.qemu.default_memory",
               "hypervisor.qemu.default_maxmemory", "hypervisor.qemu.enable_hugepages", "hypervisor.qemu.shared_fs")
        obj: dict[str, Any] = {"qom-type": backend, "id": f"mem{slot}", "size": add << 20}
        if path:
            obj["mem-path"] = path
        if share:
            obj["share"] = True
        if not self.ok("object-add", obj, *why):
            return
        if not self.ok("device_add", {"driver": "pc-dimm", "id": f"dimmmem{slot}", "memdev": f"mem{slot}"}, *why):
            self.send("object-del", {"id": f"mem{slot}"})
            return
        if probe and "error" in self.send("query-memory-devices"):
            return
        self.hotplugged_mb += add

    def _memory_backend(self) -> tuple[str, str, bool]:
        """getMemArgs: (backend type, mem-path, share) from the guest RAM's own backend."""
        ram = next((props(o) for o in option_values(self.argv, "-object") if props(o).get("id") == "dimm1"), {})
        share = ram.get("share") in ("on", "true")
        if self.hv.huge_pages:
            return "memory-backend-file", "/dev/hugepages", True
        if self.hv.shared_fs in ("virtio-fs", "virtio-fs-nydus"):
            return "memory-backend-file", ram.get("mem-path", ""), share
        return "memory-backend-ram", "", share

    def _op_block(self, op: Op) -> None:
        if op.words[1] == "del":
            self._del_block(op.words[2])
            return
        name, path, words = op.words[2], op.words[3], op.words[4:]
        self.block_ops += 1
        drive = Drive(name, f"drive-{self.block_ops:016x}", self._free_index(), pmem="pmem" in words)
        size = next((int(w.split("=", 1)[1]) for w in words if w.startswith("file=")), None)
        filename = path if path.startswith("/") else f"{self.workdir}/{path}"
        if drive.pmem or self.hv.block_device_driver == "nvdimm":
            self._attach_nvdimm(drive, filename, size)
            return
        self._attach(drive, filename, size is not None, read_only="ro" in words, discard="discard" in words)

    def _attach_nvdimm(self, drive: Drive, filename: str, size: int | None) -> None:
        """A pmem volume, or any block device with block_device_driver = nvdimm: an nvdimm backed by the file
        (Kata opens it first: a host device absent here fails before any QMP)."""
        if not self.qmp_setup() or size is None:
            return
        obj: dict[str, Any] = {"qom-type": "memory-backend-file", "id": f"nvdimmbackmem{drive.id}",
                               "mem-path": filename, "size": size, "share": True, "pmem": drive.pmem}
        if not self.ok("object-add", obj):
            return
        if not self.ok("device_add", {"driver": "nvdimm", "id": f"nvdimm{drive.id}",
                                      "memdev": f"nvdimmbackmem{drive.id}"}):
            self.send("object-del", {"id": f"nvdimmbackmem{drive.id}"})
            return
        self.drives[drive.name] = drive

    def _op_swap(self, op: Op) -> None:
        drive = Drive("", f"swap{self.swaps}", -1, swap=True)
        self.swaps += 1
        path = f"/run/kata-containers/shared/sandboxes/{self.sandbox_id}/{drive.id}"
        self._attach(drive, path, True, read_only=False, discard=False)

    def _op_net(self, op: Op) -> None:
        if op.words[1] == "del":
            self._del_net(op.words[2])
            return
        self.net_adds += 1
        name = op.words[2]
        mac = next((w.split("=", 1)[1] for w in op.words[3:] if w.startswith("mac=")),
                   f"02:00:00:00:00:{self.net_adds:02x}")
        uuid = f"00000000-0000-4000-8000-{self.net_adds:012x}"
        netdev = f"br{self.net_adds - 1}_kata"
        if not self.qmp_setup():
            return
        queues = self.hv.num_vcpus
        taps = [f"fd{i}" for i in range(max(queues, 1))]
        vhosts = [] if self.hv.disable_vhost_net else [f"vhostfd{i}" for i in range(queues)]
        for fd in taps + vhosts:
            if not self.ok("getfd", {"fdname": fd}):
                return
        netdev_args: dict[str, Any] = {"type": "tap", "id": netdev, "fds": ":".join(taps)}
        if vhosts:
            netdev_args.update({"vhost": True, "vhostfds": ":".join(vhosts)})  # a boolean in every release
        if not self.ok("netdev_add", netdev_args):
            return
        device: dict[str, Any] = {"id": f"virtio-{uuid}", "driver": "virtio-net-pci", "romfile": "", "mac": mac,
                                  "netdev": netdev}
        if self._machine() == "virt" and self.release.qemu.virt_net_root_port:  # into PCIe root port rp<N>, 00
            device.update({"bus": f"rp{self.root_port_nics}", "addr": "00"})
            self.root_port_nics += 1
            bridge = None
        else:
            bridge = next((b for b in self.bridges if len(b.devices) < BRIDGE_SLOTS), None)
            if bridge is None:
                self.send("netdev_del", {"id": netdev})
                return
            device.update({"bus": bridge.id, "addr": f"{bridge.add(uuid):02x}"})
        if queues > 0:
            device.update({"mq": self.value(True), "vectors": 2 * queues + 2})  # vectors: an integer always
        if not self.ok("device_add", device):
            # Kata's shadowed err: the bridge slot is not given back (a Kata finding), the netdev is; a later
            # removal finds the slot and sends device_del for a device QEMU never had
            self.send("netdev_del", {"id": netdev})
            if bridge is not None:
                self.nics[name] = (uuid, netdev, bridge)
            return
        self.nics[name] = (uuid, netdev, bridge)

    def _del_net(self, name: str) -> None:
        if name not in self.nics:  # never plugged (its add failed): removeDeviceFromBridge fails after qmpSetup
            self.qmp_setup()
            return
        uuid, netdev, bridge = self.nics[name]
        if not self.qmp_setup():
            return
        if bridge is None or not bridge.remove(uuid):
            return  # removeDeviceFromBridge fails: not on a bridge (arm64 root ports), nothing is sent
        if not self.ok("device_del", {"id": f"virtio-{uuid}"}):
            return
        self.send("netdev_del", {"id": netdev})
        del self.nics[name]

    def _machine(self) -> str:
        return props(next(iter(option_values(self.argv, "-machine")), "")).get("", "")

    def _free_index(self) -> int:
        used = {d.index for d in self.drives.values()}
        return next(i for i in range(len(used) + 1) if i not in used)

    def _attach(self, drive: Drive, filename: str, regular: bool, read_only: bool, discard: bool) -> None:
        if not self.qmp_setup():
            return
        file_driver = "file" if (regular and self.release.qemu.qmp_typed_values) or drive.swap else "host_device"
        node: dict[str, Any] = {"driver": "raw", "read-only": read_only, "node-name": drive.id,
                                "file": {"driver": file_driver, "filename": filename,
                                         "aio": self.hv.block_device_aio}}
        if drive.swap:
            node["cache"] = {"direct": False, "no-flush": False}
        elif self.hv.block_device_cache_set:
            node["file"]["driver"] = "host_device"
            node["cache"] = {"direct": self.hv.block_device_cache_direct,
                             "no-flush": self.hv.block_device_cache_noflush}
        if discard:
            node["discard"] = "unmap"
            node["file"]["discard"] = "unmap"
        if not self.ok("blockdev-add", node, "hypervisor.qemu.block_device_aio",
                       "hypervisor.qemu.block_device_cache_set",
                       "release.qemu.qmp_typed_values (file driver: stat of the path)"):
            return
        device: dict[str, Any] = {"id": f"virtio-{drive.id}", "drive": drive.id, "share-rw": self.value(True)}
        if drive.swap or self.hv.block_device_driver == "virtio-blk":
            bridge = next((b for b in self.bridges if any(s not in b.devices for s in range(1, BRIDGE_SLOTS + 1))),
                          None)
            if bridge is None:
                self.send("blockdev-del", {"node-name": drive.id})
                return
            slot = bridge.add(drive.id)
            device.update({"driver": "virtio-blk-pci", "addr": f"{slot:02x}", "bus": bridge.id, "romfile": ""})
            if self.hv.num_vcpus > 0:
                device["num-queues"] = self.value(self.hv.num_vcpus)
            if discard:
                device["discard"] = True
            if self.hv.enable_io_threads and self.hv.indep_iothreads > 0:
                device["iothread"] = "indep_iothread_0"  # independent IOThread 0: the virtio-blk default
            for key, size in (("logical_block_size", self.hv.block_device_logical_sector_size),
                              ("physical_block_size", self.hv.block_device_physical_sector_size)):
                if size > 0:
                    device[key] = size
            drive.bridge = bridge
        elif self.hv.block_device_driver == "virtio-scsi":
            scsi_id, lun = divmod(drive.index, 256)
            device.update({"driver": "scsi-hd", "bus": f"{SCSI_CONTROLLER}.0", "scsi-id": scsi_id, "lun": lun})
        else:
            raise HotplugError(f"block_device_driver {self.hv.block_device_driver!r}: not modelled yet")
        if not self.ok("device_add", device, "hypervisor.qemu.block_device_driver", "hypervisor.qemu.default_vcpus",
                       "state: bridge slots / SCSI index"):
            if drive.bridge is not None:
                drive.bridge.remove(drive.id)
            self.send("blockdev-del", {"node-name": drive.id})
            return
        if not drive.swap:
            self.drives[drive.name] = drive

    def _del_block(self, name: str) -> None:
        drive = self.drives.get(name)
        if drive is None:
            return  # never attached (its add failed): Kata's Detach sends nothing
        if drive.pmem:
            del self.drives[name]  # a pmem volume is not hot-unplugged: detached without QMP
            return
        if not self.qmp_setup():
            return
        if drive.bridge is not None and not drive.bridge.remove(drive.id):
            return  # "not present on bridge": a removal whose device_del failed already freed the slot
        if not self.ok("device_del", {"id": f"virtio-{drive.id}"}):
            return
        self.send("blockdev-del", {"node-name": drive.id})
        del self.drives[name]


def sections_json(sections: list[Section]) -> list[dict]:
    """The sections with each command's provenance (``katatest hotplug --format json``)."""
    return [{"section": s.header, "commands": [{"qmp": json.loads(line), "sources": list(src)}
                                              for line, src in zip(s.lines, s.sources, strict=True)]}
            for s in sections]


def qmp_text(sections: list[Section]) -> str:
    """The ``.qmp`` file: each section's header, then its command lines."""
    return "".join(f"{s.header}\n" + "".join(f"{line}\n" for line in s.lines) for s in sections)


def iter_lines(sections: list[Section]) -> Iterator[str]:
    for s in sections:
        yield s.header
        yield from s.lines


def workdir_for(ops_path: str | Path) -> str:
    """Where the vectors' relative block paths live: ``/tmp/kata-qmp/<vector>``."""
    return f"/tmp/kata-qmp/{Path(ops_path).stem}"
