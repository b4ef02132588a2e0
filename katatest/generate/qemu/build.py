"""Kata 3.0.0's qemu.CreateVM plus the agent's cold-plugged devices: KataConfig -> QemuConfig."""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import Callable

from katatest.errors import ConfigError
from katatest.generate.kernel_params import serialize_params
from katatest.generate.paths import SandboxPaths, sandbox_paths
from katatest.generate.provenance import Arg, FieldSources
from katatest.generate.qemu import devices as dev
from katatest.generate.qemu.arch import (
    QemuArch,
    console_devices,
    new_arch,
    pflash_images,
    protection_devices,
)
from katatest.generate.qemu.model import SMP, Kernel, Knobs, QemuConfig
from katatest.generate.qemu.transport import PCI
from katatest.host.facts import HostFacts
from katatest.kata.hypervisor_config import KataConfig, Param
from katatest.kata.hypervisors import hypervisor
from katatest.kata.releases import Release, load_release

VIRTIO_FS_TYPES = ("virtio-fs", "virtio-fs-nydus")
SHARED_MOUNT_TAG = "kataShared"
FALLBACK_FILE_BACKED_MEM_DIR = "/dev/shm"
NESTED_BRIDGE_CHASSIS = 16  # chassis of the first root port hosting a nested pcie-pci-bridge
Sources = tuple[str, ...]


def random_hex_id() -> str:
    """Eight random bytes as hex, like Kata's GenerateRandomBytes(8) ids."""
    return secrets.token_hex(8)


def nesting(cfg: KataConfig, facts: HostFacts) -> tuple[bool, Sources]:
    """Whether Kata runs nested (its devices then get ``disable-modern=true``), and what decides it.

    RunningOnVMM only looks for the "hypervisor" CPU flag on amd64; other arches never count as nested."""
    hv = cfg.hypervisor
    nested_src = ("host.nested",) + FieldSources(cfg, hypervisor("qemu").table)("disable_nesting_checks")
    return facts.nested and facts.arch == "amd64" and not hv.disable_nesting_checks, nested_src


def build_qemu_config(cfg: KataConfig, facts: HostFacts, release: Release | None = None,
                      new_id: Callable[[], str] = random_hex_id, source: str = "") -> QemuConfig:
    """Build the QEMU model exactly as Kata ``release`` (default 3.0.0) would for this config and host."""
    release = release or load_release()
    hv = cfg.hypervisor
    src = FieldSources(cfg, hypervisor("qemu").table)
    paths = sandbox_paths(facts)
    q = new_arch(facts.arch, hv, facts.guest_protection, src, release.qemu)
    nested_run, nested_src = nesting(cfg, facts)

    knobs, memory_path, incoming = _memory_knobs(hv, src)
    memory = q.memory_topology(hv, src("memory_size") + src("mem_slots") + src("default_max_memory_size")
                               + src("mem_offset"))
    if hv.confidential_guest and not release.qemu.confidential_memory_hotplug:
        memory.slots, memory.max_mem = 0, ""
        memory.sources += src("confidential_guest") + ("release.qemu.confidential_memory_hotplug",)
    memory.path = memory_path

    devices = _base_devices(q, hv, facts, paths, nested_run, nested_src, src, new_id, release)
    iothreads: list[str] = []
    if hv.block_device_driver == "virtio-scsi":
        iothread = f"iothread-{new_id()}" if hv.enable_io_threads else ""
        devices.append(dev.SCSIController(disable_modern=nested_run, iothread=iothread,
                                          sources=src("block_device_driver") + src("enable_io_threads")
                                          + nested_src))
        if iothread:
            iothreads.append(iothread)

    indep: list[str] = []
    if release.qemu.indep_iothreads:
        indep = [f"indep_iothread_{i}" for i in range(hv.indep_iothreads)]
    kernel = Kernel(path=hv.kernel_path, initrd=hv.initrd_path, params="",
                    path_sources=src("kernel_path"), initrd_sources=src("initrd_path"))
    kernel.params, kernel.params_sources = _kernel_command_line(q, cfg, facts, src, release)

    protection, bios = protection_devices(q, hv, facts, src, release.qemu.confidential_objects, release.qemu.tdx_qgs,
                                          source)
    devices += protection
    behaviour = release.qemu
    if behaviour.rng_for_confidential_guest or not hv.confidential_guest:
        rng_src = () if behaviour.rng_for_confidential_guest else ("release.qemu.rng_for_confidential_guest",
                                                                    *src("confidential_guest"))
        devices.append(dev.RngDevice(filename=hv.entropy_source, sources=src("entropy_source") + rng_src))
    if behaviour.balloon_for_reclaim and hv.reclaim_guest_freed_memory and not hv.confidential_guest:
        devices.append(dev.Balloon(sources=src("reclaim_guest_freed_memory") + src("confidential_guest")
                                   + ("release.qemu.balloon_for_reclaim",)))
    if behaviour.pcie_topology == "vfio_ports":
        devices += _pcie_topology(q, hv, src, pod_links(facts))
    else:
        devices += _pcie_root_ports(q, hv.pcie_root_port, src("pcie_root_port"))
    devices += _cold_plugged(q, cfg, facts, paths, nested_run, nested_src, src, new_id, release)

    vm_src = ("host.sandbox_id", "host.rootless", "host.xdg_runtime_dir")
    qemu_path = hv.hypervisor_path or q.qemu_path
    if release.config.qemu_path_must_exist and not facts.qemu_binary:  # qemuPath()'s os.Stat
        raise ConfigError(f"{hypervisor('qemu').table}.path", f"QEMU path ({qemu_path}) does not exist "
                          "(host fact --no-qemu-binary; release.config.qemu_path_must_exist)", source,
                          kata=rf"QEMU path \({re.escape(qemu_path)}\) does not exist")
    config = QemuConfig(
        path=qemu_path,
        name=f"sandbox-{facts.sandbox_id}",
        uuid=str(uuid.uuid4()),
        machine=q.machine,
        cpu_model=(release.qemu.snp_cpu_model if q.protection == "snp" and release.qemu.snp_cpu_model
                   else "host") + "," + hv.cpu_features,
        qmp_socket=paths.socket("qmp.sock"),
        memory=memory,
        smp=_smp(hv, release, src),
        kernel=kernel,
        pidfile=f"{paths.vm_dir}/pid",
        devices=devices,
        knobs=knobs,
        bios=bios,
        pflash=pflash_images(q, hv),
        iothreads=iothreads + indep,
        incoming_defer=incoming,
        log_file=f"{paths.vm_dir}/qemu.log" if hv.debug and release.qemu.debug_log else "",
        omitted=_omitted(hv, release),
        seccomp_sandbox=hv.seccomp_sandbox,
        transport=q.transport,
        dimm_supported=q.machine.type != "microvm",
        daemonize=release.qemu.daemonize,
        qmp_transport=release.qemu.qmp,
        debug_threads=hv.debug and release.qemu.debug_threads,
        extra_monitor=((hv.extra_monitor_socket, paths.socket("extra-monitor.sock"))
                       if hv.debug and hv.extra_monitor_socket else ("", "")),
    )
    config.machine.options = _with_accelerators(config.machine.options, hv.machine_accelerators)
    if hv.machine_accelerators:
        config.machine.sources += src("machine_accelerators")
    config.sources = {
        "path": src("hypervisor_path") + ("host.arch",),
        "name": ("host.sandbox_id",),
        "cpu": src("cpu_features") + (src("sev_snp_guest") + ("host.guest_protection", "release.qemu.snp_cpu_model")
                                      if q.protection == "snp" else ()),
        "vm_store": vm_src,
        "pflash": src("pflash"),
        "bios": src("firmware_path"),
        "iothreads": src("enable_io_threads") + (src("indep_iothreads") + ("release.qemu.indep_iothreads",)
                                                 if indep else ()),
        "incoming": ("factory.enable_template",),
        "log_file": src("debug") + vm_src,
        "seccomp": src("seccomp_sandbox"),
        "debug_threads": src("debug") + ("release.qemu.debug_threads",),
        "extra_monitor": src("debug") + src("extra_monitor_socket") + ("release.config.extra_monitor_socket",),
    }
    return config


def _omitted(hv, release: Release) -> list[Arg]:
    """Arguments of other releases this one leaves out for this config, with the behaviour that drops them."""
    omitted = [] if release.qemu.daemonize else [Arg("-daemonize", ("release.qemu.daemonize",))]
    if hv.debug and not release.qemu.debug_log:
        omitted.append(Arg("-D", ("release.qemu.debug_log", "hypervisor.qemu.enable_debug")))
    if hv.confidential_guest and not release.qemu.rng_for_confidential_guest:
        omitted.append(Arg("rng-random", ("release.qemu.rng_for_confidential_guest",
                                          "hypervisor.qemu.confidential_guest")))
        omitted.append(Arg("virtio-rng", ("release.qemu.rng_for_confidential_guest",
                                          "hypervisor.qemu.confidential_guest")))
    return omitted


def _smp(hv, release: Release, src) -> SMP:
    """cpuTopology: sockets = maxcpus = default_maxvcpus, or no CPU hotplug for a confidential guest
    (release.qemu.confidential_cpu_hotplug)."""
    sources = src("num_vcpus") + src("default_max_vcpus")
    if hv.confidential_guest and not release.qemu.confidential_cpu_hotplug:
        return SMP(hv.num_vcpus, 1, 1, 0, 0,
                   sources=sources + src("confidential_guest") + ("release.qemu.confidential_cpu_hotplug",))
    return SMP(hv.num_vcpus, 1, 1, hv.default_max_vcpus, hv.default_max_vcpus, sources=sources)


def _with_accelerators(options: str, accelerators: str) -> str:
    if not accelerators:
        return options
    if not accelerators.startswith(","):
        accelerators = "," + accelerators
    return options + accelerators


def _memory_knobs(hv, src) -> tuple[Knobs, str, bool]:
    """setupTemplate, setupFileBackedMem and the vhost-user store rule of CreateVM."""
    knobs = Knobs(mem_prealloc=hv.mem_prealloc, huge_pages=hv.huge_pages, iommu_platform=hv.iommu_platform)
    sources = list(src("memory_size") + src("mem_prealloc") + src("huge_pages"))
    memory_path = ""
    incoming = False
    templating = hv.boot_to_be_template or hv.boot_from_template
    if templating:
        knobs.file_backed_mem = True
        memory_path = hv.memory_path
        knobs.mem_shared = hv.boot_to_be_template
        incoming = hv.boot_from_template
        sources += ("factory.enable_template", "factory.template_path")  # set by the template factory
    if hv.shared_fs in VIRTIO_FS_TYPES or hv.file_backed_mem_root_dir:  # not with templating (kata.validate)
        knobs.file_backed_mem = True
        knobs.mem_shared = True
        memory_path = hv.file_backed_mem_root_dir or FALLBACK_FILE_BACKED_MEM_DIR
        sources += src("shared_fs") + src("file_backed_mem_root_dir")
        if hv.huge_pages:
            knobs.mem_prealloc = True
    if hv.enable_vhost_user_store:  # with huge pages only (kata.validate)
        knobs.mem_shared = True
        sources += src("enable_vhost_user_store")
    knobs.backend_sources = tuple(dict.fromkeys(sources))
    return knobs, memory_path, incoming


def _base_devices(q: QemuArch, hv, facts: HostFacts, paths: SandboxPaths, nested_run: bool,
                  nested_src: Sources, src, new_id, release: Release) -> list[dev.Device]:
    """Kata's buildDevices up to (not including) the SCSI controller."""
    devices: list[dev.Device] = []
    bus = q.bridge_bus()
    if bus is not None and release.qemu.q35_firmware_nested_bridges and q.machine.type == "q35" and hv.firmware_path:
        sources = src("default_bridges") + src("firmware_path") + ("release.qemu.q35_firmware_nested_bridges",)
        for index in range(hv.default_bridges):
            root_port = f"rp-pci-bridge-{index}"
            devices.append(dev.PCIeRootPort(id=root_port, bus=bus, chassis=str(NESTED_BRIDGE_CHASSIS + index),
                                            slot="0", addr=str(2 + index), bus_reserve="0x1", io_reserve="4k",
                                            mem_reserve="1m", pref64_reserve="1m", sources=sources))
            devices.append(dev.PCIePCIBridge(bus=root_port, id=f"pci-bridge-{index}", sources=sources))
    elif bus is not None:
        for index in range(hv.default_bridges):
            devices.append(dev.PCIBridge(bus=bus, id=f"pci-bridge-{index}", chassis=index + 1, addr=2 + index,
                                         sources=src("default_bridges")))
    devices += console_devices(q, hv.legacy_serial, paths.socket("console.sock"), nested_run,
                               src("legacy_serial") + ("host.sandbox_id",), nested_src)
    if not hv.initrd_path and hv.image_path:
        devices.append(_image_device(q, hv, facts, nested_run, nested_src, src, new_id))
    if hv.iommu:  # q35 on amd64 only (kata.validate)
        devices.append(dev.IntelIommu(sources=src("iommu")))
    if hv.guest_memory_dump_path:
        devices.append(dev.PVPanic(sources=src("guest_memory_dump_path")))
    return devices


def _image_device(q: QemuArch, hv, facts: HostFacts, nested_run: bool, nested_src: Sources, src,
                  new_id) -> dev.Device:
    image_src = src("image_path") + src("disable_image_nvdimm")
    if not q.disable_nvdimm:
        return dev.NvdimmImage(mem_path=hv.image_path, size=facts.image_size,
                               readonly=q.nvdimm_readonly,
                               sources=image_src + ("host.image_size",) + q.nvdimm_sources)
    image_id = f"image-{new_id()}"[:31]
    return dev.BlockDevice(id=image_id, file=hv.image_path, disable_modern=nested_run, share_rw=True,
                           readonly=True, scsi_off=q.blk_scsi_off,
                           sources=image_src + nested_src
                           + (() if q.blk_scsi_off else ("release.qemu.virtio_blk_scsi_off",)))


def _pcie_root_ports(q: QemuArch, count: int, sources: Sources) -> list[dev.Device]:
    """genericAppendPCIeRootPort, with the BAR sizes of a host without GPUs (2 MiB * 2, 2 MiB)."""
    if count <= 0 or q.machine.type not in ("q35", "virt"):
        return []
    return [dev.PCIeRootPort(id=f"rp{i}", slot=str(i), mem_reserve=f"{2 * 1024 * 1024 * 2}B",
                             pref64_reserve=f"{2 * 1024 * 1024}B", sources=sources) for i in range(count)]


def pod_links(facts: HostFacts) -> int:
    """The links of the pod's network namespace Kata counts (``GetEndpointsNum``: ``lo`` and every endpoint).
    katatest's host facts describe a pod netns only through its endpoints: no ``--net-endpoint``, no netns (as
    on the vectors' host; a real sandbox always has one, with at least ``lo``)."""
    return 1 + len(facts.net_endpoints) if facts.net_endpoints else 0


def _pcie_topology(q: QemuArch, hv, src, links: int = 0) -> list[dev.Device]:
    """createPCIeTopology for a host without VFIO devices (release.qemu.pcie_topology); ``links``: the pod
    netns's links (arm64 gets a root port for each, to hot-plug into)."""
    machine = q.machine.type
    hot, cold = hv.hot_plug_vfio, hv.cold_plug_vfio
    if machine not in ("q35", "virt") or (hot == "no-port" and cold == "no-port" and machine == "q35"):
        return []
    sources = src("hot_plug_vfio") + src("cold_plug_vfio") + ("release.qemu.pcie_topology",)
    pluggable = links + (1 if machine == "virt" and hv.virtio_mem else 0) if machine == "virt" else 0
    if machine == "virt":
        sources += src("enable_virtio_mem") + (("host.net_endpoints",) if links else ())
    if "root-port" in (hot, cold):
        return _bare_root_ports(max(pluggable, hv.pcie_root_port), sources + src("pcie_root_port"))
    if "switch-port" in (hot, cold):
        count = max(pluggable, hv.pcie_switch_port)
        sources += src("pcie_switch_port")
        devices: list[dev.Device] = [dev.PCIeRootPort(id="swrp0", chassis="1", slot="0", sources=sources),
                                     dev.PCIeSwitchUpstreamPort(id="swup0", bus="swrp0", sources=sources)]
        devices += [dev.PCIeSwitchDownstreamPort(id=f"swdp{i}", bus="swup0", chassis="2", slot=str(i),
                                                 sources=sources) for i in range(count)]
        return devices
    if machine == "virt":
        return _bare_root_ports(pluggable, sources)
    return []


def _bare_root_ports(count: int, sources: Sources) -> list[dev.Device]:
    return [dev.PCIeRootPort(id=f"rp{i}", slot=str(i), sources=sources) for i in range(count)]


def _cold_plugged(q: QemuArch, cfg: KataConfig, facts: HostFacts, paths: SandboxPaths, nested_run: bool,
                  nested_src: Sources, src, new_id, release: Release) -> list[dev.Device]:
    """The devices the agent adds before boot: the vhost-vsock, then the shared-fs volume."""
    hv = cfg.hypervisor
    behaviour = release.qemu
    devices: list[dev.Device] = []
    # release.qemu.pcie_root_bus_pin: bus=pcie.0 on virtio-pci leaf devices of a machine with a pcie.0 root.
    pin = behaviour.pcie_root_bus_pin and q.transport == PCI and q.machine.type.startswith(("q35", "virt"))
    pin_src = ("release.qemu.pcie_root_bus_pin", "hypervisor.qemu.machine_type") if pin else ()
    if facts.vsock:
        fd_src = ("release.qemu.vsock_fd",) if behaviour.qmp == "fd" else ()
        devices.append(dev.VhostVsock(context_id=facts.vsock_cid, disable_modern=nested_run,
                                      vhost_fd=behaviour.vsock_fd, bus="pcie.0" if pin else "",
                                      sources=("host.vsock_cid",) + nested_src + fd_src + pin_src))
    if facts.sharedfs:
        if hv.shared_fs in VIRTIO_FS_TYPES:
            devices.append(dev.VhostUserFS(chardev_id=f"char-{new_id()}"[:31],
                                           socket_path=paths.socket("vhost-fs.sock"), tag=SHARED_MOUNT_TAG,
                                           cache_size_mib=hv.virtio_fs_cache_size,
                                           queue_size=(hv.virtio_fs_queue_size or behaviour.vhost_user_fs_queue_size
                                                       if behaviour.vhost_user_fs_queue_size else 0),
                                           bus="pcie.0" if pin else "",
                                           sources=src("shared_fs") + src("virtio_fs_cache_size") + pin_src
                                           + (("release.qemu.vhost_user_fs_queue_size",
                                               *src("virtio_fs_queue_size"))
                                              if behaviour.vhost_user_fs_queue_size else ())))
        elif hv.shared_fs != "none":
            devices.append(dev.Virtio9P(id=f"extra-9p-{SHARED_MOUNT_TAG}"[:31], path=paths.shared_dir,
                                        mount_tag=SHARED_MOUNT_TAG, disable_modern=nested_run,
                                        multidevs="remap" if q.name == "amd64" else "",
                                        sources=src("shared_fs") + ("host.sandbox_id",) + nested_src))
    return devices


def _kernel_command_line(q: QemuArch, cfg: KataConfig, facts: HostFacts, src,
                         release: Release) -> tuple[str, Sources]:
    """qemu.kernelParameters(): arch params, debug or not, panic, nr_cpus, then the config's params."""
    hv = cfg.hypervisor
    items = list(q.kernel_params.items)
    items += (q.debug if hv.debug else q.non_debug).items
    items.append((Param("panic", "1"), ("kata.fixed",)))
    if release.qemu.confidential_nr_cpus or not hv.confidential_guest:
        items.append((Param("nr_cpus", str(hv.default_max_vcpus)), src("default_max_vcpus")
                      + (() if release.qemu.confidential_nr_cpus else
                         src("confidential_guest") + ("release.qemu.confidential_nr_cpus",))))
    if release.qemu.guest_selinux_param:
        items.append((Param("selinux", "0" if hv.disable_guest_selinux else "1"),
                      src("disable_guest_selinux") + ("release.qemu.guest_selinux_param",)))
    items += [(p, src("kernel_params")) for p in hv.kernel_params]
    if facts.fips:
        items.append((Param("fips", "1"), ("host.fips",)))
    text = serialize_params([p for p, _ in items])
    sources: list[str] = []
    for _, s in items:
        sources.extend(s)
    return text, tuple(dict.fromkeys(sources))
