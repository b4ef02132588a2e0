"""The pod network endpoints as host facts: ``--net-endpoint veth[:MAC]`` and ``--no-vhost-net``."""

from __future__ import annotations

from pathlib import Path

import pytest

from katatest.errors import HostFactsError
from katatest.host import facts as hostfacts
from katatest.host.endpoints import MAX_NET_ENDPOINTS, NetEndpoint, default_mac, endpoints_from_specs
from katatest.host.facts import HostFacts
from katatest.host.flags import parse_flags


def test_endpoints_are_named_in_flag_order_with_the_default_mac_rule():
    facts, _ = parse_flags("--net-endpoint veth:02:42:AC:11:00:02 --net-endpoint veth --net-endpoint veth")
    assert [(e.kind, e.name, e.mac, e.mac_given) for e in facts.net_endpoints] == [
        ("veth", "eth0", "02:42:ac:11:00:02", True),  # any case in, Kata's lower case out
        ("veth", "eth1", "02:00:00:00:00:02", False),  # the index decides, not the count of defaults
        ("veth", "eth2", "02:00:00:00:00:03", False),
    ]


def test_no_endpoints_and_vhost_net_by_default():
    facts, _ = parse_flags("--host-cpus 8")
    assert facts.net_endpoints == () and facts.vhost_net is True
    assert parse_flags("--no-vhost-net")[0].vhost_net is False


def test_default_mac_spans_the_bound():
    assert default_mac(0) == "02:00:00:00:00:01"
    assert default_mac(MAX_NET_ENDPOINTS - 1) == "02:00:00:00:00:ff"
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
    ("--net-endpoint " + " --net-endpoint ".join(["veth"] * (MAX_NET_ENDPOINTS + 1)), "at most 255"),
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
