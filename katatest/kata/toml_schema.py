"""The TOML tables Kata 3.0.0 decodes (katautils ``tomlConfig``), read with Go's type rules.

``read_table`` returns every field of one table as a dict ``toml_key -> value`` (Go zero value when the key
is absent), raising ConfigError for a key of the wrong type or out of range, exactly where Go's decoder fails.
"""

from __future__ import annotations

from typing import Any

from katatest.kata.tomlconf import Section

# toml key -> Go type ("str", "bool", "strs", "float32" or an integer type name understood by Section.int;
# a trailing "?" is a Go pointer: None when the key is absent).
HYPERVISOR_KEYS: dict[str, str] = {
    "path": "str",
    "jailer_path": "str",
    "kernel": "str",
    "ctlpath": "str",
    "initrd": "str",
    "image": "str",
    "firmware": "str",
    "firmware_volume": "str",
    "machine_accelerators": "str",
    "cpu_features": "str",
    "kernel_params": "str",
    "machine_type": "str",
    "block_device_driver": "str",
    "entropy_source": "str",
    "shared_fs": "str",
    "virtio_fs_daemon": "str",
    "virtio_fs_cache": "str",
    "vhost_user_store_path": "str",
    "file_mem_backend": "str",
    "guest_hook_path": "str",
    "guest_memory_dump_path": "str",
    "seccompsandbox": "str",
    "block_device_aio": "str",
    "valid_hypervisor_paths": "strs",
    "valid_jailer_paths": "strs",
    "valid_ctlpaths": "strs",
    "valid_virtio_fs_daemon_paths": "strs",
    "virtio_fs_extra_args": "strs",
    "pflashes": "strs",
    "valid_vhost_user_store_paths": "strs",
    "valid_file_mem_backends": "strs",
    "valid_entropy_sources": "strs",
    "enable_annotations": "strs",
    "rx_rate_limiter_max_rate": "uint64",
    "tx_rate_limiter_max_rate": "uint64",
    "memory_offset": "uint64",
    "disk_rate_limiter_bw_max_rate": "int64",
    "disk_rate_limiter_bw_one_time_burst": "int64",
    "disk_rate_limiter_ops_max_rate": "int64",
    "disk_rate_limiter_ops_one_time_burst": "int64",
    "net_rate_limiter_bw_max_rate": "int64",
    "net_rate_limiter_bw_one_time_burst": "int64",
    "net_rate_limiter_ops_max_rate": "int64",
    "net_rate_limiter_ops_one_time_burst": "int64",
    "virtio_fs_cache_size": "uint32",
    "default_maxvcpus": "uint32",
    "default_memory": "uint32",
    "memory_slots": "uint32",
    "default_maxmemory": "uint64",
    "default_bridges": "uint32",
    "msize_9p": "uint32",
    "pcie_root_port": "uint32",
    "default_vcpus": "int32",
    "block_device_cache_set": "bool",
    "block_device_cache_direct": "bool",
    "block_device_cache_noflush": "bool",
    "enable_vhost_user_store": "bool",
    "disable_block_device_use": "bool",
    "enable_mem_prealloc": "bool",
    "enable_hugepages": "bool",
    "enable_virtio_mem": "bool",
    "enable_iommu": "bool",
    "enable_iommu_platform": "bool",
    "enable_debug": "bool",
    "disable_nesting_checks": "bool",
    "enable_iothreads": "bool",
    "disable_image_nvdimm": "bool",
    "hotplug_vfio_on_root_bus": "bool",
    "disable_vhost_net": "bool",
    "guest_memory_dump_paging": "bool",
    "confidential_guest": "bool",
    "enable_guest_swap": "bool",
    "rootless": "bool",
    "disable_seccomp": "bool",
    "disable_selinux": "bool",
    "disable_guest_selinux": "bool",  # since 3.x (release.qemu.guest_selinux_param)
    "reclaim_guest_freed_memory": "bool",  # since 3.x (release.qemu.balloon_for_reclaim)
    "hot_plug_vfio": "str",  # since 3.x (release.config.pcie_vfio_ports)
    "cold_plug_vfio": "str",  # idem
    "pcie_switch_port": "uint32",  # idem
    "rootfs_type": "str",
    "block_device_logical_sector_size": "uint32",  # since 3.x (release.config.block_sector_sizes)
    "block_device_physical_sector_size": "uint32",  # idem
    "tdx_quote_generation_service_socket_port": "uint32",  # since 3.x (release.config.confidential_keys)
    "measurement_algo": "str",  # Arm CCA (release.config.confidential_keys)
    "sev_snp_guest": "bool",  # since 3.x (release.config.sev_snp_guest)
    "snp_id_block": "str",  # idem
    "snp_id_auth": "str",  # idem
    "snp_guest_policy": "uint64?",  # idem (a *uint64: absent is not 0)  # since 3.x (release.config.rootfs_type)
    "extra_monitor_socket": "str",  # since 3.x (release.config.extra_monitor_socket)
    "indep_iothreads": "uint32",  # since 3.x (release.qemu.indep_iothreads)
    "virtio_fs_queue_size": "uint32",  # since 3.x (release.qemu.vhost_user_fs_queue_size)
    "use_legacy_serial": "bool",
    "kernel_verity_params": "str",  # since 3.x (katatest.kata.key_coverage.UNMODELLED)
    "enable_numa": "bool",  # idem
    "numa_mapping": "strs",  # idem
    "vhost_user_reconnect_timeout_sec": "uint32",  # since 3.x (key_coverage.NOT_LAUNCH)
}

AGENT_KEYS: dict[str, str] = {
    "kernel_modules": "strs",
    "enable_debug": "bool",
    "enable_tracing": "bool",
    "debug_console_enabled": "bool",
    "dial_timeout": "uint32",
    "cdh_api_timeout": "uint32",  # since 3.x (read by release.config.agent_timeout_params)
    "launch_process_timeout": "uint32",  # since 3.x (idem)
    "visible_cdi_devices": "bool",  # since 4.x (key_coverage.NOT_LAUNCH)
}

RUNTIME_KEYS: dict[str, str] = {
    "internetworking_model": "str",
    "jaeger_endpoint": "str",
    "jaeger_user": "str",
    "jaeger_password": "str",
    "vfio_mode": "str",
    "sandbox_bind_mounts": "strs",
    "experimental": "strs",
    "enable_debug": "bool",
    "enable_tracing": "bool",
    "disable_new_netns": "bool",
    "disable_guest_seccomp": "bool",
    "sandbox_cgroup_only": "bool",
    "static_sandbox_resource_mgmt": "bool",
    "enable_pprof": "bool",
    "disable_guest_empty_dir": "bool",
    "emptydir_mode": "str",  # since 3.x (release.config.emptydir_mode)
    "create_container_timeout": "uint64",  # since 3.x (key_coverage.NOT_LAUNCH, as the keys below)
    "dan_conf": "str",
    "enable_vcpus_pinning": "bool",
    "experimental_force_guest_pull": "bool",
    "guest_selinux_label": "str",
    "kubelet_root_dir": "str",
    "pod_resource_api_sock": "str",
}

FACTORY_KEYS: dict[str, str] = {
    "template_path": "str",
    "vm_cache_endpoint": "str",
    "vm_cache_number": "uint64",
    "enable_template": "bool",
}

IMAGE_KEYS: dict[str, str] = {"provision": "str", "service_offload": "bool"}


def read_table(section: Section, keys: dict[str, str]) -> dict[str, Any]:
    """All ``keys`` of ``section`` typed as Go would decode them (absent -> Go zero value)."""
    values: dict[str, Any] = {}
    for name, gotype in keys.items():
        if gotype == "str":
            values[name] = section.str(name)
        elif gotype == "bool":
            values[name] = section.bool(name)
        elif gotype == "strs":
            values[name] = section.strs(name)
        elif gotype.endswith("?"):  # a Go pointer: None when absent
            values[name] = section.int(name, gotype[:-1]) if section.has(name) else None
        elif gotype == "float32":
            values[name] = section.float(name)
        else:
            values[name] = section.int(name, gotype)
    return values
