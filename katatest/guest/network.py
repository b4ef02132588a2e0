"""The pod network of a booted guest: build Kata's host side for a rendering, then do in the guest what
Kata's agent does with the endpoints (find the NIC by MAC, MTU, address, link up)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from katatest.errors import KatatestError
from katatest.generate.plumbing import NetPlumbing
from katatest.launch.network import NotPlumbedYet, PodNetwork, endpoint_from_plumbing, unavailable_reason


@dataclass(frozen=True)
class GuestNic:
    """One endpoint as the guest sees it once configured: its interface and the host-side peer to reach."""

    endpoint: str  # eth0, eth1, ... in the pod netns
    model: str  # tcfilter | macvtap
    mac: str
    ifname: str  # the guest's name for the NIC with that MAC
    address: str  # CIDR the guest took (the veth's, as the agent copies it)
    peer: str  # the host-side end of the veth (address only): what the guest pings
    mtu: int  # the veth's MTU
    queues: int


class NoPodNetwork(KatatestError):
    """This run cannot build the pod network for a named reason (``kind``, see katatest.guest.skip_reasons)."""

    def __init__(self, reason: str, kind: str = "network-privileges") -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind


def build_pod_network(plumbing: Sequence[NetPlumbing]) -> PodNetwork:
    """Kata's host side for ``plumbing`` (a private netns pair per VM); NoPodNetwork when this host cannot. A
    plumbing katatest cannot build (fd counts that do not match, a bad address) is a PlanError: an error, not
    a reason to skip."""
    reason = unavailable_reason()
    if reason:
        raise NoPodNetwork(f"the pod network needs privileges this run lacks: {reason}")
    try:
        endpoints = [endpoint_from_plumbing(p) for p in plumbing]
    except NotPlumbedYet as err:
        raise NoPodNetwork(str(err), kind="network-not-plumbed") from err
    return PodNetwork.build(endpoints)


def nic_by_mac(ip_link: str, mac: str) -> str:
    """The interface name in ``ip -o link`` output whose link/ether is ``mac`` ('' when none)."""
    for line in ip_link.splitlines():
        fields = line.split()
        if "link/ether" in fields and fields[fields.index("link/ether") + 1].lower() == mac.lower():
            return fields[1].rstrip(":").split("@")[0]
    return ""


def configure_like_the_agent(run, pod: PodNetwork) -> list[GuestNic]:
    """For every plumbed endpoint, what the agent's UpdateInterface does: the NIC with the endpoint's MAC gets
    the veth's MTU and address and is set up. ``run(cmd) -> str`` runs a guest shell command (checked)."""
    links = run("ip -o link")
    nics = []
    for done in pod.plumbed:
        ep = done.endpoint
        ifname = nic_by_mac(links, ep.mac)
        if not ifname:
            raise KatatestError(f"{ep.name}: no guest interface has MAC {ep.mac} (ip -o link: {links!r})")
        run(f"ip link set {ifname} mtu {done.mtu} && ip addr add {done.pod_address} dev {ifname} "
            f"&& ip link set {ifname} up")
        nics.append(GuestNic(ep.name, ep.model, ep.mac, ifname, done.pod_address,
                             done.peer_address.split("/")[0], done.mtu, ep.queues))
    return nics
