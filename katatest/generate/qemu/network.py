"""Kata 3.0.0's ``Sandbox.createNetwork`` for QEMU: the pod's endpoints cold-plugged as ``-netdev``/``-device``.

Kata scans the pod network namespace (katatest's host facts: ``facts.net_endpoints``, in scan order), and per
endpoint ``VethEndpoint.Attach`` runs ``xConnectVMNetwork`` (tcfilter: a multiqueue tap plus tc redirects;
macvtap: a macvtap on the veth), opens N tap fds and, unless ``disable_vhost_net``, N vhost-net fds
(N = the VM's vCPUs after clamping: QEMU supports multiqueue), then ``qemu.AddDevice(NetDev)`` appends govmm's
``NetDevice`` after the agent's vsock and shared-fs devices. Rate limiters come next (tx on macvtap needs an
``ifb0`` per endpoint). govmm numbers the fds as it renders: ExtraFiles entry i is fd 3 + i, the vsock's first.
"""

from __future__ import annotations

from dataclasses import dataclass

from katatest.errors import ConfigError
from katatest.generate.plumbing import PLUMBED_MODELS, NetPlumbing
from katatest.generate.provenance import FieldSources
from katatest.generate.qemu.devices import Device, Sources, VhostVsock
from katatest.generate.qemu.transport import PCI, disable_modern, virtio_name
from katatest.host.endpoints import NetEndpoint
from katatest.host.facts import HostFacts
from katatest.kata.hypervisor_config import HypervisorConfig, KataConfig
from katatest.kata.releases import QemuBehaviour

MODEL_KEY = "runtime.internetworking_model"
NEW_NETNS_KEY = "runtime.disable_new_netns"
FIRST_EXTRA_FD = 3  # os/exec ExtraFiles: entry i becomes fd 3 + i
FD_ORDER = "kata.extra_files_order"  # fd numbers: position in govmm's ExtraFiles
# The models whose tx rate limiter redirects to an ifb device Kata creates as "ifb0" for every endpoint.
IFB_TX_MODELS = ("macvtap", "none")


@dataclass
class Netdev(Device):
    """The ``-netdev tap`` backend of one endpoint (govmm ``NetDevice.QemuNetdevParams``)."""

    id: str = ""
    ifname: str = ""
    vhost: bool = False
    vhost_fds: tuple[int, ...] = ()
    tap_fds: tuple[int, ...] = ()

    def valid(self) -> bool:
        return bool(self.id and self.ifname)

    def params(self, transport: str) -> list[str]:
        opts = ["tap", f"id={self.id}"]
        if self.vhost:
            opts.append("vhost=on")
            if self.vhost_fds:
                opts.append("vhostfds=" + ":".join(map(str, self.vhost_fds)))
        if self.tap_fds:
            opts.append("fds=" + ":".join(map(str, self.tap_fds)))
        else:
            opts += [f"ifname={self.ifname}", "downscript=no", "script=no"]
        return ["-netdev", ",".join(opts)]


@dataclass
class VirtioNet(Device):
    """The ``-device virtio-net`` frontend of one endpoint (govmm ``NetDevice.QemuDeviceParams``)."""

    netdev: str = ""
    mac: str = ""
    disable_modern: bool = False
    queues: int = 0  # the tap fds: mq=on, and on PCI vectors=2N+2
    bus: str = ""  # bus=pcie.0 right after mac= (release.qemu.pcie_root_bus_pin)

    def valid(self) -> bool:
        return bool(self.netdev)

    def params(self, transport: str) -> list[str]:
        opts = [f"driver={virtio_name('virtio-net', transport)}", f"netdev={self.netdev}", f"mac={self.mac}",
                *([f"bus={self.bus}"] if self.bus else []), *disable_modern(transport, self.disable_modern)]
        if self.queues > 0:
            opts.append("mq=on" + (f",vectors={2 * self.queues + 2}" if transport == PCI else ""))
        return ["-device", ",".join(opts)]


def fds_taken(devices: list[Device]) -> int:
    """How many ExtraFiles govmm has appended once it rendered ``devices`` (invalid devices render nothing)."""
    count = 0
    for device in devices:
        if not device.valid():
            continue
        if isinstance(device, VhostVsock):
            count += 1
        elif isinstance(device, Netdev):
            count += len(device.vhost_fds) + len(device.tap_fds)
    return count


def network_devices(cfg: KataConfig, facts: HostFacts, devices: list[Device], nested_run: bool,
                    nested_src: Sources, transport: str, source: str = "", behaviour: QemuBehaviour | None = None,
                    machine: str = "") -> tuple[list[Device], list[NetPlumbing]]:
    """The devices ``createNetwork`` appends after ``devices`` (the VM built so far) and their plumbing.

    Raises ConfigError, naming the key, where Kata 3.0.0's createNetwork fails."""
    if cfg.runtime.disable_new_netns:
        return [], []  # createNetwork returns at once: no scan, no device
    scanned = [e for e in facts.net_endpoints if e.addresses]  # the scan skips unconfigured interfaces
    hv = cfg.hypervisor
    src = FieldSources(cfg, "hypervisor.qemu")
    model = cfg.runtime.internetworking_model
    queues = hv.num_vcpus  # QEMU's capabilities say multiqueue: queues = NumVCPUs
    vhost = not hv.disable_vhost_net
    added: list[Device] = []
    plumbing: list[NetPlumbing] = []
    behaviour = behaviour or QemuBehaviour(daemonize=True, qmp="socket", kernel_irqchip=True, debug_log=True)
    first_fd = FIRST_EXTRA_FD + (1 if behaviour.qmp == "fd" else 0)  # fd 3: the QMP listener Kata passes
    fd_src = ("release.qemu.qmp",) if behaviour.qmp == "fd" else ()
    # release.qemu.pcie_root_bus_pin: bus=pcie.0 on the virtio-net-pci of a machine with a pcie.0 root
    pin = behaviour.pcie_root_bus_pin and transport == PCI and machine.startswith(("q35", "virt"))
    pin_src = ("release.qemu.pcie_root_bus_pin", "hypervisor.qemu.machine_type") if pin else ()
    for index, endpoint in enumerate(scanned):  # index = len(n.eps): names tap<I>_kata and network-<I>
        _check_connect(endpoint, model, vhost, facts, src, source)
        first = first_fd + fds_taken(devices + added)
        vhost_fds = tuple(range(first, first + queues)) if vhost else ()
        tap_fds = tuple(range(first + len(vhost_fds), first + len(vhost_fds) + queues))
        netdev_id = f"network-{index}"
        backend_src = _backend_sources(endpoint, devices + added, hv, src)
        added.append(Netdev(id=netdev_id, ifname=f"tap{index}_kata", vhost=vhost, vhost_fds=vhost_fds,
                            tap_fds=tap_fds, sources=backend_src + fd_src))
        frontend_src = (endpoint.source, endpoint.mac_source, *src("num_vcpus"), *src("hypervisor_machine_type"))
        if transport == PCI:
            frontend_src += nested_src
        added.append(VirtioNet(netdev=netdev_id, mac=endpoint.mac, disable_modern=nested_run, queues=len(tap_fds),
                               bus="pcie.0" if pin else "", sources=tuple(dict.fromkeys(frontend_src + pin_src))))
        _check_rate_limiters(index, endpoint, model, hv.tx_rate_limiter_max_rate, src, source)
        plumbing.append(NetPlumbing(endpoint=endpoint.name, kind=endpoint.kind, model=model,
                                    tap=f"tap{index}_kata", netdev_id=netdev_id, mac=endpoint.mac, queues=queues,
                                    vhost=vhost, vhost_fds=vhost_fds, tap_fds=tap_fds,
                                    rx_rate=hv.rx_rate_limiter_max_rate, tx_rate=hv.tx_rate_limiter_max_rate,
                                    addresses=endpoint.addresses))
    return added, plumbing


def _backend_sources(endpoint: NetEndpoint, before: list[Device], hv: HypervisorConfig,
                     src: FieldSources) -> Sources:
    """Endpoint, model, vhost, queue count, fd numbering (what holds the fds before), rate limiters set."""
    sources = [endpoint.source, MODEL_KEY, *src("disable_vhost_net"), *src("num_vcpus"), FD_ORDER]
    if not hv.disable_vhost_net:
        sources.append("host.vhost_net")  # the vhost fds open /dev/vhost-net
    if any(isinstance(d, VhostVsock) and d.valid() for d in before):
        sources.append("host.vsock")
    sources += [s for d in before if isinstance(d, Netdev) for s in d.sources[:1]]  # earlier endpoints' fds
    if hv.rx_rate_limiter_max_rate:
        sources += src("rx_rate_limiter_max_rate")
    if hv.tx_rate_limiter_max_rate:
        sources += src("tx_rate_limiter_max_rate")
    return tuple(dict.fromkeys(sources))


def _check_connect(endpoint: NetEndpoint, model: str, vhost: bool, facts: HostFacts, src: FieldSources,
                   source: str) -> None:
    """``xConnectVMNetwork``'s failures: no host side for model "none"; no /dev/vhost-net to open."""
    if model not in PLUMBED_MODELS:
        raise ConfigError(MODEL_KEY, f"Invalid internetworking model ({model!r} cannot connect "
                          f"endpoint {endpoint.name} to the VM)", source, kata="Invalid internetworking model")
    if vhost and not facts.vhost_net:
        raise ConfigError(src("disable_vhost_net")[0], f"Could not setup vhost fds "
                          f"{endpoint.name} : open /dev/vhost-net: no such file or directory (host fact "
                          f"--no-vhost-net; set disable_vhost_net = true)", source,
                          kata=f"Could not setup vhost fds {endpoint.name} : open /dev/vhost-net")


def _check_rate_limiters(index: int, endpoint: NetEndpoint, model: str, tx_rate: int, src: FieldSources,
                         source: str) -> None:
    """``addTxRateLimiter``: with macvtap every endpoint creates ``ifb0``, so the second one fails."""
    if tx_rate and model in IFB_TX_MODELS and index > 0:
        raise ConfigError(src("tx_rate_limiter_max_rate")[0], f"Could not create link ifb0: "
                          f"RTNETLINK answers: File exists (each {model} endpoint creates ifb0 for its tx rate "
                          f"limiter; {endpoint.name} is the second)", source, kata="Could not create link ifb0: ")
