"""``katatest render`` and ``katatest explain``: the argv Kata 3.0.0 would launch, plain or with sources."""

from __future__ import annotations

import argparse
import json
import shlex
import sys

from katatest.cli.facts import config_facts
from katatest.cli.kata_version import add_kata_version_flag
from katatest.errors import KatatestError
from katatest.generate.explain import explain_args, explain_fields
from katatest.generate.render import render_doc
from katatest.generate.rendered import Rendered
from katatest.host.flags import add_fact_flags
from katatest.kata.hypervisors import NAMES
from katatest.kata.tomlconf import load_toml

RENDER_HELP = "print the argv Kata (3.0.0, or --kata-version) would launch"
EXPLAIN_HELP = "the argv annotated with the keys/facts that produced each argument"


def _render_parser(sub: argparse._SubParsersAction, name: str, help_text: str) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help_text)
    p.add_argument("config", help="a Kata configuration-*.toml")
    add_fact_flags(p)
    p.add_argument("--hypervisor", choices=NAMES, help="force the hypervisor instead of the config's")
    add_kata_version_flag(p)
    p.add_argument("--what", choices=("argv", "vmconfig", "daemon"), default="argv",
                   help="VMM argv (default), VM config JSON (clh/fc), or shared-fs daemon argv")
    p.add_argument("--virtiofsd", dest="what", action="store_const", const="daemon",
                   help="alias of --what daemon")
    return p


def _rendered(args: argparse.Namespace) -> Rendered:
    doc = load_toml(args.config)
    return render_doc(doc, config_facts(args, doc), args.config, args.hypervisor, args.kata_version)


def _selected(rendered: Rendered, what: str) -> tuple[list, object]:
    if what == "daemon":
        if rendered.daemon is None:
            raise KatatestError("--virtiofsd: this configuration starts no shared-fs daemon")
        return rendered.daemon, None
    if what == "vmconfig":
        if rendered.vmconfig is None:
            raise KatatestError(f"--what vmconfig: {rendered.hypervisor} sends no VM configuration JSON")
        return [], rendered.vmconfig
    return rendered.argv, None


def cmd_render(args: argparse.Namespace) -> int:
    items, doc = _selected(_rendered(args), args.what)
    if doc is not None:
        print(json.dumps(doc, indent=2, sort_keys=True))
        return 0
    if args.format == "lines":
        sys.stdout.write("".join(a.value + "\n" for a in items))
    elif args.format == "shell":
        print(" ".join(shlex.quote(a.value) for a in items))
    else:
        print(json.dumps([{"value": a.value, "sources": list(a.sources)} for a in items], indent=2))
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    rendered = _rendered(args)
    items, doc = _selected(rendered, args.what)
    lines = explain_fields(rendered.vmconfig_sources) if doc is not None else explain_args(items)
    lines += [f"note: {assumption}" for assumption in rendered.assumptions]
    sys.stdout.write("".join(line + "\n" for line in lines))
    return 0


def register_render(sub: argparse._SubParsersAction) -> None:
    p = _render_parser(sub, "render", RENDER_HELP)
    p.add_argument("--format", choices=("lines", "shell", "json"), default="lines")
    p.set_defaults(handler=cmd_render)


def register_explain(sub: argparse._SubParsersAction) -> None:
    _render_parser(sub, "explain", EXPLAIN_HELP).set_defaults(handler=cmd_explain)
