"""topology: vCPUs and memory as generated, and hotplug the way Kata does it over QMP.

This module runs last for a cell (hotplug changes the guest).
"""

from __future__ import annotations

import os
import re
import tempfile
import time

import pytest
from qemu.qmp import ExecuteError

from katatest.expect.checks import (
    CannotHotplug,
    cmdline_params,
    cpu_list_count,
    hotplugged_disk_mismatch,
    kata_block_hotplug,
    machine_type,
    memory_mib,
    options,
    props,
    smp,
)
from katatest.kata.loader import load_kata_config
from katatest.kata.releases import load_release
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


def test_hotplug_cpu(guest, cell):
    """Kata's hotplugAddCPUs: query-hotpluggable-cpus, device_add the first free slot, guest onlines it."""
    topology = smp(guest.plan.argv)
    if topology["maxcpus"] <= topology["cpus"] or cell.protection != "none":
        pytest.skip("no free vCPU slot (maxcpus == cpus)")
    if cell.arch == "arm64":
        pytest.skip("QEMU 7.2's arm64 virt machine has no vCPU hotplug (query-hotpluggable-cpus disabled)")
    if machine_type(guest.plan.argv) == "microvm":
        pytest.skip("microvm has no vCPU hotplug (query-hotpluggable-cpus disabled)")
    before = _read_int(guest, "/sys/devices/system/cpu/online")
    slots = [s for s in guest.vm.qmp.execute("query-hotpluggable-cpus") if "qom-path" not in s]
    assert slots, "QEMU reports no hotpluggable vCPU slot although maxcpus > cpus"
    slot = slots[-1]
    args = {"driver": slot["type"], "id": "cpu-hp0", **slot["props"]}
    guest.vm.qmp.execute("device_add", args)
    script = ("for c in /sys/devices/system/cpu/cpu[0-9]*; do "
              "[ -f $c/online ] && [ $(cat $c/online) = 0 ] && echo 1 > $c/online; done; true")
    assert _wait(lambda: (guest.host.run(script), _read_int(guest, "/sys/devices/system/cpu/online"))[1]
                 == before + 1), "the hotplugged vCPU never came online in the guest"


def _hotplug_backend(argv: list[str], backend_id: str, size: int) -> dict:
    """Kata's getMemArgs: a backend of the same kind as the guest RAM (file/share for virtio-fs, hugepages)."""
    ram = next(props(o) for o in options(argv, "-object") if props(o).get("id") == "dimm1")
    args = {"qom-type": ram[""], "id": backend_id, "size": size}
    if ram[""] == "memory-backend-file":
        args["mem-path"] = ram["mem-path"]
    if ram.get("share") == "on":
        args["share"] = True
    return args


def test_hotplug_memory_dimm(guest, cell):
    """Kata's hotplugAddMemory: a memory backend object plus a pc-dimm; the guest onlines the new blocks."""
    if cell.arch == "arm64" and "-bios" not in guest.plan.argv:
        pytest.skip("arm64 virt memory hotplug needs the ACPI GED, i.e. UEFI firmware")
    if cell.protection != "none" or machine_type(guest.plan.argv) == "microvm":
        pytest.skip("Kata does not hotplug memory for this machine/protection")
    def memtotal() -> int:
        return int(guest.host.check_output("grep MemTotal /proc/meminfo").split()[1]) // 1024
    before = memtotal()
    guest.vm.qmp.execute("object-add", _hotplug_backend(guest.plan.argv, "mem-hp0", 256 * 1024 * 1024))
    guest.vm.qmp.execute("device_add", {"driver": "pc-dimm", "id": "dimm-hp0", "memdev": "mem-hp0"})
    online = ("for m in /sys/devices/system/memory/memory*; do "
              "[ $(cat $m/state) = offline ] && echo online > $m/state; done; true")
    assert _wait(lambda: (guest.host.run(online), memtotal())[1] >= before + 200), \
        f"MemTotal stayed at {memtotal()} MiB after a 256 MiB DIMM"


def _block_disks(guest) -> set[str]:
    return set(guest.host.check_output("ls /sys/block").split())


def test_hotplug_block_device(guest, cell, kata_base_config):
    """Kata's hotplugAddBlockDevice for the cell's block_device_driver, then what the agent does in the guest:
    virtio-scsi -> scsi-hd on scsi0.0 (the agent scans the SCSI hosts: the command line has scsi_mod.scan=none),
    virtio-blk -> virtio-blk-pci on the first PCI bridge (the agent waits for the PCI path's uevent)."""
    hv = load_kata_config(cell_document(cell, kata_base_config), guest.facts).hypervisor
    cache = (hv.block_device_cache_direct, hv.block_device_cache_noflush) if hv.block_device_cache_set else None
    fd, path = tempfile.mkstemp(prefix="katatest-hotplug-", suffix=".img")
    try:
        os.ftruncate(fd, HOTPLUG_DISK_BYTES)
        os.close(fd)
        try:  # "file": Kata hot-plugs block devices (host_device); the backing here is a regular file
            plug = kata_block_hotplug(guest.plan.argv, hv.block_device_driver, "drive-hp0", path, index=0,
                                      aio=hv.block_device_aio, cache=cache, file_driver="file",
                                      typed=load_release(cell.release).qemu.qmp_typed_values)
        except CannotHotplug as why:
            pytest.skip(f"Kata 3.0.0 cannot hot-plug a block device here either: {why}")
        if plug.pci_path and machine_type(guest.plan.argv) == "virt":
            pytest.skip("QEMU 7.2 finding: Bus 'pci-bridge-0' does not support hotplugging on arm64 virt "
                        "(shpc=off and no ACPI PCI hotplug there)")
        before = _block_disks(guest)
        for command, args in plug.commands:
            try:
                guest.vm.qmp.execute(command, args)
            except ExecuteError as err:
                refused = STRING_VALUE_REFUSED.search(str(err))
                if refused and not load_release(cell.release).qemu.qmp_typed_values:
                    pytest.skip(f"cannot hot-plug here [qemu-lacks]: Kata {cell.release} on QEMU {cell.qemu_build}: "
                                f"QEMU refuses Kata's string value for {refused.group(1)} in {command} ({err}); "
                                "QEMU 7.2 accepts it")
                raise
        if plug.scsi_address:
            scan = "0 {} {}".format(*plug.scsi_address)
            guest.host.run_test(f"for h in /sys/class/scsi_host/*; do echo '{scan}' > $h/scan; done")
        assert _wait(lambda: any(d.startswith(plug.guest_prefix) for d in _block_disks(guest) - before),
                     timeout=30.0), f"no new {plug.guest_prefix}* disk in the guest: {sorted(_block_disks(guest))}"
        (disk,) = sorted(d for d in _block_disks(guest) - before if d.startswith(plug.guest_prefix))
        sysfs = guest.host.check_output(f"readlink -f /sys/block/{disk}")
        driver = guest.host.check_output(f"basename $(readlink -f /sys/block/{disk}/device/driver)")
        mismatch = hotplugged_disk_mismatch(plug, disk, sysfs, driver)
        assert not mismatch, mismatch
        sectors = int(guest.host.check_output(f"cat /sys/block/{disk}/size"))
        assert sectors * 512 == HOTPLUG_DISK_BYTES
    finally:
        os.unlink(path)
