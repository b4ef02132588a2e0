"""Parse a conformance vector's ``.flags`` line into HostFacts (the README's reference host as defaults)."""

from __future__ import annotations

import argparse
import shlex

from katatest.cli_facts import add_fact_flags
from katatest.errors import HostFactsError
from katatest.hostfacts import HostFacts

_FACT_FIELDS = (
    "arch",
    "host_cpus",
    "host_mem_mib",
    "nested",
    "sandbox_id",
    "vsock_cid",
    "image_size",
    "initrd_size",
    "guest_protection",
    "sev_cbitpos",
    "sev_reduced_phys_bits",
    "fips",
    "vsock",
    "sharedfs",
    "netns",
    "workload_cpus",
    "workload_mem_mib",
)


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
    changes = {name: getattr(args, name) for name in _FACT_FIELDS if getattr(args, name, None) is not None}
    return HostFacts(uid=0, rootless=False, xdg_runtime_dir="").with_overrides(**changes), args.virtiofsd


def facts_from_flags(text: str) -> HostFacts:
    """Only the HostFacts of a ``.flags`` line."""
    return parse_flags(text)[0]
