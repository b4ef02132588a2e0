"""The network suite's reachability check fails when two endpoints are plumbed to each other's NIC, and passes
otherwise: the peers answer only on their own veth (arp_ignore/rp_filter in the peer namespace), so a swap that
Linux's defaults would hide is seen."""

from __future__ import annotations

import importlib.util
from dataclasses import replace
from pathlib import Path
from types import ModuleType

import pytest

from katatest.guest.boot import boot_guest
from katatest.host import facts as hostfacts
from katatest.host.flags import parse_flags
from katatest.kata.tomlconf import load_toml
from katatest.launch import network
from katatest.launch.kvm import AccelVerdict
from katatest.launch.network import PodNetwork
from katatest.launch.vm import make_run_root
from tests.faults.helpers import built_assets

pytestmark = [pytest.mark.boot, pytest.mark.usefixtures("isolated_env"),
              pytest.mark.skipif(network.unavailable_reason() is not None, reason=network.unavailable_reason() or "")]
ROOT = Path(__file__).resolve().parents[1]
VECTORS = ROOT / "tests" / "data" / "conformance" / "kata-3.0.0-net" / "named"


def network_suite() -> ModuleType:
    spec = importlib.util.spec_from_file_location("katatest_network_suite", ROOT / "suites" / "test_network.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def swapped_inherited(original):
    """PodNetwork.inherited with the tap queues of endpoints 0 and 1 exchanged (QEMU's network-0 gets eth1's)."""
    def inherited(self: PodNetwork, vhost_net: bool):
        fds = original(self, vhost_net)
        first, second = ([f for f in fds if f.kind == "passed" and f"{self.plumbed[i].endpoint.netdev_id} fds="
                          in f.reason] for i in (0, 1))
        assert first and len(first) == len(second)
        owners = {id(a): b.owner_fd for a, b in [*zip(first, second), *zip(second, first)]}
        return [replace(f, owner_fd=owners[id(f)]) if id(f) in owners else f for f in fds]
    return inherited


def _boot(tmp_path: Path):
    doc = load_toml(VECTORS / "net_default_2.toml")
    host = hostfacts.detect()
    facts = parse_flags((VECTORS / "net_default_2.flags").read_text())[0].with_overrides(
        host_cpus=host.host_cpus, host_mem_mib=host.host_mem_mib)
    return boot_guest(doc, facts, host=host, assets=built_assets(), accel=AccelVerdict("tcg", "test"),
                      run_root=make_run_root("swap"), name="swap")


@pytest.mark.parametrize("swap", [False, True], ids=["plumbed-as-kata", "endpoints-swapped"])
def test_reachability_check_sees_swapped_endpoints(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   swap: bool) -> None:
    suite = network_suite()
    if swap:
        monkeypatch.setattr(PodNetwork, "inherited", swapped_inherited(PodNetwork.inherited))
    with _boot(tmp_path) as guest:
        assert len(guest.nics) == 2
        suite.test_qemu_pairs_each_endpoint_mac_with_its_netdev(guest, guest.nics)  # QEMU's pairing is intact
        if swap:
            with pytest.raises(AssertionError, match="ping -c 3"):
                suite.test_guest_pings_the_host_side_of_every_endpoint(guest, guest.nics)
        else:
            suite.test_guest_pings_the_host_side_of_every_endpoint(guest, guest.nics)
