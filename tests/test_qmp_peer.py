"""The running-QEMU peer of the hot-plug model (``katatest.launch.qmp.QmpPeer``) against Debian's QEMU 7.2,
paused: fds passed for Kata's ``getfd``, ``device_del`` complete at ``DEVICE_DELETED``, and every wait bounded
(an event that never comes is an error naming it, not a hang); an event QEMU owes from its RCU callbacks
arrives by the answer to an RCU drain, on every QEMU build."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from katatest.assets import qemu_builds
from katatest.launch.qmp import DRAIN_DRIVER, EventMissing, Qmp, QmpPeer

QEMU = "/usr/bin/qemu-system-x86_64"
# A PCIe slot the paused guest never powered: QEMU unplugs its device at once, and finalizes it (DEVICE_DELETED)
# in an RCU callback (the device's bus-master address space).
NATIVE_PCIE_SLOT = ("-global", "ICH9-LPC.acpi-pci-hotplug-with-bridge-support=off",
                    "-device", "pcie-root-port,id=rp1,chassis=1,bus=pcie.0")


@contextlib.contextmanager
def paused_qemu(command: list[str], sock: Path, *extra: str) -> Iterator[Qmp]:
    proc = subprocess.Popen([*command, "-machine", "q35,accel=tcg", "-nodefaults", "-display", "none", "-S",
                             "-device", "virtio-serial-pci,id=serial0", *extra,
                             "-qmp", f"unix:{sock},server=on,wait=off"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        client = Qmp(str(sock))
        try:
            yield client
        finally:
            client.close()
    finally:
        proc.kill()
        proc.wait()


@pytest.fixture
def qmp(tmp_path: Path) -> Iterator[Qmp]:
    if not os.path.exists(QEMU):
        pytest.fail(f"{QEMU} is missing: scripts/setup.sh installs it")
    with paused_qemu([QEMU], tmp_path / "qmp.sock") as client:
        yield client


def line(command: str, **arguments: object) -> str:
    return json.dumps({"execute": command, "arguments": arguments})


def test_getfd_passes_the_fd_kata_names(qmp: Qmp) -> None:
    peer = QmpPeer(qmp)
    read_end, write_end = os.pipe()
    try:
        peer.fds = {"fd0": read_end}
        assert peer.answer(line("getfd", fdname="fd0")) == {"return": {}}
        assert "error" in peer.answer(line("getfd", fdname="fd1"))  # none passed: QEMU's own refusal
        assert len(peer.errors) == 1 and "fd1" in peer.errors[0][0]
        assert peer.answer(line("closefd", fdname="fd0")) == {"return": {}}
    finally:
        os.close(read_end)
        os.close(write_end)


def test_device_del_completes_at_device_deleted(qmp: Qmp) -> None:
    peer = QmpPeer(qmp, unplug_timeout=5.0)
    assert peer.answer(line("device_add", driver="virtserialport", id="port0", bus="serial0.0")) == {"return": {}}
    started = time.monotonic()
    assert peer.answer(line("device_del", id="port0")) == {"return": {}}
    assert time.monotonic() - started < 2.0 and not peer.errors
    assert all(c["name"] != "port0" for c in qmp.execute("qom-list", {"path": "/machine/peripheral"}))


def test_a_missing_event_is_an_error_once_qemu_drained(qmp: Qmp) -> None:
    """Done (``gone``) but no event by the RCU drains' answers: EventMissing at once, not after the timeout;
    not done: TimeoutError at the timeout."""
    started = time.monotonic()
    with pytest.raises(EventMissing, match=r"done, but no DEVICE_DELETED .*\(2 RCU drains"):
        qmp.execute_until("query-status", {}, "DEVICE_DELETED", {"device": "x"}, 20.0, gone=lambda: True)
    assert time.monotonic() - started < 2.0
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        qmp.execute_until("query-status", {}, "DEVICE_DELETED", {"device": "x"}, 1.0, gone=lambda: False)
    assert 0.9 < time.monotonic() - started < 4.0



def test_a_device_event_after_it_left_the_tree_is_waited_for(qmp: Qmp) -> None:
    """QEMU may send DEVICE_DELETED after the device left its tree (it finalizes later): within the grace that
    is a completed device_del, not a missing event (here ``gone`` itself unplugs the port)."""
    qmp.execute("device_add", {"driver": "virtserialport", "id": "port1", "bus": "serial0.0"})

    def unplug_then_gone() -> bool:
        qmp.execute("device_del", {"id": "port1"})
        return all(c["name"] != "port1" for c in qmp.execute("qom-list", {"path": "/machine/peripheral"}))
    qmp.execute_until("query-status", {}, "DEVICE_DELETED", {"device": "port1"}, 5.0, gone=unplug_then_gone)


@pytest.mark.parametrize("build", qemu_builds.names("qemu"))
def test_an_event_owed_by_rcu_callbacks_completes_the_device_del(tmp_path: Path, build: str) -> None:
    """A device QEMU finalizes in an RCU callback: gone from the tree at once, its DEVICE_DELETED later. Asked
    whether it left right after the answer (``poll`` ~0), the drain still brings the event: the device_del
    completes (no EventMissing), on every QEMU build; the peer does the same. The drain itself adds nothing and
    leaves QEMU as it was."""
    found = qemu_builds.find("qemu", build)
    if found is None:
        pytest.fail(f"QEMU {build} is not provisioned: katatest assets build --qemu all")
    with paused_qemu(found.command("amd64"), tmp_path / "qmp.sock", *NATIVE_PCIE_SLOT) as qmp:
        def gone(device: str) -> bool:
            return all(c["name"] != device for c in qmp.execute("qom-list", {"path": "/machine/peripheral"}))
        for index in range(3):
            device = f"rng{index}"
            qmp.execute("device_add", {"driver": "virtio-rng-pci", "id": device, "bus": "rp1"})
            qmp.execute_until("device_del", {"id": device}, "DEVICE_DELETED", {"device": device}, 10.0,
                              gone=lambda device=device: gone(device), poll=0.001)
        peer = QmpPeer(qmp, unplug_timeout=10.0)
        assert peer.answer(line("device_add", driver="virtio-rng-pci", id="rng9", bus="rp1")) == {"return": {}}
        assert peer.answer(line("device_del", id="rng9")) == {"return": {}}
        assert not peer.errors
        qmp.drain_rcu()
        names = {c["name"] for c in qmp.execute("qom-list", {"path": "/machine/peripheral"})}
        assert names == {"type", "serial0", "rp1"} and DRAIN_DRIVER not in names
        assert qmp.status() == "prelaunch"
