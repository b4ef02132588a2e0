"""hotplug: what Kata changes in a running sandbox, sent exactly as Kata sends it, and seen arrive and leave.

Each test runs one or two ops of Kata's hot-plug model for the cell's release
(``katatest.generate.qemu.hotplug``, exact on every hot-plug vector) against the cell's real QEMU, then checks
from QMP and inside the guest: a vCPU added and removed again, memory (a DIMM, or the virtio-mem device
resized up and back), a block device (its contents at its PCI slot or SCSI id/lun) attached and detached, a
NIC (its MAC at its PCI slot, traffic to its veth peer) added and removed. What a QEMU build refuses of Kata's
sequence is a finding of that (release, build) pair, skipped with its name; anything else it refuses fails.

These tests change the guest: the module runs after every other check of its cell (``RUNS_LAST``), and the vCPU
removal runs last of all: under TCG, QEMU 7.2's vCPU unplug corrupts its heap (glibc aborts QEMU at the next
RCU reclaim, e.g. after Kata's next DIMM add; README, QEMU findings).
"""

from __future__ import annotations

import re
import time

import pytest

from katatest.expect.checks import BlockHotplug, cpu_list_count, hotplugged_disk_mismatch, machine_type, smp
from katatest.expect.nics import guest_nics, qemu_nics
from katatest.generate.qemu.hotplug import KataHotplug
from katatest.generate.qemu.hotplug_ops import parse_ops
from katatest.guest.hotplug_host import CannotHotplug, hotplug_nic, loop_disk, unplug_event_finding
from katatest.guest.network import configure_like_the_agent
from katatest.guest.reads import read_together
from katatest.guest.skip_reasons import check_reason
from katatest.kata.loader import load_kata_config
from katatest.kata.releases import load_release
from katatest.launch.qmp import EVENT_MISSING, QmpPeer
from katatest.matrix.cell_config import cell_document

RUNS_LAST = True
HOTPLUG_DISK_BYTES = 16 * 1024 * 1024
HOTPLUG_MEM_MIB = 256
HOTPLUG_MAC = "02:00:00:00:01:01"  # distinct from every cold-plugged endpoint's MAC

# What a QEMU build refuses of Kata's sequence that is a finding of the (release, build) pair:
FINDINGS = (
    # QEMU 9+ refuses the string values Kata 3.0.0 sends for typed device_add properties (share-rw "on")
    (re.compile(r"Invalid parameter type for '([\w-]+)', expected: (?:boolean|integer|number)"),
     "refuses Kata's string value for a typed property"),
    # QEMU 7.2's arm64 virt: no hot-plug on a pci-bridge (shpc=off there, no ACPI PCI hotplug before 10.1)
    (re.compile(r"Bus '[\w.-]+' does not support hotplugging"), "cannot hot-plug onto the bus Kata chose"),
)


def _wait(predicate, timeout: float = 20.0, step: float = 0.02) -> bool:
    """Whether ``predicate`` came true within ``timeout`` s (asked again every ``step`` s; a guest read is a
    round trip of its own, ~30 ms under TCG)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False


@pytest.fixture(scope="session")
def kata(guest, cell, kata_base_config, tmp_path_factory):
    """Kata's hot-plug model for the cell's release, sending its commands to the cell's real QEMU."""
    release = load_release(cell.release)
    cfg = load_kata_config(cell_document(cell, kata_base_config), guest.facts, cell.name, release)
    model = KataHotplug(cfg, guest.rendered.argv_values(), release, cell.arch, guest.facts.sandbox_id,
                        str(tmp_path_factory.mktemp("hotplug")), QmpPeer(guest.vm.qmp))
    assert model.boot(), f"Kata's boot-time QMP failed: {model.peer.errors}"
    return model


def _send(kata, cell, line: str, finding_ok: tuple[str, ...] = ()):
    """Run one op of the model against the real QEMU and return its section. A refusal that is a known finding
    of the (release, build) pair skips naming it; any other refusal fails naming the command. ``finding_ok``:
    error texts the caller checks itself (returned with the section)."""
    errors_before = len(kata.peer.errors)
    (op,) = parse_ops(line)
    section = kata.run_op(op)
    refused = kata.peer.errors[errors_before:]
    for command, error in refused:
        for pattern, what in FINDINGS:
            if pattern.search(error):
                pytest.skip(f"cannot hot-plug here [{check_reason('qemu-lacks')}]: Kata {cell.release} on QEMU "
                            f"{cell.qemu_build}: QEMU {what}: {command} -> {error}")
    unexpected = [(c, e) for c, e in refused if not any(text in e for text in finding_ok)]
    assert not unexpected, f"QEMU refused Kata's {line!r}: {unexpected}"
    return section, refused


def _after(first: str, read: str) -> str:
    """``read``, after the guest ran ``first`` (when given) in the same round trip."""
    return f"{first}; {read}" if first else read


def _guest_int(guest, path: str, first: str = "") -> int:
    """The CPU count in a cpu-list file (after the guest ran ``first``, in the same round trip)."""
    return cpu_list_count(guest.host.check_output(_after(first, f"cat {path}")))


def _present_vcpus(guest) -> int:
    return len([c for c in guest.vm.qmp.execute("query-hotpluggable-cpus") if "qom-path" in c])


def _memtotal_mib(guest, first: str = "") -> int:
    """MemTotal in MiB (after the guest ran ``first``, in the same round trip)."""
    return int(guest.host.check_output(_after(first, "grep MemTotal /proc/meminfo")).split()[1]) // 1024


ONLINE_MEMORY = ("for m in /sys/devices/system/memory/memory*; do read s < $m/state; "
                 "[ $s = offline ] && echo online_movable > $m/state; done; true")


def test_memory_added(guest, cell, kata):
    """Kata's ResizeMemory up by 256 MiB: a DIMM (query-memory-devices, object-add, device_add pc-dimm) whose
    blocks the guest onlines, or with enable_virtio_mem the virtio-mem device's requested-size (qom-set),
    which QEMU and the guest plug; virtio-mem back down to the base size: the guest gives the memory back.
    (Kata never removes a DIMM: shrinking sends nothing.)"""
    if cell.arch == "arm64" and "-bios" not in guest.plan.argv:
        pytest.skip("arm64 virt memory hotplug needs the ACPI GED, i.e. UEFI firmware")
    if cell.protection != "none" or machine_type(guest.plan.argv) == "microvm":
        pytest.skip("Kata does not hot-plug memory for this machine/protection")
    base = kata.hv.memory_size
    before = _memtotal_mib(guest)
    _send(kata, cell, f"mem {base + kata.hotplugged_mb + HOTPLUG_MEM_MIB}")
    def grown():
        return _memtotal_mib(guest, first=ONLINE_MEMORY) >= before + HOTPLUG_MEM_MIB * 3 // 4
    if not kata.hv.virtio_mem:
        dimms = [d for d in guest.vm.qmp.execute("query-memory-devices") if d["type"] == "dimm"]
        assert dimms and dimms[-1]["data"]["size"] == HOTPLUG_MEM_MIB << 20, dimms
        assert _wait(grown), f"MemTotal stayed at {_memtotal_mib(guest)} MiB after a {HOTPLUG_MEM_MIB} MiB DIMM"
        return

    def plugged() -> int:
        (dev,) = [d for d in guest.vm.qmp.execute("query-memory-devices") if d["type"] == "virtio-mem"]
        assert dev["data"]["requested-size"] == kata.hotplugged_mb << 20, dev
        return dev["data"]["size"]
    assert _wait(lambda: plugged() == HOTPLUG_MEM_MIB << 20), f"virtio-mem plugged {plugged()} bytes"
    assert _wait(grown), f"MemTotal stayed at {_memtotal_mib(guest)} MiB after virtio-mem grew"
    _send(kata, cell, f"mem {base}")
    assert _wait(lambda: plugged() == 0, timeout=30.0), f"virtio-mem still plugs {plugged()} bytes"
    assert _wait(lambda: _memtotal_mib(guest) <= before), f"MemTotal {_memtotal_mib(guest)} MiB, was {before}"


def _block_disks(guest) -> set[str]:
    return set(guest.host.check_output("ls /sys/block").split())


def _block_plug(drive) -> BlockHotplug:
    """Where Kata put the drive: virtio-blk at (the bridge's slot on the root bus, its slot on the bridge),
    scsi-hd at scsi-id/lun = divmod(index, 256)."""
    if drive.bridge is not None:
        return BlockHotplug("vd", pci_path=(int(drive.bridge.path.split("/")[0], 16), drive.bridge.slot_of(drive.id)))
    return BlockHotplug("sd", scsi_address=divmod(drive.index, 256))


@pytest.fixture
def host_disk(tmp_path):
    try:
        with loop_disk(tmp_path, HOTPLUG_DISK_BYTES) as disk:
            yield disk
    except CannotHotplug as why:
        pytest.skip(str(why))


def test_block_device_attached_and_detached(guest, cell, kata, host_disk):
    """Kata's block attach for the cell's block_device_driver on a host block device: the disk with the
    device's contents appears where Kata put it (virtio-blk at its bridge slot, scsi-hd at its SCSI id/lun,
    which the agent scans); Kata's detach (device_del until DEVICE_DELETED, blockdev-del): it leaves the guest
    and QEMU."""
    if kata.hv.block_device_driver not in ("virtio-blk", "virtio-scsi"):
        pytest.skip(f"block_device_driver {kata.hv.block_device_driver}: no disk to look for in the guest")
    before = _block_disks(guest)
    _send(kata, cell, f"block add hp0 {host_disk.path} dev")
    drive = kata.drive("hp0")
    assert drive is not None, "Kata's model did not attach the drive"
    plug = _block_plug(drive)
    if plug.scsi_address:  # the agent scans the SCSI hosts for the id/lun (scsi_mod.scan=none)
        scan = "0 {} {}".format(*plug.scsi_address)
        guest.host.run_test(f"for h in /sys/class/scsi_host/*; do echo '{scan}' > $h/scan; done")
    def new():
        return sorted(d for d in _block_disks(guest) - before if d.startswith(plug.guest_prefix))
    assert _wait(lambda: bool(new()), timeout=30.0), \
        f"no new {plug.guest_prefix}* disk in the guest: {sorted(_block_disks(guest))}"
    (disk,) = new()
    token = host_disk.token
    sysfs, driver, size, head = (f"readlink -f /sys/block/{disk}",
                                 f"basename $(readlink -f /sys/block/{disk}/device/driver)",
                                 f"cat /sys/block/{disk}/size", f"head -c {len(token)} /dev/{disk}")
    seen = read_together(guest.channel, (sysfs, driver, size, head))
    mismatch = hotplugged_disk_mismatch(plug, disk, seen.text(sysfs), seen.text(driver))
    assert not mismatch, mismatch
    assert int(seen.text(size)) * 512 == host_disk.size
    assert seen.text(head) == token, f"/dev/{disk} is another disk"
    _send(kata, cell, "block del hp0")
    assert _wait(lambda: disk not in _block_disks(guest), timeout=30.0), f"{disk} is still in the guest"
    assert drive.id not in {b.get("node-name") for b in guest.vm.qmp.execute("query-named-block-nodes")}


@pytest.fixture
def nic_network(kata):
    """One more pod interface, its fds handed to the QMP peer under the names Kata's getfd uses."""
    try:
        with hotplug_nic(HOTPLUG_MAC, kata.hv.num_vcpus, vhost=not kata.hv.disable_vhost_net) as (pod, fds):
            kata.peer.fds = fds
            yield pod
    except CannotHotplug as why:
        pytest.skip(str(why))
    finally:
        kata.peer.fds = {}


def test_nic_added_and_removed(guest, cell, kata, nic_network):
    """Kata's HotplugAddDevice of a veth endpoint (getfd per tap queue and vhost fd, netdev_add, device_add
    virtio-net-pci on a bridge slot): QEMU has the NIC with the endpoint's MAC at that slot, the guest sees
    that MAC at the same PCI address and, configured as the agent does, reaches the veth's peer through it;
    HotplugRemoveDevice (device_del until DEVICE_DELETED, netdev_del): the NIC leaves QEMU and the guest."""
    if machine_type(guest.plan.argv) == "microvm":
        pytest.skip("microvm has no PCI bus to hot-plug a NIC onto")
    def run(cmd):
        return guest.host.check_output(cmd)
    _send(kata, cell, f"net add hp0 mac={HOTPLUG_MAC}")
    uuid, _, bridge = kata.nics["hp0"]
    def mine():
        return [n for n in qemu_nics(guest.vm.qmp) if n.path.endswith(f"/virtio-{uuid}")]
    (nic,) = mine()
    assert nic.mac == HOTPLUG_MAC
    if bridge is not None:
        assert nic.pci.endswith(f":{bridge.slot_of(uuid):02x}.0"), f"{nic.pci}: not the bridge slot Kata chose"
    assert _wait(lambda: nic.pci in guest_nics(run), timeout=30.0), f"the guest has no NIC at {nic.pci}"
    assert guest_nics(run)[nic.pci][0] == HOTPLUG_MAC
    (configured,) = configure_like_the_agent(run, nic_network)
    out = guest.host.check_output(f"ping -c 2 -A -W 3 -I {configured.ifname} {configured.peer}")
    assert "2 packets received, 0% packet loss" in out, out
    _send(kata, cell, "net del hp0")
    assert not mine(), "QEMU still has the NIC Kata removed"
    assert _wait(lambda: nic.pci not in guest_nics(run), timeout=30.0), f"the guest still has the NIC at {nic.pci}"


ONLINE_CPUS = ("for c in /sys/devices/system/cpu/cpu[0-9]*; do [ -f $c/online ] || continue; read o < $c/online; "
               "[ $o = 0 ] && echo 1 > $c/online; done; true")


def _vcpu_slot(guest, cell) -> dict:
    """The cell's -smp, or a skip when Kata cannot hot-plug a vCPU there."""
    topology = smp(guest.plan.argv)
    if cell.protection != "none":
        pytest.skip(f"Kata does not hot-plug vCPUs into a confidential guest ({cell.protection})")
    if topology["maxcpus"] <= topology["cpus"]:
        pytest.skip("no free vCPU slot (maxcpus == cpus)")
    if cell.arch == "arm64":
        pytest.skip("QEMU's arm64 virt machine has no vCPU hotplug (query-hotpluggable-cpus disabled)")
    if machine_type(guest.plan.argv) == "microvm":
        pytest.skip("microvm has no vCPU hotplug (query-hotpluggable-cpus disabled)")
    return topology


ONLINE = "/sys/devices/system/cpu/online"


def _add_vcpu(guest, cell, kata, topology: dict) -> None:
    """Kata's ResizeVCPUs up by one, onlined in the guest."""
    before = _guest_int(guest, ONLINE)
    section, _ = _send(kata, cell, f"cpu {topology['cpus'] + 1}")
    assert any('"device_add"' in line for line in section.lines), section.lines
    assert _wait(lambda: _guest_int(guest, ONLINE, first=ONLINE_CPUS) == before + 1), \
        "the hot-plugged vCPU never came online in the guest"


def test_vcpu_added(guest, cell, kata):
    """Kata's ResizeVCPUs up by one (query-hotpluggable-cpus, device_add of the first free slot): QEMU has the
    vCPU in that slot and the guest onlines it."""
    topology = _vcpu_slot(guest, cell)
    _add_vcpu(guest, cell, kata, topology)
    assert _present_vcpus(guest) == topology["cpus"] + 1, "QEMU does not have the vCPU Kata plugged"


def test_vcpu_removed(guest, cell, kata):
    """Kata's ResizeVCPUs back down (device_del of its last hot-plugged vCPU, until DEVICE_DELETED; it adds one
    first if none is there): the guest gives it up and QEMU's slot is free again."""
    topology = _vcpu_slot(guest, cell)
    if not kata.vcpus:
        _add_vcpu(guest, cell, kata, topology)
    before = _guest_int(guest, ONLINE) - 1
    section, refused = _send(kata, cell, f"cpu {topology['cpus']}", finding_ok=(EVENT_MISSING,))
    assert any('"device_del"' in line for line in section.lines), section.lines
    assert _present_vcpus(guest) == topology["cpus"], "QEMU still has the vCPU Kata removed"
    assert _wait(lambda: _guest_int(guest, ONLINE) == before), "the guest still runs the removed vCPU"
    if refused:  # the vCPU left QEMU and the guest, but QEMU never said so
        finding = unplug_event_finding(guest.accel.accel, refused)
        assert finding, f"QEMU {cell.qemu_build} removed the vCPU without the DEVICE_DELETED Kata waits for: {refused}"
        pytest.skip(f"{finding} (QEMU {cell.qemu_build})")
