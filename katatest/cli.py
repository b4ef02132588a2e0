"""The ``katatest`` command line."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Sequence
from typing import NoReturn

from katatest.cli_facts import add_fact_flags, facts_from_args
from katatest.errors import KatatestError
from katatest.explain import explain_args, explain_fields
from katatest.render import HYPERVISORS, render_file
from katatest.rendered import Rendered

EXIT_USAGE = 2


def _render_parser(sub: argparse._SubParsersAction, name: str, help_text: str) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help_text)
    p.add_argument("config", help="a Kata 3.0.0 configuration-*.toml")
    add_fact_flags(p)
    p.add_argument("--hypervisor", choices=HYPERVISORS, help="force the hypervisor instead of the config's")
    p.add_argument("--what", choices=("argv", "vmconfig", "daemon"), default="argv",
                   help="VMM argv (default), VM config JSON (clh/fc), or shared-fs daemon argv")
    p.add_argument("--virtiofsd", dest="what", action="store_const", const="daemon",
                   help="alias of --what daemon")
    return p


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line on stderr (exit 2), like every other error."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {' '.join(message.split())} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="katatest", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    render = _render_parser(sub, "render", "print the argv Kata 3.0.0 would launch")
    render.add_argument("--format", choices=("lines", "shell", "json"), default="lines")
    _render_parser(sub, "explain", "the argv annotated with the keys/facts that produced each argument")
    for extra in _extra_commands():
        extra(sub)
    return parser


def _extra_commands() -> list:
    """Subcommands contributed by other modules (boot, assets, doctor, lint, report)."""
    from katatest import cli_more

    return cli_more.REGISTRARS


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
    rendered = render_file(args.config, facts_from_args(args), args.hypervisor)
    items, doc = _selected(rendered, args.what)
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
    rendered = render_file(args.config, facts_from_args(args), args.hypervisor)
    items, doc = _selected(rendered, args.what)
    lines = explain_fields(rendered.vmconfig_sources) if doc is not None else explain_args(items)
    sys.stdout.write("".join(line + "\n" for line in lines))
    return 0


COMMANDS = {"render": cmd_render, "explain": cmd_explain}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None) or COMMANDS[args.command]
    try:
        return handler(args)
    except KatatestError as err:
        print(f"katatest: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("katatest: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
