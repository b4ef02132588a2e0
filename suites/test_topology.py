"""topology: vCPUs and memory as generated (hot-plug changes are the ``hotplug`` group's)."""

from __future__ import annotations

from katatest.fixtures.guests import group_reads

from katatest.expect.checks import (
    cmdline_params,
    cpu_list_count,
    machine_type,
    memory_mib,
    options,
    props,
    smp,
)

ONLINE, POSSIBLE = "cat /sys/devices/system/cpu/online", "cat /sys/devices/system/cpu/possible"
MEMTOTAL = "grep MemTotal /proc/meminfo"
reads = group_reads((ONLINE, POSSIBLE, MEMTOTAL))


def test_online_vcpus_equal_smp_cpus(guest, reads):
    assert cpu_list_count(reads.text(ONLINE)) == smp(guest.plan.argv)["cpus"]


def test_possible_cpus_follow_maxcpus_and_nr_cpus(guest, reads):
    topology = smp(guest.plan.argv)
    nr_cpus = int(cmdline_params(guest.generated_option("-append")[0]).get("nr_cpus", topology["maxcpus"]))
    expected = min(topology["maxcpus"], nr_cpus)
    possible = cpu_list_count(reads.text(POSSIBLE))
    if machine_type(guest.plan.argv) == "virt":
        # QEMU 7.2's arm64 virt has no vCPU hotplug: the firmware tables may describe only the present vCPUs.
        assert min(topology["cpus"], nr_cpus) <= possible <= expected
    else:
        assert possible == expected


def test_memtotal_matches_default_memory(guest, reads):
    size_mib = memory_mib(props(options(guest.plan.argv, "-m")[0])[""])
    meminfo = reads.text(MEMTOTAL)
    total_mib = int(meminfo.split()[1]) // 1024
    assert size_mib * 0.6 < total_mib <= size_mib, f"MemTotal {total_mib} MiB for -m {size_mib} MiB"
