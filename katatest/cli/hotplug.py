"""``katatest hotplug CONFIG [host-fact flags] [--kata-version R] --ops OPS [--replies REPLIES] [--format json]``:
the QMP commands Kata sends for an op script, in the vectors' ``.qmp`` format."""

from __future__ import annotations

import argparse
import json
import sys

from katatest.cli.facts import config_facts
from katatest.cli.kata_version import add_kata_version_flag
from katatest.errors import KatatestError
from katatest.host.flags import add_fact_flags


def _read(path: str, what: str) -> str:
    """An op script or replies file: a regular file of at most 1 MiB (``read_config``), as UTF-8."""
    from katatest.kata.tomlconf import read_config

    try:
        return read_config(path, what=what).decode()
    except UnicodeDecodeError as err:
        raise KatatestError(f"{path}: cannot read {what}: {err}") from None


def cmd_hotplug(args: argparse.Namespace) -> int:
    from katatest.generate.qemu.hotplug import KataHotplug, qmp_text, sections_json, workdir_for
    from katatest.generate.qemu.hotplug_ops import parse_ops
    from katatest.generate.qemu.hotplug_peers import ModelQemu, Replies
    from katatest.generate.render import render_doc
    from katatest.kata.loader import load_kata_config
    from katatest.kata.releases import load_release
    from katatest.kata.tomlconf import load_toml

    doc = load_toml(args.config)
    facts = config_facts(args, doc)
    release = load_release(args.kata_version)
    rendered = render_doc(doc, facts, args.config, release=args.kata_version)
    if rendered.hypervisor != "qemu":
        raise KatatestError(f"{args.config}: hotplug models QEMU sandboxes only, not {rendered.hypervisor}")
    cfg = load_kata_config(doc, facts, args.config, release)
    ops = parse_ops(_read(args.ops, "op script"), args.ops)
    argv = rendered.argv_values()
    peer = Replies(_read(args.replies, "replies"), args.replies) if args.replies else ModelQemu(argv, facts.arch)
    model = KataHotplug(cfg, argv, release, facts.arch, facts.sandbox_id, args.workdir or workdir_for(args.ops), peer)
    sections = model.run(ops)
    if args.format == "json":
        print(json.dumps(sections_json(sections), indent=2))
    else:
        sys.stdout.write(qmp_text(sections))
    return 0


def register_hotplug(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("hotplug", help="the QMP commands Kata sends for a script of hot-plug operations")
    p.add_argument("config", help="a Kata configuration-qemu.toml (of the release --kata-version names)")
    add_fact_flags(p)
    add_kata_version_flag(p)
    p.add_argument("--ops", required=True, help="the op script: cpu N | mem MIB [block=B] [probe] | block add NAME "
                                                "PATH file=BYTES|dev [ro] [pmem] [discard] | block del NAME | swap "
                                                "| net add NAME [mac=M] | net del NAME | !fail CMD [k=v]")
    p.add_argument("--replies", help="QEMU's recorded replies (a vector's .replies); default: katatest's model")
    p.add_argument("--workdir", help="where relative block paths live (default /tmp/kata-qmp/<ops file stem>)")
    p.add_argument("--format", choices=("qmp", "json"), default="qmp", help="json adds each command's sources")
    p.set_defaults(handler=cmd_hotplug)
