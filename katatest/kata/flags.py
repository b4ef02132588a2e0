"""Parse a conformance vector's ``.flags`` line into HostFacts (the README's reference host as defaults)."""

from __future__ import annotations

import argparse
import shlex

from katatest.cli_facts import FACT_FIELDS, add_fact_flags
from katatest.errors import HostFactsError
from katatest.hostfacts import HostFacts


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise HostFactsError(f"bad .flags line: {message}")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=".flags", add_help=False)
    add_fact_flags(parser)
    parser.add_argument("--virtiofsd", action="store_true")
    return parser


def parse_flags(text: str) -> tuple[HostFacts, bool]:
    """``(facts, wants_daemon)``: facts over the reference host (amd64, uid 0, not rootless, not nested,
    id 64 x "1"); ``wants_daemon`` is ``--virtiofsd`` (print the shared-fs daemon argv)."""
    args = _parser().parse_args(shlex.split(text))
    changes = {name: getattr(args, name) for name in FACT_FIELDS if getattr(args, name, None) is not None}
    return HostFacts(uid=0, rootless=False, xdg_runtime_dir="").with_overrides(**changes), args.virtiofsd


def facts_from_flags(text: str) -> HostFacts:
    """Only the HostFacts of a ``.flags`` line."""
    return parse_flags(text)[0]
