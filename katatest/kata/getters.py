"""The getters of katautils' ``hypervisor`` struct: defaulting and clamping of sizes, pure maths."""

from __future__ import annotations

import math
import struct

from katatest.kata import defaults as d
from katatest.kata.hypervisor_config import Param


def max_vcpus_for_arch(arch: str) -> int:
    """govmm.MaxVCPUs() for ``arch``."""
    return d.MAX_VCPUS[arch]


def default_max_vcpus(requested: int, host_cpus: int, arch: str) -> int:
    """``hypervisor.defaultMaxVCPUs``: 0 or >= host CPUs means host CPUs; never above the hypervisor max."""
    if requested >= host_cpus or requested == 0:
        requested = host_cpus
    return min(requested, max_vcpus_for_arch(arch))


def default_vcpus(requested: int, host_cpus: int, arch: str) -> int:
    """``hypervisor.defaultVCPUs``: negative or above the usable CPUs means all usable CPUs; 0 means 1."""
    usable = default_max_vcpus(0, host_cpus, arch)  # getCurrentCpuNum
    if requested < 0 or requested > usable:
        return usable
    if requested == 0:
        return d.DEFAULT_VCPU_COUNT
    return requested


def default_vcpus_float(requested: float, host_cpus: int, arch: str) -> int:
    """``hypervisor.defaultVCPUs`` with a float32 ``default_vcpus`` (release.config.default_vcpus_float), rounded
    up as ``HypervisorConfig.NumVCPUs()`` does."""
    usable = default_max_vcpus(0, host_cpus, arch)
    value = struct.unpack("f", struct.pack("f", requested))[0] if math.isfinite(requested) else requested
    if value < 0 or value > usable:
        return usable
    if value == 0:
        return d.DEFAULT_VCPU_COUNT
    return math.ceil(value)


def default_mem_size(requested: int) -> int:
    """``hypervisor.defaultMemSz``: below vc.MinHypervisorMemory (256 MiB) means the 2048 MiB default."""
    return d.DEFAULT_MEM_SIZE_MIB if requested < d.MIN_HYPERVISOR_MEMORY_MIB else requested


def default_max_mem_size(requested: int, host_mem_mib: int) -> int:
    """``hypervisor.defaultMaxMemSz``: 0 or above host memory means host memory (MiB)."""
    if requested == 0 or requested > host_mem_mib:
        return host_mem_mib
    return requested


def default_bridges(requested: int) -> int:
    """``hypervisor.defaultBridges``: 0 means 1, at most 5."""
    if requested == 0:
        return d.DEFAULT_BRIDGES
    return min(requested, d.MAX_PCI_BRIDGES)


def comma_list(text: str) -> str:
    """``machineAccelerators``/``cpuFeatures``: drop empty items, trim each, trim commas at both ends."""
    joined = "".join(item.strip() + "," for item in text.split(",") if item != "")
    return joined.strip(",")


def deserialize_params(text: str) -> list[Param]:
    """``vc.DeserializeParams(strings.Fields(text))``."""
    params = []
    for word in text.split():
        key, sep, value = word.partition("=")
        params.append(Param(key, value if sep else ""))
    return params
