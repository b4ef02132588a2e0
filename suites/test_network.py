"""network: the pod's endpoints reach the guest the way Kata plumbs them (cells with ``net_endpoints``).

What katatest does in the guest as Kata's agent would (the NIC with the endpoint's MAC gets the veth's MTU and
address, and is set up) is setup, reported in the cell's ``agent-setup.json``, not a check. The checks observe:
QEMU's own MAC/netdev/PCI pairing (QMP qom-get) matched with the guest's MAC at each PCI address; virtio_net
with N queues and carrier; each endpoint's peer reached only through its own NIC (ping; the peers answer only
on their own veth); a few MB of TCP both ways, checksummed; the tc redirect counters (tcfilter) or the macvtap's
byte counters showing the traffic went through Kata's plumbing."""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time

import pytest

from katatest.expect.checks import device_props, options
from katatest.expect.nics import guest_nics, qemu_nics
from katatest.launch.network import in_netns, link_bytes, redirected_packets

TCP_BYTES = 1 << 20  # about 700 full-size segments and many windows each way (not a TCG throughput test)
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


def test_qemu_pairs_each_endpoint_mac_with_its_netdev(guest, nics):
    """QEMU's own NICs (QMP qom-get of each virtio-net device): every endpoint's MAC, on the netdev the argv
    pairs it with, and no other NIC."""
    wanted = {device_props(d)["mac"].lower(): device_props(d)["netdev"]
              for d in options(guest.plan.argv, "-device") if "virtio-net" in d}
    assert {nic.mac.lower() for nic in nics} == set(wanted)
    assert {n.mac: n.netdev for n in qemu_nics(guest.vm.qmp)} == wanted


def test_the_guest_sees_each_mac_at_qemus_pci_address(guest, nics):
    """The NIC the guest finds at each of QEMU's PCI addresses has the MAC QEMU gave that device."""
    seen = guest_nics(lambda cmd: _sh(guest, cmd))
    qemu = qemu_nics(guest.vm.qmp)
    on_pci = [n for n in qemu if n.pci]
    assert len(seen) == len(qemu)
    for nic in on_pci:
        assert nic.pci in seen, f"{nic.path} ({nic.mac}) at {nic.pci}: the guest has no NIC there ({seen})"
        assert seen[nic.pci][0] == nic.mac, f"{nic.pci}: QEMU says {nic.mac}, the guest {seen[nic.pci][0]}"
    if not on_pci:  # virtio-mmio (microvm): no address to match, the MACs still must
        assert sorted(mac for mac, _ in seen.values()) == sorted(n.mac for n in qemu)


def test_nic_is_virtio_net_with_its_queues_and_carrier(guest, nics):
    """Each endpoint's NIC (by the MAC QEMU gave it) runs virtio_net with N rx/tx queue pairs and has carrier
    (the tap behind it is up); its MTU and address were set by katatest as the agent would (setup, not checked:
    see agent-setup.json)."""
    by_mac = {mac: name for mac, name in guest_nics(lambda cmd: _sh(guest, cmd)).values()}
    for nic in nics:
        sysfs = f"/sys/class/net/{by_mac[nic.mac.lower()]}"
        queues = _sh(guest, f"ls {sysfs}/queues").split()
        assert sorted(q for q in queues if q.startswith("rx-")) == sorted(f"rx-{q}" for q in range(nic.queues))
        assert sorted(q for q in queues if q.startswith("tx-")) == sorted(f"tx-{q}" for q in range(nic.queues))
        assert _sh(guest, f"cat {sysfs}/carrier") == "1"


def test_guest_pings_the_host_side_of_every_endpoint(guest, nics):
    """Each endpoint reaches its own veth peer, and only through its own NIC: the peers answer ARP and accept
    packets only on their own veth (arp_ignore, rp_filter), so NICs plumbed to the wrong endpoint fail here."""
    for nic in nics:
        out = _sh(guest, f"ping -c 3 -A -W 3 -I {nic.ifname} {nic.peer}", timeout=30)  # -A: no 1 s waits
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


def _connect_when_listening(netns: str, address: tuple[str, int], timeout: float = 30.0) -> socket.socket:
    """A connection to ``address`` from ``netns`` once something listens there (refused until then): no fixed
    sleep for the guest's listener to come up."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return in_netns(netns, lambda: socket.create_connection(address, timeout=timeout))
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def test_tcp_host_to_guest(guest, nics):
    nic = nics[0]
    port = 5201
    _sh(guest, f"rm -f /tmp/rx; (nc -l -p {port} > /tmp/rx 2>/dev/null &)")
    payload = os.urandom(TCP_BYTES)
    with _connect_when_listening(guest.network.peer_netns, (nic.address.split("/")[0], port)) as conn:
        conn.sendall(payload)
    _sh(guest, "for i in $(seq 1500); do pidof nc >/dev/null || break; sleep 0.04; done; ! pidof nc", timeout=90)
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


def test_qmp_pci_lists_the_guests_nics(guest, nics):
    """QEMU's PCI view (query-pci) has as many virtio-net functions as the guest has NICs on PCI."""
    nets = [device_props(d) for d in options(guest.plan.argv, "-device") if "virtio-net" in d]
    if not all(n[""].endswith("-pci") for n in nets):
        pytest.skip("virtio-mmio NICs (microvm): not on PCI")
    pci = [d for bus in guest.vm.qmp.execute("query-pci") for d in _devices(bus["devices"])]
    virtio_net = [d for d in pci if d["id"]["vendor"] == 0x1AF4 and d["id"]["device"] in VIRTIO_NET_IDS]
    seen = guest_nics(lambda cmd: _sh(guest, cmd))
    assert len(virtio_net) == len(seen) == len(nics)
    assert sorted(f"0000:{d['bus']:02x}:{d['slot']:02x}.{d['function']}" for d in virtio_net) == sorted(seen)


def _devices(devices):
    for d in devices:
        yield d
        yield from _devices(d.get("pci_bridge", {}).get("devices", []))
