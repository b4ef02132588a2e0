"""Rejections Kata 3.0.0 makes inside a hypervisor's ``CreateVM`` (before any process starts), and the one
govmm makes at QEMU launch. Each raises ConfigError naming the TOML key responsible."""

from __future__ import annotations

import re

from katatest.errors import ConfigError
from katatest.host.facts import HostFacts
from katatest.kata.hypervisor_config import KataConfig
from katatest.kata.hypervisors import hypervisor

QEMU_MACHINES = {"amd64": ("q35", "virt", "microvm"), "arm64": ("virt",)}


def guest_protection(facts: HostFacts) -> str:
    """``availableGuestProtection``: arm64 never reports a TEE in 3.0.0."""
    return facts.guest_protection if facts.arch == "amd64" and facts.guest_protection != "cca" else "none"


def check_create_vm(cfg: KataConfig, facts: HostFacts, source: str = "") -> None:
    """The configuration errors of ``CreateVM`` for ``cfg.hypervisor_type``."""
    checks = {"qemu": _qemu, "clh": _clh}
    if cfg.hypervisor_type in checks:
        checks[cfg.hypervisor_type](cfg, facts, hypervisor(cfg.hypervisor_type).table, source)


def _qemu(cfg: KataConfig, facts: HostFacts, table: str, source: str) -> None:
    hv = cfg.hypervisor

    def fail(key: str, problem: str, kata: str) -> ConfigError:
        return ConfigError(f"{table}.{key}", problem, source, kata=kata)

    machine = hv.hypervisor_machine_type or ("q35" if facts.arch == "amd64" else "virt")
    if machine not in QEMU_MACHINES[facts.arch]:  # newQemuArch
        raise fail("machine_type", f"unrecognised machine type {machine!r} for {facts.arch}",
                   rf"unrecognised machinetype: {re.escape(machine)}$")
    if facts.arch == "amd64" and hv.confidential_guest and guest_protection(facts) == "none":
        raise fail("confidential_guest", "this host doesn't support Confidential Computing (Guest Protection)",
                   r"doesn't support Confidential Computing \(Guest Protection\)")
    template = hv.boot_to_be_template or hv.boot_from_template
    if template and (hv.shared_fs in ("virtio-fs", "virtio-fs-nydus") or hv.file_backed_mem_root_dir):
        raise fail("shared_fs", "VM templating does not work with virtio-fs or file backed memory",
                   "VM templating has been enabled with either virtio-fs or file backed memory")
    if hv.enable_vhost_user_store and not hv.huge_pages:
        raise fail("enable_vhost_user_store", "vhost-user-blk/scsi is enabled without enable_hugepages",
                   "Vhost-user-blk/scsi is enabled without HugePages")
    if hv.iommu:  # buildDevices -> appendIOMMU
        if facts.arch == "arm64":
            raise fail("enable_iommu", "arm64 does not support vIOMMU", "Arm64 architecture does not support vIOMMU")
        if machine != "q35":
            raise fail("enable_iommu", f"machine type {machine} does not support vIOMMU",
                       f"Machine Type {machine} does not support vIOMMU")
    if facts.arch == "arm64" and len(hv.pflash) == 1:
        raise fail("pflashes", "two pflash images needed for arm64", "pflash")
    if facts.arch == "arm64" and len(hv.pflash) > 2:
        raise fail("pflashes", "too many pflash images for arm64", "pflash")


def _clh(cfg: KataConfig, facts: HostFacts, table: str, source: str) -> None:
    hv = cfg.hypervisor
    if not hv.confidential_guest:
        return
    protection = guest_protection(facts)
    key = f"{table}.confidential_guest"
    if protection == "tdx":
        if hv.firmware_path == "":
            raise ConfigError(f"{table}.firmware", "firmware path is not specified (needed for TDX)", source,
                              kata="Firmware path is not specified")
    elif protection == "sev":
        raise ConfigError(key, "SEV protection is not supported by Cloud Hypervisor", source,
                          kata="SEV protection is not supported by Cloud Hypervisor")
    else:  # Kata 3.0.0's clh.go spells it "Confidentian"
        raise ConfigError(key, "this host doesn't support Confidential Computing (Guest Protection)", source,
                          kata=r"doesn't support Confidentia[nl] Computing \(Guest Protection\)")


def check_qemu_launch(cpus: int, max_cpus: int, source: str = "") -> None:
    """govmm ``LaunchQemu``'s SMP validation of the model's ``-smp``: a maxcpus that is passed (> 0) must not be
    below the boot vCPUs (a confidential guest without CPU hotplug passes none: nothing to compare)."""
    if max_cpus > 0 and max_cpus < cpus:
        raise ConfigError(
            f"{hypervisor('qemu').table}.default_maxvcpus",
            f"MaxCPUs {max_cpus} must be equal to or greater than CPUs {cpus} (default_vcpus)",
            source, stage="LaunchQemu", kata=f"MaxCPUs {max_cpus} must be equal to or greater than CPUs {cpus}\\b",
        )
