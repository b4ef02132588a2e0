"""Test outcomes, their precedence, and the short message of a pytest report (duck-typed, xdist-safe)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

PASSED, FAILED, ERROR, SKIPPED = "passed", "failed", "error", "skipped"
OUTCOMES = (FAILED, ERROR, PASSED, SKIPPED)
"""Worst first: a group or cell takes the worst outcome of its tests."""

GENERATION_ONLY = "generation-only"
PARTIAL = "partial"
CELL_OUTCOMES = (FAILED, ERROR, PARTIAL, PASSED, GENERATION_ONLY, SKIPPED)
"""A cell whose guest could not boot here (skipped with a reason) and whose other checks passed is not
"passed": only what Kata would launch was checked, nothing inside a guest. A booted cell with a check group that
did not run at all (every test of it skipped) is "partial", naming the groups: passed would claim checks that
never ran."""

MESSAGE_LIMIT = 500


def worst(outcomes: Iterable[str]) -> str | None:
    """The outcome of highest precedence (failed > error > passed > skipped); None if there is none."""
    seen = set(outcomes)
    return next((o for o in OUTCOMES if o in seen), None)


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    marked = [line[1:].strip() for line in lines if line.startswith("E ")]
    line = (marked or lines or [""])[0]
    return line[:MESSAGE_LIMIT]


def skip_reason(longrepr: Any) -> str:
    """The reason of a skip; pytest gives (file, line, "Skipped: reason"), xdist may give a list."""
    if isinstance(longrepr, (tuple, list)) and len(longrepr) == 3:
        reason = str(longrepr[2])
        return reason.removeprefix("Skipped: ")[:MESSAGE_LIMIT]
    return _first_line(str(longrepr or ""))


def failure_line(longrepr: Any) -> str:
    """The first line of a failure: the crash message when pytest has one, else the first 'E' line."""
    crash = getattr(longrepr, "reprcrash", None)
    message = getattr(crash, "message", None)
    if message:
        return _first_line(str(message))
    return _first_line(str(longrepr or ""))


def phase_outcome(report: Any) -> tuple[str, str]:
    """(outcome, message) of one phase report (setup, call or teardown)."""
    xfail = getattr(report, "wasxfail", None)
    if report.skipped:
        if xfail is not None:
            return SKIPPED, f"xfail: {xfail}" if xfail else "xfail"
        return SKIPPED, skip_reason(report.longrepr)
    if report.failed:
        if report.when == "call":
            return FAILED, failure_line(report.longrepr)
        return ERROR, f"{report.when}: {failure_line(report.longrepr)}"
    return PASSED, ""


def combine_phases(phases: dict[str, tuple[str, str]]) -> tuple[str, str]:
    """A test's (outcome, message) from its phases: a failing call is 'failed', a failing setup/teardown
    'error' (a failing call wins over a teardown error), a skip in setup or call 'skipped'. Unknown phases
    (xdist reports a crashed worker's test as phase '???') count too."""
    order = ["setup", "call", "teardown"] + sorted(set(phases) - {"setup", "call", "teardown"})
    for wanted in (FAILED, ERROR, SKIPPED):
        for when in order:
            outcome, message = phases.get(when, (PASSED, ""))
            if outcome == wanted:
                return outcome, message
    return PASSED, ""
