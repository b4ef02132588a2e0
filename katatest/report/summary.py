"""summary.json: the data of one run (or of merged shards) as dataclasses, built from per-test results."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from katatest.report.outcomes import OUTCOMES, worst

FORMAT = 1
GROUP_ORDER = ("generation", "cmdline", "devices", "rootfs", "shared_fs", "topology", "qmp")
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


@dataclass
class CellResult:
    """One matrix cell: its dimensions, per-group results and artifact files (relative to cells/<name>/)."""

    name: str
    outcome: str
    dims: dict[str, Any] = field(default_factory=dict)
    groups: dict[str, GroupResult] = field(default_factory=dict)
    artifacts: list[str] = field(default_factory=list)
    duration_s: float = 0.0


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


def order_groups(groups: set[str]) -> list[str]:
    known = [g for g in GROUP_ORDER if g in groups]
    return known + sorted(groups - set(GROUP_ORDER))


def counts(outcomes: list[str]) -> dict[str, int]:
    c = Counter(outcomes)
    return {o: c.get(o, 0) for o in OUTCOMES} | {"total": len(outcomes)}


def _group_result(tests: list[TestResult]) -> GroupResult:
    outcome = worst(t.outcome for t in tests) or "skipped"
    message = next((t.message for t in tests if t.outcome == outcome and t.message), "")
    return GroupResult(outcome, counts([t.outcome for t in tests]), message)


def build_cells(tests: list[TestResult], dims: dict[str, dict[str, Any]],
                artifacts: dict[str, list[str]]) -> list[CellResult]:
    """Cells (sorted by name) of the cell tests; artifact lists of other (stale) cells are ignored."""
    names = sorted({t.cell for t in tests if t.cell is not None})
    cells = []
    for name in names:
        mine = [t for t in tests if t.cell == name]
        by_group: dict[str, list[TestResult]] = {}
        for t in mine:
            by_group.setdefault(t.group or "?", []).append(t)
        groups = {g: _group_result(by_group[g]) for g in order_groups(set(by_group))}
        outcome = worst(g.outcome for g in groups.values()) or "skipped"
        cells.append(CellResult(name, outcome, dims.get(name, {}), groups, artifacts.get(name, []),
                                round(sum(t.duration_s for t in mine), 3)))
    return cells


def totals(summary: Summary) -> dict[str, dict[str, int]]:
    return {"tests": counts([t.outcome for t in summary.tests]),
            "cells": counts([c.outcome for c in summary.cells]),
            "other": counts([t.outcome for t in summary.other_tests])}


def build_summary(tests: list[TestResult], dims: dict[str, dict[str, Any]] | None = None,
                  artifacts: dict[str, list[str]] | None = None, **meta: Any) -> Summary:
    """The whole summary from per-test results; ``meta`` sets Summary fields (started, wall_time_s, ...)."""
    tests = sorted(tests, key=lambda t: t.nodeid)
    summary = Summary(**meta)
    summary.tests = tests
    summary.cells = build_cells(tests, dims or {}, artifacts or {})
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
