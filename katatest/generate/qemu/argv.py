"""QemuConfig -> argv, in the order govmm's LaunchQemu appends its parameters."""

from __future__ import annotations

from katatest.generate.provenance import Arg, MissingProvenance
from katatest.generate.qemu.model import QemuConfig

FIXED = "kata.fixed"
# How QMP is passed, per ``release.qemu.qmp`` (katatest.kata.releases.QMP_TRANSPORTS).
QMP_VALUES = {"socket": "unix:{path},server=on,wait=off", "fd": "unix:fd=3,server=on,wait=off"}
QMP_FD_SOURCES = ("release.qemu.qmp",)  # the runtime listens and passes the socket as fd 3


class _ArgvBuilder:
    def __init__(self) -> None:
        self.args: list[Arg] = []

    def add(self, *values: str, sources: tuple[str, ...]) -> None:
        """Append ``values``; empty ``sources`` raise MissingProvenance (constants pass ``(FIXED,)``)."""
        if not sources:
            raise MissingProvenance(f"QEMU arguments {' '.join(values)!r} emitted without sources")
        self.args.extend(Arg(v, tuple(sources)) for v in values)


def _memory_backend(cfg: QemuConfig) -> str:
    size = cfg.memory.size
    knobs = cfg.knobs
    if knobs.huge_pages:
        obj = f"memory-backend-file,id=dimm1,size={size},mem-path=/dev/hugepages"
    elif knobs.file_backed_mem and cfg.memory.path:
        obj = f"memory-backend-file,id=dimm1,size={size},mem-path={cfg.memory.path}"
    else:
        obj = f"memory-backend-ram,id=dimm1,size={size}"
    if knobs.mem_shared:
        obj += ",share=on"
    if knobs.mem_prealloc:
        obj += ",prealloc=on"
    return obj


def render_argv(cfg: QemuConfig) -> list[Arg]:
    """Render ``cfg`` exactly as govmm passes it to QEMU (the release's behaviours are in ``cfg``)."""
    out = _ArgvBuilder()
    src = cfg.sources
    out.add(cfg.path, sources=src.get("path", ()))
    if cfg.debug_threads:
        out.add("-name", f"{cfg.name},debug-threads=on", sources=src.get("name", ()) + src.get("debug_threads", ()))
    else:
        out.add("-name", cfg.name, sources=src.get("name", ()))
    out.add("-uuid", cfg.uuid, sources=("kata.random_uuid",))
    machine = ",".join(p for p in (cfg.machine.type, cfg.machine.options) if p)
    out.add("-machine", machine, sources=cfg.machine.sources)
    out.add("-cpu", cfg.cpu_model, sources=src.get("cpu", ()))
    qmp_sources = QMP_FD_SOURCES if cfg.qmp_transport == "fd" else src.get("vm_store", ())
    out.add("-qmp", QMP_VALUES[cfg.qmp_transport].format(path=cfg.qmp_socket), sources=qmp_sources)
    protocol, monitor_path = cfg.extra_monitor
    if protocol:
        out.add("-monitor" if protocol == "hmp" else f"-{protocol}",
                f"unix:path={monitor_path},server=on,wait=off", sources=src.get("extra_monitor", ()))
    mem = [cfg.memory.size]
    if cfg.memory.slots > 0:
        mem.append(f"slots={cfg.memory.slots}")
    if cfg.memory.max_mem:
        mem.append(f"maxmem={cfg.memory.max_mem}")
    out.add("-m", ",".join(mem), sources=cfg.memory.sources)
    for device in cfg.devices:
        if device.valid():
            out.add(*device.params(cfg.transport), sources=device.sources)
    out.add("-rtc", "base=utc,driftfix=slew,clock=host", sources=(FIXED,))
    out.add("-global", "kvm-pit.lost_tick_policy=discard", sources=(FIXED,))
    for flash in cfg.pflash:
        out.add("-pflash", flash, sources=src.get("pflash", ()))
    out.add("-vga", "none", sources=(FIXED,))
    out.add("-no-user-config", "-nodefaults", "-nographic", "--no-reboot", sources=(FIXED,))
    if cfg.daemonize:
        out.add("-daemonize", sources=(FIXED,))
    backend_sources = cfg.knobs.backend_sources
    out.add("-object", _memory_backend(cfg), sources=backend_sources)
    if cfg.dimm_supported:
        out.add("-numa", "node,memdev=dimm1", sources=backend_sources)
    else:
        out.add("-machine", "memory-backend=dimm1", sources=backend_sources + ("hypervisor.machine_type",))
    if cfg.kernel.path:
        out.add("-kernel", cfg.kernel.path, sources=cfg.kernel.path_sources)
        if cfg.kernel.initrd:
            out.add("-initrd", cfg.kernel.initrd, sources=cfg.kernel.initrd_sources)
        if cfg.kernel.params:
            out.add("-append", cfg.kernel.params, sources=cfg.kernel.params_sources)
    if cfg.bios:
        out.add("-bios", cfg.bios, sources=src.get("bios", ()))
    for iothread in cfg.iothreads:
        out.add("-object", f"iothread,id={iothread}", sources=src.get("iothreads", ()))
    if cfg.incoming_defer:
        out.add("-S", "-incoming", "defer", sources=src.get("incoming", ()))
    out.add("-pidfile", cfg.pidfile, sources=src.get("vm_store", ()))
    if cfg.log_file:
        out.add("-D", cfg.log_file, sources=src.get("log_file", ()))
    if cfg.seccomp_sandbox:
        out.add("-sandbox", cfg.seccomp_sandbox, sources=src.get("seccomp", ()))
    smp = cfg.smp
    if smp.cpus > 0:
        parts = [str(smp.cpus)]
        parts += [f"{name}={value}" for name, value in
                  (("cores", smp.cores), ("threads", smp.threads), ("sockets", smp.sockets)) if value > 0]
        if smp.max_cpus > 0:  # never below cpus: kata.validate.check_qemu_launch rejected that
            parts.append(f"maxcpus={smp.max_cpus}")
        out.add("-smp", ",".join(parts), sources=smp.sources)
    return out.args
