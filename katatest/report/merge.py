"""Join the reports of shards (``--shard I/N`` runs) into one summary.json, matrix.html and cells/ tree."""

from __future__ import annotations

import shutil
from pathlib import Path

from katatest.errors import KatatestError
from katatest.report import html
from katatest.report.outcomes import OUTCOMES
from katatest.report.summary import Boot, Summary, TestResult, build_summary, load, save

SUMMARY = "summary.json"
MATRIX = "matrix.html"


class MergeError(KatatestError):
    """Shards that cannot be joined (a cell in two shards, a missing summary)."""


def _other_tests(summaries: list[Summary]) -> list[TestResult]:
    """Plain tests, one per nodeid; a test run by several shards keeps its worst result."""
    best: dict[str, TestResult] = {}
    for s in summaries:
        for t in s.other_tests:
            old = best.get(t.nodeid)
            if old is None or OUTCOMES.index(t.outcome) < OUTCOMES.index(old.outcome):
                best[t.nodeid] = t
    return list(best.values())


def _shard_warnings(summaries: list[Summary]) -> list[str]:
    specs = [s.shard for s in summaries if s.shard and "/" in s.shard]
    totals = {spec.split("/")[1] for spec in specs}
    if len(totals) != 1 or len(specs) != len(summaries):
        return [] if not specs else [f"shards of different splits or unsharded runs: {sorted(set(specs))}"]
    total = int(next(iter(totals)))
    have = {int(spec.split("/")[0]) for spec in specs}
    missing = [f"{i}/{total}" for i in range(1, total + 1) if i not in have]
    return [f"missing shard(s): {', '.join(missing)}"] if missing else []


def merge(summaries: list[Summary], names: list[str] | None = None) -> Summary:
    """One summary of all shards. A cell reported by two shards is an error (the split must be disjoint)."""
    names = names or [f"shard {i + 1}" for i in range(len(summaries))]
    owner: dict[str, str] = {}
    for name, s in zip(names, summaries):
        for cell in s.cells:
            if cell.name in owner:
                raise MergeError(f"cell {cell.name} is in two shards: {owner[cell.name]} and {name}")
            owner[cell.name] = name
    tests = [t for s in summaries for t in s.tests if t.cell is not None] + _other_tests(summaries)
    dims = {c.name: c.dims for s in summaries for c in s.cells}
    artifacts = {c.name: c.artifacts for s in summaries for c in s.cells}
    boots = {c.name: Boot(c.boot, c.boot_skip_reason, c.boots, c.boot_s, c.teardown_s)
             for s in summaries for c in s.cells}
    exits = [s.exit_status for s in summaries if s.exit_status is not None]
    merged = build_summary(
        tests, dims, artifacts, boots,
        started=min((s.started for s in summaries if s.started), default=""),
        wall_time_s=max((s.wall_time_s for s in summaries), default=0.0),
        exit_status=next((e for e in exits if e != 0), 0 if exits else None),
        environment=next((s.environment for s in summaries if s.environment), {}),
        pytest_args=summaries[0].pytest_args if summaries else [],
        shards=[{"name": n, "shard": s.shard, "started": s.started, "wall_time_s": s.wall_time_s,
                 "exit_status": s.exit_status, "cells": [c.name for c in s.cells], "environment": s.environment}
                for n, s in zip(names, summaries)],
    )
    merged.warnings = _shard_warnings(summaries) + [w for s in summaries for w in s.warnings]
    return merged


def merge_dirs(out_dir: Path, shard_dirs: list[Path]) -> Summary:
    """Merge shard report dirs into ``out_dir``: summary.json, matrix.html, and each cell's artifacts."""
    out_dir = Path(out_dir)
    summaries = []
    for d in shard_dirs:
        path = Path(d) / SUMMARY
        if not path.is_file():
            raise MergeError(f"{d}: no {SUMMARY}")
        summaries.append(load(path))
    merged = merge(summaries, [str(d) for d in shard_dirs])
    for d, s in zip(shard_dirs, summaries):
        for cell in s.cells:
            src = Path(d) / "cells" / cell.name
            if src.is_dir() and src.resolve() != (out_dir / "cells" / cell.name).resolve():
                shutil.copytree(src, out_dir / "cells" / cell.name, dirs_exist_ok=True)
    save(merged, out_dir / SUMMARY)
    html.write(merged, out_dir / MATRIX, out_dir)
    return merged
