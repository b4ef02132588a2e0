"""The pod network's host side, built per VM as Kata 3.0.0's runtime builds it in the pod's network namespace.

For every VM: a private network namespace ``kt-XXXX`` (the pod's; never the host's) and a second private one
``kt-XXXX-peer`` standing in for the host side of CNI, joined per endpoint by a veth pair (``ethI`` with the
endpoint's MAC and a /30 address in the pod netns, ``vethI`` with the peer address in the peer netns). Then
Kata's plumbing for the endpoint's ``internetworking_model`` (virtcontainers/network_linux.go):

- ``tcfilter`` (``setupTCFiltering``): a multiqueue tap ``tapI_kata`` opened N times in the pod netns
  (IFF_TAP|IFF_NO_PI|IFF_VNET_HDR|IFF_MULTI_QUEUE, persist on), MTU of ``ethI``, up; ``ingress`` qdiscs on
  the tap then on ``ethI``; u32 ``match u32 0 0`` filters ``mirred egress redirect`` ethI -> tap, tap -> ethI;
- ``macvtap`` (``tapNetworkPair``): ``tapI_kata@ethI`` macvtap ``mode bridge`` at a random ifindex
  8192 + (rand & 0xFFFF), MTU of ``ethI``; ``ethI`` gets a random local MAC, the macvtap the veth's original
  one; up; ``ethI``'s addresses removed; ``/dev/tap<ifindex>`` opened N times.

The tap queues become ``passed`` fds of the launch plan at exactly the numbers ``-netdev tap,fds=`` names;
``vhostfds=`` numbers become ``/dev/vhost-net`` opens where it exists, else one recorded Override per netdev
dropping ``vhost=on``/``vhostfds``. Ownership: the namespaces are recorded in a marked runtime dir
(``.katatest-netns``); ``close()`` deletes them (which removes every link, qdisc and filter in them), and
``katatest.launch.sweep`` deletes those of dead owners. Needs root (see ``unavailable_reason``).
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import ipaddress
import json
import os
import random
import shutil
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TypeVar

from katatest.generate.options import option_values, props
from katatest.generate.plumbing import NetPlumbing
from katatest.launch.errors import LaunchError, PlanError
from katatest.launch.fds import InheritedFd, check_unique
from katatest.launch.plan import LaunchPlan, Override, with_overrides
from katatest.launch.proc import owner_token, token_alive
from katatest.launch.vm import RUNTIME_PREFIX, make_runtime_dir

MODELS = ("tcfilter", "macvtap")
NETNS_FILE = ".katatest-netns"  # in the owner's marked runtime dir: the namespaces it made
LOCK_FILE = ".katatest-net.lock"  # in the runtime parent: serialises address-slot choice
PEER_SUFFIX = "-peer"
NETNS_RUN = "/run/netns"
VHOST_NET = "/dev/vhost-net"
TUN = "/dev/net/tun"
ADDRESS_POOL = ipaddress.ip_network("10.128.0.0/9")  # one /30 per endpoint, MAX_ENDPOINTS per VM slot
MAX_ENDPOINTS = 8
MACVTAP_INDEX_OFFSET, MACVTAP_INDEX_RANGE, MACVTAP_RETRIES = 8192, 0xFFFF, 128  # Kata's hostLinkOffset etc.

# linux/if_tun.h, linux/sched.h
IFF_TAP, IFF_NO_PI, IFF_MULTI_QUEUE, IFF_VNET_HDR = 0x0002, 0x1000, 0x0100, 0x4000
TAP_FLAGS = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | IFF_MULTI_QUEUE  # netlink's TUNTAP_MULTI_QUEUE_DEFAULTS|VNET_HDR
TUNSETIFF, TUNSETPERSIST, TUNSETOWNER, TUNSETGROUP = 0x400454CA, 0x400454CB, 0x400454CC, 0x400454CE
CLONE_NEWNET = 0x40000000

_libc = ctypes.CDLL(None, use_errno=True)
T = TypeVar("T")


class NetworkError(LaunchError):
    """The pod network cannot be built (or read back) on this host."""


# --- the endpoints, as the argv names them ---------------------------------------------------------------

@dataclass(frozen=True)
class NetEndpoint:
    """One cold-plugged pod interface: ``ethI`` with ``mac``, plumbed by ``model`` with ``queues`` queues, its
    tap queues expected by QEMU at ``tap_fds`` and its vhost-net fds at ``vhost_fds`` (empty: vhost off)."""

    name: str
    mac: str
    model: str
    queues: int
    tap_fds: tuple[int, ...]
    vhost_fds: tuple[int, ...] = ()
    netdev_id: str = ""
    addresses: tuple[str, ...] = ()  # the veth's CIDRs as CNI set them; () = a /30 of katatest's pool

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise PlanError(f"{self.name}: internetworking model {self.model!r} has no plumbing "
                            f"(one of {', '.join(MODELS)})")
        if len(self.tap_fds) != self.queues or (self.vhost_fds and len(self.vhost_fds) != self.queues):
            raise PlanError(f"{self.netdev_id or self.name}: {self.queues} queues but fds={self.tap_fds} "
                            f"vhostfds={self.vhost_fds}")
        for addr in self.addresses:
            try:
                ipaddress.ip_interface(addr)
            except ValueError:
                raise PlanError(f"{self.name}: address {addr!r} is not a CIDR") from None

    @property
    def index(self) -> int:
        return int(self.name.removeprefix("eth"))

    @property
    def tap_name(self) -> str:
        """Kata names its tap (tcfilter) or macvtap ``tap<I>_kata``, I = the endpoint's scan index."""
        return f"tap{self.index}_kata"

    @property
    def peer_name(self) -> str:
        return f"veth{self.index}"


def _fd_list(value: str, what: str) -> tuple[int, ...]:
    try:
        return tuple(int(n) for n in value.split(":")) if value else ()
    except ValueError:
        raise PlanError(f"-netdev {what}={value!r}: not a list of fd numbers") from None


def endpoints_from_argv(argv: Sequence[str], model: str = "tcfilter") -> list[NetEndpoint]:
    """The endpoints a generated argv names: ``-netdev tap,id=network-I,[vhost=on,vhostfds=..,]fds=..`` with its
    ``-device ...,netdev=network-I,mac=...``; ``model`` is the config's ``internetworking_model`` (the argv
    is the same for tcfilter and macvtap)."""
    macs = {props(v).get("netdev"): props(v).get("mac") for v in option_values(argv, "-device")
            if "netdev=" in v}
    out = []
    for value in option_values(argv, "-netdev"):
        p = props(value)
        if p.get("") != "tap":
            continue
        netdev = p.get("id", "")
        if not netdev.startswith("network-") or not netdev[len("network-"):].isdigit():
            raise PlanError(f"-netdev {value}: id is not Kata's network-I")
        if not macs.get(netdev):
            raise PlanError(f"-netdev {value}: no -device with netdev={netdev},mac=")
        taps = _fd_list(p.get("fds", ""), "fds")
        vhost = _fd_list(p.get("vhostfds", ""), "vhostfds") if p.get("vhost") == "on" else ()
        out.append(NetEndpoint(f"eth{netdev[len('network-'):]}", macs[netdev].lower(), model, len(taps), taps,
                               vhost, netdev))
    return out


class NotPlumbedYet(PlanError):
    """A part of Kata's host side katatest does not build yet (a named reason to skip, unlike other plan
    errors)."""


def endpoint_from_plumbing(p: NetPlumbing) -> NetEndpoint:
    """The endpoint the generator rendered (its NetPlumbing), refusing what katatest does not plumb yet."""
    if p.rx_rate or p.tx_rate:
        raise NotPlumbedYet(f"{p.endpoint}: rate limiters (rx/tx_rate_limiter_max_rate) are not plumbed by "
                            "katatest")
    return NetEndpoint(p.endpoint, p.mac.lower(), p.model, p.queues, tuple(p.tap_fds),
                       tuple(p.vhost_fds) if p.vhost else (), p.netdev_id, tuple(p.addresses))


def model_of_config(doc: dict) -> str:
    """``[runtime] internetworking_model`` of a parsed configuration TOML, with Kata's default."""
    model = doc.get("runtime", {}).get("internetworking_model", "") or "tcfilter"
    return "tcfilter" if model == "default" else model


# --- privileges --------------------------------------------------------------------------------------------

def unavailable_reason() -> str | None:
    """Why this host cannot build pod networks (None: it can)."""
    if os.geteuid() != 0:
        return ("the pod network needs root: creating network namespaces (bind mounts under /run/netns), "
                "veths, taps and tc filters in them needs CAP_NET_ADMIN and CAP_SYS_ADMIN in the host's "
                "namespaces")
    for tool in ("ip", "tc"):
        if not shutil.which(tool):
            return f"{tool} (iproute2) is not installed"
    if not os.path.exists(TUN):
        return f"{TUN} is absent (no tun/tap driver)"
    return None


# --- commands ----------------------------------------------------------------------------------------------

def run(*cmd: str) -> str:
    """Run an iproute2 command; one-line NetworkError naming it on failure."""
    proc = subprocess.run(list(cmd), capture_output=True, text=True)
    if proc.returncode != 0:
        raise NetworkError(f"{' '.join(cmd)}: {proc.stderr.strip() or f'exit {proc.returncode}'}")
    return proc.stdout


def ip_json(netns: str, *args: str) -> list[dict]:
    """``ip -j -n NETNS ARGS`` parsed (``[]`` for empty output)."""
    out = run("ip", "-j", "-d", "-n", netns, *args)
    return json.loads(out) if out.strip() else []


def tc_json(netns: str, *args: str) -> list[dict]:
    """``tc -j -s -n NETNS ARGS`` parsed (``[]`` for empty output)."""
    out = run("tc", "-j", "-s", "-n", netns, *args)
    return json.loads(out) if out.strip() else []


def redirected_packets(netns: str, dev: str) -> int:
    """Packets ``dev``'s ingress u32 filters redirected with ``mirred`` (Kata's tcfilter path)."""
    total = 0
    for f in tc_json(netns, "filter", "show", "dev", dev, "ingress"):
        for action in f.get("options", {}).get("actions", []):
            if action.get("kind") == "mirred":
                total += int(action.get("stats", {}).get("packets", 0))
    return total


def link_bytes(netns: str, dev: str) -> tuple[int, int]:
    """(rx, tx) bytes of ``dev`` in ``netns``."""
    out = json.loads(run("ip", "-j", "-s", "-n", netns, "link", "show", "dev", dev))
    stats = out[0]["stats64"]
    return int(stats["rx"]["bytes"]), int(stats["tx"]["bytes"])


def netns_names() -> list[str]:
    """The named network namespaces (``ip netns list``)."""
    out = run("ip", "-j", "netns", "list")
    return sorted(n["name"] for n in json.loads(out)) if out.strip() else []


def in_netns(netns: str, fn: Callable[[], T]) -> T:
    """``fn()`` run in a fresh thread that has joined ``netns`` (setns changes only the calling thread)."""
    result: dict[str, object] = {}

    def body() -> None:
        try:
            fd = os.open(f"{NETNS_RUN}/{netns}", os.O_RDONLY | os.O_CLOEXEC)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise NetworkError(f"setns into {netns}: {os.strerror(err)}")
            finally:
                os.close(fd)
            result["value"] = fn()
        except BaseException as exc:  # re-raised in the caller
            result["error"] = exc

    thread = threading.Thread(target=body, name=f"netns-{netns}")
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]  # type: ignore[misc]
    return result["value"]  # type: ignore[return-value]


def open_tap_queues(name: str, queues: int) -> list[int]:
    """``queues`` fds of the multiqueue tap ``name`` (created by the first TUNSETIFF), made persistent and
    owned by uid/gid 0 (``user root group root``), as Kata's netlink ``LinkAdd(Tuntap)`` does; in the calling
    thread's netns. Close-on-exec."""
    fds: list[int] = []
    try:
        for _ in range(queues):
            fd = os.open(TUN, os.O_RDWR | os.O_CLOEXEC)
            fds.append(fd)
            fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH22x", name.encode(), TAP_FLAGS))
        for request, value in ((TUNSETPERSIST, 1), (TUNSETOWNER, 0), (TUNSETGROUP, 0)):
            fcntl.ioctl(fds[0], request, value)
    except OSError as exc:
        for fd in fds:
            os.close(fd)
        raise NetworkError(f"{TUN}: TUNSETIFF {name}: {exc.strerror}") from None
    return fds


def tun_iff(fd: int, pid: int | str = "self") -> str | None:
    """The tap a /dev/net/tun fd is attached to (``iff:`` of its fdinfo), None if it is not a tun fd."""
    try:
        text = Path(f"/proc/{pid}/fdinfo/{fd}").read_text()
    except OSError:
        return None
    return next((line.split(None, 1)[1].strip() for line in text.splitlines() if line.startswith("iff:")), None)


def random_local_mac(rng: random.Random) -> str:
    """A random locally administered unicast MAC, like Kata's VirtIface.HardAddr."""
    octets = [rng.randrange(256) for _ in range(6)]
    octets[0] = (octets[0] & 0xFC) | 0x02
    return ":".join(f"{o:02x}" for o in octets)


# --- ownership records and address slots -------------------------------------------------------------------

def recorded_netns(run_dir: Path) -> list[str]:
    """The namespaces an owner recorded in its runtime dir (only ``kt-`` names: never anyone else's)."""
    try:
        names = json.loads((run_dir / NETNS_FILE).read_text()).get("netns", [])
    except (OSError, ValueError, AttributeError):
        return []
    return [n for n in names if isinstance(n, str) and n.startswith(RUNTIME_PREFIX) and "/" not in n]


# Where each katatest namespace names its owner (``<name>`` holds the owner's token), whatever TMPDIR or
# XDG_RUNTIME_DIR its run had: the sweep of any later run finds orphans here (network namespaces need root).
OWNERS_DIR = Path("/run/katatest-netns")


def delete_netns(names: Sequence[str]) -> tuple[list[str], list[str]]:
    """Delete the named namespaces that exist: (deleted, (name: why) for those that still exist). One another
    process deleted meanwhile is neither: it is gone, which is all the caller needs."""
    if not names or not shutil.which("ip"):
        return [], []
    try:
        existing = set(netns_names())
    except (NetworkError, ValueError) as err:
        return [], [f"{name}: cannot list namespaces ({err})" for name in names]
    gone, failed = [], []
    for name in names:
        if name not in existing:
            _forget_owner(name)
            continue
        proc = subprocess.run(["ip", "netns", "delete", name], capture_output=True, text=True)
        if name in netns_names():
            failed.append(f"{name}: {proc.stderr.strip() or f'ip netns delete exited {proc.returncode}'}")
            continue
        _forget_owner(name)
        if proc.returncode == 0:
            gone.append(name)
        # else: another sweep deleted it since the listing (a dead owner's namespaces are every sweep's to take)
    return gone, failed


def _record_owner(name: str) -> None:
    OWNERS_DIR.mkdir(mode=0o700, exist_ok=True)
    (OWNERS_DIR / name).write_text(owner_token())


def _forget_owner(name: str) -> None:
    with contextlib.suppress(OSError):
        (OWNERS_DIR / name).unlink()


def orphaned_netns() -> list[str]:
    """katatest namespaces whose owner process is gone, from OWNERS_DIR (whatever run dir recorded them)."""
    if not OWNERS_DIR.is_dir():
        return []
    out = []
    for record in sorted(OWNERS_DIR.glob(f"{RUNTIME_PREFIX}*")):
        with contextlib.suppress(OSError):
            if not token_alive(record.read_text().strip()):
                out.append(record.name)
    return out


def remove_recorded_netns(run_dir: Path) -> tuple[list[str], list[str]]:
    """Delete what ``run_dir`` records (for the sweep): (deleted, could not be deleted with why)."""
    return delete_netns(recorded_netns(run_dir))


def _claim_slot(record: Path, names: list[str]) -> int:
    """The lowest address slot no live record holds, written with ``names`` into ``record`` under a lock."""
    parent = record.parent.parent
    with open(parent / LOCK_FILE, "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        used = set()
        for other in parent.glob(f"{RUNTIME_PREFIX}*/{NETNS_FILE}"):
            with contextlib.suppress(OSError, ValueError, AttributeError):
                used.add(int(json.loads(other.read_text())["slot"]))
        slot = next(n for n in range(len(used) + 1) if n not in used)
        record.write_text(json.dumps({"netns": names, "slot": slot}))
    return slot


def peer_address(pod: str) -> str:
    """The host side's address for pod address ``pod`` (CIDR): the first other host of its IPv4 network."""
    iface = ipaddress.ip_interface(pod)
    if iface.version != 4 or iface.network.prefixlen > 30:
        raise NetworkError(f"{pod}: the host side needs an IPv4 network with room for a peer (/30 or larger)")
    host = next(h for h in iface.network.hosts() if h != iface.ip)
    return f"{host}/{iface.network.prefixlen}"


def slot_addresses(slot: int, index: int) -> tuple[str, str]:
    """(pod address, peer address) with prefix for endpoint ``index`` of address slot ``slot``: a /30."""
    if index >= MAX_ENDPOINTS:
        raise NetworkError(f"eth{index}: at most {MAX_ENDPOINTS} endpoints per VM")
    base = ADDRESS_POOL.network_address + 4 * (slot * MAX_ENDPOINTS + index)
    if base + 3 > ADDRESS_POOL.broadcast_address:
        raise NetworkError(f"address pool {ADDRESS_POOL} exhausted (slot {slot})")
    return f"{base + 2}/30", f"{base + 1}/30"


# --- the plumbing ------------------------------------------------------------------------------------------

@dataclass
class Plumbed:
    """What was built for one endpoint: addresses, the device QEMU's queues belong to, the owner's fds."""

    endpoint: NetEndpoint
    pod_address: str
    peer_address: str
    device: str
    mtu: int
    macvtap_index: int | None = None
    fds: list[int] = field(default_factory=list)

    @property
    def char_device(self) -> str:
        """The character device the queues were opened from."""
        return f"/dev/tap{self.macvtap_index}" if self.macvtap_index is not None else TUN


class PodNetwork:
    """The host side of one VM's pod network. ``PodNetwork.build(endpoints)`` (or as a context manager),
    ``apply(plan)`` for the launch plan, ``close()`` to remove everything."""

    def __init__(self, run_dir: Path, endpoints: Sequence[NetEndpoint], seed: int | None = None) -> None:
        self.run_dir = run_dir
        self.netns = run_dir.name
        self.peer_netns = run_dir.name + PEER_SUFFIX
        self.endpoints = list(endpoints)
        self.plumbed: list[Plumbed] = []
        self.slot: int | None = None
        self._rng = random.Random(seed)
        self.closed = False

    @classmethod
    def build(cls, endpoints: Sequence[NetEndpoint], seed: int | None = None) -> PodNetwork:
        reason = unavailable_reason()
        if reason:
            raise NetworkError(f"pod network unavailable: {reason}")
        names = [e.name for e in endpoints]
        if len(set(names)) != len(names):
            raise NetworkError(f"endpoint names repeat: {names}")
        pod = cls(Path(make_runtime_dir()), endpoints, seed)
        try:
            pod._build()
        except BaseException:
            pod.close()
            raise
        return pod

    def __enter__(self) -> PodNetwork:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _build(self) -> None:
        self.slot = _claim_slot(self.run_dir / NETNS_FILE, [self.netns, self.peer_netns])
        for ns in (self.netns, self.peer_netns):
            _record_owner(ns)
            run("ip", "netns", "add", ns)
            run("ip", "-n", ns, "link", "set", "lo", "up")
        # Each peer address answers only on its own veth (ARP and reverse path): a guest NIC plumbed to the wrong
        # endpoint cannot reach the other endpoint's peer (Linux's defaults would answer on any interface).
        for conf in ("all", "default"):
            for key, value in (("arp_ignore", "1"), ("arp_announce", "2"), ("rp_filter", "1")):
                run("ip", "netns", "exec", self.peer_netns, "sysctl", "-q", "-w",
                    f"net.ipv4.conf.{conf}.{key}={value}")
        for endpoint in self.endpoints:
            self.plumbed.append(self._plumb(endpoint))

    def _veth(self, ep: NetEndpoint) -> tuple[str, str, int]:
        """What CNI would have made: ``ethI`` (MAC, address, up) in the pod netns, ``vethI`` in the peer's."""
        ipv4 = [a for a in ep.addresses if ipaddress.ip_interface(a).version == 4]
        if ipv4:
            pod_addr, peer_addr = ipv4[0], peer_address(ipv4[0])
        else:
            pod_addr, peer_addr = slot_addresses(self.slot or 0, ep.index)
        ns, peer = self.netns, self.peer_netns
        run("ip", "-n", ns, "link", "add", ep.name, "address", ep.mac, "type", "veth",
            "peer", "name", ep.peer_name, "netns", peer)
        for addr in ep.addresses or (pod_addr,):
            run("ip", "-n", ns, "addr", "add", addr, "dev", ep.name)
        run("ip", "-n", ns, "link", "set", ep.name, "up")
        run("ip", "-n", peer, "addr", "add", peer_addr, "dev", ep.peer_name)
        run("ip", "-n", peer, "link", "set", ep.peer_name, "up")
        link = ip_json(ns, "link", "show", "dev", ep.name)[0]
        return pod_addr, peer_addr, int(link["mtu"])

    def _plumb(self, ep: NetEndpoint) -> Plumbed:
        pod_addr, peer_addr, mtu = self._veth(ep)
        done = Plumbed(ep, pod_addr, peer_addr, ep.tap_name, mtu)
        if ep.model == "tcfilter":
            self._tcfilter(ep, done)
        else:
            self._macvtap(ep, done)
        return done

    def _tcfilter(self, ep: NetEndpoint, done: Plumbed) -> None:
        ns, tap = self.netns, ep.tap_name
        done.fds = in_netns(ns, lambda: open_tap_queues(tap, ep.queues))
        run("ip", "-n", ns, "link", "set", tap, "mtu", str(done.mtu))
        run("ip", "-n", ns, "link", "set", tap, "up")
        for dev in (tap, ep.name):
            run("tc", "-n", ns, "qdisc", "add", "dev", dev, "ingress")
        for src, dst in ((ep.name, tap), (tap, ep.name)):
            run("tc", "-n", ns, "filter", "add", "dev", src, "parent", "ffff:", "protocol", "all",
                "u32", "match", "u32", "0", "0", "action", "mirred", "egress", "redirect", "dev", dst)

    def _macvtap(self, ep: NetEndpoint, done: Plumbed) -> None:
        ns, tap = self.netns, ep.tap_name
        veth = ip_json(ns, "link", "show", "dev", ep.name)[0]
        qlen = str(veth.get("txqlen") or 1000)
        for _ in range(MACVTAP_RETRIES):
            index = MACVTAP_INDEX_OFFSET + (self._rng.getrandbits(32) & MACVTAP_INDEX_RANGE)
            if os.path.exists(f"/dev/tap{index}"):
                continue  # another VM's macvtap has that index (the node name is global)
            proc = subprocess.run(["ip", "-n", ns, "link", "add", "link", ep.name, "name", tap, "index",
                                   str(index), "txqueuelen", qlen, "type", "macvtap", "mode", "bridge"],
                                  capture_output=True, text=True)
            if proc.returncode == 0:
                break
        else:
            raise NetworkError(f"{tap}: no free macvtap index after {MACVTAP_RETRIES} tries")
        done.macvtap_index = index
        run("ip", "-n", ns, "link", "set", tap, "mtu", str(done.mtu))
        run("ip", "-n", ns, "link", "set", ep.name, "address", random_local_mac(self._rng))
        run("ip", "-n", ns, "link", "set", tap, "address", veth["address"])
        run("ip", "-n", ns, "link", "set", tap, "up")
        run("ip", "-n", ns, "addr", "flush", "dev", ep.name)
        run("ip", "-n", ns, "link", "set", ep.name, "up")
        done.fds = open_macvtap_queues(ns, tap, index, ep.queues)

    # -- the launch plan ----------------------------------------------------------------------------------
    def inherited(self, vhost_net: bool) -> list[InheritedFd]:
        """The fds QEMU inherits for the endpoints: vhost-net opens (if ``vhost_net``), then the tap queues."""
        out = []
        for done in self.plumbed:
            ep = done.endpoint
            if vhost_net:
                out += [InheritedFd(n, "device", f"{ep.netdev_id} vhostfds= queue {q}", path=VHOST_NET)
                        for q, n in enumerate(ep.vhost_fds)]
            out += [InheritedFd(n, "passed", f"{ep.netdev_id} fds= queue {q}: {done.device} "
                                f"({done.char_device}) in netns {self.netns}", owner_fd=fd)
                    for q, (n, fd) in enumerate(zip(ep.tap_fds, done.fds, strict=True))]
        return out

    def apply(self, plan: LaunchPlan, vhost_net: bool | None = None) -> LaunchPlan:
        """``plan`` with the endpoints' fds placed at the argv's numbers; without ``/dev/vhost-net``
        (``vhost_net`` default: whether it exists) each vhost netdev loses ``vhost=on``/``vhostfds`` (an
        Override)."""
        vhost_net = os.path.exists(VHOST_NET) if vhost_net is None else vhost_net
        overrides = [] if vhost_net else vhost_overrides(plan.argv)
        plan = with_overrides(plan, overrides) if overrides else plan
        return replace(plan, extra_fds=check_unique([*plan.extra_fds, *self.inherited(vhost_net)]))

    # -- teardown -----------------------------------------------------------------------------------------
    def close_fds(self) -> None:
        """Close the owner's queue fds (QEMU keeps its own copies once started)."""
        for done in self.plumbed:
            for fd in done.fds:
                with contextlib.suppress(OSError):
                    os.close(fd)
            done.fds = []

    def close(self) -> None:
        """Close the fds, delete both namespaces (with every link, qdisc and filter in them), drop the record.

        A namespace that cannot be deleted is a leak: NetworkError naming it, and the record stays for the
        sweep."""
        if self.closed:
            return
        self.closed = True
        self.close_fds()
        _, failed = delete_netns([self.netns, self.peer_netns])
        if failed:
            raise NetworkError(f"pod network leaked: {'; '.join(failed)} (left recorded in {self.run_dir} and "
                               f"{OWNERS_DIR} for the sweep)")
        shutil.rmtree(self.run_dir, ignore_errors=True)


def open_macvtap_queues(netns: str, tap: str, index: int, queues: int) -> list[int]:
    """``queues`` opens of ``/dev/tap<index>``, checked to be ``tap``'s own node (devtmpfs names it by ifindex,
    which is per-netns: another namespace's macvtap could hold the name)."""
    sysfs = run("ip", "netns", "exec", netns, "cat", f"/sys/class/net/{tap}/macvtap/tap{index}/dev").strip()
    major, minor = (int(n) for n in sysfs.split(":"))
    node = f"/dev/tap{index}"
    deadline = time.monotonic() + 5
    while not os.path.exists(node) and time.monotonic() < deadline:
        time.sleep(0.02)
    fds: list[int] = []
    try:
        for _ in range(queues):
            fds.append(os.open(node, os.O_RDWR | os.O_CLOEXEC))
        rdev = os.fstat(fds[0]).st_rdev
        if (os.major(rdev), os.minor(rdev)) != (major, minor):
            raise NetworkError(f"{node} is {os.major(rdev)}:{os.minor(rdev)}, not {tap}'s {sysfs}")
    except OSError as exc:
        for fd in fds:
            os.close(fd)
        raise NetworkError(f"{node}: {exc.strerror}") from None
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    return fds


def vhost_overrides(argv: Sequence[str]) -> list[Override]:
    """Without ``/dev/vhost-net``: every ``-netdev tap`` with ``vhost=on`` loses ``vhost=on`` and ``vhostfds``
    (QEMU's userspace virtio-net backend serves the same tap queues)."""
    out = []
    for value in option_values(argv, "-netdev"):
        if props(value).get("") != "tap" or props(value).get("vhost") != "on":
            continue
        new = ",".join(item for item in value.split(",")
                       if item.partition("=")[0] not in ("vhost", "vhostfds"))
        out.append(Override("no-vhost-net", ("-netdev", value), ("-netdev", new),
                            f"{VHOST_NET} is absent on this host: vhost=on/vhostfds dropped, QEMU's own "
                            "virtio-net backend serves the same tap queues"))
    return out
