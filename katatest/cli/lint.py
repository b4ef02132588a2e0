"""``katatest lint CONFIG [render flags]``: exit 1 when an argument would be misparsed."""

from __future__ import annotations

import argparse

from katatest.cli.facts import config_facts
from katatest.cli.kata_version import add_kata_version_flag
from katatest.generate.lint import lint
from katatest.generate.render import render_doc
from katatest.host.flags import add_fact_flags
from katatest.kata.tomlconf import load_toml


def cmd_lint(args: argparse.Namespace) -> int:
    doc = load_toml(args.config)
    facts = config_facts(args, doc)
    findings = lint(doc, facts, render_doc(doc, facts, args.config, release=args.kata_version))
    for finding in findings:
        print(f"{args.config}: {finding}")
    if not findings:
        print(f"{args.config}: ok")
    return 1 if findings else 0


def register_lint(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("lint", help="find arguments QEMU would parse differently from what the config meant")
    p.add_argument("config", help="a Kata configuration-*.toml")
    add_fact_flags(p)
    add_kata_version_flag(p)
    p.set_defaults(handler=cmd_lint)
