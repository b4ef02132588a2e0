"""The pod's network endpoints as host facts: the interfaces CNI left in the sandbox's network namespace.

Kata's scan (``LinuxNetwork.addAllEndpoints``) finds them in ifindex order; katatest names them ``eth0``,
``eth1``, ... in the order the ``--net-endpoint`` flags give them. Each endpoint is bounded and validated here,
so a bad one is a one-line error naming the flag, never a traceback.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from katatest.errors import HostFactsError

FLAG = "--net-endpoint"
ENDPOINT_KINDS = ("veth",)  # the CNI-style interfaces katatest can stand in for
# A pod's namespace holds a handful of interfaces; 64 keeps the default MAC (last octet index + 1) and the
# default address (10.(88 + index).0.2/16) unique and valid, and is more than a VM's PCI slots can take.
MAX_NET_ENDPOINTS = 64
DEFAULT_MAC_PREFIX = "02:00:00:00:00:"  # locally administered, unicast

_MAC = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")
_IFNAME = re.compile(r"[A-Za-z0-9_.-]{1,15}")  # Linux IFNAMSIZ - 1, no '/', ':' or blanks


@dataclass(frozen=True)
class NetEndpoint:
    """One interface of the pod network namespace, as CNI left it (what Kata's scan finds there).

    ``mac`` is lower-case, as Kata prints it (netlink's ``HardwareAddr.String()``); ``mac_given`` says whether
    the flag named it (else it is the default rule's). ``addresses`` are CIDRs (the flags give the vectors'
    ``10.(88 + index).0.2/16``): Kata's scan skips an interface without any. ``routes`` are for later; Kata
    3.0.0's argv depends on neither beyond that."""

    kind: str
    name: str
    mac: str
    mac_given: bool = False
    addresses: tuple[str, ...] = ()
    routes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in ENDPOINT_KINDS:
            raise HostFactsError(f"{FLAG}: unknown endpoint kind {self.kind!r} (use one of {ENDPOINT_KINDS})")
        if not isinstance(self.name, str) or not _IFNAME.fullmatch(self.name) or self.name in (".", ".."):
            raise HostFactsError(f"{FLAG}: invalid interface name {self.name!r}")
        check_mac(self.mac)
        if not isinstance(self.addresses, tuple) or not all(isinstance(a, str) for a in self.addresses):
            raise HostFactsError(f"{FLAG}: {self.name}: addresses must be a tuple of CIDR strings")
        if not isinstance(self.routes, tuple):
            raise HostFactsError(f"{FLAG}: {self.name}: routes must be a tuple")

    @property
    def source(self) -> str:
        """The provenance of everything this endpoint contributes (``host.net_endpoints.eth0``)."""
        return f"host.net_endpoints.{self.name}"

    @property
    def mac_source(self) -> str:
        return f"{self.source}.mac" if self.mac_given else f"{self.source}.default_mac"


def check_mac(mac: object) -> str:
    """``mac`` when a veth can carry it: six lower-case hex pairs, unicast, not all zero."""
    if not isinstance(mac, str) or not _MAC.fullmatch(mac):
        raise HostFactsError(f"{FLAG}: invalid MAC {mac!r} (expected six hex pairs like 02:00:00:00:00:01)")
    octets = bytes.fromhex(mac.replace(":", ""))
    if octets[0] & 1:
        raise HostFactsError(f"{FLAG}: MAC {mac} is a multicast address (a veth cannot have one)")
    if not any(octets):
        raise HostFactsError(f"{FLAG}: MAC {mac} is all zero (a veth cannot have it)")
    return mac


def default_mac(index: int) -> str:
    """The MAC of endpoint ``index`` when the flag gives none: ``02:00:00:00:00:XX``, XX = index + 1."""
    return f"{DEFAULT_MAC_PREFIX}{index + 1:02x}"


def default_address(index: int) -> str:
    """The address the vectors' oracle (standing in for CNI) gives endpoint ``index``."""
    return f"10.{88 + index}.0.2/16"


def endpoint_from_spec(index: int, spec: str) -> NetEndpoint:
    """One ``--net-endpoint KIND[:MAC]`` value (the ``index``-th) as an endpoint named ``eth<index>``."""
    if not isinstance(spec, str):
        raise HostFactsError(f"{FLAG}: expected KIND[:MAC], got {spec!r}")
    kind, sep, mac = spec.partition(":")
    if kind not in ENDPOINT_KINDS:
        raise HostFactsError(f"{FLAG}: unknown endpoint kind {kind!r} in {spec!r} (use one of {ENDPOINT_KINDS})")
    if sep and not mac:
        raise HostFactsError(f"{FLAG}: empty MAC in {spec!r} (give KIND or KIND:MAC)")
    given = mac.lower() if sep else default_mac(index)
    return NetEndpoint(kind=kind, name=f"eth{index}", mac=check_mac(given), mac_given=bool(sep),
                       addresses=(default_address(index),))


def endpoints_from_specs(specs: list[str] | tuple[str, ...]) -> tuple[NetEndpoint, ...]:
    """The endpoints of repeated ``--net-endpoint`` values, in flag order."""
    if len(specs) > MAX_NET_ENDPOINTS:
        raise HostFactsError(f"{FLAG}: {len(specs)} endpoints, at most {MAX_NET_ENDPOINTS}")
    return tuple(endpoint_from_spec(index, spec) for index, spec in enumerate(specs))


def check_endpoints(endpoints: object) -> None:
    """The ``net_endpoints`` fact: a tuple of at most MAX_NET_ENDPOINTS endpoints with distinct names."""
    if not isinstance(endpoints, tuple) or not all(isinstance(e, NetEndpoint) for e in endpoints):
        raise HostFactsError(f"{FLAG}: expected a tuple of NetEndpoint, got {type(endpoints).__name__}")
    if len(endpoints) > MAX_NET_ENDPOINTS:
        raise HostFactsError(f"{FLAG}: {len(endpoints)} endpoints, at most {MAX_NET_ENDPOINTS}")
    names = [e.name for e in endpoints]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise HostFactsError(f"{FLAG}: interface name {duplicates[0]} given twice")
