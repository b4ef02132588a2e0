"""The ``fcConfig.json`` Kata 3.0.0 writes for ``--config-file`` (``fcInitConfiguration`` plus the
cold-plugged hybrid vsock), as a tree of sourced JSON leaves.

Field presence follows the go-swagger models (``pkg/firecracker/client/models``): ``omitempty`` drops empty
strings and nil pointers; ``boot-source`` and ``machine-config`` are always written.
"""

from __future__ import annotations

from typing import Any

from katatest.generate.fc.paths import HYBRID_VSOCK, FcLayout
from katatest.generate.kernel_params import VIRTIO_BLK_ROOT, serialize_params
from katatest.generate.provenance import FieldSources
from katatest.generate.vmjson import Leaf, leaf
from katatest.host.facts import HostFacts
from katatest.kata.goint import int64
from katatest.kata.hypervisor_config import KataConfig, Param

FC_KERNEL_PARAMS = VIRTIO_BLK_ROOT + (
    Param("pci", "off"), Param("reboot", "k"), Param("panic", "1"), Param("iommu", "off"),
    Param("net.ifnames", "0"), Param("random.trust_cpu", "on"), Param("acpi", "off"),
)
DEBUG_PARAMS = (Param("console", "ttyS0"),)
AGENT_LOG_VPORT = 1025  # vSockLogsPort
QUIET_PARAMS = (Param("8250.nr_uarts", "0"), Param("agent.log_vport", str(AGENT_LOG_VPORT)))
KERNEL, ROOTFS, LOG_FIFO, METRICS_FIFO = "vmlinux", "rootfs", "logs.fifo", "metrics.fifo"
DISK_POOL_SIZE = 8  # fcDiskPoolSize: placeholder drives for later block hotplug
GUEST_VSOCK_CID = 3
FIXED = ("kata.fixed",)


def _boot_args(cfg: KataConfig, facts: HostFacts, src: FieldSources) -> Leaf:
    """The config's kernel parameters (plus ``fips=1`` on a FIPS host) first, then Firecracker's own."""
    hv = cfg.hypervisor
    params = list(hv.kernel_params)
    if facts.fips:  # katautils.checkForFIPS appends to the config's parameters
        params.append(Param("fips", "1"))
    params += FC_KERNEL_PARAMS + (DEBUG_PARAMS if hv.debug else QUIET_PARAMS)
    return leaf(serialize_params(params), src("kernel_params", "debug"), "host.fips")


def _drive(drive_id: str, path: str, read_only: bool, path_sources: tuple[str, ...]) -> dict[str, Any]:
    return {"drive_id": leaf(drive_id, FIXED), "is_read_only": leaf(read_only, FIXED),
            "is_root_device": leaf(False, FIXED), "path_on_host": leaf(path, path_sources)}


def _drives(cfg: KataConfig, layout: FcLayout, src: FieldSources) -> list[dict[str, Any]]:
    """The image (or initrd, preferred) as read-only ``rootfs``, then the empty hotplug pool."""
    layout_src = ("host.sandbox_id",) + src("hypervisor_path", "jailer_path")
    rootfs_src = layout_src + src("initrd_path", "image_path")
    drives = [_drive(ROOTFS, layout.jailed_path(ROOTFS), True, rootfs_src)]
    for index in range(DISK_POOL_SIZE):
        name = f"drive_{index}"
        drives.append(_drive(name, layout.jailed_path(name), False, layout_src))
    return drives


def build_fcconfig(cfg: KataConfig, facts: HostFacts, layout: FcLayout, src: FieldSources) -> dict[str, Any]:
    """``fcConfig.json`` as a tree of :class:`Leaf` values (see ``katatest.generate.vmjson.flatten``)."""
    hv = cfg.hypervisor
    layout_src = ("host.sandbox_id",) + src("hypervisor_path", "jailer_path")
    config: dict[str, Any] = {
        "boot-source": {
            "kernel_image_path": leaf(layout.jailed_path(KERNEL), layout_src + src("kernel_path")),
            "boot_args": _boot_args(cfg, facts, src),
        },
        "machine-config": {
            "mem_size_mib": leaf(int64(hv.memory_size), src("memory_size")),
            "smt": leaf(False, FIXED),
            "vcpu_count": leaf(int64(hv.num_vcpus), src("num_vcpus")),
        },
    }
    if facts.vsock:
        uds = layout.jailed_path(HYBRID_VSOCK)  # fcAddVsock: the jail-relative name when jailed
        config["vsock"] = {"guest_cid": leaf(GUEST_VSOCK_CID, FIXED), "uds_path": leaf(uds, layout_src),
                           "vsock_id": leaf("root", FIXED)}
    config["logger"] = {"level": leaf("Debug" if hv.debug else "Error", src("debug")),
                        "log_path": leaf(layout.jailed_path(LOG_FIFO), layout_src)}
    config["metrics"] = {"metrics_path": leaf(layout.jailed_path(METRICS_FIFO), layout_src)}
    config["drives"] = _drives(cfg, layout, src)
    return config
