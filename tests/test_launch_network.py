"""The pod network's host side (``katatest.launch.network``), built in real namespaces and read back with
``ip -j``/``tc -j`` against what Kata 3.0.0 builds (``data/conformance/kata-3.0.0-net/HOST-FACTS.md``)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import tomllib

from katatest.errors import KatatestError
from katatest.generate.plumbing import NetPlumbing
from katatest.launch import network
from katatest.launch.kvm import AccelVerdict
from katatest.launch.network import (
    NetEndpoint,
    PodNetwork,
    endpoint_from_plumbing,
    endpoints_from_argv,
    ip_json,
    model_of_config,
    netns_names,
    tc_json,
    tun_iff,
    vhost_overrides,
)
from katatest.launch.plan import plan_launch, read_argv_file
from katatest.launch.sweep import sweep
from katatest.launch.vm import RUNTIME_PREFIX

NET = Path(__file__).parent / "data/conformance/kata-3.0.0-net"
ROOT = Path(__file__).resolve().parents[1]
needs_root = pytest.mark.skipif(network.unavailable_reason() is not None,
                                reason=network.unavailable_reason() or "")


def vector_endpoints(name: str) -> list[NetEndpoint]:
    """The endpoints of a named net vector, with the model its TOML configures."""
    doc = tomllib.loads((NET / "named" / f"{name}.toml").read_text())
    return endpoints_from_argv(read_argv_file(NET / "named" / f"{name}.argv"), model_of_config(doc))


def host_links() -> list[str]:
    return sorted(line.split(":")[1].strip() for line in subprocess.run(
        ["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout.splitlines())


def links(netns: str) -> dict[str, dict]:
    return {link["ifname"]: link for link in ip_json(netns, "link", "show")}


def ingress_redirects(netns: str, dev: str) -> list[dict]:
    """The u32 filters on ``dev``'s ingress with their match and first action."""
    out = []
    for f in tc_json(netns, "filter", "show", "dev", dev, "ingress"):
        opts = f.get("options", {})
        if "actions" in opts:
            act = opts["actions"][0]
            out.append({"protocol": f["protocol"], "pref": f["pref"], "kind": f["kind"], "match": opts["match"],
                        "action": (act["kind"], act["direction"], act["mirred_action"], act["to_dev"],
                                   act["control_action"]["type"]), "packets": act["stats"]["packets"]})
    return out


def send_udp(netns: str, address: str) -> None:
    """One UDP datagram from ``netns`` to ``address`` (its ARP request crosses the veth first)."""
    code = ("import socket, sys; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
            "s.sendto(b'katatest', (sys.argv[1], 9))")
    subprocess.run(["ip", "netns", "exec", netns, sys.executable, "-c", code, address.split("/")[0]],
                   check=True, capture_output=True)
    time.sleep(0.3)


# --- parsing the argv (no privileges) -------------------------------------------------------------------------

def test_every_vector_netdev_parses_with_its_queue_count() -> None:
    seen = 0
    for argv_file in sorted(NET.glob("*/*.argv")):
        if argv_file.name.endswith(".virtiofsd.argv"):
            continue
        argv = read_argv_file(argv_file)
        eps = endpoints_from_argv(argv)
        vectors = {v.split("netdev=")[1].split(",")[0]: v for v in argv if v.startswith("driver=virtio-net")}
        assert [e.netdev_id for e in eps] == list(vectors), argv_file.name
        for e in eps:
            assert f"mac={e.mac}," in vectors[e.netdev_id].lower()
            if "vectors=" in vectors[e.netdev_id]:
                assert f"vectors={2 * e.queues + 2}" in vectors[e.netdev_id], argv_file.name
            seen += 1
    assert seen > 100


def test_fd_numbers_and_models_come_from_the_vector() -> None:
    (ep,) = vector_endpoints("net_vcpus_4")
    assert (ep.name, ep.mac, ep.model, ep.queues, ep.vhost_fds, ep.tap_fds, ep.tap_name) == \
        ("eth0", "02:00:00:00:00:01", "tcfilter", 4, (4, 5, 6, 7), (8, 9, 10, 11), "tap0_kata")
    assert vector_endpoints("net_macvtap")[0].model == "macvtap"
    (ep,) = vector_endpoints("net_disable_vhost_net")
    assert ep.vhost_fds == () and ep.tap_fds == (4,)
    assert [(e.name, e.tap_fds) for e in vector_endpoints("net_default_2")] == [("eth0", (5,)), ("eth1", (7,))]


def test_bad_netdev_is_one_line_naming_it() -> None:
    with pytest.raises(KatatestError, match="no -device with netdev=network-0"):
        endpoints_from_argv(["qemu", "-netdev", "tap,id=network-0,fds=5"])
    with pytest.raises(KatatestError, match="internetworking model 'none' has no plumbing"):
        endpoints_from_argv(read_argv_file(NET / "named/net_default.argv"), "none")


def test_no_vhost_net_override_drops_vhost_only() -> None:
    argv = read_argv_file(NET / "named/net_default_2.argv")
    overrides = vhost_overrides(argv)
    assert [(o.before, o.after) for o in overrides] == [
        (("-netdev", "tap,id=network-0,vhost=on,vhostfds=4,fds=5"), ("-netdev", "tap,id=network-0,fds=5")),
        (("-netdev", "tap,id=network-1,vhost=on,vhostfds=6,fds=7"), ("-netdev", "tap,id=network-1,fds=7"))]
    assert all("/dev/vhost-net is absent" in o.reason for o in overrides)
    assert vhost_overrides(read_argv_file(NET / "named/net_disable_vhost_net.argv")) == []


def test_endpoint_from_the_generators_record() -> None:
    ep = endpoint_from_plumbing(NetPlumbing("eth0", "veth", "tcfilter", "tap0_kata", "network-0", "02:00:00:00:00:01",
                                            2, False, (4, 5), (6, 7), addresses=("10.88.0.2/16",)))
    assert (ep.name, ep.vhost_fds, ep.tap_fds, ep.addresses) == ("eth0", (), (6, 7), ("10.88.0.2/16",))
    assert network.peer_address("10.88.0.2/16") == "10.88.0.1/16"
    with pytest.raises(KatatestError, match="eth1: rate limiters"):
        endpoint_from_plumbing(NetPlumbing("eth1", "veth", "macvtap", "tap1_kata", "network-1", "02:00:00:00:00:02", 1,
                                           True, (4,), (5,), tx_rate=1000))
    with pytest.raises(KatatestError, match="eth0: address 'x' is not a CIDR"):
        replace(ep, addresses=("x",))


# --- real plumbing (root) --------------------------------------------------------------------------------------

def left_by_us(name: str) -> bool:
    """Whether namespace ``name`` is this process's leftover: recorded by this process as owner, or recorded
    by nobody (no sweep could find it). Another owner's (a concurrent test's, live or awaiting its sweep) is not."""
    from katatest.launch.proc import owner_token
    from katatest.launch.vm import OWNER_FILE, RUNTIME_PARENT

    base = name.removesuffix(network.PEER_SUFFIX)
    try:
        token = (Path(RUNTIME_PARENT) / base / OWNER_FILE).read_text().strip()
    except OSError:
        return True
    return token == owner_token()


@pytest.fixture
def clean_host(isolated_env: dict) -> object:
    """Host links and named namespaces before; the test's plumbing must leave the host's links as they were
    and no namespace of its own behind."""
    before = (host_links(), netns_names())
    yield before
    assert host_links() == before[0]
    assert [n for n in netns_names() if n not in before[1] and left_by_us(n)] == []


def assert_tcfilter(pod: PodNetwork, index: int, queues: int) -> None:
    ns, eth, tap = pod.netns, f"eth{index}", f"tap{index}_kata"
    done = pod.plumbed[index]
    ls = links(ns)
    assert ls[eth]["address"] == done.endpoint.mac and ls[eth]["linkinfo"]["info_kind"] == "veth"
    assert "UP" in ls[eth]["flags"] and "UP" in ls[tap]["flags"]
    info = ls[tap]["linkinfo"]
    assert info["info_kind"] == "tun"
    assert {k: info["info_data"][k] for k in ("type", "pi", "vnet_hdr", "multi_queue", "numqueues", "persist",
                                              "user", "group")} == \
        {"type": "tap", "pi": False, "vnet_hdr": True, "multi_queue": True, "numqueues": queues, "persist": True,
         "user": "root", "group": "root"}
    assert ls[tap]["address"] != done.endpoint.mac  # the tap keeps its own random MAC
    assert ls[tap]["mtu"] == ls[eth]["mtu"] == done.mtu
    ingress = {q["dev"] for q in tc_json(ns, "qdisc", "show") if q["kind"] == "ingress"}
    assert {eth, tap} <= ingress
    match = {"value": "0", "mask": "0", "offmask": "", "off": 0}
    for src, dst in ((eth, tap), (tap, eth)):
        (f,) = ingress_redirects(ns, src)
        assert (f["protocol"], f["pref"], f["kind"], f["match"], f["action"]) == \
            ("all", 49152, "u32", match, ("mirred", "egress", "redirect", dst, "stolen"))
    assert [tun_iff(fd) for fd in done.fds] == [tap] * queues
    addrs = [a for a in ip_json(ns, "addr", "show", "dev", eth)[0]["addr_info"] if a["family"] == "inet"]
    assert [f"{a['local']}/{a['prefixlen']}" for a in addrs] == [done.pod_address]


def assert_peer(pod: PodNetwork, index: int) -> None:
    done = pod.plumbed[index]
    (peer,) = ip_json(pod.peer_netns, "addr", "show", "dev", f"veth{index}")
    assert [f"{a['local']}/{a['prefixlen']}" for a in peer["addr_info"] if a["family"] == "inet"] == \
        [done.peer_address]


def assert_gone(pod: PodNetwork, macvtap_nodes: list[str] = ()) -> None:
    assert pod.netns not in netns_names() and pod.peer_netns not in netns_names()
    assert not pod.run_dir.exists()
    deadline = time.monotonic() + 5
    while any(os.path.exists(n) for n in macvtap_nodes) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [n for n in macvtap_nodes if os.path.exists(n)]


@needs_root
@pytest.mark.parametrize(("vector", "queues"), [("net_default", 1), ("net_vcpus_4", 4)])
def test_tcfilter_is_built_as_kata_builds_it(clean_host: object, vector: str, queues: int) -> None:
    with PodNetwork.build(vector_endpoints(vector)) as pod:
        assert pod.netns.startswith("kt-") and {pod.netns, pod.peer_netns} <= set(netns_names())
        assert_tcfilter(pod, 0, queues)
        assert_peer(pod, 0)
        # traffic from the host side is redirected to the tap: the eth0 -> tap filter counts it
        send_udp(pod.peer_netns, pod.plumbed[0].pod_address)
        assert ingress_redirects(pod.netns, "eth0")[0]["packets"] >= 1  # the ARP request for the pod address
    assert_gone(pod)


@needs_root
@pytest.mark.parametrize(("vector", "queues"), [("net_macvtap", 1), ("net_macvtap_vcpus_4", 4)])
def test_macvtap_is_built_as_kata_builds_it(clean_host: object, vector: str, queues: int) -> None:
    eps = vector_endpoints(vector)  # net_macvtap_vcpus_4 has two endpoints
    with PodNetwork.build(eps) as pod:
        nodes = []
        ls = links(pod.netns)
        for ep, done in zip(eps, pod.plumbed, strict=True):
            tap, eth = ls[ep.tap_name], ls[ep.name]
            assert tap["linkinfo"] == {"info_kind": "macvtap",
                                       "info_data": {"mode": "bridge", "bcqueuelen": 1000, "usedbcqueuelen": 1000}}
            assert tap["link"] == ep.name and tap["address"] == ep.mac and tap["mtu"] == eth["mtu"]
            assert 8192 <= tap["ifindex"] == done.macvtap_index < 8192 + 0x10000
            assert eth["address"] != ep.mac and int(eth["address"][:2], 16) & 0x03 == 0x02  # random, local
            assert eth["promiscuity"] == 1 and "UP" in tap["flags"]
            assert ip_json(pod.netns, "addr", "show", "dev", ep.name)[0]["addr_info"] == []
            node = f"/dev/tap{done.macvtap_index}"
            nodes.append(node)
            assert len(done.fds) == queues
            assert all(os.fstat(fd).st_rdev == os.stat(node).st_rdev for fd in done.fds)
            assert_peer(pod, ep.index)
        assert not [q for q in tc_json(pod.netns, "qdisc", "show") if q["kind"] == "ingress"]
        assert len(set(nodes)) == len(eps)
    assert_gone(pod, nodes)


@needs_root
def test_two_endpoints_each_get_their_own_plumbing(clean_host: object) -> None:
    with PodNetwork.build(vector_endpoints("net_default_2")) as pod:
        for i in (0, 1):
            assert_tcfilter(pod, i, 1)
            assert_peer(pod, i)
        assert links(pod.netns)["eth1"]["address"] == "0a:58:0a:f4:00:07"
        assert pod.plumbed[0].pod_address != pod.plumbed[1].pod_address
    assert_gone(pod)


@needs_root
def test_parallel_vms_never_share_a_namespace_address_or_macvtap(clean_host: object) -> None:
    eps = vector_endpoints("net_macvtap")
    with PodNetwork.build(eps) as a, PodNetwork.build(eps) as b:
        assert len({a.netns, a.peer_netns, b.netns, b.peer_netns}) == 4
        assert a.slot != b.slot and a.plumbed[0].pod_address != b.plumbed[0].pod_address
        assert a.plumbed[0].char_device != b.plumbed[0].char_device
    assert_gone(a)
    assert_gone(b)


@needs_root
def test_cni_addresses_are_used_when_given(clean_host: object) -> None:
    (ep,) = vector_endpoints("net_default")
    with PodNetwork.build([replace(ep, addresses=("10.88.0.2/16",))]) as pod:
        assert (pod.plumbed[0].pod_address, pod.plumbed[0].peer_address) == ("10.88.0.2/16", "10.88.0.1/16")
        assert_tcfilter(pod, 0, 1)
        assert_peer(pod, 0)
    assert_gone(pod)


@needs_root
def test_setns_changes_only_the_helper_thread(clean_host: object) -> None:
    mine = os.readlink("/proc/self/ns/net")
    with PodNetwork.build(vector_endpoints("net_default")) as pod:
        theirs = network.in_netns(pod.netns, lambda: os.readlink("/proc/thread-self/ns/net"))
        assert theirs != mine and os.readlink("/proc/self/ns/net") == mine
    assert_gone(pod)


@needs_root
def test_plan_places_the_queues_at_the_argv_numbers(clean_host: object) -> None:
    argv = read_argv_file(NET / "named/net_vcpus_4.argv")
    plan = plan_launch(argv, read_argv_file(NET / "named/net_vcpus_4.virtiofsd.argv"), assets={},
                       accel=AccelVerdict("tcg", "test"), vhost_vsock_available=False)
    with PodNetwork.build(endpoints_from_argv(argv)) as pod:
        without = pod.apply(plan, vhost_net=False)
        assert [o.kind for o in without.overrides if o.kind == "no-vhost-net"] == ["no-vhost-net"]
        assert "tap,id=network-0,fds=8:9:10:11" in without.argv
        entries = without.inherited_fds()
        assert [(e.target, e.kind, e.owner_fd) for e in entries] == \
            [(8 + q, "passed", pod.plumbed[0].fds[q]) for q in range(4)]
        with_vhost = pod.apply(plan, vhost_net=True)
        assert "tap,id=network-0,vhost=on,vhostfds=4:5:6:7,fds=8:9:10:11" in with_vhost.argv
        assert [(e.target, e.path) for e in with_vhost.inherited_fds()][:4] == \
            [(n, "/dev/vhost-net") for n in (4, 5, 6, 7)]
    assert_gone(pod)


OWNER = """
import json, sys, time
sys.path.insert(0, {root!r})
from tests.test_launch_network import vector_endpoints
from katatest.launch.network import PodNetwork
pod = PodNetwork.build(vector_endpoints({vector!r}))
print(json.dumps({{"netns": [pod.netns, pod.peer_netns], "run_dir": str(pod.run_dir),
                  "node": pod.plumbed[0].char_device}}), flush=True)
time.sleep(600)
"""


@needs_root
@pytest.mark.parametrize("vector", ["net_vcpus_4", "net_macvtap"])
def test_sweep_removes_the_namespaces_of_a_sigkilled_owner(clean_host: object, vector: str) -> None:
    owner = subprocess.Popen([sys.executable, "-c", OWNER.format(root=str(ROOT), vector=vector)],
                             stdout=subprocess.PIPE, text=True)
    try:
        made = json.loads(owner.stdout.readline())
    finally:
        owner.send_signal(signal.SIGKILL)
        owner.wait()
        owner.stdout.close()
    # SIGKILL left the run dir (of this test's private scope: only its sweep takes it) recording them; the
    # namespaces themselves are every sweep's once their owner is dead (another worker's may get there first)
    assert network.recorded_netns(Path(made["run_dir"])) == made["netns"]
    report = sweep()
    assert made["run_dir"] in report.removed and not report.failed, report  # only once its namespaces are gone
    assert not set(made["netns"]) & set(netns_names()) and not os.path.exists(made["run_dir"])
    if made["node"] != network.TUN:
        deadline = time.monotonic() + 5
        while os.path.exists(made["node"]) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not os.path.exists(made["node"])


def test_not_root_gives_a_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    reason = network.unavailable_reason()
    assert reason and "needs root" in reason
    with pytest.raises(KatatestError, match="pod network unavailable: the pod network needs root"):
        PodNetwork.build(vector_endpoints("net_default"))


@needs_root
@pytest.mark.boot
def test_qemu_inherits_the_tap_queues_at_the_argv_numbers(clean_host: object, tmp_path: Path) -> None:
    """A real QEMU (TCG, katatest's probe kernel) launched from net_vcpus_4's argv finds the 4 queues of
    tap0_kata at fds 8-11, and no other copy of them."""
    from katatest.launch.probe_kernel import write_probe_kernel
    from katatest.launch.vm import VirtualMachine

    image = tmp_path / "image"
    image.write_bytes(b"\0" * (4 << 20))
    argv = read_argv_file(NET / "named/net_vcpus_4.argv")
    plan = plan_launch(argv, read_argv_file(NET / "named/net_vcpus_4.virtiofsd.argv"),
                       assets={"kernel": str(write_probe_kernel(tmp_path / "probe.bin")), "image": str(image)},
                       accel=AccelVerdict("tcg", "test"), vhost_vsock_available=os.path.exists("/dev/vhost-vsock"))
    with PodNetwork.build(endpoints_from_argv(argv)) as pod:
        with VirtualMachine(pod.apply(plan), tmp_path / "runs", name="net") as vm:
            pod.close_fds()  # QEMU holds its own copies now
            assert vm.qmp.status() == "running"
            assert [tun_iff(n, vm.qemu_pid) for n in (8, 9, 10, 11)] == ["tap0_kata"] * 4
            tuns = [fd for fd in os.listdir(f"/proc/{vm.qemu_pid}/fd")
                    if os.readlink(f"/proc/{vm.qemu_pid}/fd/{fd}") == "/dev/net/tun"]
            assert sorted(map(int, tuns)) == [8, 9, 10, 11]  # exactly the argv's numbers, no strays
            tun = links(pod.netns)["tap0_kata"]["linkinfo"]["info_data"]
            # QEMU detaches (TUNSETQUEUE) every queue pair but the first until the guest enables multiqueue
            assert (tun["numqueues"], tun["numdisabled"]) == (1, 3)
        tun = links(pod.netns)["tap0_kata"]["linkinfo"]["info_data"]
        assert (tun["numqueues"], tun["numdisabled"]) == (0, 0)  # QEMU gone, the persistent tap stays
    assert_gone(pod)


def link_packets(netns: str, dev: str) -> tuple[int, int]:
    (link,) = json.loads(subprocess.run(["ip", "-j", "-s", "-n", netns, "link", "show", "dev", dev],
                                        capture_output=True, text=True, check=True).stdout)
    return link["stats64"]["rx"]["packets"], link["stats64"]["tx"]["packets"]


@needs_root
@pytest.mark.boot
@pytest.mark.parametrize(("vector", "queues"), [("net_default", 1), ("net_vcpus_4", 4), ("net_macvtap", 1)])
def test_guest_reaches_the_host_side_across_kata_plumbing(clean_host: object, tmp_path: Path, vector: str,
                                                          queues: int) -> None:
    """Boot a net vector's argv (1 endpoint; vhost override without /dev/vhost-net) with the pod's queues: the
    guest has a virtio_net interface with the endpoint's MAC and N queues, takes the pod address and pings the
    host-side veth end; the traffic went Kata's way (tc redirect counters, or the macvtap's own counters)."""
    from katatest.assets.cache import ensure_assets
    from katatest.guest.channel import GuestChannel
    from katatest.launch.kvm import accel_verdict
    from katatest.launch.vm import VirtualMachine

    assets = ensure_assets("amd64", progress=lambda *_: None)
    argv = read_argv_file(NET / f"named/{vector}.argv")
    plan = plan_launch(argv, read_argv_file(NET / f"named/{vector}.virtiofsd.argv"),
                       assets={"kernel": str(assets.kernel), "initrd": str(assets.initrd),
                               "image": str(assets.image), "image_size": assets.image_size},
                       accel=accel_verdict(argv[0], "amd64", str(assets.kernel)),
                       vhost_vsock_available=os.path.exists("/dev/vhost-vsock"))
    eps = vector_endpoints(vector)
    with PodNetwork.build(eps) as pod:
        done = pod.plumbed[0]
        with VirtualMachine(pod.apply(plan), tmp_path / "runs", name="net") as vm:
            pod.close_fds()
            with GuestChannel(vm.console_socket, vm.console_log_path, timeout=90, is_alive=vm.is_alive) as ch:
                ch.wait_ready()
                ifname = next(line.split(":")[1].strip() for line in ch.check_output("ip -o link").splitlines()
                              if f"link/ether {eps[0].mac}" in line)
                assert ch.check_output(f"readlink /sys/class/net/{ifname}/device/driver").endswith("virtio_net")
                rx = ch.check_output(f"ls /sys/class/net/{ifname}/queues").split()
                assert sorted(q for q in rx if q.startswith("rx-")) == [f"rx-{q}" for q in range(queues)]
                ch.check_output(f"ip link set {ifname} up && ip addr add {done.pod_address} dev {ifname}")
                result = ch.run(f"ping -c 3 -W 2 {done.peer_address.split('/')[0]}", timeout=30)
                assert result.exit_status == 0, result.stdout.decode(errors="replace")
                assert b"3 packets received, 0% packet loss" in result.stdout
            assert ("no-vhost-net" in [o.kind for o in vm.plan.overrides]) != os.path.exists(network.VHOST_NET)
            if eps[0].model == "macvtap":
                rx_packets, tx_packets = link_packets(pod.netns, "tap0_kata")
                assert rx_packets >= 3 and tx_packets >= 3  # the macvtap carried both directions
        if eps[0].model == "tcfilter":
            # guest -> host side: tap0_kata ingress -> eth0; host side -> guest: eth0 ingress -> tap0_kata
            assert ingress_redirects(pod.netns, "tap0_kata")[0]["packets"] >= 3
            assert ingress_redirects(pod.netns, "eth0")[0]["packets"] >= 3
    assert_gone(pod)


@needs_root
@pytest.mark.boot
@pytest.mark.parametrize(("release", "flags"), [("3.0.0", []), ("4.1.0", ["--qemu", "11.1"])])
def test_katatest_boot_with_a_net_endpoint_shows_its_mac_in_the_guest(clean_host: object, isolated_env: dict,
                                                                    release: str, flags: list[str]) -> None:
    """``katatest boot CONFIG --net-endpoint veth:MAC -- ip -o link``: the guest lists a NIC with that MAC, up
    with the endpoint's address (the agent's step); no namespace or host link is left (``clean_host``). Kata
    4.1.0's shipped config on its QEMU build too (endpoint fds after the QMP listener and the vsock)."""
    import sys

    base = Path(__file__).resolve().parent.parent / "katatest/data/base"
    config = base / ("" if release == "3.0.0" else release) / "configuration-qemu-amd64.toml"
    mac = "0a:58:0a:f4:00:07"
    run = subprocess.run([sys.executable, "-m", "katatest", "boot", str(config), "--kata-version", release, *flags,
                          "--net-endpoint", f"veth:{mac}", "--", "sh", "-c", "ip -o link; ip -o addr"],
                         env=isolated_env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    nic = next((line for line in run.stdout.splitlines() if f"link/ether {mac}" in line), "")
    assert nic and "UP" in nic.split()[2], run.stdout
    ifname = nic.split(":")[1].strip()
    assert any(line.split()[1] == ifname and "inet 10.88.0.2/16" in line for line in run.stdout.splitlines())
    assert "override no-vhost-net" in run.stderr or os.path.exists(network.VHOST_NET)
    assert f"network: eth0 (tcfilter, 1 queue(s)) is the guest's {ifname} {mac}" in run.stderr


FAILING_IP = """#!/bin/sh
# ip, except that "ip netns delete" fails (a namespace that cannot be deleted)
[ "$1 $2" = "netns delete" ] && {{ echo "Cannot remove namespace file: Device or resource busy" >&2; exit 1; }}
exec {ip} "$@"
"""


@needs_root
def test_a_namespace_that_cannot_be_deleted_is_an_error_and_stays_recorded(
        clean_host: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failed ``ip netns delete`` is no silent leak: close() raises naming the namespace, the ownership
    records stay, and a later sweep (under another TMPDIR) still removes the namespaces."""
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "ip").write_text(FAILING_IP.format(ip=shutil.which("ip")))
    (fake / "ip").chmod(0o755)
    pod = PodNetwork.build(vector_endpoints("net_default"))
    names = [pod.netns, pod.peer_netns]
    monkeypatch.setenv("PATH", f"{fake}:{os.environ['PATH']}")
    with pytest.raises(network.NetworkError, match=f"pod network leaked: {pod.netns}: Cannot remove"):
        pod.close()
    assert set(names) <= set(netns_names()) and pod.run_dir.exists()
    assert all((network.OWNERS_DIR / n).is_file() for n in names)
    report = sweep(include_live_owners=True)
    assert any(f.startswith(f"netns {pod.netns}") for f in report.failed) and pod.run_dir.exists()
    assert "COULD NOT REMOVE" in report.summary()
    monkeypatch.setenv("PATH", os.environ["PATH"].split(":", 1)[1])
    (network.OWNERS_DIR / pod.netns).write_text("1:1")  # the owner is gone (a token no process has)
    (network.OWNERS_DIR / pod.peer_netns).write_text("1:1")
    other = tmp_path / "other-tmp"
    other.mkdir()
    monkeypatch.setenv("TMPDIR", str(other))  # a sweep that does not see the run dir: only OWNERS_DIR
    report = sweep()
    assert not report.failed, report  # removed here, or by another worker's sweep (a dead owner's: anyone's)
    assert not set(names) & set(netns_names())
    assert not any((network.OWNERS_DIR / n).exists() for n in names)
    shutil.rmtree(pod.run_dir, ignore_errors=True)


RACED_IP = """#!/bin/sh
# ip, except that "ip netns delete" finds the namespace deleted by another sweep since the caller listed it
[ "$1 $2" = "netns delete" ] && {{ {ip} netns delete "$3"; echo "Cannot remove namespace: No such file" >&2; exit 1; }}
exec {ip} "$@"
"""


@needs_root
def test_a_namespace_another_sweep_deleted_meanwhile_is_no_failure(
        clean_host: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two sweeps can take one dead owner's namespace (every sweep takes those): the one whose ``ip netns
    delete`` finds it gone neither fails nor claims it, and forgets its owner record (found by the full own
    tests: the run dir stayed, its namespace counted as "could not remove")."""
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "ip").write_text(RACED_IP.format(ip=shutil.which("ip")))
    (fake / "ip").chmod(0o755)
    name = f"{RUNTIME_PREFIX}raced-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    network.OWNERS_DIR.mkdir(mode=0o700, exist_ok=True)
    (network.OWNERS_DIR / name).write_text("1:1")
    monkeypatch.setenv("PATH", f"{fake}:{os.environ['PATH']}")
    assert network.delete_netns([name]) == ([], [])
    assert name not in netns_names() and not (network.OWNERS_DIR / name).exists()
