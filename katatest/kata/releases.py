"""Kata releases as data: which hypervisors a release drives and the named behaviours its generators consult.

Each release is one file, ``katatest/data/releases/<version>.toml``. Behaviour that differs between releases is
read from there by name (``release.qemu.daemonize``), never from version comparisons in the generators."""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from katatest.errors import KatatestError
from katatest.kata.hypervisors import NAMES
from katatest.kata.tomlconf import load_toml

DEFAULT_RELEASE = "3.0.0"
RELEASES_DIR = Path(__file__).resolve().parent.parent / "data" / "releases"
QMP_TRANSPORTS = ("socket", "fd")  # the ways of passing QMP the QEMU generator implements
VIRTIOFSD_ARGV = ("c", "rust")  # virtiofsd command-line dialects (katatest.generate.daemon)
NYDUSD_ARGV = ("plain", "virtiofs")  # nydusd: no subcommand, or the ``virtiofs`` subcommand first


@dataclass(frozen=True)
class QemuBehaviour:
    """How a release launches QEMU (the ``[qemu]`` table of its file). Every field must be in every file;
    the defaults (3.0.0's behaviour) only serve tests building a behaviour by hand."""

    daemonize: bool  # -daemonize among govmm's fixed flags
    qmp: str  # one of QMP_TRANSPORTS
    kernel_irqchip: bool  # kernel_irqchip=on in the amd64 -machine options
    debug_log: bool  # -D <vm dir>/qemu.log with enable_debug
    vsock_fd: int = 3  # the vhostfd number of the cold-plugged vhost-vsock (after QMP's fd when it is passed)
    debug_threads: bool = False  # -name NAME,debug-threads=on with enable_debug
    vhost_user_fs_queue_size: int = 0  # queue-size= on vhost-user-fs (0: none)
    pcie_root_bus_pin: bool = False  # bus=pcie.0 on vsock and vhost-user-fs when the machine has pcie.0
    virtiofsd_argv: str = "c"  # one of VIRTIOFSD_ARGV
    nydusd_argv: str = "plain"  # one of NYDUSD_ARGV
    arm64_memory_offset: bool = False  # arm64 maxmem= gains memory_offset + 1024 MiB, as amd64's always does
    arm64_nvdimm_readonly: bool = False  # arm64's image nvdimm: readonly=on object, unarmed=on device
    arm64_dax: bool = True  # arm64's nvdimm root mounts with rootflags=dax
    virtio_blk_scsi_off: bool = True  # virtio-blk devices carry scsi=off
    guest_selinux_param: bool = False  # selinux=0|1 (from disable_guest_selinux) after nr_cpus= on the cmdline
    indep_iothreads: bool = False  # indep_iothreads = N adds iothread objects indep_iothread_0..N-1
    virtiofsd_xattr: bool = False  # virtiofsd gets --xattr (last) unless disable_guest_selinux
    virtiofsd_cache_check: bool = False  # StartVM rejects a virtio_fs_cache other than auto/always/metadata/never
    snp_cpu_model: str = ""  # -cpu model of an SNP guest instead of "host" ("" = host)
    tdx_qgs: str = "unix"  # one of TDX_QGS
    confidential_nr_cpus: bool = True  # nr_cpus= on a confidential guest's command line
    confidential_cpu_hotplug: bool = True  # -smp sockets=/maxcpus= for a confidential guest too
    tdx_kvm_type: bool = True  # kvm-type=tdx in the TDX -machine options
    confidential_objects: str = "loader"  # one of CONFIDENTIAL_OBJECTS
    confidential_memory_hotplug: bool = True  # -m with slots= and maxmem= for a confidential guest too
    q35_firmware_nested_bridges: bool = False  # q35 + firmware: bridges are pcie-pci-bridges on root ports
    pcie_topology: str = "root_ports"  # one of PCIE_TOPOLOGIES
    rng_for_confidential_guest: bool = True  # virtio-rng also for a confidential guest
    balloon_for_reclaim: bool = False  # reclaim_guest_freed_memory adds a free-page-reporting virtio-balloon
    pod_network: bool = True  # createNetwork's cold-plugged endpoints are modelled (network vectors exist)
    virt_net_root_port: bool = False  # arm64 virt hot-plugs NICs into PCIe root ports (rpN, addr 00), not a bridge
    qmp_typed_values: bool = False  # QMP arguments typed (share-rw true, num-queues 1); 3.0.0: "on", "1"
    arm64_cca: bool = False  # arm64 confidential guests are Arm CCA realms (rme-guest), refused without CCA


@dataclass(frozen=True)
class ConfigBehaviour:
    """How a release loads the configuration (the ``[config]`` table of its file)."""

    agent_timeout_params: bool = False  # [agent.kata] cdh_api_timeout / launch_process_timeout -> agent.* params
    extra_monitor_socket: bool = False  # the extra_monitor_socket key is read and checked
    arm64_nvdimm_needs_firmware: bool = False  # arm64 without firmware or pflashes: disable_image_nvdimm forced
    rootfs_type: bool = False  # the rootfs_type key (ext4 | xfs | erofs) shapes root= / rootflags= / rootfstype=
    confidential_pins_max_vcpus: bool = True  # a confidential guest's default_maxvcpus = default_vcpus
    sev_snp_guest: bool = False  # the sev_snp_guest key picks SNP on an SNP host
    default_vcpus_float: bool = False  # default_vcpus is a float32 (rounded up to whole vCPUs)
    block_sector_sizes: bool = False  # block_device_{logical,physical}_sector_size read and checked
    qemu_path_must_exist: bool = False  # CreateVM rejects a QEMU binary that does not exist (host.qemu_binary)
    template_needs_initrd: bool = True  # factory.enable_template requires an initrd
    shared_fs_none: bool = False  # shared_fs = "none" is accepted (no shared-fs device, no daemon)
    virtio_fs_cache_default: str = "none"  # the qemu table's virtio_fs_cache when unset
    pcie_vfio_ports: bool = False  # hot_plug_vfio / cold_plug_vfio / pcie_switch_port keys, checkPCIeConfig
    emptydir_modes: str = ""  # runtime.emptydir_mode's allowed values, space-separated ('': the key is not read)
    confidential_keys: bool = False  # tdx_quote_generation_service_socket_port and measurement_algo are read


# "root_ports": pcie_root_port N root ports with 2 MiB reserves; "vfio_ports": createPCIeTopology (root ports
# or a switch for hot/cold-plugged VFIO, arm64 root ports per pluggable endpoint, no reserves).
PCIE_TOPOLOGIES = ("root_ports", "vfio_ports")
# TDX/SNP: "loader" (TDX: -device loader + -object tdx-guest,id=tdx; no SNP) or "json" (TDX: a JSON tdx-guest
# object with its quote-generation socket, SNP: sev-snp-guest; both boot the firmware with -bios).
CONFIDENTIAL_OBJECTS = ("loader", "json")
# The TDX quote-generation socket when tdx_quote_generation_service_socket_port is 0 (a port > 0 is always vsock
# CID 2 on that port): "unix" (/var/run/tdx-qgs/qgs.socket), or "vsock" (port 4050: 4.1.0 falls back to it when
# that socket does not exist; katatest assumes it does not, as on the vectors' host).
TDX_QGS = ("unix", "vsock")
CHOICES = {"tdx_qgs": TDX_QGS, "confidential_objects": CONFIDENTIAL_OBJECTS, "pcie_topology": PCIE_TOPOLOGIES,
           "qmp": QMP_TRANSPORTS, "virtiofsd_argv": VIRTIOFSD_ARGV, "nydusd_argv": NYDUSD_ARGV}


@dataclass(frozen=True)
class Release:
    """One Kata release: its version, the hypervisors its Go runtime drives, and its behaviours."""

    version: str
    hypervisors: tuple[str, ...]
    qemu: QemuBehaviour
    config: ConfigBehaviour = ConfigBehaviour()
    bundled_qemu: str = ""  # the QEMU version the release ships (versions.yaml)
    bundled_virtiofsd: str = ""  # the (Rust) virtiofsd version it ships


def known_releases() -> list[str]:
    """The versions that have a release file, sorted."""
    return sorted(p.stem for p in RELEASES_DIR.glob("*.toml"))


def _field(table: dict[str, Any], key: str, kind: type, where: str) -> Any:
    value = table.get(key)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise KatatestError(f"{where}: {key} must be a {kind.__name__}, got {value!r}")
    return value


def _parse(doc: dict[str, Any], where: str) -> Release:
    unknown = sorted(set(doc) - {"version", "hypervisors", "qemu", "config", "bundles"})
    if unknown:
        raise KatatestError(f"{where}: unknown keys {', '.join(unknown)}")
    hypervisors = _field(doc, "hypervisors", list, where)
    bad = [h for h in hypervisors if h not in NAMES]
    if bad:
        raise KatatestError(f"{where}: hypervisors: unknown {bad} (known: {', '.join(NAMES)})")
    qemu = _field(doc, "qemu", dict, where)
    behaviour = _parse_behaviour(QemuBehaviour, qemu, f"{where}: qemu")
    config = _parse_behaviour(ConfigBehaviour, _field(doc, "config", dict, where), f"{where}: config")
    bundles = _field(doc, "bundles", dict, where)
    return Release(_field(doc, "version", str, where), tuple(hypervisors), behaviour, config,
                   _field(bundles, "qemu", str, f"{where}: bundles"), _field(bundles, "virtiofsd", str,
                                                                               f"{where}: bundles"))


def _parse_behaviour(kind: type, table: dict[str, Any], where: str) -> Any:
    """A behaviour dataclass from its table: every field present, of its type, and a known choice."""
    names = [f.name for f in dataclasses.fields(kind)]
    extra = sorted(set(table) - set(names))
    if extra:
        raise KatatestError(f"{where}: unknown keys {', '.join(extra)}")
    values = {}
    for f in dataclasses.fields(kind):
        expected = {"bool": bool, "int": int, "str": str}[str(f.type)]
        values[f.name] = _field(table, f.name, expected, where)
        choices = CHOICES.get(f.name)
        if choices and values[f.name] not in choices:
            raise KatatestError(f"{where}.{f.name}: {values[f.name]!r} is not implemented "
                                f"(known: {', '.join(choices)})")
    return kind(**values)


@functools.cache
def load_release(version: str = DEFAULT_RELEASE) -> Release:
    """The release ``version``; an unknown one is an error listing the known releases."""
    path = RELEASES_DIR / f"{version}.toml"
    if "/" in version or not path.is_file():
        raise KatatestError(f"unknown Kata release {version!r} (known: {', '.join(known_releases())})")
    release = _parse(load_toml(path), str(path))
    if release.version != version:
        raise KatatestError(f"{path}: version {release.version!r} does not match the file name")
    return release
