"""Per-architecture parts of Kata's QEMU setup (qemu_arch_base.go, qemu_amd64.go, qemu_arm64.go)."""

from __future__ import annotations

from dataclasses import dataclass, field

from katatest.errors import ConfigError
from katatest.generate.kernel_params import root_params
from katatest.generate.qemu import devices as dev
from katatest.generate.qemu.model import Machine, Memory
from katatest.generate.qemu.transport import MMIO, PCI
from katatest.kata.hypervisor_config import HypervisorConfig, Param
from katatest.kata.hypervisors import qemu_paths
from katatest.kata.releases import QemuBehaviour

AMD64_KERNEL_PARAMS = (
    Param("tsc", "reliable"), Param("no_timer_check"), Param("rcupdate.rcu_expedited", "1"),
    Param("i8042.direct", "1"), Param("i8042.dumbkbd", "1"), Param("i8042.nopnp", "1"),
    Param("i8042.noaux", "1"), Param("noreplace-smp"), Param("reboot", "k"), Param("cryptomgr.notests"),
    Param("net.ifnames", "0"), Param("pci", "lastbus=0"),
)
ARM64_KERNEL_PARAMS = (Param("iommu.passthrough", "0"),)

SYSTEMD_NON_DEBUG = (Param("systemd.show_status", "false"),)
SYSTEMD_DEBUG = (Param("systemd.show_status", "true"), Param("systemd.log_level", "debug"))

Sources = tuple[str, ...]


@dataclass
class KernelParamList:
    """A list of kernel parameters, each remembering its sources."""

    items: list[tuple[Param, Sources]] = field(default_factory=list)

    def extend(self, params: tuple[Param, ...] | list[Param], sources: Sources) -> None:
        self.items.extend((p, sources) for p in params)


@dataclass
class QemuArch:
    """What differs between architectures, filled like Kata's newQemuArch."""

    name: str
    qemu_path: str
    machine: Machine
    kernel_params: KernelParamList
    non_debug: KernelParamList
    debug: KernelParamList
    disable_nvdimm: bool
    nvdimm_readonly: bool
    protection: str = "none"
    sgx_epc_size: int = 0
    transport: str = PCI
    nvdimm_sources: Sources = ()  # the release behaviour that made the nvdimm read-only, if one did
    blk_scsi_off: bool = True  # release.qemu.virtio_blk_scsi_off
    dax: bool = True  # rootflags=dax on an nvdimm root
    dax_sources: Sources = ()
    memory_offset: bool = True  # maxmem= gains memory_offset + 1024 MiB (genericMemoryTopology)
    memory_offset_sources: Sources = ()

    def bridge_bus(self) -> str | None:
        return {"q35": "pcie.0", "virt": "pcie.0"}.get(self.machine.type)

    def memory_topology(self, hv: HypervisorConfig, sources: Sources) -> Memory:
        extra = hv.mem_offset + 1024 if self.memory_offset else 0
        sources += self.memory_offset_sources
        max_mem = (hv.default_max_memory_size + extra) % 2**64  # uint64 arithmetic, as in Go
        return Memory(size=f"{hv.memory_size}M", slots=hv.mem_slots & 0xFF, max_mem=f"{max_mem}M",
                      sources=sources)


def _machine_sources(*extra: str) -> Sources:
    return ("hypervisor.qemu.machine_type", *extra)


def new_arch(arch: str, hv: HypervisorConfig, guest_protection: str, src, behaviour: QemuBehaviour) -> QemuArch:
    """Kata's newQemuArch for ``arch`` (src(field) gives a HypervisorConfig field's sources; ``behaviour`` is
    the release's, e.g. whether amd64 asks for ``kernel_irqchip=on``). The machine type, the TEE and the
    pflash count were checked by ``katatest.kata.validate`` (naming the file and key)."""
    machine_type = hv.hypervisor_machine_type or ("q35" if arch == "amd64" else "virt")
    msrc = src("hypervisor_machine_type")
    if arch == "amd64":
        options = "accel=kvm,kernel_irqchip=on" if behaviour.kernel_irqchip else "accel=kvm"
        if not behaviour.kernel_irqchip:
            msrc += ("release.qemu.kernel_irqchip",)
        if hv.iommu or hv.confidential_guest:
            options = "accel=kvm,kernel_irqchip=split"
            msrc += src("iommu") + src("confidential_guest")
        base = list(AMD64_KERNEL_PARAMS)
        params = KernelParamList()
        params.extend(base, ("kata.amd64_kernel_params",))
        if hv.iommu:
            params.extend([Param("intel_iommu", "on"), Param("iommu", "pt")], src("iommu"))
        q = QemuArch("amd64", qemu_paths()["amd64"], Machine(machine_type, options, msrc), params,
                     KernelParamList(), KernelParamList(), hv.disable_image_nvdimm, nvdimm_readonly=True,
                     transport=MMIO if machine_type == "microvm" else PCI)
        if hv.confidential_guest:
            protection = guest_protection
            psrc = src("confidential_guest") + ("host.guest_protection",)
            if protection == "sev" and hv.sev_snp_guest:
                protection = "snp"
                psrc += src("sev_snp_guest") + ("release.config.sev_snp_guest",)
            _enable_protection(q, protection, psrc, behaviour)
            q.disable_nvdimm = True
        if hv.sgx_epc_size:
            q.sgx_epc_size = hv.sgx_epc_size
            q.machine.options = _join_opt(q.machine.options, "sgx-epc.0.memdev=epc0,sgx-epc.0.node=0")
            q.machine.sources += src("sgx_epc_size")
    else:
        params = KernelParamList()
        params.extend(ARM64_KERNEL_PARAMS, ("kata.arm64_kernel_params",))
        q = QemuArch("arm64", qemu_paths()["arm64"],
                     Machine("virt", "usb=off,accel=kvm,gic-version=host", msrc), params,
                     KernelParamList(), KernelParamList(), hv.disable_image_nvdimm,
                     nvdimm_readonly=behaviour.arm64_nvdimm_readonly, dax=behaviour.arm64_dax,
                     dax_sources=("release.qemu.arm64_dax",) if not behaviour.arm64_dax else (),
                     nvdimm_sources=("release.qemu.arm64_nvdimm_readonly",) if behaviour.arm64_nvdimm_readonly
                     else (),
                     memory_offset=behaviour.arm64_memory_offset,
                     memory_offset_sources=("release.qemu.arm64_memory_offset",) if behaviour.arm64_memory_offset
                     else ())
        if hv.confidential_guest and behaviour.arm64_cca:
            _enable_cca(q, hv, guest_protection, src)
    q.blk_scsi_off = behaviour.virtio_blk_scsi_off
    q.non_debug.extend([Param("quiet")], src("debug"))
    q.debug.extend([Param("debug")], src("debug"))
    _handle_image_path(q, hv, src)
    return q


CCA_MEASUREMENT_ALGOS = ("sha512", "sha256")


def _enable_cca(q: QemuArch, hv: HypervisorConfig, guest_protection: str, src) -> None:
    """qemu_arm64.go's newQemuArch for a confidential guest: an Arm CCA realm (the host must offer CCA), no
    nvdimm, a measurement algorithm QEMU knows."""
    if guest_protection != "cca":
        raise ConfigError(src("confidential_guest")[0], "Configured confidential guest but kvm does not support "
                          "Arm CCA (host fact --guest-protection cca)",
                          kata="Configured confidential guest but kvm does not support")
    if hv.measurement_algo not in CCA_MEASUREMENT_ALGOS:
        raise ConfigError(src("measurement_algo")[0], f"invalid measurement algo: {hv.measurement_algo}, should be "
                          "sha512 or sha256", kata="invalid measurement algo")
    psrc = src("confidential_guest") + ("host.guest_protection", "release.qemu.arm64_cca")
    q.machine.options = _join_opt(q.machine.options, "confidential-guest-support=rme0")
    q.machine.sources += psrc
    q.protection = "cca"
    q.disable_nvdimm = True


def _join_opt(options: str, extra: str) -> str:
    return f"{options},{extra}" if options else extra


# The -machine options of each TEE (a host without one was rejected by katatest.kata.validate).
PROTECTION_MACHINE_OPTIONS = {"tdx": "kvm-type=tdx,confidential-guest-support=tdx",
                              "sev": "confidential-guest-support=sev", "snp": "confidential-guest-support=snp"}


def _enable_protection(q: QemuArch, protection: str, sources: Sources, behaviour: QemuBehaviour) -> None:
    options = PROTECTION_MACHINE_OPTIONS[protection]
    if protection == "tdx" and not behaviour.tdx_kvm_type:
        options = options.replace("kvm-type=tdx,", "")
        sources += ("release.qemu.tdx_kvm_type",)
    q.machine.options = _join_opt(q.machine.options, options)
    q.protection = protection
    q.machine.sources += sources


def _handle_image_path(q: QemuArch, hv: HypervisorConfig, src) -> None:
    if not hv.image_path:
        return
    # rootfs_type is a source only where the release reads it (the loader recorded it)
    rootfs_src = src("rootfs_type") if "hypervisor.rootfs_type" in src.sources else ()
    root_src = src("image_path") + src("disable_image_nvdimm") + rootfs_src
    nvdimm_src = src("disable_image_nvdimm")
    if q.disable_nvdimm and any(s.startswith("release.") for s in nvdimm_src):
        q.machine.sources += nvdimm_src  # a release turned the nvdimm (and nvdimm=on) off
    if not q.disable_nvdimm:
        q.machine.options = ",".join([q.machine.options, "nvdimm=on"])
        q.machine.sources += src("image_path") + src("disable_image_nvdimm")
        root_src += q.dax_sources
    q.kernel_params.extend(root_params(hv.rootfs_type, not q.disable_nvdimm, q.dax), root_src)
    q.non_debug.extend(SYSTEMD_NON_DEBUG, src("debug") + src("image_path"))
    q.debug.extend(SYSTEMD_DEBUG, src("debug") + src("image_path"))


def console_devices(q: QemuArch, legacy: bool, path: str, nested_run: bool, sources: Sources,
                    nested_sources: Sources) -> list[dev.Device]:
    """Kata's appendConsole; also adds the console kernel parameters."""
    if legacy:
        q.kernel_params.extend([Param("console", "ttyS0")], sources)
        return [dev.LegacySerial(sources=sources),
                dev.ConsoleChardev(legacy=True, path=path, sources=sources)]
    q.kernel_params.extend([Param("console", "hvc0"), Param("console", "hvc1")], sources)
    return [dev.VirtioSerial(disable_modern=nested_run, sources=sources + nested_sources),
            dev.ConsoleChardev(path=path, sources=sources)]


def protection_devices(q: QemuArch, hv: HypervisorConfig, facts, src,
                       objects: str = "loader", qgs: str = "unix", source: str = "") -> tuple[list[dev.Device], str]:
    """Kata's appendProtectionDevice: extra objects, and the -bios value that remains (``objects``:
    release.qemu.confidential_objects; a JSON TDX or an SNP object boots its firmware as -bios)."""
    firmware = hv.firmware_path
    devices: list[dev.Device] = []
    if q.protection == "cca":
        devices.append(dev.RMEGuest(measurement_algo=hv.measurement_algo,
                                    sources=src("confidential_guest") + ("host.guest_protection",)
                                    + src("measurement_algo") + ("release.qemu.arm64_cca",)))
        return devices, firmware
    if q.name != "amd64":
        return devices, firmware
    if q.sgx_epc_size:
        devices.append(dev.EPCObject(size=q.sgx_epc_size, sources=src("sgx_epc_size")))
    psrc = src("confidential_guest") + ("host.guest_protection",)
    if q.protection == "tdx" and objects == "json":
        devices.append(dev.TDXJsonGuest(file=firmware, qgs=qgs, qgs_port=hv.qgs_port,
                                        sources=psrc + src("firmware_path") + src("qgs_port")
                                        + ("release.qemu.confidential_objects", "release.qemu.tdx_qgs")))
        return devices, firmware
    if q.protection == "snp":
        if bool(hv.snp_id_block) != bool(hv.snp_id_auth):
            given, missing = ("snp_id_block", "snp_id_auth") if hv.snp_id_block else ("snp_id_auth", "snp_id_block")
            raise ConfigError(src(given)[0], f"specifying {given} without {missing} is not allowed", source)
        devices.append(dev.SNPGuest(file=firmware, cbitpos=facts.sev_cbitpos, id_block=hv.snp_id_block,
                                    id_auth=hv.snp_id_auth, policy=hv.snp_guest_policy,
                                    sources=psrc + src("firmware_path") + src("sev_snp_guest")
                                    + src("snp_id_block") + src("snp_id_auth") + src("snp_guest_policy")
                                    + ("host.sev_cbitpos", "release.qemu.confidential_objects")))
        return devices, firmware
    if q.protection == "tdx":
        devices.append(dev.TDXGuest(file=firmware, firmware_volume=hv.firmware_volume_path,
                                    sources=psrc + src("firmware_path") + src("firmware_volume_path")))
        return devices, ""
    if q.protection == "sev":
        fixed_bits = objects == "json"  # these releases hard-code reduced-phys-bits 1
        devices.append(dev.SEVGuest(file=firmware, cbitpos=facts.sev_cbitpos,
                                    reduced_phys_bits=1 if fixed_bits else facts.sev_reduced_phys_bits,
                                    sources=psrc + src("firmware_path") + ("host.sev_cbitpos",)
                                    + (("release.qemu.confidential_objects",) if fixed_bits
                                       else ("host.sev_reduced_phys_bits",))))
        return devices, ""
    return devices, firmware


def pflash_images(q: QemuArch, hv: HypervisorConfig) -> list[str]:
    """Kata's getPFlash (arm64's "none or exactly two" was checked by katatest.kata.validate)."""
    return list(hv.pflash)
