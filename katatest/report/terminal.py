"""The terminal table: wall time, totals, one line per cell."""

from __future__ import annotations

from katatest.report.outcomes import OUTCOMES
from katatest.report.summary import Summary

MARK = {"passed": "pass", "failed": "FAIL", "error": "ERR", "skipped": "skip"}


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{counts[o]} {o}" for o in OUTCOMES if counts.get(o)) or "none"


def lines(summary: Summary) -> list[str]:
    """Headline, then ``<cell> <OUTCOME> <seconds> group:mark ...`` per cell."""
    cells, tests = summary.totals.get("cells", {}), summary.totals.get("tests", {})
    out = [f"wall time {summary.wall_time_s:.1f} s; {cells.get('total', 0)} cells ({_counts(cells)}); "
           f"{tests.get('total', 0)} tests ({_counts(tests)})"]
    width = max((len(c.name) for c in summary.cells), default=0)
    for c in summary.cells:
        groups = " ".join(f"{g}:{MARK.get(r.outcome, r.outcome)}" for g, r in c.groups.items())
        out.append(f"{c.name:<{width}}  {c.outcome.upper():<7} {c.duration_s:7.1f}s  {groups}")
    return out
