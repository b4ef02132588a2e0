"""``katatest lint CONFIG [render flags] [--qemu BUILD]``: exit 1 when an argument would be misparsed or refused."""

from __future__ import annotations

import argparse

from katatest.cli.facts import config_facts
from katatest.cli.kata_version import add_kata_version_flag
from katatest.generate.lint import lint
from katatest.generate.render import render_doc
from katatest.host.flags import add_fact_flags
from katatest.kata.tomlconf import load_toml


def build_refusals(argv: list[str], build_name: str, arch: str) -> list[str]:
    """The arguments QEMU build ``build_name`` would refuse, from its capabilities data (no QEMU is run)."""
    from katatest.assets import qemu_builds
    from katatest.launch.capabilities import plan_findings
    from katatest.launch.qemu_caps import build_capabilities

    qemu_builds.spec("qemu", build_name)  # unknown: one line naming the known builds
    build = qemu_builds.find("qemu", build_name)
    caps = build_capabilities(build_name, arch, build.command(arch) if build else None)
    return [f"QEMU {build_name} refuses {f.what}: {f.evidence}" for f in plan_findings(argv, caps)]


def cmd_lint(args: argparse.Namespace) -> int:
    doc = load_toml(args.config)
    facts = config_facts(args, doc)
    rendered = render_doc(doc, facts, args.config, release=args.kata_version)
    findings = lint(doc, facts, rendered)
    if args.qemu:
        findings += build_refusals(rendered.argv_values(), args.qemu, facts.arch)
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
    p.add_argument("--qemu", metavar="BUILD", default=None,
                   help="also name the arguments this QEMU build would refuse (7.2, 10.0, 11.1), from its "
                        "capabilities data, without booting")
    p.set_defaults(handler=cmd_lint)
