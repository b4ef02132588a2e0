"""The QEMU configuration model (govmm's ``qemu.Config``), before it becomes argv."""

from __future__ import annotations

from dataclasses import dataclass, field

from katatest.generate.provenance import Arg
from katatest.generate.qemu.devices import Device, Sources


@dataclass
class Machine:
    type: str
    options: str
    sources: Sources = ()


@dataclass
class SMP:
    cpus: int
    cores: int
    threads: int
    sockets: int
    max_cpus: int
    sources: Sources = ()


@dataclass
class Memory:
    size: str
    slots: int
    max_mem: str
    path: str = ""
    sources: Sources = ()


@dataclass
class Knobs:
    """The fixed knobs plus the memory backend knobs (with what decided them)."""

    mem_prealloc: bool = False
    huge_pages: bool = False
    mem_shared: bool = False
    file_backed_mem: bool = False
    iommu_platform: bool = False
    backend_sources: Sources = ()


@dataclass
class Kernel:
    path: str
    initrd: str
    params: str
    path_sources: Sources = ()
    initrd_sources: Sources = ()
    params_sources: Sources = ()


@dataclass
class QemuConfig:
    """Everything LaunchQemu turns into argv, in model form."""

    path: str
    name: str
    uuid: str
    machine: Machine
    cpu_model: str
    qmp_socket: str
    memory: Memory
    smp: SMP
    kernel: Kernel
    pidfile: str
    devices: list[Device] = field(default_factory=list)
    knobs: Knobs = field(default_factory=Knobs)
    bios: str = ""
    pflash: list[str] = field(default_factory=list)
    iothreads: list[str] = field(default_factory=list)
    incoming_defer: bool = False
    log_file: str = ""
    seccomp_sandbox: str = ""
    transport: str = "pci"
    dimm_supported: bool = True
    daemonize: bool = True  # release.qemu.daemonize
    qmp_transport: str = "socket"  # release.qemu.qmp
    extra_monitor: tuple[str, str] = ("", "")  # (protocol, socket path) with enable_debug
    debug_threads: bool = False  # enable_debug with release.qemu.debug_threads
    sources: dict[str, Sources] = field(default_factory=dict)
    omitted: list[Arg] = field(default_factory=list)  # left out by a release behaviour (Rendered.omitted)
