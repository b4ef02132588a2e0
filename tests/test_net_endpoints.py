"""The pod network endpoints as host facts: ``--net-endpoint veth[:MAC]`` and ``--no-vhost-net``."""

from __future__ import annotations

from pathlib import Path

import pytest

from katatest.cli import main
from katatest.errors import ConfigError, HostFactsError
from katatest.generate.render import render_file
from katatest.host import facts as hostfacts
from katatest.host.endpoints import (
    MAX_NET_ENDPOINTS,
    NetEndpoint,
    default_address,
    default_mac,
    endpoints_from_specs,
)
from katatest.host.facts import HostFacts
from katatest.host.flags import parse_flags


def test_endpoints_are_named_in_flag_order_with_the_default_mac_rule():
    facts, _ = parse_flags("--net-endpoint veth:02:42:AC:11:00:02 --net-endpoint veth --net-endpoint veth")
    assert [(e.kind, e.name, e.mac, e.mac_given) for e in facts.net_endpoints] == [
        ("veth", "eth0", "02:42:ac:11:00:02", True),  # any case in, Kata's lower case out
        ("veth", "eth1", "02:00:00:00:00:02", False),  # the index decides, not the count of defaults
        ("veth", "eth2", "02:00:00:00:00:03", False),
    ]
    assert [e.addresses for e in facts.net_endpoints] == [("10.88.0.2/16",), ("10.89.0.2/16",), ("10.90.0.2/16",)]


def test_no_endpoints_and_vhost_net_by_default():
    facts, _ = parse_flags("--host-cpus 8")
    assert facts.net_endpoints == () and facts.vhost_net is True
    assert parse_flags("--no-vhost-net")[0].vhost_net is False


def test_default_mac_spans_the_bound():
    assert default_mac(0) == "02:00:00:00:00:01"
    assert default_mac(MAX_NET_ENDPOINTS - 1) == "02:00:00:00:00:40"
    assert default_address(MAX_NET_ENDPOINTS - 1) == "10.151.0.2/16"
    assert len(endpoints_from_specs(["veth"] * MAX_NET_ENDPOINTS)) == MAX_NET_ENDPOINTS


@pytest.mark.parametrize("flags, fragment", [
    ("--net-endpoint tap", "unknown endpoint kind 'tap'"),
    ("--net-endpoint veth:zz", "invalid MAC 'zz'"),
    ("--net-endpoint veth:02:00:00:00:00", "invalid MAC"),
    ("--net-endpoint veth:02-00-00-00-00-01", "invalid MAC"),
    ("--net-endpoint veth:02:00:00:00:00:01:02", "invalid MAC"),
    ("--net-endpoint veth:", "empty MAC"),
    ("--net-endpoint veth:01:00:5e:00:00:01", "multicast"),
    ("--net-endpoint veth:ff:ff:ff:ff:ff:ff", "multicast"),
    ("--net-endpoint veth:00:00:00:00:00:00", "all zero"),
    ("--net-endpoint " + " --net-endpoint ".join(["veth"] * (MAX_NET_ENDPOINTS + 1)), "at most 64"),
])
def test_bad_endpoint_is_one_line_naming_the_flag(flags, fragment):
    with pytest.raises(HostFactsError) as err:
        parse_flags(flags)
    message = str(err.value)
    assert message.startswith("--net-endpoint: ") and fragment in message and len(message.splitlines()) == 1


@pytest.mark.parametrize("changes", [
    {"net_endpoints": [NetEndpoint("veth", "eth0", "02:00:00:00:00:01")]},  # a list, not a tuple
    {"net_endpoints": (NetEndpoint("veth", "eth0", "02:00:00:00:00:01"),) * 2},  # eth0 twice
    {"net_endpoints": ("veth",)},
])
def test_bad_endpoint_facts(changes):
    with pytest.raises(HostFactsError, match="^--net-endpoint: "):
        HostFacts(**changes)


@pytest.mark.parametrize("fields", [
    {"kind": "macvlan", "name": "eth0", "mac": "02:00:00:00:00:01"},
    {"kind": "veth", "name": "eth0/x", "mac": "02:00:00:00:00:01"},
    {"kind": "veth", "name": "x" * 16, "mac": "02:00:00:00:00:01"},
    {"kind": "veth", "name": "eth0", "mac": "02:00:00:00:00:0A"},  # the model holds Kata's lower case
    {"kind": "veth", "name": "eth0", "mac": "02:00:00:00:00:01", "addresses": ["10.88.0.2/16"]},
])
def test_bad_endpoint_model(fields):
    with pytest.raises(HostFactsError, match="^--net-endpoint: "):
        NetEndpoint(**fields)


def test_detect_probes_vhost_net(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(hostfacts.platform, "machine", lambda: "x86_64")
    assert hostfacts.detect(tmp_path).vhost_net is False
    (tmp_path / "dev").mkdir()
    (tmp_path / "dev/vhost-net").touch()
    assert hostfacts.detect(tmp_path).vhost_net is True


# --- generation: what the rendered result tells the launcher --------------------------------------------------

NET = Path(__file__).parent / "data" / "conformance" / "kata-3.0.0-net" / "named"


def _render(name: str, extra: str = ""):
    facts, _ = parse_flags((NET / f"{name}.flags").read_text() + " " + extra)
    return render_file(NET / f"{name}.toml", facts)


def _netdev_fds(argv: list[str]) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """(vhostfds, fds) of every -netdev in ``argv``, read back from the argv text."""
    found = []
    for flag, value in zip(argv, argv[1:]):
        if flag == "-netdev":
            opts = dict(o.partition("=")[::2] for o in value.split(","))
            found.append(tuple(tuple(int(fd) for fd in opts[k].split(":")) if opts.get(k) else ()
                               for k in ("vhostfds", "fds")))
    return found


def test_plumbing_names_the_fds_the_argv_names():
    rendered = _render("net_vcpus_4_2")  # 4 vCPUs, two endpoints, tcfilter, vhost
    assert [(p.endpoint, p.tap, p.netdev_id, p.mac, p.model, p.queues, p.vhost) for p in rendered.network] == [
        ("eth0", "tap0_kata", "network-0", "02:00:00:00:00:01", "tcfilter", 4, True),
        ("eth1", "tap1_kata", "network-1", "0a:58:0a:f4:00:07", "tcfilter", 4, True),
    ]
    assert [(p.vhost_fds, p.tap_fds) for p in rendered.network] == _netdev_fds(rendered.argv_values())
    assert [fd for p in rendered.network for fd in p.fds] == list(range(4, 20))  # after the vsock's fd 3
    assert [p.addresses for p in rendered.network] == [("10.88.0.2/16",), ("10.89.0.2/16",)]


def test_plumbing_of_macvtap_without_vhost_and_with_rate_limiters():
    rendered = _render("net_macvtap_disable_vhost_net")
    (plumbing,) = rendered.network
    assert (plumbing.model, plumbing.vhost, plumbing.vhost_fds, plumbing.tap_fds) == ("macvtap", False, (), (4,))
    (limited,) = _render("net_rate_limiters").network
    assert limited.rx_rate > 0 and limited.tx_rate > 0


def test_fds_start_at_3_when_no_vsock_holds_one():
    for extra in ("--no-vsock", "--vsock-cid 2"):  # no vsock; a CID govmm drops (the device renders nothing)
        rendered = _render("net_default", extra)
        assert rendered.network[0].fds == (3, 4)
        assert "tap,id=network-0,vhost=on,vhostfds=3,fds=4" in rendered.argv_values()


def test_no_network_device_without_endpoints_or_with_disable_new_netns():
    assert _render("net_none_disable_new_netns").network == ()
    rendered = render_file(NET / "net_default.toml", parse_flags("--host-cpus 8 --host-mem-mib 16384")[0])
    assert rendered.network == () and "-netdev" not in rendered.argv_values()


def test_endpoints_on_another_hypervisor_are_refused_not_dropped():
    clh = Path(__file__).parent / "data" / "conformance" / "kata-3.0.0-clh" / "named"
    toml = next(iter(sorted(clh.glob("*.toml"))))
    with pytest.raises(HostFactsError, match="^--net-endpoint: .*qemu only, not clh"):
        render_file(toml, parse_flags("--net-endpoint veth")[0])


def test_network_arguments_carry_their_sources():
    rendered = _render("net_no_vsock_no_sharedfs_2", "--nested")
    by_value = {a.value: a.sources for a in rendered.argv}
    backend = by_value["tap,id=network-1,vhost=on,vhostfds=5,fds=6"]
    assert {"host.net_endpoints.eth1", "runtime.internetworking_model", "hypervisor.qemu.disable_vhost_net",
            "hypervisor.qemu.default_vcpus", "host.vhost_net", "host.net_endpoints.eth0"} <= set(backend)
    assert "host.vsock" not in backend  # --no-vsock: nothing holds fd 3 before the endpoints
    frontend = by_value["driver=virtio-net-pci,netdev=network-1,mac=0a:58:0a:f4:00:07,disable-modern=true,"
                        "mq=on,vectors=4"]
    assert {"host.net_endpoints.eth1.mac", "host.nested", "hypervisor.qemu.machine_type"} <= set(frontend)


@pytest.mark.parametrize("name, extra, key, fragment", [
    ("net_none", "", "runtime.internetworking_model", "Invalid internetworking model"),
    ("net_no_vhost_net", "", "hypervisor.qemu.disable_vhost_net", "open /dev/vhost-net"),
    ("net_macvtap_tx_rate_limiter_2", "", "hypervisor.qemu.tx_rate_limiter_max_rate", "ifb0"),
    ("net_macvtap_tx_rate_limiter", "--net-endpoint veth", "hypervisor.qemu.tx_rate_limiter_max_rate", "eth1"),
])
def test_rejections_name_the_key(name, extra, key, fragment):
    with pytest.raises(ConfigError) as err:
        _render(name, extra)
    assert err.value.key == key and fragment in str(err.value) and len(str(err.value).splitlines()) == 1


def test_one_macvtap_endpoint_with_tx_limiter_and_tcfilter_with_many_are_accepted():
    assert len(_render("net_macvtap_tx_rate_limiter").network) == 1
    assert len(_render("net_rate_limiters", "--net-endpoint veth --net-endpoint veth").network) == 3


def test_the_scan_skips_an_interface_without_addresses():
    """Kata's addAllEndpoints ignores unconfigured links: the next one becomes tap0_kata / network-0."""
    facts, _ = parse_flags((NET / "net_default_2.flags").read_text())
    bare = NetEndpoint("veth", "eth0", facts.net_endpoints[0].mac)  # no address
    rendered = render_file(NET / "net_default_2.toml", facts.with_overrides(
        net_endpoints=(bare, facts.net_endpoints[1])))
    assert [(p.endpoint, p.tap, p.netdev_id) for p in rendered.network] == [("eth1", "tap0_kata", "network-0")]
    assert "tap,id=network-0,vhost=on,vhostfds=4,fds=5" in rendered.argv_values()


@pytest.mark.parametrize("flags, fragment", [
    (["--net-endpoint", "veth:zz"], "katatest: --net-endpoint: invalid MAC 'zz'"),
    (["--net-endpoint", "bond"], "katatest: --net-endpoint: unknown endpoint kind 'bond'"),
    (["--net-endpoint", "veth", "--no-vhost-net"], "createNetwork: hypervisor.qemu.disable_vhost_net: "),
])
def test_cli_exits_2_with_one_line(flags, fragment, capsys: pytest.CaptureFixture[str]):
    assert main(["render", str(NET / "net_default.toml"), *flags]) == 2
    err = capsys.readouterr().err
    assert fragment in err and len(err.splitlines()) == 1


def test_cli_explain_names_the_endpoint(capsys: pytest.CaptureFixture[str]):
    assert main(["explain", str(NET / "net_default.toml"), "--host-cpus", "2", "--net-endpoint", "veth"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("tap,id=network-0,")]
    assert lines and "host.net_endpoints.eth0" in lines[0] and "runtime.internetworking_model" in lines[0]
