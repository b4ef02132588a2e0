"""The host side of the hot-plug checks: a block device and a pod interface to hand to the cell's QEMU the way
Kata would, and the named reasons (``katatest/data/skip_reasons.toml``) a host cannot provide them or a QEMU
cannot complete Kata's sequence."""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from katatest.errors import KatatestError
from katatest.guest.skip_reasons import check_reason
from katatest.launch import network
from katatest.launch.qmp import EVENT_MISSING

LOSETUP = ("losetup", "--find", "--show")


class CannotHotplug(KatatestError):
    """This host cannot give a hot-plug check what Kata would have, for a named reason (``kind``)."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(f"cannot hot-plug here [{check_reason(kind)}]: {reason}")
        self.kind = kind
        self.reason = reason


@dataclass(frozen=True)
class HostDisk:
    """A host block device whose first bytes are ``token`` (so the guest's disk can be told apart)."""

    path: str
    token: str
    size: int


@contextmanager
def loop_disk(directory: Path, size: int) -> Iterator[HostDisk]:
    """A loop device over a sparse file in ``directory`` starting with a random token; detached on exit."""
    if os.geteuid() != 0:
        raise CannotHotplug("needs-root", "a host block device (a loop device) for Kata's block hot-plug needs root")
    token = secrets.token_hex(16)
    backing = directory / "disk.img"
    with open(backing, "wb") as fh:
        fh.write(token.encode())
        fh.truncate(size)
    loop = subprocess.run([*LOSETUP, str(backing)], capture_output=True, text=True)
    if loop.returncode != 0:
        raise CannotHotplug("no-loop-device", f"{' '.join(LOSETUP)}: {loop.stderr.strip() or loop.returncode}")
    device = loop.stdout.strip()
    try:
        yield HostDisk(device, token, size)
    finally:
        subprocess.run(["losetup", "-d", device], capture_output=True)


@contextmanager
def hotplug_nic(mac: str, queues: int, vhost: bool) -> Iterator[tuple[network.PodNetwork, dict[str, int]]]:
    """One more pod interface (a private netns pair, tcfilter) and the fds Kata passes for it, by the names its
    ``getfd`` uses: ``fd<i>`` per tap queue, ``vhostfd<i>`` per ``/dev/vhost-net`` open when ``vhost``."""
    reason = network.unavailable_reason()
    if reason:
        raise CannotHotplug("network-privileges", reason)
    if vhost and not os.path.exists(network.VHOST_NET):
        raise CannotHotplug("no-vhost-net", f"Kata opens {network.VHOST_NET} for the NIC's vhost fds "
                                            f"(disable_vhost_net is false) and this host has none")
    queues = max(queues, 1)
    endpoint = network.NetEndpoint("eth0", mac, "tcfilter", queues, tuple(range(queues)))
    with ExitStack() as stack:
        pod = stack.enter_context(network.PodNetwork.build([endpoint]))
        fds = {f"fd{i}": fd for i, fd in enumerate(pod.plumbed[0].fds)}
        for i in range(queues if vhost else 0):
            fd = os.open(network.VHOST_NET, os.O_RDWR | os.O_CLOEXEC)
            stack.callback(os.close, fd)
            fds[f"vhostfd{i}"] = fd
        yield pod, fds


def unplug_event_finding(accel: str, errors: list[tuple[str, str]]) -> CannotHotplug | None:
    """A ``device_del`` QEMU completed without the ``DEVICE_DELETED`` Kata waits for: under TCG a finding
    (measured on QEMU 7.2, 10.0 and 11.1: the vCPU leaves QEMU and the guest, only its ``lapic`` child's event
    comes), under KVM a failure (None)."""
    missing = [error for _, error in errors if EVENT_MISSING in error]
    if not missing or accel != "tcg":
        return None
    return CannotHotplug("tcg-cpu-unplug-event", f"QEMU under TCG removed the vCPU but sent no DEVICE_DELETED "
                                                 f"for it, which Kata waits for: {missing[0]}")
