"""topology: vCPUs and memory as generated, and hotplug the way Kata does it over QMP.

This module runs last for a cell (hotplug changes the guest).
"""

from __future__ import annotations

import os
import re
import subprocess
import time

import pytest

from katatest.expect.checks import (
    BlockHotplug,
    cmdline_params,
    cpu_list_count,
    hotplugged_disk_mismatch,
    machine_type,
    memory_mib,
    options,
    props,
    smp,
)
from katatest.generate.qemu.hotplug import KataHotplug, parse_ops
from katatest.kata.loader import load_kata_config
from katatest.kata.releases import load_release
from katatest.launch.qmp import QmpPeer
from katatest.matrix.cell_config import cell_document

HOTPLUG_DISK_BYTES = 16 * 1024 * 1024


def _read_int(guest, path: str) -> int:
    return cpu_list_count(guest.host.check_output(f"cat {path}"))


# QEMU 9+ refuses the string values Kata 3.0.0 sends for typed device_add properties (share-rw "on").
STRING_VALUE_REFUSED = re.compile(r"Invalid parameter type for '([\w-]+)', expected: (?:boolean|integer|number)")


def test_online_vcpus_equal_smp_cpus(guest):
    assert _read_int(guest, "/sys/devices/system/cpu/online") == smp(guest.plan.argv)["cpus"]


def test_possible_cpus_follow_maxcpus_and_nr_cpus(guest):
    topology = smp(guest.plan.argv)
    nr_cpus = int(cmdline_params(guest.generated_option("-append")[0]).get("nr_cpus", topology["maxcpus"]))
    expected = min(topology["maxcpus"], nr_cpus)
    possible = _read_int(guest, "/sys/devices/system/cpu/possible")
    if machine_type(guest.plan.argv) == "virt":
        # QEMU 7.2's arm64 virt has no vCPU hotplug: the firmware tables may describe only the present vCPUs.
        assert min(topology["cpus"], nr_cpus) <= possible <= expected
    else:
        assert possible == expected


def test_memtotal_matches_default_memory(guest):
    size_mib = memory_mib(props(options(guest.plan.argv, "-m")[0])[""])
    meminfo = guest.host.check_output("grep MemTotal /proc/meminfo")
    total_mib = int(meminfo.split()[1]) // 1024
    assert size_mib * 0.6 < total_mib <= size_mib, f"MemTotal {total_mib} MiB for -m {size_mib} MiB"


def _wait(predicate, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.5)
    return False


@pytest.fixture(scope="session")
def kata(guest, cell, kata_base_config, tmp_path_factory):
    """Kata's hot-plug model for the cell's release (``katatest.generate.qemu.hotplug``, exact on every hot-plug
    vector), sending its commands to the cell's real QEMU: the checks send exactly what Kata would."""
    release = load_release(cell.release)
    cfg = load_kata_config(cell_document(cell, kata_base_config), guest.facts, cell.name, release)
    model = KataHotplug(cfg, guest.rendered.argv_values(), release, cell.arch, guest.facts.sandbox_id,
                        str(tmp_path_factory.mktemp("hotplug")), QmpPeer(guest.vm.qmp))
    assert model.boot(), f"Kata's boot-time QMP failed: {model.peer.errors}"
    return model


def _send(kata, cell, line: str):
    """Run one op of the model against the real QEMU; QEMU refusing it is a finding of (release, build) when it
    is Kata 3.0.0's untyped values, else a failure naming the command."""
    errors_before = len(kata.peer.errors)
    (op,) = parse_ops(line)
    section = kata.run_op(op)
    refused = kata.peer.errors[errors_before:]
    for _, error in refused:
        typed = STRING_VALUE_REFUSED.search(error)
        if typed and not kata.typed:
            pytest.skip(f"cannot hot-plug here [qemu-lacks]: Kata {cell.release} on QEMU {cell.qemu_build}: QEMU "
                        f"refuses Kata's string value for {typed.group(1)} ({error}); QEMU 7.2 accepts it")
    assert not refused, f"QEMU refused Kata's {line!r}: {refused}"
    return section


def test_hotplug_cpu(guest, cell, kata):
    """Kata's ResizeVCPUs up by one (query-hotpluggable-cpus, device_add of the first free slot): QEMU has the
    vCPU and the guest onlines it."""
    topology = smp(guest.plan.argv)
    if topology["maxcpus"] <= topology["cpus"] or cell.protection != "none":
        pytest.skip("no free vCPU slot (maxcpus == cpus)")
    if cell.arch == "arm64":
        pytest.skip("QEMU's arm64 virt machine has no vCPU hotplug (query-hotpluggable-cpus disabled)")
    if machine_type(guest.plan.argv) == "microvm":
        pytest.skip("microvm has no vCPU hotplug (query-hotpluggable-cpus disabled)")
    before = _read_int(guest, "/sys/devices/system/cpu/online")
    section = _send(kata, cell, f"cpu {topology['cpus'] + 1}")
    assert any('"device_add"' in line for line in section.lines), section.lines
    script = ("for c in /sys/devices/system/cpu/cpu[0-9]*; do "
              "[ -f $c/online ] && [ $(cat $c/online) = 0 ] && echo 1 > $c/online; done; true")
    assert _wait(lambda: (guest.host.run(script), _read_int(guest, "/sys/devices/system/cpu/online"))[1]
                 == before + 1), "the hotplugged vCPU never came online in the guest"
    used = [c for c in guest.vm.qmp.execute("query-hotpluggable-cpus") if "qom-path" in c]
    assert len(used) == topology["cpus"] + 1, f"QEMU does not have the vCPU Kata plugged: {used}"


def test_hotplug_memory_dimm(guest, cell, kata):
    """Kata's ResizeMemory up by 256 MiB (query-memory-devices, object-add, device_add pc-dimm): QEMU has the
    DIMM and the guest onlines its blocks."""
    if cell.arch == "arm64" and "-bios" not in guest.plan.argv:
        pytest.skip("arm64 virt memory hotplug needs the ACPI GED, i.e. UEFI firmware")
    if cell.protection != "none" or machine_type(guest.plan.argv) == "microvm" or kata.hv.virtio_mem:
        pytest.skip("Kata does not hotplug DIMMs for this machine/protection")

    def memtotal() -> int:
        return int(guest.host.check_output("grep MemTotal /proc/meminfo").split()[1]) // 1024
    before = memtotal()
    _send(kata, cell, f"mem {kata.hv.memory_size + kata.hotplugged_mb + 256}")
    dimms = [d for d in guest.vm.qmp.execute("query-memory-devices") if d["type"] == "dimm"]
    assert dimms and dimms[-1]["data"]["size"] == 256 << 20, dimms
    online = ("for m in /sys/devices/system/memory/memory*; do "
              "[ $(cat $m/state) = offline ] && echo online > $m/state; done; true")
    assert _wait(lambda: (guest.host.run(online), memtotal())[1] >= before + 200), \
        f"MemTotal stayed at {memtotal()} MiB after a 256 MiB DIMM"


def _block_disks(guest) -> set[str]:
    return set(guest.host.check_output("ls /sys/block").split())


def test_hotplug_block_device(guest, cell, kata, tmp_path):
    """Kata's block attach for the cell's block_device_driver on a host block device (a loop device): the disk
    appears where Kata put it (virtio-blk at its bridge slot, scsi-hd at its SCSI id/lun, which the agent
    scans); Kata's detach (device_del until DEVICE_DELETED, blockdev-del): it leaves the guest and QEMU."""
    if os.geteuid() != 0:
        pytest.skip("a host block device (loop device) for Kata's block hot-plug needs root")
    if cell.arch == "arm64" and kata.hv.block_device_driver == "virtio-blk" and cell.qemu_build == "7.2":
        pytest.skip("QEMU 7.2 finding: Bus 'pci-bridge-0' does not support hotplugging on arm64 virt "
                    "(shpc=off and no ACPI PCI hotplug there)")
    if kata.hv.block_device_driver not in ("virtio-blk", "virtio-scsi"):
        pytest.skip(f"block_device_driver {kata.hv.block_device_driver}: no disk to look for in the guest")
    backing = tmp_path / "disk.img"
    with open(backing, "wb") as fh:
        fh.truncate(HOTPLUG_DISK_BYTES)
    loop = subprocess.run(["losetup", "--find", "--show", str(backing)], capture_output=True, text=True)
    if loop.returncode != 0:
        pytest.skip(f"no loop device on this host: {loop.stderr.strip()}")
    device = loop.stdout.strip()
    try:
        before = _block_disks(guest)
        _send(kata, cell, f"block add hp0 {device} dev")
        drive = kata.drive("hp0")
        assert drive is not None, "Kata's model did not attach the drive"
        if drive.bridge is not None:  # virtio-blk at (the bridge's slot on the root bus, its slot on the bridge)
            plug = BlockHotplug("vd", pci_path=(int(drive.bridge.path.split("/")[0], 16),
                                                drive.bridge.slot_of(drive.id)))
        else:  # scsi-hd at scsi-id/lun = divmod(index, 256)
            plug = BlockHotplug("sd", scsi_address=divmod(drive.index, 256))
        prefix = plug.guest_prefix
        if plug.scsi_address:  # the agent scans the SCSI hosts for the id/lun (scsi_mod.scan=none)
            scan = "0 {} {}".format(*plug.scsi_address)
            guest.host.run_test(f"for h in /sys/class/scsi_host/*; do echo '{scan}' > $h/scan; done")
        assert _wait(lambda: any(d.startswith(prefix) for d in _block_disks(guest) - before), timeout=30.0), \
            f"no new {prefix}* disk in the guest: {sorted(_block_disks(guest))}"
        (disk,) = sorted(d for d in _block_disks(guest) - before if d.startswith(prefix))
        sysfs = guest.host.check_output(f"readlink -f /sys/block/{disk}")
        driver = guest.host.check_output(f"basename $(readlink -f /sys/block/{disk}/device/driver)")
        mismatch = hotplugged_disk_mismatch(plug, disk, sysfs, driver)
        assert not mismatch, mismatch
        assert int(guest.host.check_output(f"cat /sys/block/{disk}/size")) * 512 == HOTPLUG_DISK_BYTES
        _send(kata, cell, "block del hp0")
        assert _wait(lambda: disk not in _block_disks(guest), timeout=30.0), f"{disk} is still in the guest"
        assert drive.id not in {b.get("node-name") for b in guest.vm.qmp.execute("query-named-block-nodes")}
    finally:
        subprocess.run(["losetup", "-d", device], capture_output=True)
