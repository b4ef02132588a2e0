"""``--kata-version`` on render, explain, lint and boot: the release is an input of every rendering command."""

from __future__ import annotations

import shlex

import pytest

from katatest.cli import main
from katatest.conformance.vectors import normalise
from tests.conformance_files import DATA

V330 = DATA / "kata-3.30.0" / "named"
V410 = DATA / "kata-4.1.0" / "named"


def _flags(directory, name: str) -> list[str]:
    return shlex.split((directory / f"{name}.flags").read_text())


def _render(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[str], str]:
    code = main(["render", *argv])
    out, err = capsys.readouterr()
    return code, out.splitlines(), err


@pytest.mark.parametrize(("directory", "version"), [(V330, "3.30.0"), (V410, "4.1.0")])
def test_render_with_kata_version_is_the_release_vector(capsys, directory, version) -> None:
    code, lines, err = _render(capsys, str(directory / "default.toml"), *_flags(directory, "default"),
                               "--kata-version", version)
    assert code == 0 and err == ""
    assert normalise(lines) == normalise((directory / "default.argv").read_text().splitlines())


def test_default_is_3_0_0(capsys) -> None:
    flags = _flags(V410, "default")
    _, default, _ = _render(capsys, str(V410 / "default.toml"), *flags)
    _, explicit, _ = _render(capsys, str(V410 / "default.toml"), *flags, "--kata-version", "3.0.0")
    assert normalise(default) == normalise(explicit) and "-daemonize" in default


def test_hidden_release_alias(capsys) -> None:
    flags = _flags(V410, "default")
    _, new, _ = _render(capsys, str(V410 / "default.toml"), *flags, "--kata-version", "4.1.0")
    _, old, _ = _render(capsys, str(V410 / "default.toml"), *flags, "--release", "4.1.0")
    assert normalise(new) == normalise(old)
    with pytest.raises(SystemExit):
        main(["render", "--help"])
    help_text = capsys.readouterr().out
    assert "--kata-version" in help_text and "--release" not in help_text


@pytest.mark.parametrize("command", ["render", "explain", "lint", "boot"])
def test_unknown_version_is_exit_2_listing_the_known(capsys, command) -> None:
    code = main([command, str(V410 / "default.toml"), "--kata-version", "5.0.0"])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err == "katatest: unknown Kata release '5.0.0' (known: 3.0.0, 3.30.0, 4.1.0)\n"


def test_explain_names_release_behaviours(capsys) -> None:
    assert main(["explain", str(V410 / "default.toml"), *_flags(V410, "default"), "--kata-version", "4.1.0"]) == 0
    out = capsys.readouterr().out
    qmp = next(line for line in out.splitlines() if line.startswith("unix:fd=3"))
    assert qmp.endswith("<- release.qemu.qmp")
    assert "release.qemu.pcie_root_bus_pin" in out


def test_lint_takes_the_version(capsys) -> None:
    assert main(["lint", str(V330 / "default.toml"), *_flags(V330, "default"), "--kata-version", "3.30.0"]) == 0
    assert capsys.readouterr().out.endswith(": ok\n")


def test_a_later_release_refuses_clh_on_the_command_line(capsys) -> None:
    clh = sorted((DATA / "kata-3.0.0-clh" / "named").glob("*.toml"))[0]
    assert main(["render", str(clh), "--kata-version", "3.30.0"]) == 2
    assert "Kata 3.30.0 does not drive clh" in capsys.readouterr().err


@pytest.mark.parametrize(("version", "bus"), [("3.30.0", ""), ("4.1.0", "bus=pcie.0,")])
def test_pod_network_endpoints_render_for_later_releases(capsys, version: str, bus: str) -> None:
    """The pod network of Kata 3.30.0 and 4.1.0: fds after the QMP listener (3) and the vsock (4); 4.1.0 pins
    the NIC to pcie.0 right after its MAC."""
    code, lines, err = _render(capsys, str(V410 / "default.toml"), "--net-endpoint", "veth:02:00:00:00:00:2a",
                               "--kata-version", version)
    assert code == 0, err
    assert "tap,id=network-0,vhost=on,vhostfds=5,fds=6" in lines
    assert (f"driver=virtio-net-pci,netdev=network-0,mac=02:00:00:00:00:2a,{bus}disable-modern=false,mq=on,"
            "vectors=4") in lines


def test_a_release_without_network_vectors_refuses_endpoints(monkeypatch, capsys) -> None:
    """Which releases model the pod network is data (release.qemu.pod_network): one that does not is refused."""
    import dataclasses

    from katatest.generate import render
    from katatest.kata.releases import load_release

    real = load_release("4.1.0")
    without = dataclasses.replace(real, qemu=dataclasses.replace(real.qemu, pod_network=False))
    monkeypatch.setattr(render, "load_release", lambda v="3.0.0": without if v == "4.1.0" else load_release(v))
    code, lines, err = _render(capsys, str(V410 / "default.toml"), "--net-endpoint", "veth", "--kata-version",
                               "4.1.0")
    assert code == 2 and lines == [] and "not 4.1.0 (no network vectors for it yet)" in err


