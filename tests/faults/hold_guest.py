"""A pytest plugin for the fault tests (``-p tests.faults.hold_guest``): each test of the spawned run keeps its
guest up for ``HOLD_S`` after its call, so a fault test that signals the run or a worker while a guest serves
has a window far wider than its poll (the suites' checks take milliseconds; the fault test ends the run). A call
that raised (Ctrl-C while the check ran) is not held: the run must stop at once, as it would without the hold.
The hold ends early once the file ``KATATEST_HOLD_RELEASE`` names exists: the fault test creates it when its fault
is in, so the tests that still run (e.g. on the worker it did not kill) do not wait out their holds."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

HOLD_S = 30.0
RELEASE_ENV = "KATATEST_HOLD_RELEASE"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item):
    outcome = yield
    release = Path(os.environ.get(RELEASE_ENV, "/nonexistent"))
    deadline = time.monotonic() + HOLD_S
    while outcome.excinfo is None and time.monotonic() < deadline and not release.exists():
        time.sleep(0.05)
