"""topology: vCPUs and memory as generated, and hotplug the way Kata does it over QMP.

This module runs last for a cell (hotplug changes the guest).
"""

from __future__ import annotations

import os
import tempfile
import time

import pytest

from katatest.checks import cmdline_params, cpu_list_count, machine_type, memory_mib, options, props, smp


def _read_int(guest, path: str) -> int:
    return cpu_list_count(guest.host.check_output(f"cat {path}"))


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


def test_hotplug_block_device(guest):
    """Kata's hotplugAddBlockDevice for virtio-blk: blockdev-add + device_add on the first PCI bridge."""
    bridges = [props(d) for d in options(guest.plan.argv, "-device") if d.startswith("pci-bridge")]
    if not bridges:
        pytest.skip("no PCI bridge to hotplug into (default_bridges = 0 or microvm)")
    if machine_type(guest.plan.argv) == "virt":
        pytest.skip("QEMU 7.2 finding: Bus 'pci-bridge-0' does not support hotplugging on arm64 virt "
                    "(shpc=off and no ACPI PCI hotplug there)")
    fd, path = tempfile.mkstemp(prefix="katatest-hotplug-", suffix=".img")
    try:
        os.ftruncate(fd, 16 * 1024 * 1024)
        os.close(fd)
        before = set(guest.host.check_output("ls /sys/block").split())
        guest.vm.qmp.execute("blockdev-add", {"driver": "raw", "node-name": "drive-hp0",
                                              "file": {"driver": "file", "filename": path}})
        guest.vm.qmp.execute("device_add", {"driver": "virtio-blk-pci", "id": "virtio-hp0", "drive": "drive-hp0",
                                            "bus": bridges[0]["id"], "addr": "01"})
        def new_disks(rescan: bool = False) -> set[str]:
            if rescan:  # what Kata's agent does when the ACPI hotplug event alone did not surface the disk
                guest.host.run("echo 1 > /sys/bus/pci/rescan")
            return set(guest.host.check_output("ls /sys/block").split()) - before
        appeared = _wait(lambda: any(d.startswith("vd") for d in new_disks()), timeout=10.0)
        assert appeared or _wait(lambda: any(d.startswith("vd") for d in new_disks(rescan=True))), \
            "no new /dev/vd* in the guest"
        disk = sorted(d for d in new_disks() if d.startswith("vd"))[0]
        sectors = int(guest.host.check_output(f"cat /sys/block/{disk}/size"))
        assert sectors * 512 == 16 * 1024 * 1024
    finally:
        os.unlink(path)
