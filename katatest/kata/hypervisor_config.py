"""Logic-free mirrors of the Go structs Kata 3.0.0 builds from its TOML configuration.

Field names are the Go names in snake_case (acronyms as one word); types and zero-value defaults follow Go.
``vc.HypervisorConfig`` (virtcontainers/hypervisor.go), ``vc.KataAgentConfig`` (kata_agent.go), the sandbox
part of ``oci.RuntimeConfig`` and ``oci.FactoryConfig``.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Param:
    """One ``key[=value]`` kernel or hypervisor parameter (Go ``vc.Param``)."""

    key: str
    value: str = ""


@dataclass
class HypervisorConfig:
    """Go ``vc.HypervisorConfig`` as katautils fills it (same field order as Go)."""

    groups: list[int] = field(default_factory=list)
    kernel_path: str = ""
    image_path: str = ""
    initrd_path: str = ""
    firmware_path: str = ""
    firmware_volume_path: str = ""
    machine_accelerators: str = ""
    cpu_features: str = ""
    hypervisor_path: str = ""
    hypervisor_ctl_path: str = ""
    jailer_path: str = ""
    block_device_driver: str = ""
    hypervisor_machine_type: str = ""
    memory_path: str = ""
    devices_state_path: str = ""
    entropy_source: str = ""
    shared_fs: str = ""
    shared_path: str = ""
    virtio_fs_daemon: str = ""
    virtio_fs_cache: str = ""
    file_backed_mem_root_dir: str = ""
    vhost_user_store_path: str = ""
    guest_memory_dump_path: str = ""
    guest_hook_path: str = ""
    vm_id: str = ""
    vm_store_path: str = ""
    run_store_path: str = ""
    selinux_process_label: str = ""
    hypervisor_path_list: list[str] = field(default_factory=list)
    hypervisor_ctl_path_list: list[str] = field(default_factory=list)
    jailer_path_list: list[str] = field(default_factory=list)
    entropy_source_list: list[str] = field(default_factory=list)
    virtio_fs_daemon_list: list[str] = field(default_factory=list)
    virtio_fs_extra_args: list[str] = field(default_factory=list)
    enable_annotations: list[str] = field(default_factory=list)
    file_backed_mem_root_list: list[str] = field(default_factory=list)
    pflash: list[str] = field(default_factory=list)
    vhost_user_store_path_list: list[str] = field(default_factory=list)
    seccomp_sandbox: str = ""
    block_device_aio: str = ""
    user: str = ""
    kernel_params: list[Param] = field(default_factory=list)
    hypervisor_params: list[Param] = field(default_factory=list)
    sgx_epc_size: int = 0  # int64
    disk_rate_limiter_bw_max_rate: int = 0  # int64
    disk_rate_limiter_bw_one_time_burst: int = 0  # int64
    disk_rate_limiter_ops_max_rate: int = 0  # int64
    disk_rate_limiter_ops_one_time_burst: int = 0  # int64
    rx_rate_limiter_max_rate: int = 0  # uint64
    tx_rate_limiter_max_rate: int = 0  # uint64
    net_rate_limiter_bw_max_rate: int = 0  # int64
    net_rate_limiter_bw_one_time_burst: int = 0  # int64
    net_rate_limiter_ops_max_rate: int = 0  # int64
    net_rate_limiter_ops_one_time_burst: int = 0  # int64
    mem_offset: int = 0  # uint64
    pcie_root_port: int = 0  # uint32
    num_vcpus: int = 0  # uint32
    default_max_vcpus: int = 0  # uint32
    memory_size: int = 0  # uint32, MiB
    default_max_memory_size: int = 0  # uint64, MiB
    default_bridges: int = 0  # uint32
    msize9p: int = 0  # uint32
    mem_slots: int = 0  # uint32
    virtio_fs_cache_size: int = 0  # uint32, MiB
    uid: int = 0  # uint32
    gid: int = 0  # uint32
    block_device_cache_set: bool = False
    block_device_cache_direct: bool = False
    block_device_cache_noflush: bool = False
    disable_block_device_use: bool = False
    enable_io_threads: bool = False
    debug: bool = False
    mem_prealloc: bool = False
    huge_pages: bool = False
    virtio_mem: bool = False
    iommu: bool = False
    iommu_platform: bool = False
    disable_nesting_checks: bool = False
    disable_image_nvdimm: bool = False
    hotplug_vfio_on_root_bus: bool = False
    guest_memory_dump_paging: bool = False
    confidential_guest: bool = False
    boot_to_be_template: bool = False
    boot_from_template: bool = False
    disable_vhost_net: bool = False
    enable_vhost_user_store: bool = False
    guest_swap: bool = False
    rootless: bool = False
    disable_seccomp: bool = False
    disable_selinux: bool = False
    reclaim_guest_freed_memory: bool = False  # a free-page-reporting balloon (release.qemu.balloon_for_reclaim)
    hot_plug_vfio: str = "no-port"  # release.config.pcie_vfio_ports
    cold_plug_vfio: str = "no-port"
    pcie_switch_port: int = 0  # uint32
    snp_id_block: str = ""  # base64 ID block of the SNP guest (release.config.sev_snp_guest)
    snp_id_auth: str = ""  # base64 ID authentication structure
    snp_guest_policy: int | None = None  # uint64 policy; None: QEMU's default
    sev_snp_guest: bool = False  # SNP instead of SEV on an SNP host (release.config.sev_snp_guest)
    qgs_port: int = 0  # uint32 TDX quote-generation vsock port; 0: the release's default socket
    measurement_algo: str = "sha512"  # Arm CCA realm measurement (sha512 | sha256)
    rootfs_type: str = "ext4"  # ext4 | xfs | erofs (release.config.rootfs_type)
    extra_monitor_socket: str = ""  # hmp | qmp | qmp-pretty (release.config.extra_monitor_socket)
    block_device_logical_sector_size: int = 0  # uint32 (release.config.block_sector_sizes); 0: QEMU's default
    block_device_physical_sector_size: int = 0
    indep_iothreads: int = 0  # uint32: iothread objects indep_iothread_<i> (release.qemu.indep_iothreads)
    virtio_fs_queue_size: int = 0  # uint32: 0 = the release's vhost_user_fs_queue_size
    disable_guest_selinux: bool = False  # selinux=0/1 on the kernel command line (release.qemu.guest_selinux_param)
    legacy_serial: bool = False


@dataclass
class KataAgentConfig:
    """Go ``vc.KataAgentConfig``: what the guest kernel command line needs about the agent."""

    kernel_modules: list[str] = field(default_factory=list)
    container_pipe_size: int = 0  # uint32
    dial_timeout: int = 0  # uint32, seconds
    long_live_conn: bool = False
    debug: bool = False
    trace: bool = False
    enable_debug_console: bool = False
    cdh_api_timeout: int = 0  # uint32, seconds (release.config.agent_timeout_params)
    launch_process_timeout: int = 0  # uint32, seconds (idem)


@dataclass
class RuntimeConfig:
    """The ``[runtime]`` settings of ``oci.RuntimeConfig`` that shape the sandbox."""

    debug: bool = False
    trace: bool = False
    internetworking_model: str = ""
    vfio_mode: str = ""
    experimental: list[str] = field(default_factory=list)
    sandbox_bind_mounts: list[str] = field(default_factory=list)
    jaeger_endpoint: str = ""
    jaeger_user: str = ""
    jaeger_password: str = ""
    disable_guest_seccomp: bool = False
    disable_new_netns: bool = False
    sandbox_cgroup_only: bool = False
    static_sandbox_resource_mgmt: bool = False
    enable_pprof: bool = False
    disable_guest_empty_dir: bool = False
    sandbox_cpus: int = 0  # uint32, from the workload (host fact)
    sandbox_mem_mb: int = 0  # uint32, from the workload (host fact)


@dataclass
class FactoryConfig:
    """Go ``oci.FactoryConfig`` (``[factory]``)."""

    template: bool = False
    template_path: str = ""
    vm_cache_endpoint: str = ""
    vm_cache_number: int = 0  # uint


@dataclass
class KataConfig:
    """Everything Kata loaded from one configuration file for one host."""

    hypervisor_type: str  # "qemu", "clh", "fc" or "acrn"
    hypervisor: HypervisorConfig
    agent: KataAgentConfig
    runtime: RuntimeConfig
    factory: FactoryConfig
    sources: dict[str, tuple[str, ...]] = field(default_factory=dict)
