"""A pytest plugin for the fault tests (``-p tests.faults.hold_guest``): each test of the spawned run keeps its
guest up for ``HOLD_S`` after its call, so a fault test that signals the run or a worker while a guest serves
has a window far wider than its poll (the suites' checks take milliseconds; the fault test ends the run). A call
that raised (Ctrl-C while the check ran) is not held: the run must stop at once, as it would without the hold."""

from __future__ import annotations

import time

import pytest

HOLD_S = 30.0


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item):
    outcome = yield
    if outcome.excinfo is None:
        time.sleep(HOLD_S)
