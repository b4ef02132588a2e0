"""matrix.html: one dense row per cell (dimension tags, outcome and why written once, a coloured square per check
group linking to its failing test, one link to the cell's artifact listing), worst rows first, filters by
release, QEMU build and arch. Rendered from ``templates/`` with Jinja2 (autoescaping); the view model is built
here."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, PackageLoader, select_autoescape

from katatest.report.outcomes import CELL_OUTCOMES, ERROR, FAILED, GENERATION_ONLY, OUTCOMES, PARTIAL, SKIPPED
from katatest.report.summary import CellResult, Summary, TestResult

LABEL = {"passed": "pass", "failed": "FAIL", "error": "ERROR", "skipped": "skip", GENERATION_ONLY: "gen-only",
         PARTIAL: "partial"}
RANK = {FAILED: 0, ERROR: 0, PARTIAL: 1, GENERATION_ONLY: 2, SKIPPED: 2}
"""Row order: failing and partial first, then findings (cells that could not boot here), then passed."""
TAG_DIMS = ("release", "qemu", "arch", "hypervisor", "protection", "rootfs", "shared_fs", "block_driver", "network")
SHORT = {"image-nvdimm": "nvdimm", "image-blk": "img-blk", "virtio-fs": "virtiofs", "virtio-9p": "9p",
         "virtio-scsi": "scsi", "virtio-blk": "blk", "none": ""}
FILTERS = (("release", "Kata"), ("qemu", "QEMU"), ("arch", "arch"))
WIDTHS = {"name": 300, "tags": 300, "square": 24}
ABBR = {"generation": "gen", "cmdline": "cmd", "devices": "dev", "rootfs": "root", "shared_fs": "fs",
        "topology": "topo", "qmp": "qmp", "network": "net", "hotplug": "hot"}

_ENV = Environment(loader=PackageLoader("katatest.report", "templates"), autoescape=select_autoescape(["j2"]),
                   trim_blocks=False, keep_trailing_newline=True)


@dataclass(frozen=True)
class Square:
    """One check group of one row: its outcome, its counts (hover) and where its failing test is."""

    group: str
    outcome: str
    title: str
    href: str = ""


@dataclass
class Row:
    """One cell of the matrix as the page shows it."""

    name: str
    outcome: str
    label: str
    why: str
    boot: str
    duration: str
    tags: list[dict[str, str]] = field(default_factory=list)
    dims_title: str = ""
    variant: str = ""
    filter_values: dict[str, str] = field(default_factory=dict)
    squares: list[Square] = field(default_factory=list)
    files_href: str = ""
    files_count: int = 0
    phases: str = ""


def _count_text(counts: dict[str, int], kinds: tuple[str, ...] = OUTCOMES) -> str:
    return ", ".join(f"{counts[o]} {o}" for o in kinds if counts.get(o)) or "no tests"


def _tag(dim: str, value: Any) -> str:
    text = "" if value in (None, "", False) else str(value)
    if dim == "hypervisor" and text == "qemu":
        return ""
    if dim == "network":
        return "net" if text and text not in ("none", "[]") else ""
    return SHORT.get(text, text)


def _why(cell: CellResult) -> str:
    """The cell's outcome explained once: what failed, why it did not boot, which groups did not run."""
    bad = [f"{g}: {r.message}" for g, r in cell.groups.items() if r.outcome in (FAILED, ERROR) and r.message]
    if bad:
        return "; ".join(bad)
    if cell.boot_skip_reason:
        return f"not booted: {cell.boot_skip_reason}"
    if cell.partial_groups:
        return "did not run: " + "; ".join(f"{g} ({cell.groups[g].message})" for g in cell.partial_groups)
    if cell.boots > 1:
        return f"booted {cell.boots}\u00d7 (once per worker)"
    return ""


def _squares(cell: CellResult, groups: list[str], anchors: dict[tuple[str, str], str]) -> list[Square]:
    out = []
    for name in groups:
        result = cell.groups.get(name)
        if result is None:
            out.append(Square(name, "none", f"{name}: not run"))
            continue
        said = result.message and result.message != cell.boot_skip_reason  # the reason is written once, in "why"
        title = f"{name}: {_count_text(result.counts)}" + (f"\n{result.message}" if said else "")
        out.append(Square(name, result.outcome, title, anchors.get((cell.name, name), "")))
    return out


def _existing(cell: CellResult, cells_root: Path | None) -> list[str]:
    """The cell's artifacts that are on disk under ``cells_root`` (all of them when it is None)."""
    return [a for a in cell.artifacts if cells_root is None or (cells_root / cell.name / a).is_file()]


def _rows(summary: Summary, anchors: dict[tuple[str, str], str], link_base: str,
          cells_root: Path | None) -> list[Row]:
    rows = []
    for cell in sorted(summary.cells, key=lambda c: (RANK.get(c.outcome, 3), c.name)):
        tags = [{"dim": d, "value": v} for d in TAG_DIMS if (v := _tag(d, cell.dims.get(d)))
                and not (d == "qemu" and cell.dims.get("hypervisor", "qemu") != "qemu")]
        files = _existing(cell, cells_root)
        rows.append(Row(
            name=cell.name, outcome=cell.outcome, label=LABEL.get(cell.outcome, cell.outcome), why=_why(cell),
            boot=cell.boot, duration=f"{cell.duration_s:.1f} s", tags=tags,
            dims_title=", ".join(f"{k}={v}" for k, v in sorted(cell.dims.items())),
            variant=str(cell.dims.get("variant") or ""),
            filter_values={d: str(cell.dims.get(d, "")) for d, _ in FILTERS},
            squares=_squares(cell, summary.groups, anchors),
            files_href=f"{link_base}cells/{quote(cell.name)}/index.html" if files else "", files_count=len(files),
            phases=(f"boot {cell.boot_s:.1f} s, checks {cell.checks_s:.1f} s, stop {cell.teardown_s:.1f} s"
                    if cell.booted else "not booted")))
    return rows


def _accel(environment: dict[str, Any]) -> dict[str, str] | None:
    accel = environment.get("accel")
    if accel is None:
        return None
    if isinstance(accel, dict):
        verdict = str(accel.get("verdict") or accel.get("accel") or accel.get("name") or "?")
        reason = str(accel.get("reason") or "")
    else:
        verdict, reason = str(accel), ""
    kind = next((k for k in ("kvm", "tcg") if k in verdict.lower()), "other")
    return {"kind": kind, "verdict": verdict.upper(), "reason": reason}


def _totals(summary: Summary) -> list[dict[str, Any]]:
    cells = summary.totals.get("cells", {})
    tests = summary.totals.get("tests", {})
    items: list[dict[str, Any]] = [{"label": "cells", "value": cells.get("total", 0),
                                    "detail": _count_text(cells, CELL_OUTCOMES)}]
    if any(c.boot for c in summary.cells):
        booted = summary.totals.get("booted", {})
        items += [{"id": "booted", "label": "booted", "value": booted.get("total", 0), "detail": _count_text(booted)},
                  {"id": "not-booted", "label": "not booted", "value": sum(1 for c in summary.cells if not c.booted)}]
    items += [{"label": "tests", "value": tests.get("total", 0), "detail": _count_text(tests)},
              {"label": "wall time", "value": f"{summary.wall_time_s:.1f} s"}]
    if summary.started:
        items.append({"label": "started", "value": summary.started})
    if summary.exit_status is not None:
        items.append({"label": "exit status", "value": summary.exit_status})
    if summary.shard:
        items.append({"label": "shard", "value": summary.shard})
    if summary.shards:
        items.append({"label": "merged from", "value": len(summary.shards), "detail": "shards"})
    return items


def _test_view(test: TestResult, anchor: str = "") -> dict[str, str]:
    return {"nodeid": test.nodeid, "outcome": test.outcome, "duration": f"{test.duration_s:.2f} s",
            "message": test.message, "cell": test.cell or "", "group": test.group or "", "anchor": anchor}


def render(summary: Summary, link_base: str = "", cells_root: Path | None = None) -> str:
    """The page. ``link_base``: URL prefix from the page to the reports dir holding ``cells/``;
    ``cells_root``: that ``cells/`` dir on disk, to link only artifacts that exist (None: trust the summary)."""
    bad = [t for t in summary.tests if t.cell is not None and t.outcome in (FAILED, ERROR)]
    anchors: dict[tuple[str, str], str] = {}
    problems = []
    for index, test in enumerate(bad):
        anchors.setdefault((test.cell or "", test.group or ""), f"#problem-{index}")
        problems.append(_test_view(test, f"problem-{index}"))
    other = summary.other_tests
    other_view = {"tests": [_test_view(t) for t in other], "counts": _count_text(summary.totals.get("other") or {}),
                  "open": any(t.outcome in (FAILED, ERROR) for t in other)} if other else None
    filters = [{"dim": d, "label": label, "options": sorted({str(c.dims.get(d, "")) for c in summary.cells} - {""})}
               for d, label in FILTERS]
    return _ENV.get_template("matrix.html.j2").render(
        accel=_accel(summary.environment), totals=_totals(summary), args=" ".join(summary.pytest_args),
        warnings=summary.warnings, rows=_rows(summary, anchors, link_base, cells_root), groups=summary.groups,
        filters=[f for f in filters if f["options"]], widths=WIDTHS, abbr=ABBR, problems=problems, other=other_view,
        environment=summary.environment,
        legend=[{"outcome": o, "label": LABEL[o]} for o in CELL_OUTCOMES])


def _size(path: Path) -> str:
    size = path.stat().st_size
    return f"{size} B" if size < 1024 else f"{size / 1024:.1f} KiB"


def write_listings(summary: Summary, cells_root: Path) -> None:
    """``cells/<cell>/index.html`` per cell with artifacts: its files, and the way back to the matrix."""
    template = _ENV.get_template("listing.html.j2")
    for cell in summary.cells:
        root = cells_root / cell.name
        files = _existing(cell, cells_root)
        if not files:
            continue
        (root / "index.html").write_text(template.render(
            cell=cell.name, outcome=cell.outcome, why=_why(cell), back="../../matrix.html",
            artifacts=[{"name": a, "href": quote(a), "size": _size(root / a)} for a in files]))


def write(summary: Summary, out: Path, reports_dir: Path) -> Path:
    """Write the page to ``out`` (and each cell's artifact listing), linking under ``reports_dir/cells``
    relative to ``out``."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rel = Path(os.path.relpath(Path(reports_dir).resolve(), out.parent.resolve())).as_posix()
    link_base = "" if rel == "." else quote(rel) + "/"
    cells_root = Path(reports_dir) / "cells"
    if cells_root.is_dir():
        write_listings(summary, cells_root)
    out.write_text(render(summary, link_base, cells_root))
    return out
