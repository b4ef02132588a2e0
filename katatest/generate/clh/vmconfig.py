"""The VM configuration Kata 3.0.0 sends to ``PUT /api/v1/vm.create`` (``CreateVM``, then the cold-plugged
hybrid vsock and ``kataShared`` volume), as a tree of sourced JSON leaves.

Optional fields follow the Go client models (``pkg/cloud-hypervisor/client/model_*.go``): a field is written
when its pointer is set, so the constructors' defaults (``false``, ``"Acpi"``, ``128``...) always appear.
"""

from __future__ import annotations

from typing import Any

from katatest.generate.clh.paths import PATH_SOURCES, VIRTIOFSD_SOCKET, VSOCK_SOCKET, clh_socket
from katatest.generate.kernel_params import NVDIMM_DAX_ROOT, VIRTIO_BLK_ROOT, clh_params_to_string
from katatest.generate.provenance import FieldSources, Sources
from katatest.generate.vmjson import Leaf, leaf
from katatest.host.facts import HostFacts
from katatest.kata.goint import bits_per_second_to_bytes, int32, int64, mib_to_bytes
from katatest.kata.hypervisor_config import KataConfig, Param

CLH_KERNEL_PARAMS = (Param("panic", "1"), Param("no_timer_check"), Param("noreplace-smp"))
DEBUG_SERIAL_PARAMS = (Param("console", "ttyS0,115200n8"),)
DEBUG_CONFIDENTIAL_PARAMS = (Param("console", "hvc0"),)
DEBUG_COMMON_PARAMS = (Param("systemd.log_target", "console"),)
SHARED_MOUNT_TAG = "kataShared"
GUEST_VSOCK_CID = 3  # defaultGuestVSockCID
FS_NUM_QUEUES, FS_QUEUE_SIZE = 1, 1024
RATE_LIMITER_REFILL_MS = 1000  # utils.DefaultRateLimiterRefillTimeMilliSecs
SGX_EPC_ID = "kata-epc"
FIXED = ("kata.fixed",)


def _cmdline(cfg: KataConfig, facts: HostFacts, src: FieldSources) -> Leaf:
    """clh's root and boot parameters, debug or quiet, then the config's (plus ``fips=1`` on a FIPS host)."""
    hv = cfg.hypervisor
    params = list(VIRTIO_BLK_ROOT if hv.confidential_guest else NVDIMM_DAX_ROOT) + list(CLH_KERNEL_PARAMS)
    if hv.debug:
        params += DEBUG_CONFIDENTIAL_PARAMS if hv.confidential_guest else DEBUG_SERIAL_PARAMS
        params += DEBUG_COMMON_PARAMS
    else:
        params.append(Param("quiet"))
    params += hv.kernel_params
    if facts.fips:  # katautils.checkForFIPS
        params.append(Param("fips", "1"))
    return leaf(clh_params_to_string(params), src("confidential_guest", "debug", "kernel_params"), "host.fips")


def _token_bucket(size: int, burst: int, sources: Sources) -> dict[str, Any]:
    bucket: dict[str, Any] = {"size": leaf(size, sources), "refill_time": leaf(RATE_LIMITER_REFILL_MS, FIXED)}
    if burst != 0:
        bucket["one_time_burst"] = leaf(burst, sources)
    return bucket


def rate_limiter(bw: int, bw_burst: int, ops: int, ops_burst: int,
                 bw_src: Sources, ops_src: Sources) -> dict[str, Any] | None:
    """``getRateLimiterConfig``: None when neither bandwidth nor ops is limited."""
    if bw == 0 and ops == 0:
        return None
    config: dict[str, Any] = {}
    if bw != 0:
        config["bandwidth"] = _token_bucket(bw, bw_burst, bw_src)
    if ops != 0:
        config["ops"] = _token_bucket(ops, ops_burst, ops_src)
    return config


def disk_rate_limiter(cfg: KataConfig, src: FieldSources) -> dict[str, Any] | None:
    """``getDiskRateLimiterConfig``: bandwidth in bits/s re-scaled to bytes, ops as configured."""
    hv = cfg.hypervisor
    return rate_limiter(
        bits_per_second_to_bytes(hv.disk_rate_limiter_bw_max_rate),
        bits_per_second_to_bytes(hv.disk_rate_limiter_bw_one_time_burst),
        hv.disk_rate_limiter_ops_max_rate,
        hv.disk_rate_limiter_ops_one_time_burst,
        src("disk_rate_limiter_bw_max_rate", "disk_rate_limiter_bw_one_time_burst"),
        src("disk_rate_limiter_ops_max_rate", "disk_rate_limiter_ops_one_time_burst"),
    )


def _memory(cfg: KataConfig, src: FieldSources) -> dict[str, Any]:
    hv = cfg.hypervisor
    memory: dict[str, Any] = {
        "size": leaf(mib_to_bytes(hv.memory_size), src("memory_size")),
        "mergeable": leaf(False, FIXED),
        "hotplug_method": leaf("Acpi", FIXED),
        "shared": leaf(True, FIXED),
        "hugepages": leaf(hv.huge_pages, src("huge_pages")),
        "prefault": leaf(False, FIXED),
    }
    if not hv.confidential_guest:
        memory["hotplug_size"] = leaf(mib_to_bytes(hv.default_max_memory_size),
                                      src("default_max_memory_size", "confidential_guest"))
    return memory


def _cpus(cfg: KataConfig, src: FieldSources) -> dict[str, Any]:
    hv = cfg.hypervisor
    max_src = src("default_max_vcpus")
    return {
        "boot_vcpus": leaf(int32(hv.num_vcpus), src("num_vcpus")),
        "max_vcpus": leaf(int32(hv.default_max_vcpus), max_src),
        "kvm_hyperv": leaf(False, FIXED),
        "topology": {
            "threads_per_core": leaf(1, FIXED),
            "cores_per_die": leaf(int32(hv.default_max_vcpus), max_src),
            "dies_per_package": leaf(1, FIXED),
            "packages": leaf(1, FIXED),
        },
    }


def _boot_disk(cfg: KataConfig, src: FieldSources) -> dict[str, Any]:
    """The image: a read-only virtio-blk disk for confidential guests, else a pmem device."""
    hv = cfg.hypervisor
    path_src = src("image_path")
    if not hv.confidential_guest:
        pmem = {"file": leaf(hv.image_path, path_src), "iommu": leaf(False, FIXED),
                "discard_writes": leaf(True, FIXED)}
        return {"pmem": [pmem]}
    disk: dict[str, Any] = {
        "path": leaf(hv.image_path, path_src),
        "readonly": leaf(True, src("confidential_guest")),
        "direct": leaf(False, FIXED),
        "iommu": leaf(False, FIXED),
        "num_queues": leaf(1, FIXED),
        "queue_size": leaf(128, FIXED),
        "vhost_user": leaf(False, FIXED),
    }
    limiter = disk_rate_limiter(cfg, src)
    if limiter is not None:
        disk["rate_limiter_config"] = limiter
    return {"disks": [disk]}


def _consoles(cfg: KataConfig, src: FieldSources) -> dict[str, Any]:
    """Only a debugging guest gets a Tty: the console (hvc0) when confidential, else the serial port."""
    hv = cfg.hypervisor
    tty_src = src("debug", "confidential_guest")
    console_tty = hv.debug and hv.confidential_guest
    serial_tty = hv.debug and not hv.confidential_guest
    return {
        "serial": {"mode": leaf("Tty" if serial_tty else "Off", tty_src), "iommu": leaf(False, FIXED)},
        "console": {"mode": leaf("Tty" if console_tty else "Off", tty_src), "iommu": leaf(False, FIXED)},
    }


def build_vmconfig(cfg: KataConfig, facts: HostFacts, src: FieldSources) -> dict[str, Any]:
    """The ``vm.create`` body as a tree of :class:`Leaf` values (see ``katatest.generate.vmjson.flatten``)."""
    hv = cfg.hypervisor
    payload: dict[str, Any] = {"kernel": leaf(hv.kernel_path, src("kernel_path")), "cmdline": _cmdline(cfg, facts, src)}
    vm: dict[str, Any] = {"payload": payload}
    if hv.confidential_guest:
        vm["tdx"] = {"firmware": leaf(hv.firmware_path, src("firmware_path", "confidential_guest"),
                                      "host.guest_protection")}
    vm["memory"] = _memory(cfg, src)
    vm["cpus"] = _cpus(cfg, src)
    vm["rng"] = {"src": leaf(hv.entropy_source, src("entropy_source")), "iommu": leaf(False, FIXED)}
    if hv.image_path:
        vm.update(_boot_disk(cfg, src))
    else:
        payload["initramfs"] = leaf(hv.initrd_path, src("initrd_path"))
    vm.update(_consoles(cfg, src))
    if hv.sgx_epc_size > 0:
        vm["sgx_epc"] = [{"id": leaf(SGX_EPC_ID, FIXED), "size": leaf(int64(hv.sgx_epc_size), FIXED),
                          "prefault": leaf(True, FIXED)}]
    vm["iommu"] = leaf(False, FIXED)
    vm["watchdog"] = leaf(False, FIXED)
    if facts.vsock:
        vm["vsock"] = {"cid": leaf(GUEST_VSOCK_CID, FIXED),
                       "socket": leaf(clh_socket(facts, VSOCK_SOCKET), PATH_SOURCES),
                       "iommu": leaf(False, FIXED)}
    if facts.sharedfs:
        vm["fs"] = [{"tag": leaf(SHARED_MOUNT_TAG, FIXED),
                     "socket": leaf(clh_socket(facts, VIRTIOFSD_SOCKET), PATH_SOURCES),
                     "num_queues": leaf(FS_NUM_QUEUES, FIXED),
                     "queue_size": leaf(FS_QUEUE_SIZE, FIXED)}]
    return vm
