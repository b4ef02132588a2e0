"""matrix.html: a self-contained static page (inline CSS, no JS): cells x check groups, colour-coded."""

from __future__ import annotations

import os
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import quote

from katatest.report.outcomes import CELL_OUTCOMES, GENERATION_ONLY, OUTCOMES, PARTIAL
from katatest.report.summary import CellResult, GroupResult, Summary, TestResult

DIMS = (("release", "Kata"), ("qemu", "QEMU"), ("hypervisor", "VMM"), ("arch", "arch"), ("protection", "protection"),
        ("rootfs", "rootfs"), ("shared_fs", "shared fs"), ("block_driver", "block driver"), ("variant", "variant"),
        ("network", "network"))
SHORT = 60
LABEL = {"passed": "pass", "failed": "FAIL", "error": "ERROR", "skipped": "skip", GENERATION_ONLY: "gen-only",
         PARTIAL: "partial"}

CSS = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:1.5em;color:#1f2328;background:#fff}
h1{font-size:1.5em;margin:0 0 .3em}h2{font-size:1.15em;margin:1.4em 0 .4em}
.totals{display:flex;flex-wrap:wrap;gap:.4em 1.6em;list-style:none;padding:0;margin:.4em 0}
.totals b{font-variant-numeric:tabular-nums}.args,.muted{color:#57606a;font-size:.9em}
code{font:12px ui-monospace,"DejaVu Sans Mono",monospace}
.verdict{display:inline-block;padding:.35em .8em;border-radius:6px;font-weight:600;margin:.3em 0}
.accel-kvm{background:#d7f0d9;color:#14532d}.accel-tcg{background:#fff1c2;color:#6b4d00}
.accel-other{background:#eef1f4}
.warn{background:#fff1c2;padding:.4em .8em;border-radius:6px}
table{border-collapse:collapse;margin:.4em 0}th,td{border:1px solid #d0d7de;padding:.3em .5em;
vertical-align:top;text-align:left}thead th{background:#f6f8fa;position:sticky;top:0}
.cell-name{white-space:nowrap;font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-size:13px}
.dim{color:#424a53;max-width:14em;overflow-wrap:break-word}
.group,.overall{min-width:4.5em;max-width:12em}.group small,.overall small{display:block;font-size:11px;
overflow-wrap:anywhere}
.outcome-passed{background:#d7f0d9;color:#14532d}.outcome-failed{background:#f8cfcf;color:#7f1d1d}
.outcome-error{background:#ffdcb8;color:#7c2d12}.outcome-skipped{background:#ececec;color:#4b5563}
.outcome-generation-only{background:#dbeafe;color:#1e3a8a}
.outcome-partial{background:#fef3c7;color:#92400e}
.outcome-none{background:#fff;color:#9ca3af;text-align:center}
.row-passed .cell-name{border-left:5px solid #2e7d32}.row-failed .cell-name{border-left:5px solid #c62828}
.row-error .cell-name{border-left:5px solid #e07b00}.row-skipped .cell-name{border-left:5px solid #9ca3af}
.row-generation-only .cell-name{border-left:5px solid #3b82f6}
.artifacts{min-width:26em}.artifacts a{display:inline-block;margin:0 .5em .1em 0;font-size:12px}
.legend span{display:inline-block;padding:.1em .6em;margin-right:.4em;border-radius:4px}
dl.env{display:grid;grid-template-columns:max-content auto;gap:.15em 1em;margin:.3em 0}
dl.env dt{font-weight:600}dl.env dd{margin:0}dl.env dl.env{margin:0}
"""


def _short(text: str, limit: int = SHORT) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "\u2026"


def _count_text(counts: dict[str, int], kinds: tuple[str, ...] = OUTCOMES) -> str:
    parts = [f"{counts[o]} {o}" for o in kinds if counts.get(o)]
    return ", ".join(parts) or "no tests"


def _group_td(name: str, result: GroupResult | None) -> str:
    if result is None:
        return f'<td class="group outcome-none" data-group="{escape(name)}" title="not run">\u2014</td>'
    counts = _count_text(result.counts)
    title = f"{name}: {counts}" + (f"\n{result.message}" if result.message else "")
    total = result.counts.get("total", 0)
    if result.outcome == "passed":
        detail = f"{result.counts.get('passed', 0)}/{total}"
    else:
        detail = _short(result.message) if result.message else counts
    return (f'<td class="group outcome-{result.outcome}" data-group="{escape(name)}" title="{escape(title)}">'
            f"{LABEL.get(result.outcome, result.outcome)}<small>{escape(detail)}</small></td>")


def _artifact_links(cell: CellResult, link_base: str, cells_root: Path | None) -> str:
    names = [a for a in cell.artifacts if cells_root is None or (cells_root / cell.name / a).is_file()]
    prefix = f"{link_base}cells/{quote(cell.name)}/"
    return " ".join(f'<a href="{escape(prefix + quote(a))}">{escape(a)}</a>' for a in names)


def _extra_dims(cell: CellResult) -> str:
    known = {k for k, _ in DIMS}
    return ", ".join(f"{k}={v}" for k, v in sorted(cell.dims.items()) if k not in known)


def _row(cell: CellResult, groups: list[str], extra: bool, link_base: str, cells_root: Path | None) -> str:
    dims = "".join(f'<td class="dim" data-dim="{k}">{escape(str(cell.dims.get(k, "")))}</td>' for k, _ in DIMS)
    if extra:
        dims += f'<td class="dim">{escape(_extra_dims(cell))}</td>'
    bad = [f"{g}: {r.message}" for g, r in cell.groups.items() if r.outcome in ("failed", "error") and r.message]
    not_booted = f"not booted: {cell.boot_skip_reason}" if cell.boot_skip_reason else ""
    not_run = "did not run: " + "; ".join(f"{g} ({cell.groups[g].message})" for g in cell.partial_groups)
    not_run = not_run if cell.partial_groups else ""
    overall_title = "; ".join(bad + [why for why in (not_booted, not_run) if why]) or cell.outcome
    detail = f"{cell.duration_s:.1f} s"
    if not_run:
        detail += f" \u2014 {_short(not_run, 2 * SHORT)}"
    elif not_booted:
        detail += f" \u2014 {_short(not_booted, 2 * SHORT)}"
    elif cell.boots > 1:
        detail += f" \u2014 booted {cell.boots}\u00d7 (once per worker)"
    overall = (f'<td class="overall outcome-{cell.outcome}" data-boot="{escape(cell.boot)}" '
               f'title="{escape(overall_title)}">{LABEL.get(cell.outcome, cell.outcome)}'
               f"<small>{escape(detail)}</small></td>")
    cells = "".join(_group_td(g, cell.groups.get(g)) for g in groups)
    return (f'<tr class="cell-row row-{cell.outcome}" id="cell-{escape(cell.name)}" '
            f'data-cell="{escape(cell.name)}"><th class="cell-name" scope="row">{escape(cell.name)}</th>'
            f'{dims}{overall}{cells}<td class="artifacts">{_artifact_links(cell, link_base, cells_root)}</td></tr>')


def _matrix(summary: Summary, link_base: str, cells_root: Path | None) -> str:
    if not summary.cells:
        return '<p class="muted" id="no-cells">No matrix cells in this run.</p>'
    extra = any(_extra_dims(c) for c in summary.cells)
    head = "".join(f"<th>{escape(label)}</th>" for _, label in DIMS) + ("<th>other dims</th>" if extra else "")
    head += "<th>result</th>" + "".join(f'<th class="group-head">{escape(g)}</th>' for g in summary.groups)
    rows = "\n".join(_row(c, summary.groups, extra, link_base, cells_root) for c in summary.cells)
    return (f'<table id="matrix"><thead><tr><th>cell</th>{head}<th>artifacts</th></tr></thead>'
            f"<tbody>\n{rows}\n</tbody></table>")


def _value(value: Any) -> str:
    if isinstance(value, dict):
        items = "".join(f"<dt>{escape(str(k))}</dt><dd>{_value(v)}</dd>" for k, v in value.items())
        return f'<dl class="env">{items}</dl>'
    if isinstance(value, (list, tuple)):
        return ", ".join(_value(v) for v in value)
    return f"<code>{escape(str(value))}</code>"


def _accel(environment: dict[str, Any]) -> str:
    accel = environment.get("accel")
    if accel is None:
        return ""
    if isinstance(accel, dict):
        verdict = str(accel.get("verdict") or accel.get("accel") or accel.get("name") or "?")
        reason = str(accel.get("reason") or "")
    else:
        verdict, reason = str(accel), ""
    kind = next((k for k in ("kvm", "tcg") if k in verdict.lower()), "other")
    text = f"Acceleration: {verdict.upper()}" + (f" \u2014 {reason}" if reason else "")
    return f'<p class="verdict accel-{kind}" id="accel">{escape(text)}</p>'


def _totals(summary: Summary) -> str:
    cells = summary.totals.get("cells", {})
    tests = summary.totals.get("tests", {})
    items = [f"cells <b>{cells.get('total', 0)}</b> ({escape(_count_text(cells, CELL_OUTCOMES))})"]
    if any(c.boot for c in summary.cells):
        booted = summary.totals.get("booted", {})
        not_booted = sum(1 for c in summary.cells if not c.booted)
        items += [f'<span id="booted">booted <b>{booted.get("total", 0)}</b> '
                  f"({escape(_count_text(booted))})</span>",
                  f'<span id="not-booted">not booted <b>{not_booted}</b></span>']
    items += [f"tests <b>{tests.get('total', 0)}</b> ({escape(_count_text(tests))})",
             f"wall time <b>{summary.wall_time_s:.1f} s</b>"]
    if summary.started:
        items.append(f"started {escape(summary.started)}")
    if summary.exit_status is not None:
        items.append(f"exit status <b>{summary.exit_status}</b>")
    if summary.shard:
        items.append(f"shard {escape(summary.shard)}")
    if summary.shards:
        items.append(f"merged from {len(summary.shards)} shard(s)")
    return '<ul class="totals" id="totals">' + "".join(f"<li>{i}</li>" for i in items) + "</ul>"


def _test_rows(tests: list[TestResult], with_cell: bool) -> str:
    rows = []
    for t in tests:
        where = f"<td>{escape(t.cell or '')}</td><td>{escape(t.group or '')}</td>" if with_cell else ""
        rows.append(f'<tr class="test outcome-{t.outcome}">{where}<td><code>{escape(t.nodeid)}</code></td>'
                    f"<td>{t.outcome}</td><td>{t.duration_s:.2f} s</td><td>{escape(t.message)}</td></tr>")
    head = "<th>cell</th><th>group</th>" if with_cell else ""
    return (f"<table><thead><tr>{head}<th>test</th><th>outcome</th><th>duration</th><th>message</th></tr>"
            f"</thead><tbody>{''.join(rows)}</tbody></table>")


def _problems(summary: Summary) -> str:
    bad = [t for t in summary.tests if t.cell is not None and t.outcome in ("failed", "error")]
    if not bad:
        return ""
    return f'<section id="problems"><h2>Failures and errors ({len(bad)})</h2>{_test_rows(bad, True)}</section>'


def _other(summary: Summary) -> str:
    other = summary.other_tests
    if not other:
        return ""
    counts = _count_text(summary.totals.get("other") or {})
    is_open = " open" if any(t.outcome in ("failed", "error") for t in other) else ""
    plural = "s" if len(other) != 1 else ""
    return (f'<section id="other"><h2>Other tests</h2><details{is_open}><summary>{len(other)} test{plural} '
            f"not in a matrix cell ({escape(counts)})</summary>{_test_rows(other, False)}</details></section>")


def _legend() -> str:
    spans = "".join(f'<span class="outcome-{o}">{LABEL[o]} = {o}</span>' for o in CELL_OUTCOMES)
    return (f'<p class="legend muted">{spans}<span class="outcome-none">\u2014 = not run</span> '
            "generation-only: the guest could not boot here (the row says why); only what Kata would launch "
            "was checked</p>")


def render(summary: Summary, link_base: str = "", cells_root: Path | None = None) -> str:
    """The page. ``link_base``: URL prefix from the page to the reports dir holding ``cells/``;
    ``cells_root``: that ``cells/`` dir on disk, to link only artifacts that exist (None: trust the summary)."""
    env = summary.environment
    env_html = f'<section id="environment"><h2>Environment</h2>{_value(env)}</section>' if env else ""
    warnings = "".join(f'<p class="warn">{escape(w)}</p>' for w in summary.warnings)
    args = " ".join(summary.pytest_args)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>katatest conformance matrix</title><style>{CSS}</style></head>
<body><header><h1>katatest conformance matrix</h1>{_accel(env)}{_totals(summary)}
<p class="args">pytest {escape(args)}</p>{warnings}</header>
<main><h2>Matrix</h2>{_legend()}{_matrix(summary, link_base, cells_root)}
{_problems(summary)}{_other(summary)}{env_html}</main></body></html>
"""


def write(summary: Summary, out: Path, reports_dir: Path) -> Path:
    """Write the page to ``out``, linking artifacts under ``reports_dir/cells`` relative to ``out``."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rel = Path(os.path.relpath(Path(reports_dir).resolve(), out.parent.resolve())).as_posix()
    link_base = "" if rel == "." else quote(rel) + "/"
    out.write_text(render(summary, link_base, Path(reports_dir) / "cells"))
    return out
