"""summary.json: the data of one run (or of merged shards) as dataclasses, built from per-test results."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from katatest.report.outcomes import CELL_OUTCOMES, GENERATION_ONLY, OUTCOMES, PARTIAL, PASSED, SKIPPED, worst

FORMAT = 2  # 2: cells say whether their guest booted (boot, boot_skip_reason, boots); "generation-only"
GROUP_ORDER = ("generation", "cmdline", "devices", "rootfs", "shared_fs", "topology", "qmp", "network", "hotplug")
"""Check groups in suite order; groups not listed follow alphabetically."""


@dataclass
class TestResult:
    """One test: its combined outcome over setup/call/teardown. ``cell`` is None for plain tests."""

    __test__ = False  # not a pytest test class

    nodeid: str
    outcome: str
    duration_s: float = 0.0
    message: str = ""
    cell: str | None = None
    group: str | None = None


@dataclass
class GroupResult:
    """One check group of one cell: the worst outcome of its tests and that test's message."""

    outcome: str
    counts: dict[str, int]
    message: str = ""


BOOTED, BOOT_SKIPPED, BOOT_ERROR = "booted", "skipped", "error"


@dataclass
class Boot:
    """What became of a cell's guest in a run: ``state`` booted, skipped (``skip_reason`` says why), error,
    or '' (no test of the cell needed a guest); ``count``: guests booted (1, or 1 per worker that got some
    of the cell's tests under a --dist other than loadgroup)."""

    state: str = ""
    skip_reason: str = ""
    count: int = 0
    boot_s: float = 0.0  # from the guest fixture's start to a guest ready for checks (summed over boots)
    teardown_s: float = 0.0  # stopping it and collecting its artifacts


def boots_from_events(events: list[dict[str, Any]]) -> dict[str, Boot]:
    """Per cell, from the ``katatest_boot`` events of every process: booted wins over error over skipped."""
    out: dict[str, Boot] = {}
    for event in events:
        boot = out.setdefault(str(event.get("cell")), Boot())
        state = str(event.get("state", ""))
        boot.boot_s = round(boot.boot_s + float(event.get("boot_s", 0.0)), 3)
        boot.teardown_s = round(boot.teardown_s + float(event.get("teardown_s", 0.0)), 3)
        if state == BOOTED:
            boot.count += 1
        rank = (BOOTED, BOOT_ERROR, BOOT_SKIPPED, "")
        if rank.index(state if state in rank else "") < rank.index(boot.state):
            boot.state = state
        if state == BOOT_SKIPPED and not boot.skip_reason:
            boot.skip_reason = str(event.get("reason", ""))
    return out


@dataclass
class CellResult:
    """One matrix cell: its dimensions, per-group results and artifact files (relative to cells/<name>/),
    and whether its guest booted (``boot``: booted|skipped|error|''; ``boots``: how often)."""

    name: str
    outcome: str
    dims: dict[str, Any] = field(default_factory=dict)
    groups: dict[str, GroupResult] = field(default_factory=dict)
    artifacts: list[str] = field(default_factory=list)
    duration_s: float = 0.0
    boot: str = ""
    boot_skip_reason: str = ""
    boots: int = 0
    partial_groups: list[str] = field(default_factory=list)  # groups that did not run (all skipped), if partial
    boot_s: float = 0.0  # phases of duration_s: the boot (in the first test's setup), the checks, the teardown
    teardown_s: float = 0.0

    @property
    def checks_s(self) -> float:
        return round(max(self.duration_s - self.boot_s - self.teardown_s, 0.0), 3)

    @property
    def booted(self) -> bool:
        return self.boot == BOOTED


@dataclass
class Summary:
    """A run: metadata, the matrix (cells x groups), every test, and totals."""

    started: str = ""
    wall_time_s: float = 0.0
    pytest_args: list[str] = field(default_factory=list)
    exit_status: int | None = None
    shard: str | None = None
    environment: dict[str, Any] = field(default_factory=dict)
    groups: list[str] = field(default_factory=list)
    cells: list[CellResult] = field(default_factory=list)
    tests: list[TestResult] = field(default_factory=list)
    totals: dict[str, dict[str, int]] = field(default_factory=dict)
    shards: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    format: int = FORMAT

    @property
    def other_tests(self) -> list[TestResult]:
        return [t for t in self.tests if t.cell is None]

    def cell(self, name: str) -> CellResult:
        return next(c for c in self.cells if c.name == name)

    def phase_totals(self) -> dict[str, float]:
        """The booted cells' phases summed over workers: ``booted`` (how many), ``boot_s``, ``checks_s``,
        ``teardown_s``."""
        booted = [c for c in self.cells if c.booted]
        return {"booted": len(booted), "boot_s": round(sum(c.boot_s for c in booted), 1),
                "checks_s": round(sum(c.checks_s for c in booted), 1),
                "teardown_s": round(sum(c.teardown_s for c in booted), 1)}


def order_groups(groups: set[str]) -> list[str]:
    known = [g for g in GROUP_ORDER if g in groups]
    return known + sorted(groups - set(GROUP_ORDER))


def counts(outcomes: list[str], kinds: tuple[str, ...] = OUTCOMES) -> dict[str, int]:
    c = Counter(outcomes)
    return {o: c.get(o, 0) for o in kinds} | {"total": len(outcomes)}


def _group_result(tests: list[TestResult]) -> GroupResult:
    outcome = worst(t.outcome for t in tests) or "skipped"
    message = next((t.message for t in tests if t.outcome == outcome and t.message), "")
    return GroupResult(outcome, counts([t.outcome for t in tests]), message)


def cell_outcome(groups: dict[str, GroupResult], boot: Boot) -> str:
    """The worst group outcome; a cell whose guest was skipped and nothing failed is generation-only; one
    whose guest booted but a group of which did not run at all is partial."""
    outcome = worst(g.outcome for g in groups.values()) or SKIPPED
    if boot.state == BOOT_SKIPPED and outcome == PASSED:
        return GENERATION_ONLY
    if outcome == PASSED and skipped_groups(groups):
        return PARTIAL
    return outcome


def skipped_groups(groups: dict[str, GroupResult]) -> list[str]:
    """The groups none of whose tests ran (every one skipped)."""
    return [name for name, group in groups.items() if group.outcome == SKIPPED]


def build_cells(tests: list[TestResult], dims: dict[str, dict[str, Any]],
                artifacts: dict[str, list[str]], boots: dict[str, Boot] | None = None) -> list[CellResult]:
    """Cells (sorted by name) of the cell tests; artifact lists of other (stale) cells are ignored."""
    boots = boots or {}
    names = sorted({t.cell for t in tests if t.cell is not None})
    cells = []
    for name in names:
        mine = [t for t in tests if t.cell == name]
        by_group: dict[str, list[TestResult]] = {}
        for t in mine:
            by_group.setdefault(t.group or "?", []).append(t)
        groups = {g: _group_result(by_group[g]) for g in order_groups(set(by_group))}
        boot = boots.get(name, Boot())
        outcome = cell_outcome(groups, boot)
        cells.append(CellResult(name, outcome, dims.get(name, {}), groups,
                                artifacts.get(name, []), round(sum(t.duration_s for t in mine), 3),
                                boot.state, boot.skip_reason, boot.count,
                                skipped_groups(groups) if outcome == PARTIAL else [], boot.boot_s, boot.teardown_s))
    return cells


def totals(summary: Summary) -> dict[str, dict[str, int]]:
    """Tests, cells (with generation-only), the booted cells alone, and the tests outside cells."""
    return {"tests": counts([t.outcome for t in summary.tests]),
            "cells": counts([c.outcome for c in summary.cells], CELL_OUTCOMES),
            "booted": counts([c.outcome for c in summary.cells if c.booted]),
            "other": counts([t.outcome for t in summary.other_tests])}


def build_summary(tests: list[TestResult], dims: dict[str, dict[str, Any]] | None = None,
                  artifacts: dict[str, list[str]] | None = None, boots: dict[str, Boot] | None = None,
                  **meta: Any) -> Summary:
    """The whole summary from per-test results and per-cell boots; ``meta`` sets Summary fields
    (started, wall_time_s, ...)."""
    tests = sorted(tests, key=lambda t: t.nodeid)
    summary = Summary(**meta)
    summary.tests = tests
    summary.cells = build_cells(tests, dims or {}, artifacts or {}, boots)
    summary.groups = order_groups({g for c in summary.cells for g in c.groups})
    summary.totals = totals(summary)
    return summary


def to_dict(summary: Summary) -> dict[str, Any]:
    return asdict(summary)


def from_dict(data: dict[str, Any]) -> Summary:
    data = dict(data)
    cells = [CellResult(**{**c, "groups": {g: GroupResult(**r) for g, r in c.get("groups", {}).items()}})
             for c in data.pop("cells", [])]
    tests = [TestResult(**t) for t in data.pop("tests", [])]
    known = set(Summary.__dataclass_fields__)
    summary = Summary(**{k: v for k, v in data.items() if k in known})
    summary.cells, summary.tests = cells, tests
    return summary


def save(summary: Summary, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(to_dict(summary), indent=2, sort_keys=True) + "\n")
    tmp.replace(path)


def load(path: Path) -> Summary:
    return from_dict(json.loads(Path(path).read_text()))
