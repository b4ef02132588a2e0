"""``katatest diff-releases``: an upgrade's argv and daemon-argv differences, each with its provenance."""

from __future__ import annotations

import difflib
import json
import shlex

import pytest

from katatest.cli import main
from katatest.conformance.release_diff import diff_releases
from katatest.conformance.vectors import discover, normalise
from katatest.host.flags import parse_flags
from katatest.kata.tomlconf import load_toml
from katatest.matrix.cell_config import BASE_DIR
from tests.conformance_files import DATA

OLD = DATA / "kata-3.0.0" / "named"
NEW = DATA / "kata-4.1.0" / "named"
SHIPPED = [("default", "amd64"), ("arm64_default", "arm64")]


def _vector_changes(old_file, new_file) -> list[tuple[list[str], list[str]]]:
    """The (removed, added) runs of difflib over two vectors' normalised argv."""
    old = normalise(old_file.read_text().splitlines()) if old_file.exists() else []
    new = normalise(new_file.read_text().splitlines()) if new_file.exists() else []
    matcher = difflib.SequenceMatcher(a=old, b=new, autojunk=False)
    return [(old[i1:i2], new[j1:j2]) for tag, i1, i2, j1, j2 in matcher.get_opcodes() if tag != "equal"]


@pytest.mark.parametrize(("name", "arch"), SHIPPED)
def test_shipped_defaults_list_exactly_the_vectors_differences(name: str, arch: str) -> None:
    """3.0.0's shipped config as 3.0.0 against 4.1.0's shipped config as 4.1.0: the hunks are exactly the
    differences between the two releases' own vectors (argv and virtiofsd argv)."""
    facts, _ = parse_flags((NEW / f"{name}.flags").read_text())
    assert facts == parse_flags((OLD / f"{name}.flags").read_text())[0]
    diff = diff_releases(load_toml(OLD / f"{name}.toml"), load_toml(NEW / f"{name}.toml"), facts, "3.0.0", "4.1.0")
    assert not diff.rejected
    for stream, suffix in (("argv", ".argv"), ("daemon", ".virtiofsd.argv")):
        got = [([a.value for a in h.removed], [a.value for a in h.added]) for h in diff.stream(stream)]
        assert got == _vector_changes(OLD / f"{name}{suffix}", NEW / f"{name}{suffix}")
        assert got  # the releases do differ


@pytest.mark.parametrize(("name", "arch"), SHIPPED)
def test_every_difference_has_a_source_and_a_reason(name: str, arch: str) -> None:
    """One config, two releases: every changed argument has sources, and every hunk names a release
    behaviour (nothing else differs)."""
    facts, _ = parse_flags((NEW / f"{name}.flags").read_text())
    doc = load_toml(NEW / f"{name}.toml")
    diff = diff_releases(doc, doc, facts, "3.0.0", "4.1.0")
    assert diff.hunks
    for hunk in diff.hunks:
        args = hunk.removed + hunk.added
        assert all(a.sources for a in args)
        assert any(a.behaviours for a in args), hunk


def test_the_same_release_differs_in_nothing() -> None:
    facts, _ = parse_flags((NEW / "default.flags").read_text())
    doc = load_toml(NEW / "default.toml")
    assert diff_releases(doc, doc, facts, "4.1.0", "4.1.0").hunks == []


def test_3_30_to_4_1_is_the_pcie_pin() -> None:
    """The README of the 4.1.0 vectors: bus=pcie.0 on vsock and vhost-user-fs is the default config's change."""
    facts, _ = parse_flags((NEW / "default.flags").read_text())
    doc = load_toml(NEW / "default.toml")
    hunks = diff_releases(doc, doc, facts, "3.30.0", "4.1.0").hunks
    assert [h.added[0].value.endswith(",bus=pcie.0") for h in hunks] == [True, True]
    assert all("release.qemu.pcie_root_bus_pin" in h.added[0].behaviours for h in hunks)


def test_cli_text_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    flags = shlex.split((NEW / "default.flags").read_text())
    assert main(["diff-releases", str(NEW / "default.toml"), "--from", "3.0.0", "--to", "4.1.0", *flags]) == 0
    out = capsys.readouterr().out
    assert "  - -daemonize\n      from: kata.fixed, release.qemu.daemonize\n" in out
    assert "kernel parameters: +selinux=0 +agent.cdh_api_timeout=50" in out
    assert main(["diff-releases", str(NEW / "default.toml"), "--to", "4.1.0", "--format", "json", *flags]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["from"] == "3.0.0" and doc["to"] == "4.1.0" and doc["rejected"] == {}
    assert {"-qmp"} <= {h["after"] for h in doc["hunks"]}


def test_cli_unknown_release_and_rejection(capsys: pytest.CaptureFixture[str]) -> None:
    config = str(NEW / "default.toml")
    assert main(["diff-releases", config, "--to", "5.0"]) == 2
    assert capsys.readouterr().err == "katatest: unknown Kata release '5.0' (known: 3.0.0, 3.30.0, 4.1.0)\n"
    rejected = DATA / "kata-3.30.0" / "named" / "shared_fs_none.toml"  # 3.0.0 has no shared_fs = "none"
    flags = shlex.split(rejected.with_suffix(".flags").read_text())
    assert main(["diff-releases", str(rejected), "--from", "3.0.0", "--to", "3.30.0", *flags]) == 1
    assert "Kata 3.0.0 rejects this configuration" in capsys.readouterr().out


@pytest.mark.parametrize(("suite", "old"), [("kata-3.30.0", "3.0.0"), ("kata-4.1.0", "3.0.0"),
                                            ("kata-4.1.0", "3.30.0")])
def test_every_hunk_of_every_vector_config_names_its_release_behaviour(suite: str, old: str) -> None:
    """For each config both releases accept, every hunk carries the release behaviour that causes it."""
    unexplained = []
    for vector in discover(DATA, suite):
        facts, _ = parse_flags(" ".join(vector.flags))
        doc = load_toml(vector.toml)
        diff = diff_releases(doc, doc, facts, old, suite.removeprefix("kata-"))
        unexplained += [f"{vector.id}: after {h.after}" for h in diff.hunks
                        if not any(a.behaviours for a in h.removed + h.added)]
    assert unexplained == []


def test_network_differences_between_releases(capsys: pytest.CaptureFixture[str]) -> None:
    """With an endpoint, the upgrade's network changes are spelled out with their release behaviours: fds after
    the QMP listener, and 4.1.0's bus=pcie.0 on the NIC."""
    config = BASE_DIR / "4.1.0" / "configuration-qemu-amd64.toml"
    assert main(["diff-releases", str(config), "--from", "3.0.0", "--to", "4.1.0", "--net-endpoint", "veth"]) == 0
    out = capsys.readouterr().out
    assert "- tap,id=network-0,vhost=on,vhostfds=4,fds=5" in out
    assert "+ tap,id=network-0,vhost=on,vhostfds=5,fds=6" in out
    assert "mac=02:00:00:00:00:01,bus=pcie.0,disable-modern=false" in out
    nic = out[out.index("+ driver=virtio-net-pci"):].splitlines()[1]
    assert "release.qemu.pcie_root_bus_pin" in nic and "host.net_endpoints.eth0" in nic


@pytest.mark.parametrize(("endpoints", "ports"), [([], 0), (["--net-endpoint", "veth"], 2),
                                                  (["--net-endpoint", "veth", "--net-endpoint", "veth"], 3)])
def test_arm64_root_ports_follow_the_pod_netns(capsys: pytest.CaptureFixture[str], endpoints: list[str],
                                                ports: int) -> None:
    """arm64 3.30+: one pcie-root-port per link of the pod netns (lo included); no endpoint is no netns, and
    explain says so."""
    config = BASE_DIR / "4.1.0" / "configuration-qemu-arm64.toml"
    assert main(["explain", str(config), "--arch", "arm64", "--kata-version", "4.1.0", *endpoints]) == 0
    out = capsys.readouterr().out
    assert out.count("pcie-root-port,id=rp") == ports
    assert ("note: no --net-endpoint: katatest assumes no pod network namespace" in out) is (ports == 0)
