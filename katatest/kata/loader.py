"""Kata 3.0.0's configuration loading, reproduced: TOML dict + host facts -> KataConfig.

Three stages, in Kata's order:
1. ``LoadConfiguration`` (katautils/config.go): typed decoding, the per-hypervisor ``new*HypervisorConfig``
   getters (defaults, clamping), agent/factory/runtime settings, ``SetKernelParams`` and ``checkConfig``;
2. the sandbox stage: ``oci.SandboxConfig`` static sizing and ``validateHypervisorConfig``;
3. the checks of the hypervisor's ``CreateVM`` that reject a config before launch (``validate.py``).

Every rejection is a ConfigError naming the TOML key. Paths are never resolved, opened or stat()ed: the sizes of
the image and initrd are host facts (``katatest.host.facts.with_file_sizes`` measures real files for the CLI).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

from katatest.errors import ConfigError, kata_stage
from katatest.host.facts import HostFacts
from katatest.kata import defaults as d
from katatest.kata.getters import (
    comma_list,
    default_bridges,
    default_max_mem_size,
    default_max_vcpus,
    default_mem_size,
    default_vcpus,
    default_vcpus_float,
    deserialize_params,
)
from katatest.kata.hypervisor_config import (
    FactoryConfig,
    HypervisorConfig,
    KataAgentConfig,
    KataConfig,
    Param,
    RuntimeConfig,
)
from katatest.kata.hypervisors import UNDRIVEN_SECTIONS, by_section
from katatest.kata.key_coverage import refuse_unmodelled
from katatest.kata.releases import Release, load_release
from katatest.kata.sandbox import prepare_sandbox
from katatest.kata.toml_schema import (
    AGENT_KEYS,
    FACTORY_KEYS,
    HYPERVISOR_KEYS,
    IMAGE_KEYS,
    RUNTIME_KEYS,
    read_table,
)
from katatest.kata.tomlconf import Section
from katatest.kata.validate import check_create_vm

MIB = 1024 * 1024


@dataclass
class _Table:
    """One decoded TOML table plus where its keys live."""

    name: str  # e.g. "hypervisor.qemu"
    values: dict[str, Any]

    def key(self, toml_key: str) -> str:
        return f"{self.name}.{toml_key}"

    def __getitem__(self, toml_key: str) -> Any:
        READ_KEYS.add(self.key(toml_key))
        return self.values[toml_key]


# Every table.key the loader has read (what tests/test_shipped_keys.py compares with the keys a config sets).
READ_KEYS: set[str] = set()


@dataclass
class _Loading:
    """State shared by the loading stages: host facts, the file name and the provenance being collected."""

    facts: HostFacts
    source: str
    release: Release
    sources: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def fail(self, key: str, problem: str, kata: str = "") -> ConfigError:
        """Kata rejects the config for ``key``; ``kata``: the part of Kata's own message that says why."""
        return ConfigError(key, problem, self.source, kata=kata)

    def note(self, name: str, *origins: str) -> None:
        """Record that field ``name`` (e.g. "hypervisor.num_vcpus") came from ``origins``."""
        self.sources[name] = tuple(dict.fromkeys(self.sources.get(name, ()) + origins))


# ---------------------------------------------------------------------------------------------------------
# Stage 0: typed decoding of every table Go decodes


def _table(doc: dict[str, Any], name: str, source: str) -> Section:
    return Section(doc.get(name), name, source)


def _named_tables(doc: dict[str, Any], name: str, keys: dict[str, str], source: str) -> list[_Table]:
    outer = _table(doc, name, source)
    tables = []
    for sub_name in outer.table:
        section = outer.sub(sub_name)
        tables.append(_Table(section.prefix, read_table(section, keys)))
    return tables


# ---------------------------------------------------------------------------------------------------------
# Stage 1: LoadConfiguration


def _one_of(h: _Table, ld: _Loading, key: str, default: str, allowed: tuple[str, ...] | list[str],
            what: str, kata_what: str = "") -> str:
    """A string key whose empty value means ``default`` and whose other values must be ``allowed``."""
    value = h[key]
    if value == "":
        return default
    if value not in allowed:
        raise ld.fail(h.key(key), f"invalid {what} {value!r} (supported: {', '.join(allowed)})",
                      rf"Invalid hypervisor {kata_what or what} +{re.escape(value)} specified")
    return value


def _block_device_driver(h: _Table, ld: _Loading) -> str:
    return _one_of(h, ld, "block_device_driver", d.DEFAULT_BLOCK_DEVICE_DRIVER, d.BLOCK_DEVICE_DRIVERS,
                   "block storage driver")


def _block_device_aio(h: _Table, ld: _Loading) -> str:
    return _one_of(h, ld, "block_device_aio", d.DEFAULT_BLOCK_DEVICE_AIO, d.BLOCK_DEVICE_AIOS,
                   "block storage I/O mechanism")


def _shared_fs(h: _Table, ld: _Loading) -> str:
    """``sharedFS()``; release.config.shared_fs_none adds "none" (no shared filesystem at all)."""
    allowed = d.SHARED_FS_TYPES + (("none",) if ld.release.config.shared_fs_none else ())
    return _one_of(h, ld, "shared_fs", "virtio-fs", allowed, "shared file system")


def _require_daemon(h: _Table, ld: _Loading, shared_fs: str) -> None:
    if h["virtio_fs_daemon"] == "":
        raise ld.fail(h.key("virtio_fs_daemon"), f"cannot enable {shared_fs} without daemon path",
                      f"cannot enable {shared_fs} without daemon path")


def _burst(h: _Table, burst_key: str, rate_key: str) -> int:
    """A one-time burst is ignored (0) when its max rate is not set."""
    return 0 if h[rate_key] == 0 else h[burst_key]


def _common(h: _Table, ld: _Loading) -> HypervisorConfig:
    """The fields every ``new*HypervisorConfig`` fills the same way (paths, sizing, entropy, bridges...)."""
    facts = ld.facts
    hv = HypervisorConfig(
        hypervisor_path=h["path"] or d.DEFAULT_HYPERVISOR_PATH,
        hypervisor_path_list=list(h["valid_hypervisor_paths"]),
        kernel_path=h["kernel"] or d.DEFAULT_KERNEL_PATH,
        firmware_path=h["firmware"] or d.DEFAULT_FIRMWARE_PATH,
        kernel_params=deserialize_params(h["kernel_params"] or d.DEFAULT_KERNEL_PARAMS),
        num_vcpus=(default_vcpus_float(h["default_vcpus"], facts.host_cpus, facts.arch)
                   if ld.release.config.default_vcpus_float
                   else default_vcpus(h["default_vcpus"], facts.host_cpus, facts.arch)),
        default_max_vcpus=default_max_vcpus(h["default_maxvcpus"], facts.host_cpus, facts.arch),
        memory_size=default_mem_size(h["default_memory"]),
        mem_slots=h["memory_slots"] or d.DEFAULT_MEM_SLOTS,
        default_max_memory_size=default_max_mem_size(h["default_maxmemory"], facts.host_mem_mib),
        entropy_source=h["entropy_source"] or d.DEFAULT_ENTROPY_SOURCE,
        entropy_source_list=list(h["valid_entropy_sources"]),
        default_bridges=default_bridges(h["default_bridges"]),
        huge_pages=h["enable_hugepages"],
        debug=h["enable_debug"],
        disable_nesting_checks=h["disable_nesting_checks"],
        block_device_driver=_block_device_driver(h, ld),
        guest_hook_path=h["guest_hook_path"] or d.DEFAULT_GUEST_HOOK_PATH,
        enable_annotations=list(h["enable_annotations"]),
        disable_selinux=h["disable_selinux"],
        disable_guest_selinux=h["disable_guest_selinux"],
    )
    for name, key in (
        ("hypervisor_path", "path"),
        ("hypervisor_path_list", "valid_hypervisor_paths"),
        ("kernel_path", "kernel"),
        ("firmware_path", "firmware"),
        ("kernel_params", "kernel_params"),
        ("mem_slots", "memory_slots"),
        ("entropy_source", "entropy_source"),
        ("entropy_source_list", "valid_entropy_sources"),
        ("default_bridges", "default_bridges"),
        ("huge_pages", "enable_hugepages"),
        ("debug", "enable_debug"),
        ("disable_nesting_checks", "disable_nesting_checks"),
        ("block_device_driver", "block_device_driver"),
        ("guest_hook_path", "guest_hook_path"),
        ("enable_annotations", "enable_annotations"),
        ("disable_selinux", "disable_selinux"),
        ("disable_guest_selinux", "disable_guest_selinux"),
        ("memory_size", "default_memory"),
    ):
        ld.note(f"hypervisor.{name}", h.key(key))
    ld.note("hypervisor.num_vcpus", h.key("default_vcpus"), "host.host_cpus", "host.arch")
    ld.note("hypervisor.default_max_vcpus", h.key("default_maxvcpus"), "host.host_cpus", "host.arch")
    ld.note("hypervisor.default_max_memory_size", h.key("default_maxmemory"), "host.host_mem_mib")
    return hv


def _set(hv: HypervisorConfig, h: _Table, ld: _Loading, **fields: tuple[Any, str]) -> None:
    """Assign ``field=(value, toml_key)`` pairs and record their provenance."""
    for name, (value, key) in fields.items():
        setattr(hv, name, value)
        ld.note(f"hypervisor.{name}", h.key(key))


def _rate_limiters(hv: HypervisorConfig, h: _Table, ld: _Loading, disk_and_net: bool) -> None:
    _set(
        hv,
        h,
        ld,
        rx_rate_limiter_max_rate=(h["rx_rate_limiter_max_rate"], "rx_rate_limiter_max_rate"),
        tx_rate_limiter_max_rate=(h["tx_rate_limiter_max_rate"], "tx_rate_limiter_max_rate"),
    )
    if not disk_and_net:
        return
    for kind in ("disk", "net"):
        for unit in ("bw", "ops"):
            rate, burst = f"{kind}_rate_limiter_{unit}_max_rate", f"{kind}_rate_limiter_{unit}_one_time_burst"
            setattr(hv, rate, h[rate])
            setattr(hv, burst, _burst(h, burst, rate))
            ld.note(f"hypervisor.{rate}", h.key(rate))
            ld.note(f"hypervisor.{burst}", h.key(burst), h.key(rate))


def _qemu(h: _Table, ld: _Loading) -> HypervisorConfig:
    hv = _common(h, ld)
    machine_type = h["machine_type"] or d.DEFAULT_MACHINE_TYPE
    disable_image_nvdimm = h["disable_image_nvdimm"] or machine_type == "microvm"
    ld.note("hypervisor.disable_image_nvdimm", h.key("disable_image_nvdimm"), h.key("machine_type"))
    if (ld.release.config.arm64_nvdimm_needs_firmware and ld.facts.arch == "arm64" and not hv.firmware_path
            and not h["pflashes"]):
        disable_image_nvdimm = True  # no UEFI/ACPI: no nvdimm on arm64
        ld.note("hypervisor.disable_image_nvdimm", h.key("firmware"), h.key("pflashes"), "host.arch",
                "release.config.arm64_nvdimm_needs_firmware")
    if ld.release.config.rootfs_type:
        rootfs = h["rootfs_type"] or "ext4"
        if rootfs not in ROOTFS_TYPES:
            raise ld.fail(h.key("rootfs_type"), f"unsupported rootfs type {rootfs!r} (supported: "
                          f"{', '.join(ROOTFS_TYPES)})")
        _set(hv, h, ld, rootfs_type=(rootfs, "rootfs_type"))
    if ld.release.config.block_sector_sizes:
        _check_sector_sizes(h, ld)
        _set(hv, h, ld, block_device_logical_sector_size=(h["block_device_logical_sector_size"],
                                                          "block_device_logical_sector_size"),
             block_device_physical_sector_size=(h["block_device_physical_sector_size"],
                                                "block_device_physical_sector_size"))
    if ld.release.config.sev_snp_guest:
        _set(hv, h, ld, sev_snp_guest=(h["sev_snp_guest"], "sev_snp_guest"),
             snp_id_block=(h["snp_id_block"], "snp_id_block"), snp_id_auth=(h["snp_id_auth"], "snp_id_auth"),
             snp_guest_policy=(h["snp_guest_policy"], "snp_guest_policy"))
    if ld.release.config.confidential_keys:
        _set(hv, h, ld, qgs_port=(h["tdx_quote_generation_service_socket_port"],
                                  "tdx_quote_generation_service_socket_port"),
             measurement_algo=(h["measurement_algo"] or "sha512", "measurement_algo"))
    aio = _block_device_aio(h, ld)
    shared_fs = _shared_fs(h, ld)
    if shared_fs in ("virtio-fs", "virtio-fs-nydus"):
        _require_daemon(h, ld, shared_fs)
    _set(
        hv,
        h,
        ld,
        initrd_path=(h["initrd"], "initrd"),
        image_path=(h["image"], "image"),
        firmware_volume_path=(h["firmware_volume"] or d.DEFAULT_FIRMWARE_VOLUME_PATH, "firmware_volume"),
        pflash=(list(h["pflashes"]), "pflashes"),
        machine_accelerators=(comma_list(h["machine_accelerators"]), "machine_accelerators"),
        cpu_features=(comma_list(h["cpu_features"]), "cpu_features"),
        hypervisor_machine_type=(machine_type, "machine_type"),
        mem_offset=(h["memory_offset"] or d.DEFAULT_MEM_OFFSET, "memory_offset"),
        virtio_mem=(h["enable_virtio_mem"], "enable_virtio_mem"),
        disable_block_device_use=(h["disable_block_device_use"], "disable_block_device_use"),
        shared_fs=(shared_fs, "shared_fs"),
        virtio_fs_daemon=(h["virtio_fs_daemon"], "virtio_fs_daemon"),
        virtio_fs_daemon_list=(list(h["valid_virtio_fs_daemon_paths"]), "valid_virtio_fs_daemon_paths"),
        virtio_fs_cache_size=(h["virtio_fs_cache_size"], "virtio_fs_cache_size"),
        virtio_fs_cache=(h["virtio_fs_cache"] or ld.release.config.virtio_fs_cache_default, "virtio_fs_cache"),
        virtio_fs_extra_args=(list(h["virtio_fs_extra_args"]), "virtio_fs_extra_args"),
        mem_prealloc=(h["enable_mem_prealloc"], "enable_mem_prealloc"),
        iommu=(h["enable_iommu"], "enable_iommu"),
        iommu_platform=(h["enable_iommu_platform"], "enable_iommu_platform"),
        file_backed_mem_root_dir=(h["file_mem_backend"], "file_mem_backend"),
        file_backed_mem_root_list=(list(h["valid_file_mem_backends"]), "valid_file_mem_backends"),
        block_device_aio=(aio, "block_device_aio"),
        block_device_cache_set=(h["block_device_cache_set"], "block_device_cache_set"),
        block_device_cache_direct=(h["block_device_cache_direct"], "block_device_cache_direct"),
        block_device_cache_noflush=(h["block_device_cache_noflush"], "block_device_cache_noflush"),
        enable_io_threads=(h["enable_iothreads"], "enable_iothreads"),
        msize9p=(h["msize_9p"] or d.DEFAULT_MSIZE_9P, "msize_9p"),
        disable_image_nvdimm=(disable_image_nvdimm, "disable_image_nvdimm"),
        hotplug_vfio_on_root_bus=(h["hotplug_vfio_on_root_bus"], "hotplug_vfio_on_root_bus"),
        pcie_root_port=(h["pcie_root_port"], "pcie_root_port"),
        disable_vhost_net=(h["disable_vhost_net"], "disable_vhost_net"),
        reclaim_guest_freed_memory=(h["reclaim_guest_freed_memory"], "reclaim_guest_freed_memory"),
        indep_iothreads=(h["indep_iothreads"], "indep_iothreads"),
        virtio_fs_queue_size=(h["virtio_fs_queue_size"], "virtio_fs_queue_size"),
        enable_vhost_user_store=(h["enable_vhost_user_store"], "enable_vhost_user_store"),
        vhost_user_store_path=(
            h["vhost_user_store_path"] or d.DEFAULT_VHOST_USER_STORE_PATH,
            "vhost_user_store_path",
        ),
        vhost_user_store_path_list=(list(h["valid_vhost_user_store_paths"]), "valid_vhost_user_store_paths"),
        seccomp_sandbox=(h["seccompsandbox"], "seccompsandbox"),
        guest_memory_dump_path=(h["guest_memory_dump_path"], "guest_memory_dump_path"),
        guest_memory_dump_paging=(h["guest_memory_dump_paging"], "guest_memory_dump_paging"),
        confidential_guest=(h["confidential_guest"], "confidential_guest"),
        guest_swap=(h["enable_guest_swap"], "enable_guest_swap"),
        rootless=(h["rootless"], "rootless"),
        legacy_serial=(h["use_legacy_serial"], "use_legacy_serial"),
    )
    ld.note("hypervisor.disable_image_nvdimm", h.key("machine_type"))
    _rate_limiters(hv, h, ld, disk_and_net=False)
    return hv


def _clh(h: _Table, ld: _Loading) -> HypervisorConfig:
    hv = _common(h, ld)
    if h["image"] == "" and h["initrd"] == "":
        raise ld.fail(h.key("image"), "image or initrd must be defined", "image or initrd must be defined")
    shared_fs = _shared_fs(h, ld)
    if shared_fs not in ("virtio-fs", "virtio-fs-nydus"):
        raise ld.fail(h.key("shared_fs"), "clh only supports virtio-fs or virtio-fs-nydus",
                      "clh only support virtio-fs or virtio-fs-nydus|Cloud Hypervisor does not support")
    _require_daemon(h, ld, shared_fs)
    _set(
        hv,
        h,
        ld,
        initrd_path=(h["initrd"], "initrd"),
        image_path=(h["image"], "image"),
        machine_accelerators=(comma_list(h["machine_accelerators"]), "machine_accelerators"),
        hypervisor_machine_type=(h["machine_type"] or d.DEFAULT_MACHINE_TYPE, "machine_type"),
        mem_offset=(h["memory_offset"] or d.DEFAULT_MEM_OFFSET, "memory_offset"),
        virtio_mem=(h["enable_virtio_mem"], "enable_virtio_mem"),
        disable_block_device_use=(h["disable_block_device_use"], "disable_block_device_use"),
        shared_fs=(shared_fs, "shared_fs"),
        virtio_fs_daemon=(h["virtio_fs_daemon"], "virtio_fs_daemon"),
        virtio_fs_daemon_list=(list(h["valid_virtio_fs_daemon_paths"]), "valid_virtio_fs_daemon_paths"),
        virtio_fs_cache_size=(h["virtio_fs_cache_size"], "virtio_fs_cache_size"),
        virtio_fs_cache=(h["virtio_fs_cache"], "virtio_fs_cache"),  # no default on the clh path
        mem_prealloc=(h["enable_mem_prealloc"], "enable_mem_prealloc"),
        file_backed_mem_root_dir=(h["file_mem_backend"], "file_mem_backend"),
        file_backed_mem_root_list=(list(h["valid_file_mem_backends"]), "valid_file_mem_backends"),
        block_device_cache_set=(h["block_device_cache_set"], "block_device_cache_set"),
        block_device_cache_direct=(h["block_device_cache_direct"], "block_device_cache_direct"),
        block_device_cache_noflush=(h["block_device_cache_noflush"], "block_device_cache_noflush"),
        enable_io_threads=(h["enable_iothreads"], "enable_iothreads"),
        msize9p=(h["msize_9p"] or d.DEFAULT_MSIZE_9P, "msize_9p"),
        hotplug_vfio_on_root_bus=(h["hotplug_vfio_on_root_bus"], "hotplug_vfio_on_root_bus"),
        pcie_root_port=(h["pcie_root_port"], "pcie_root_port"),
        virtio_fs_extra_args=(list(h["virtio_fs_extra_args"]), "virtio_fs_extra_args"),
        disable_seccomp=(h["disable_seccomp"], "disable_seccomp"),
        confidential_guest=(h["confidential_guest"], "confidential_guest"),
    )
    hv.disable_vhost_net = True
    hv.sgx_epc_size = d.DEFAULT_SGX_EPC_SIZE
    _rate_limiters(hv, h, ld, disk_and_net=True)
    return hv


def _firecracker(h: _Table, ld: _Loading) -> HypervisorConfig:
    hv = _common(h, ld)
    _set(
        hv,
        h,
        ld,
        jailer_path=(h["jailer_path"], "jailer_path"),
        jailer_path_list=(list(h["valid_jailer_paths"]), "valid_jailer_paths"),
        initrd_path=(h["initrd"], "initrd"),
        image_path=(h["image"], "image"),
        enable_io_threads=(h["enable_iothreads"], "enable_iothreads"),
    )
    hv.disable_block_device_use = False
    hv.disable_vhost_net = True
    _rate_limiters(hv, h, ld, disk_and_net=False)
    return hv


def _acrn(h: _Table, ld: _Loading) -> HypervisorConfig:
    hv = _common(h, ld)
    if h["image"] == "":
        raise ld.fail(h.key("image"), "image must be defined")
    _set(
        hv,
        h,
        ld,
        image_path=(h["image"], "image"),
        hypervisor_ctl_path=(h["ctlpath"] or d.DEFAULT_HYPERVISOR_CTL_PATH, "ctlpath"),
        hypervisor_ctl_path_list=(list(h["valid_ctlpaths"]), "valid_ctlpaths"),
        disable_vhost_net=(h["disable_vhost_net"], "disable_vhost_net"),
    )
    return hv


_BUILDERS = {"qemu": _qemu, "clh": _clh, "fc": _firecracker, "acrn": _acrn}


def default_hypervisor_config() -> HypervisorConfig:
    """``GetDefaultHypervisorConfig``: what Kata uses when the file has no hypervisor table."""
    return HypervisorConfig(
        hypervisor_path=d.DEFAULT_HYPERVISOR_PATH,
        jailer_path=d.DEFAULT_JAILER_PATH,
        kernel_path=d.DEFAULT_KERNEL_PATH,
        image_path=d.DEFAULT_IMAGE_PATH,
        initrd_path=d.DEFAULT_INITRD_PATH,
        firmware_path=d.DEFAULT_FIRMWARE_PATH,
        firmware_volume_path=d.DEFAULT_FIRMWARE_VOLUME_PATH,
        hypervisor_machine_type=d.DEFAULT_MACHINE_TYPE,
        num_vcpus=d.DEFAULT_VCPU_COUNT,
        memory_size=d.DEFAULT_MEM_SIZE_MIB,
        mem_offset=d.DEFAULT_MEM_OFFSET,
        default_bridges=d.DEFAULT_BRIDGES,
        block_device_driver=d.DEFAULT_BLOCK_DEVICE_DRIVER,
        block_device_aio=d.DEFAULT_BLOCK_DEVICE_AIO,
        msize9p=d.DEFAULT_MSIZE_9P,
        guest_hook_path=d.DEFAULT_GUEST_HOOK_PATH,
        vhost_user_store_path=d.DEFAULT_VHOST_USER_STORE_PATH,
        virtio_fs_cache=d.DEFAULT_VIRTIO_FS_CACHE,
        sgx_epc_size=d.DEFAULT_SGX_EPC_SIZE,
    )


def _section_type(section: str) -> str:
    """Kata's hypervisor type of a ``[hypervisor.<section>]`` table ('' for a section Kata does not know)."""
    known = by_section(section)
    return known.name if known else section if section in UNDRIVEN_SECTIONS else ""


def _hypervisor(tables: list[_Table], ld: _Loading) -> tuple[str, HypervisorConfig, _Table | None]:
    """``updateRuntimeConfigHypervisor``: the one hypervisor table -> (type, config, table)."""
    known = [t for t in tables if _section_type(t.name.split(".", 1)[1])]
    if not known:
        return "qemu", default_hypervisor_config(), None
    if len(known) > 1:
        names = ", ".join(f"[{t.name}]" for t in known)
        raise ld.fail(
            "hypervisor", f"several hypervisor tables ({names}): Kata 3.0.0 would pick one at random"
        )
    table = known[0]
    hv_type = _section_type(table.name.split(".", 1)[1])
    if hv_type not in _BUILDERS:
        raise ld.fail(table.name, f"hypervisor {hv_type!r} is not handled by Kata 3.0.0's Go runtime")
    return hv_type, _BUILDERS[hv_type](table, ld), table


def _agent(tables: list[_Table], ld: _Loading) -> KataAgentConfig:
    """``updateRuntimeConfigAgent``: the last agent table wins (there is normally only [agent.kata])."""
    agent = KataAgentConfig()
    for a in tables:
        agent = KataAgentConfig(
            kernel_modules=list(a["kernel_modules"]),
            dial_timeout=a["dial_timeout"],
            long_live_conn=True,
            debug=a["enable_debug"],
            trace=a["enable_tracing"],
            enable_debug_console=a["debug_console_enabled"],
            cdh_api_timeout=a["cdh_api_timeout"] if ld.release.config.agent_timeout_params else 0,
            launch_process_timeout=(a["launch_process_timeout"] if ld.release.config.agent_timeout_params
                                    else 0),
        )
        for name, key in (
            ("kernel_modules", "kernel_modules"),
            ("dial_timeout", "dial_timeout"),
            ("debug", "enable_debug"),
            ("trace", "enable_tracing"),
            ("enable_debug_console", "debug_console_enabled"),
            ("cdh_api_timeout", "cdh_api_timeout"),
            ("launch_process_timeout", "launch_process_timeout"),
        ):
            ld.sources[f"agent.{name}"] = (a.key(key),)
    return agent


def agent_kernel_params(agent: KataAgentConfig) -> list[Param]:
    """``vc.KataAgentKernelParams``."""
    params = []
    if agent.debug:
        params.append(Param("agent.log", "debug"))
    if agent.trace:
        params.append(Param("agent.trace", "true"))
    if agent.container_pipe_size > 0:
        params.append(Param(d.AGENT_CONTAINER_PIPE_SIZE, str(agent.container_pipe_size)))
    if agent.enable_debug_console:
        params.append(Param(d.AGENT_DEBUG_CONSOLE, ""))
        params.append(Param(d.AGENT_DEBUG_CONSOLE_VPORT, d.AGENT_DEBUG_CONSOLE_VPORT_VALUE))
    if agent.cdh_api_timeout > 0:  # 0 unless release.config.agent_timeout_params
        params.append(Param("agent.cdh_api_timeout", str(agent.cdh_api_timeout)))
    if agent.launch_process_timeout > 0:
        params.append(Param("agent.launch_process_timeout", str(agent.launch_process_timeout)))
    return params


def _set_kernel_params(
    hv: HypervisorConfig, agent: KataAgentConfig, table: _Table | None, ld: _Loading
) -> None:
    """``SetKernelParams``: systemd params (image boot), scsi scan, agent params, then the user's."""
    user = hv.kernel_params
    params: list[Param] = []
    if hv.image_path != "":
        params += [
            Param("systemd.unit", d.SYSTEMD_UNIT_NAME),
            Param("systemd.mask", "systemd-networkd.service"),
            Param("systemd.mask", "systemd-networkd.socket"),
        ]
    if hv.block_device_driver == "virtio-scsi":
        params.append(Param("scsi_mod.scan", "none"))
    params += agent_kernel_params(agent)
    for p in user:
        if p.key == "":
            raise ld.fail(
                table.key("kernel_params") if table else "kernel_params",
                f"empty kernel parameter name in {'=' + p.value!r}",
            )
    hv.kernel_params = params + user
    ld.note(
        "hypervisor.kernel_params",
        *(table.key(k) for k in ("image", "block_device_driver")) if table else (),
        "agent.enable_debug",
        "agent.enable_tracing",
        "agent.debug_console_enabled",
        *(("agent.cdh_api_timeout", "agent.launch_process_timeout", "release.config.agent_timeout_params")
          if agent.cdh_api_timeout or agent.launch_process_timeout else ()),
    )


def _runtime(r: _Table, ld: _Loading) -> RuntimeConfig:
    allowed = ld.release.config.emptydir_modes.split()
    if allowed and r["emptydir_mode"] not in ["", *allowed]:  # '' is shared-fs
        raise ld.fail(r.key("emptydir_mode"), f"invalid emptydir_mode {r['emptydir_mode']!r} (allowed: "
                      f"{', '.join(allowed)}; release.config.emptydir_modes)", "invalid emptydir_mode=")
    model = r["internetworking_model"]
    if model and model not in d.INTERNETWORKING_MODELS:
        raise ld.fail(r.key("internetworking_model"), f"unknown type {model!r}", "internetworking")
    vfio_mode = r["vfio_mode"]
    if vfio_mode and vfio_mode not in d.VFIO_MODES:
        raise ld.fail(r.key("vfio_mode"), f"unknown VFIO mode {vfio_mode!r}")
    if model in ("", "default"):
        model = d.DEFAULT_INTERNETWORKING_MODEL
    return RuntimeConfig(
        debug=r["enable_debug"],
        trace=r["enable_tracing"],
        internetworking_model=model,
        vfio_mode=vfio_mode or d.DEFAULT_VFIO_MODE,
        experimental=list(r["experimental"]),
        sandbox_bind_mounts=list(r["sandbox_bind_mounts"]),
        jaeger_endpoint=r["jaeger_endpoint"],
        jaeger_user=r["jaeger_user"],
        jaeger_password=r["jaeger_password"],
        disable_guest_seccomp=r["disable_guest_seccomp"],
        disable_new_netns=r["disable_new_netns"],
        sandbox_cgroup_only=r["sandbox_cgroup_only"],
        static_sandbox_resource_mgmt=r["static_sandbox_resource_mgmt"],
        enable_pprof=r["enable_pprof"],
        disable_guest_empty_dir=r["disable_guest_empty_dir"],
    )


def _check_runtime_lists(rt: RuntimeConfig, ld: _Loading) -> None:
    """Experimental features (3.0.0 registers none) and ``validateBindMounts`` (unique base names)."""
    for feature in rt.experimental:
        raise ld.fail("runtime.experimental", f"unsupported experimental feature {feature!r}",
                      "Unsupported experimental feature")
    seen: set[str] = set()
    for mount in rt.sandbox_bind_mounts:
        base = os.path.basename(os.path.normpath(mount))
        if base in seen:
            raise ld.fail(
                "runtime.sandbox_bind_mounts", f"{mount!r} has a base name already used by another bind mount",
                "has base that matches already specified bindmount"
            )
        seen.add(base)


def _check_hypervisor_config(hv: HypervisorConfig, table: _Table | None, ld: _Loading) -> None:
    """``checkHypervisorConfig``: non-zero memory; non-empty image/initrd; an initrd must fit in memory."""
    where = table.name if table else "hypervisor"
    if hv.memory_size == 0:
        raise ld.fail(f"{where}.default_memory", "VM memory cannot be zero", "VM memory cannot be zero")
    for path, is_initrd, size in (
        (hv.image_path, False, ld.facts.image_size),
        (hv.initrd_path, True, ld.facts.initrd_size),
    ):
        if path == "":
            continue
        key = f"{where}.{'initrd' if is_initrd else 'image'}"
        if "\0" in path:  # Go's os.Stat fails with EINVAL
            raise ld.fail(key, f"stat {path!r}: invalid argument")
        if size == 0:
            raise ld.fail(key, f"image {path!r} is empty", "is empty")
        if size > MIB and is_initrd and size // MIB >= hv.memory_size:
            raise ld.fail(
                key, f"VM memory ({hv.memory_size}MB) smaller than image {path!r} size ({size // MIB}MB)",
                "smaller than image")


def _check_sector_sizes(h: _Table, ld: _Loading) -> None:
    """``validateBlockDeviceSectorSize(s)`` (release.config.block_sector_sizes)."""
    sizes = {}
    for kind in ("logical", "physical"):
        key = f"block_device_{kind}_sector_size"
        size = sizes[kind] = h[key]
        if size and (size < 512 or size > 65536 or size & (size - 1)):
            raise ld.fail(h.key(key), f"invalid {key} {size}: must be 0 or a power of 2 between 512 and 65536",
                          f"invalid {key} {size}: must be 0 or a power of 2")
    if sizes["logical"] and sizes["physical"] and sizes["logical"] > sizes["physical"]:
        raise ld.fail(h.key("block_device_logical_sector_size"), f"invalid sector sizes: logical ({sizes['logical']}) "
                      f"must not be larger than physical ({sizes['physical']})",
                      f"invalid sector sizes: logical \\({sizes['logical']}\\) must not be larger than physical "
                      f"\\({sizes['physical']}\\)")


ROOTFS_TYPES = ("ext4", "xfs", "erofs")
EXTRA_MONITORS = ("hmp", "qmp", "qmp-pretty")


def _extra_monitor_socket(hv: HypervisorConfig, h: _Table, ld: _Loading) -> None:
    """``extraMonitorSocket()`` of the qemu getters (release.config.extra_monitor_socket)."""
    value = h["extra_monitor_socket"]
    if value and value not in EXTRA_MONITORS:
        raise ld.fail(h.key("extra_monitor_socket"), f"invalid hypervisor extra monitor socket {value!r} "
                      f"(supported values: {', '.join(EXTRA_MONITORS)})",
                      "Invalid hypervisor extra monitor socket")
    _set(hv, h, ld, extra_monitor_socket=(value, "extra_monitor_socket"))


PCIE_PORTS = ("no-port", "bridge-port", "root-port", "switch-port")
MAX_PCIE_PORTS = 16  # maxPCIeRootPorts / maxPCIeSwitchPorts


def _pcie_vfio_ports(hv: HypervisorConfig, hv_type: str, h: _Table, ld: _Loading) -> None:
    """The getters of hot_plug_vfio / cold_plug_vfio / pcie_*_port and ``checkPCIeConfig``
    (release.config.pcie_vfio_ports)."""
    _set(hv, h, ld, hot_plug_vfio=(h["hot_plug_vfio"] or "no-port", "hot_plug_vfio"),
         cold_plug_vfio=(h["cold_plug_vfio"] or "no-port", "cold_plug_vfio"),
         pcie_root_port=(min(h["pcie_root_port"], MAX_PCIE_PORTS), "pcie_root_port"),
         pcie_switch_port=(min(h["pcie_switch_port"], MAX_PCIE_PORTS), "pcie_switch_port"))
    if hv_type not in ("qemu", "clh"):
        return
    cold, hot = hv.cold_plug_vfio, hv.hot_plug_vfio
    if cold != "no-port" and hot != "no-port":
        raise ld.fail(h.key("hot_plug_vfio"), f"invalid hot-plug={cold} and cold-plug={hot} settings, only one of "
                      "them can be set", "only one of them can be set")
    if (cold == "no-port" and hot == "no-port") or hv.hypervisor_machine_type not in ("q35", "virt"):
        return
    port, key = (cold, "cold_plug_vfio") if cold != "no-port" else (hot, "hot_plug_vfio")
    if port not in PCIE_PORTS[1:]:
        raise ld.fail(h.key(key), f"invalid vfio_port={cold} setting, allowed values {', '.join(PCIE_PORTS)}",
                      "invalid vfio_port=")


def _factory(f: _Table) -> FactoryConfig:
    """``newFactoryConfig``."""
    return FactoryConfig(
        template=f["enable_template"],
        template_path=f["template_path"] or d.DEFAULT_TEMPLATE_PATH,
        vm_cache_endpoint=f["vm_cache_endpoint"] or d.DEFAULT_VM_CACHE_ENDPOINT,
        vm_cache_number=f["vm_cache_number"],
    )


def load_configuration(doc: dict[str, Any], facts: HostFacts, source: str = "",
                       release: Release | None = None) -> KataConfig:
    """Stage 1, ``katautils.LoadConfiguration``: the RuntimeConfig right after loading and ``checkConfig``, as
    Kata ``release`` (default 3.0.0) loads it."""
    ld = _Loading(facts, source, release or load_release())
    if not isinstance(doc, dict):
        raise ld.fail("", "the configuration must be a TOML table")
    keys = HYPERVISOR_KEYS
    if ld.release.config.default_vcpus_float:  # NumVCPUsF: a float32 default_vcpus
        keys = {**HYPERVISOR_KEYS, "default_vcpus": "float32"}
    hv_tables = _named_tables(doc, "hypervisor", keys, source)
    for t in hv_tables:
        if t.values.get("default_vcpus") != t.values.get("default_vcpus"):  # NaN
            raise ld.fail(t.key("default_vcpus"), "not a number (nan)")
    agent_tables = _named_tables(doc, "agent", AGENT_KEYS, source)
    runtime_table = _Table("runtime", read_table(_table(doc, "runtime", source), RUNTIME_KEYS))
    factory_table = _Table("factory", read_table(_table(doc, "factory", source), FACTORY_KEYS))
    read_table(_table(doc, "image", source), IMAGE_KEYS)

    for t in hv_tables:
        refuse_unmodelled(t.name, t.values, "hypervisor")
    runtime = _runtime(runtime_table, ld)
    hv_type, hv, table = _hypervisor(hv_tables, ld)
    agent = _agent(agent_tables, ld)
    factory = _factory(factory_table)
    _set_kernel_params(hv, agent, table, ld)
    _check_runtime_lists(runtime, ld)

    if runtime.disable_new_netns and runtime.internetworking_model != "none":
        raise ld.fail("runtime.disable_new_netns", 'only works with internetworking_model = "none"',
                      "disable_new_netns only works with 'none' internetworking_model")
    _check_hypervisor_config(hv, table, ld)
    if factory.template and hv.initrd_path == "" and ld.release.config.template_needs_initrd:
        raise ld.fail("factory.enable_template", "requires an initrd image (hypervisor initrd)",
                      "Factory option enable_template requires an initrd image")
    if factory.vm_cache_number > 0 and hv_type != "qemu":
        raise ld.fail("factory.vm_cache_number", "the VM cache only supports qemu", "VM cache just support qemu")
    if ld.release.config.extra_monitor_socket and table is not None and hv_type == "qemu":
        _extra_monitor_socket(hv, table, ld)
    if ld.release.config.pcie_vfio_ports and table is not None:
        _pcie_vfio_ports(hv, hv_type, table, ld)
    return KataConfig(hv_type, hv, agent, runtime, factory, ld.sources)


def load_kata_config(doc: dict[str, Any], facts: HostFacts, source: str = "",
                     release: Release | None = None) -> KataConfig:
    """The configuration exactly as the hypervisor's ``CreateVM`` receives it, or the ConfigError Kata raises
    up to and including ``CreateVM``'s own checks (launch-time failures are left to the generators)."""
    with kata_stage("LoadConfiguration"):
        cfg = load_configuration(doc, facts, source, release)
    with kata_stage("validateHypervisorConfig"):
        prepare_sandbox(cfg, facts, source, (release or load_release()).config.confidential_pins_max_vcpus)
    with kata_stage("CreateVM"):
        check_create_vm(cfg, facts, source)
    return cfg
