"""``katatest report merge OUT_DIR SHARD_DIR...`` and ``katatest report html SUMMARY.json [-o OUT.html]``."""

from __future__ import annotations

import argparse
from pathlib import Path

from katatest.errors import KatatestError
from katatest.report import html
from katatest.report.merge import MATRIX, merge_dirs
from katatest.report.summary import load


def _headline(summary) -> str:
    cells, tests = summary.totals.get("cells", {}), summary.totals.get("tests", {})
    return (f"{cells.get('total', 0)} cells ({cells.get('failed', 0)} failed, {cells.get('error', 0)} error), "
            f"{tests.get('total', 0)} tests")


def cmd_merge(args: argparse.Namespace) -> int:
    merged = merge_dirs(Path(args.out_dir), [Path(d) for d in args.shard_dirs])
    print(f"{Path(args.out_dir) / MATRIX}: {_headline(merged)} from {len(args.shard_dirs)} shard(s)")
    for warning in merged.warnings:
        print(f"warning: {warning}")
    return 0


def cmd_html(args: argparse.Namespace) -> int:
    path = Path(args.summary)
    try:
        summary = load(path)
    except (OSError, ValueError, TypeError) as err:
        raise KatatestError(f"{path}: cannot read the summary: {err}") from None
    out = Path(args.output) if args.output else path.parent / MATRIX
    html.write(summary, out, path.parent)
    print(f"{out}: {_headline(summary)}")
    return 0


def register_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="merge shard reports or re-render the HTML matrix")
    actions = p.add_subparsers(dest="report_command", required=True)
    m = actions.add_parser("merge", help="join shards' reports dirs into OUT_DIR (a cell in two shards is an error)")
    m.add_argument("out_dir", metavar="OUT_DIR")
    m.add_argument("shard_dirs", metavar="SHARD_DIR", nargs="+")
    m.set_defaults(handler=cmd_merge)
    h = actions.add_parser("html", help="render matrix.html from a summary.json")
    h.add_argument("summary", metavar="SUMMARY.json")
    h.add_argument("-o", "--output", metavar="OUT.html", help="default: matrix.html next to the summary")
    h.set_defaults(handler=cmd_html)

