"""What a launcher needs to plumb one pod network endpoint the way Kata's host side does (VMM-independent)."""

from __future__ import annotations

from dataclasses import dataclass

# internetworking_model values whose host side Kata 3.0.0 can build (none connects nothing).
PLUMBED_MODELS = ("tcfilter", "macvtap")


@dataclass(frozen=True)
class NetPlumbing:
    """One endpoint as the rendered argv expects it on the host.

    The launcher creates, in the pod network namespace, the veth ``endpoint`` (MAC ``mac``, ``addresses``),
    then Kata's plumbing for ``model``: ``tcfilter`` a multiqueue tap ``tap`` with ingress u32 ``mirred``
    redirects both ways; ``macvtap`` a macvtap ``tap`` on the veth (which takes the veth's MAC), opened
    ``queues`` times. It opens ``queues`` vhost-net fds (when ``vhost``) and ``queues`` tap fds and hands them
    to the VMM at exactly ``vhost_fds`` and ``tap_fds`` (govmm's ExtraFiles: fd = 3 + position). ``rx_rate`` /
    ``tx_rate`` are the rate limiters (bits/s, 0 = none) Kata shapes the tap (rx) and the veth or an ifb (tx)
    with."""

    endpoint: str  # the veth in the pod netns: eth0, eth1, ...
    kind: str  # veth
    model: str  # tcfilter | macvtap | none
    tap: str  # tap<I>_kata
    netdev_id: str  # network-<I>
    mac: str  # the guest NIC's MAC: the veth's as CNI left it
    queues: int
    vhost: bool
    vhost_fds: tuple[int, ...] = ()
    tap_fds: tuple[int, ...] = ()
    rx_rate: int = 0
    tx_rate: int = 0
    addresses: tuple[str, ...] = ()  # the veth's CIDRs as CNI set them (the guest's, for the agent to set)

    @property
    def fds(self) -> tuple[int, ...]:
        """Every fd of this endpoint in the order they are inherited: vhost fds, then tap fds."""
        return self.vhost_fds + self.tap_fds
