"""network: the pod's endpoints reach the guest the way Kata plumbs them (cells with ``net_endpoints``).

The guest NIC is found by the endpoint's MAC and configured as Kata's agent would (MTU, address, up); then it
must be virtio_net with N queues, reach the host-side end of the veth (ping, and a few MB of TCP both ways,
checksummed), and the tc redirect counters (tcfilter) or the macvtap's own byte counters show the traffic
went through Kata's plumbing. QMP's ``query-pci`` and ``info network`` are cross-checked with the argv."""

from __future__ import annotations

import hashlib
import os
import socket
import threading

import pytest

from katatest.expect.checks import device_props, options, props
from katatest.launch.network import in_netns, link_bytes, redirected_packets

TCP_BYTES = 4 << 20
VIRTIO_NET_IDS = {0x1000, 0x1041}  # transitional, modern (vendor 0x1af4)


def applies_to(cell) -> bool:
    return bool(cell.net_endpoints)


@pytest.fixture(scope="session")
def nics(guest):
    assert guest.network is not None, "the cell has endpoints but the guest was booted without a pod network"
    assert len(guest.nics) == len(guest.rendered.network)
    return guest.nics


def _sh(guest, cmd: str, timeout: float = 60) -> str:
    result = guest.channel.run(cmd, timeout=timeout)
    assert result.exit_status == 0, f"{cmd!r}: {result.stderr.decode(errors='replace')}"
    return result.stdout.decode(errors="replace").strip()


def test_nic_is_virtio_net_with_the_endpoint_mac_and_queues(guest, nics):
    for nic in nics:
        sysfs = f"/sys/class/net/{nic.ifname}"
        assert _sh(guest, f"cat {sysfs}/address") == nic.mac.lower()
        assert _sh(guest, f"basename $(readlink {sysfs}/device/driver)") == "virtio_net"
        queues = _sh(guest, f"ls {sysfs}/queues").split()
        assert sorted(q for q in queues if q.startswith("rx-")) == sorted(f"rx-{q}" for q in range(nic.queues))
        assert sorted(q for q in queues if q.startswith("tx-")) == sorted(f"tx-{q}" for q in range(nic.queues))


def test_nic_is_up_with_the_veth_mtu_and_address(guest, nics):
    for nic in nics:
        assert _sh(guest, f"cat /sys/class/net/{nic.ifname}/operstate") == "up"
        assert int(_sh(guest, f"cat /sys/class/net/{nic.ifname}/mtu")) == nic.mtu
        assert f"inet {nic.address}" in _sh(guest, f"ip -o addr show dev {nic.ifname}")


def test_guest_pings_the_host_side_of_every_endpoint(guest, nics):
    """Each endpoint reaches its own veth peer (distinct subnets: swapped NICs would not answer)."""
    for nic in nics:
        out = _sh(guest, f"ping -c 3 -W 3 -I {nic.ifname} {nic.peer}", timeout=30)
        assert "3 packets received, 0% packet loss" in out


def _receive_all(server: socket.socket, sink: dict) -> None:
    server.settimeout(120)
    conn, _ = server.accept()
    digest, size = hashlib.sha256(), 0
    with conn:
        while data := conn.recv(1 << 16):
            digest.update(data)
            size += len(data)
    sink.update(size=size, sha256=digest.hexdigest())


def test_tcp_guest_to_host(guest, nics):
    nic = nics[0]
    server = in_netns(guest.network.peer_netns, lambda: socket.create_server((nic.peer, 0)))
    sink: dict = {}
    with server:
        receiver = threading.Thread(target=_receive_all, args=(server, sink), daemon=True)
        receiver.start()
        port = server.getsockname()[1]
        expected = _sh(guest, f"head -c {TCP_BYTES} /dev/urandom > /tmp/tx && sha256sum /tmp/tx").split()[0]
        _sh(guest, f"nc {nic.peer} {port} < /tmp/tx", timeout=120)
        receiver.join(120)
    assert sink == {"size": TCP_BYTES, "sha256": expected}


def test_tcp_host_to_guest(guest, nics):
    nic = nics[0]
    port = 5201
    _sh(guest, f"rm -f /tmp/rx; (nc -l -p {port} > /tmp/rx 2>/dev/null &); sleep 0.5")
    payload = os.urandom(TCP_BYTES)
    conn = in_netns(guest.network.peer_netns,
                    lambda: socket.create_connection((nic.address.split("/")[0], port), timeout=30))
    with conn:
        conn.sendall(payload)
    _sh(guest, "for i in $(seq 600); do pidof nc >/dev/null || break; sleep 0.1; done; ! pidof nc", timeout=90)
    assert _sh(guest, "sha256sum < /tmp/rx").split()[0] == hashlib.sha256(payload).hexdigest()


def test_traffic_went_through_kata_plumbing(guest, nics):
    """tcfilter: both redirect filters counted packets; macvtap: the macvtap carried the bytes both ways."""
    pod = guest.network
    for index, (nic, done) in enumerate(zip(nics, pod.plumbed, strict=True)):
        tap = done.endpoint.tap_name
        if nic.model == "tcfilter":
            assert redirected_packets(pod.netns, tap) >= 3, f"{tap} ingress -> {nic.endpoint}: nothing redirected"
            assert redirected_packets(pod.netns, nic.endpoint) >= 3, f"{nic.endpoint} ingress -> {tap}: nothing"
        else:
            rx, tx = link_bytes(pod.netns, tap)
            assert rx > 0 and tx > 0, f"macvtap {tap}: rx {rx} tx {tx} bytes"
            # the TCP tests use the first endpoint: both transfers went through its macvtap
            assert index > 0 or min(rx, tx) >= TCP_BYTES, f"macvtap {tap}: rx {rx} tx {tx} bytes"


def test_qmp_agrees_with_the_argv(guest, nics):
    argv = guest.plan.argv
    netdevs = [props(n) for n in options(argv, "-netdev") if n.startswith("tap,")]
    nets = [device_props(d) for d in options(argv, "-device") if "virtio-net" in d]
    assert len(netdevs) == len(nets) == len(nics)
    pci = [d for bus in guest.vm.qmp.execute("query-pci") for d in _devices(bus["devices"])]
    virtio_net = [d for d in pci if d["id"]["vendor"] == 0x1AF4 and d["id"]["device"] in VIRTIO_NET_IDS]
    if all(n[""].endswith("-pci") for n in nets):
        assert len(virtio_net) == len(nets)
        in_guest = sorted(int(_sh(guest, f"cat /sys/class/net/{nic.ifname}/device/../device"), 16) for nic in nics)
        assert in_guest == sorted(d["id"]["device"] for d in virtio_net)  # QEMU's NICs are the guest's
    info = guest.vm.qmp.execute("human-monitor-command", {"command-line": "info network"})
    for nic, dev, netdev in zip(nics, nets, netdevs, strict=True):
        assert f"macaddr={nic.mac.lower()}" in info.lower()
        assert f"{netdev['id']}: index=" in info and dev["netdev"] == netdev["id"]


def _devices(devices):
    for d in devices:
        yield d
        yield from _devices(d.get("pci_bridge", {}).get("devices", []))
