"""The running-QEMU peer of the hot-plug model (``katatest.launch.qmp.QmpPeer``) against Debian's QEMU 7.2,
paused: fds passed for Kata's ``getfd``, ``device_del`` complete at ``DEVICE_DELETED``, and every wait bounded
(an event that never comes is an error naming it, not a hang)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from katatest.launch.qmp import EventMissing, Qmp, QmpPeer

QEMU = "/usr/bin/qemu-system-x86_64"


@pytest.fixture
def qmp(tmp_path: Path) -> Iterator[Qmp]:
    if not os.path.exists(QEMU):
        pytest.fail(f"{QEMU} is missing: scripts/setup.sh installs it")
    sock = tmp_path / "qmp.sock"
    proc = subprocess.Popen([QEMU, "-machine", "q35,accel=tcg", "-nodefaults", "-display", "none", "-S",
                             "-device", "virtio-serial-pci,id=serial0", "-qmp", f"unix:{sock},server=on,wait=off"],
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


def test_a_missing_event_is_an_error_within_its_grace(qmp: Qmp) -> None:
    """Done (``gone``) but no event: EventMissing after the grace, not the whole timeout; not done: TimeoutError
    at the timeout."""
    started = time.monotonic()
    with pytest.raises(EventMissing, match="done, but no DEVICE_DELETED"):
        qmp.execute_until("query-status", {}, "DEVICE_DELETED", {"device": "x"}, 20.0, gone=lambda: True, grace=0.3)
    assert time.monotonic() - started < 3.0
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
    qmp.execute_until("query-status", {}, "DEVICE_DELETED", {"device": "port1"}, 5.0, gone=unplug_then_gone,
                      grace=0.5)
