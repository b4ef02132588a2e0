"""A pytest plugin for the harness's self-tests (``-p tests.faults.qemu_dies_after``): after each test's call on
the cell ``KATATEST_KILL_CELL`` names, the guest's QEMU is SIGKILLed (and waited for), as a QEMU aborting after
a cell's last check would end: the check itself passed, the cell must not."""

from __future__ import annotations

import os
import signal
import time

import pytest

CELL_ENV = "KATATEST_KILL_CELL"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item):
    yield
    guest = item.funcargs.get("guest")
    cell = item.funcargs.get("cell")
    if guest is None or not guest.vm.qemu_pid or getattr(cell, "name", None) != os.environ.get(CELL_ENV):
        return
    os.kill(guest.vm.qemu_pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while guest.vm.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
