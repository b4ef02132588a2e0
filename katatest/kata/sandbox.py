"""The sandbox stage between loading and ``CreateVM``: ``oci.SandboxConfig``'s static sizing, then
``validateHypervisorConfig`` (hypervisor_config_linux.go) with its last defaults."""

from __future__ import annotations

from katatest.errors import ConfigError
from katatest.host.facts import HostFacts
from katatest.kata import defaults as d
from katatest.kata.getters import max_vcpus_for_arch
from katatest.kata.hypervisor_config import KataConfig
from katatest.kata.hypervisors import hypervisor


def prepare_sandbox(cfg: KataConfig, facts: HostFacts, source: str = "", pin_confidential_vcpus: bool = True) -> None:
    """Apply static sandbox sizing and ``validateHypervisorConfig`` to ``cfg`` in place
    (``pin_confidential_vcpus``: release.config.confidential_pins_max_vcpus)."""
    hv = cfg.hypervisor
    where = hypervisor(cfg.hypervisor_type).table
    if cfg.runtime.static_sandbox_resource_mgmt:
        cfg.runtime.sandbox_cpus = facts.workload_cpus
        cfg.runtime.sandbox_mem_mb = facts.workload_mem_mib
        hv.num_vcpus = (hv.num_vcpus + facts.workload_cpus) % 2**32
        hv.memory_size = (hv.memory_size + facts.workload_mem_mib) % 2**32
        for name, fact in (("num_vcpus", "host.workload_cpus"), ("memory_size", "host.workload_mem_mib")):
            cfg.sources[f"hypervisor.{name}"] = cfg.sources.get(f"hypervisor.{name}", ()) + (
                "runtime.static_sandbox_resource_mgmt",
                fact,
            )

    if hv.kernel_path == "":
        raise ConfigError(f"{where}.kernel", "missing kernel path", source, kata="Missing kernel path")
    if hv.confidential_guest and hv.hypervisor_machine_type == "s390-ccw-virtio":
        if hv.image_path or hv.initrd_path:
            raise ConfigError(f"{where}.image", "neither image nor initrd may be set for Secure Execution", source,
                              kata="Secure Execution")
    elif hv.image_path == "" and hv.initrd_path == "":
        raise ConfigError(f"{where}.image", "missing image and initrd path", source,
                          kata="Missing image and initrd path")
    elif hv.image_path != "" and hv.initrd_path != "":
        raise ConfigError(f"{where}.initrd", "image and initrd path cannot be both set", source,
                          kata="Image and initrd path cannot be both set")
    if hv.boot_to_be_template and hv.boot_from_template:
        raise ConfigError("factory.enable_template", "cannot set both 'to be' and 'from' VM template", source,
                          kata="template")
    if (hv.boot_to_be_template or hv.boot_from_template) and hv.memory_path == "":
        raise ConfigError("factory.template_path", "missing MemoryPath for VM template", source,
                          kata="Missing MemoryPath for vm template")
    if hv.boot_from_template and hv.devices_state_path == "":
        raise ConfigError("factory.template_path", "missing DevicesStatePath to load from VM template", source,
                          kata="Missing DevicesStatePath to Load from vm template")

    hv.num_vcpus = hv.num_vcpus or d.DEFAULT_VCPU_COUNT
    hv.memory_size = hv.memory_size or d.DEFAULT_MEM_SIZE_MIB
    hv.default_bridges = hv.default_bridges or d.DEFAULT_BRIDGES
    if hv.block_device_driver == "":
        hv.block_device_driver = d.DEFAULT_BLOCK_DEVICE_DRIVER
    elif hv.block_device_driver == "virtio-blk" and hv.hypervisor_machine_type == "s390-ccw-virtio":
        hv.block_device_driver = "virtio-blk-ccw"
    max_vcpus = max_vcpus_for_arch(facts.arch)
    if hv.default_max_vcpus == 0 or hv.default_max_vcpus > max_vcpus:
        hv.default_max_vcpus = max_vcpus
    if not pin_confidential_vcpus and hv.confidential_guest:
        cfg.sources["hypervisor.default_max_vcpus"] = cfg.sources.get("hypervisor.default_max_vcpus", ()) + (
            f"{where}.confidential_guest", "release.config.confidential_pins_max_vcpus")
    if pin_confidential_vcpus and hv.confidential_guest and hv.num_vcpus != hv.default_max_vcpus:
        hv.default_max_vcpus = hv.num_vcpus
        cfg.sources["hypervisor.default_max_vcpus"] = cfg.sources.get("hypervisor.default_max_vcpus", ()) + (
            f"{where}.confidential_guest",
            f"{where}.default_vcpus",
        )
    if hv.msize9p == 0 and hv.shared_fs != "virtio-fs":
        hv.msize9p = d.DEFAULT_MSIZE_9P
