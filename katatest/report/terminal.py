"""The terminal table: wall time, totals (booted cells apart from the rest), one line per cell."""

from __future__ import annotations

from katatest.report.outcomes import CELL_OUTCOMES, GENERATION_ONLY, OUTCOMES, PARTIAL
from katatest.report.summary import CellResult, Summary

MARK = {"passed": "pass", "failed": "FAIL", "error": "ERR", "skipped": "skip"}
LABEL = {GENERATION_ONLY: "GEN-ONLY"}


def _counts(counts: dict[str, int], kinds: tuple[str, ...] = OUTCOMES) -> str:
    return ", ".join(f"{counts[o]} {o}" for o in kinds if counts.get(o)) or "none"


def _cells(summary: Summary) -> str:
    """``N cells (...)``; once any cell says whether its guest booted, booted cells are counted apart:
    ``N cells: B booted (...), M not booted (K generation-only, ...)``."""
    cells = summary.totals.get("cells", {})
    total = cells.get("total", len(summary.cells))
    if not any(c.boot for c in summary.cells):
        return f"{total} cells ({_counts(cells, CELL_OUTCOMES)})"
    booted = summary.totals.get("booted", {})
    rest = [c.outcome for c in summary.cells if not c.booted]
    text = f"{total} cells: {booted.get('total', 0)} booted" + (f" ({_counts(booted)})" if booted.get("total") else "")
    if rest:
        text += f", {len(rest)} not booted ({', '.join(_tally(rest))})"
    return text


def _tally(outcomes: list[str]) -> list[str]:
    return [f"{outcomes.count(o)} {o}" for o in CELL_OUTCOMES if o in outcomes]


def _line(cell: CellResult, width: int) -> str:
    groups = " ".join(f"{g}:{MARK.get(r.outcome, r.outcome)}" for g, r in cell.groups.items())
    label = LABEL.get(cell.outcome, cell.outcome.upper())
    phases = (f" (boot {cell.boot_s:.1f} + checks {cell.checks_s:.1f} + stop {cell.teardown_s:.1f})"
              if cell.booted else "")
    line = f"{cell.name:<{width}}  {label:<8} {cell.duration_s:7.1f}s{phases}  {groups}"
    if cell.outcome == PARTIAL:
        line += "  (did not run: " + "; ".join(f"{g}: {cell.groups[g].message}" for g in cell.partial_groups) + ")"
    if cell.boot_skip_reason:
        line += f"  (not booted: {cell.boot_skip_reason})"
    elif cell.boots > 1:
        line += f"  (booted {cell.boots} times: once per worker that got its tests)"
    return line


def lines(summary: Summary) -> list[str]:
    """Headline, then ``<cell> <OUTCOME> <seconds> [(boot + checks + stop)] group:mark ... [(not booted: why)]``
    per cell."""
    tests = summary.totals.get("tests", {})
    out = [f"wall time {summary.wall_time_s:.1f} s; {_cells(summary)}; "
           f"{tests.get('total', 0)} tests ({_counts(tests)})"]
    phases = summary.phase_totals()
    if phases["booted"]:
        out.append(f"booted cells, summed over workers: boot {phases['boot_s']:.1f} s, checks "
                   f"{phases['checks_s']:.1f} s, stop {phases['teardown_s']:.1f} s")
    width = max((len(c.name) for c in summary.cells), default=0)
    out += [_line(c, width) for c in summary.cells]
    return out
