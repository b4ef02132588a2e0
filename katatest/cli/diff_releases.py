"""``katatest diff-releases CONFIG --from A --to B``: what an upgrade changes in the launch of one config."""

from __future__ import annotations

import argparse
import json
import sys

from katatest.cli.facts import config_facts
from katatest.conformance.release_diff import diff_releases, render_text
from katatest.host.flags import add_fact_flags
from katatest.kata.hypervisors import NAMES
from katatest.kata.releases import DEFAULT_RELEASE, known_releases
from katatest.kata.tomlconf import load_toml

HELP = "every QEMU and daemon argv difference of one config between two Kata releases"


def cmd_diff_releases(args: argparse.Namespace) -> int:
    doc = load_toml(args.config)
    new_doc = load_toml(args.to_config) if args.to_config else doc
    facts = config_facts(args, doc)
    diff = diff_releases(doc, new_doc, facts, args.old, args.new, args.config, args.to_config or args.config,
                         args.hypervisor)
    if args.format == "json":
        print(json.dumps({"from": diff.old, "to": diff.new, "rejected": diff.rejected,
                          "hunks": [h.as_json() for h in diff.hunks]}, indent=2))
    else:
        sys.stdout.write("".join(line + "\n" for line in render_text(diff, args.config)))
    return 1 if diff.rejected else 0


def register_diff_releases(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("diff-releases", help=HELP,
                       description=HELP + ", each with its sources. Exit 1 when a release rejects the config.")
    p.add_argument("config", help="a Kata configuration-*.toml")
    known = ", ".join(known_releases())
    p.add_argument("--from", dest="old", default=DEFAULT_RELEASE, metavar="VERSION",
                   help=f"the release upgraded from ({known}; default {DEFAULT_RELEASE})")
    p.add_argument("--to", dest="new", required=True, metavar="VERSION", help=f"the release upgraded to ({known})")
    p.add_argument("--to-config", metavar="CONFIG",
                   help="render this config for --to instead (e.g. the new release's shipped configuration)")
    p.add_argument("--hypervisor", choices=NAMES, help="force the hypervisor instead of the config's")
    p.add_argument("--format", choices=("text", "json"), default="text")
    add_fact_flags(p)
    p.set_defaults(handler=cmd_diff_releases)
