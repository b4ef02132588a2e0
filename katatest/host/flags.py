"""The host-fact flags (the vocabulary of the vectors' ``.flags`` lines, shared with the CLI) and a parser
of a ``.flags`` line into HostFacts (the README's reference host as defaults)."""

from __future__ import annotations

import argparse
import shlex

from katatest.errors import HostFactsError
from katatest.host import facts as hostfacts
from katatest.host.endpoints import endpoints_from_specs
from katatest.host.facts import HostFacts

FACT_FIELDS = ("arch", "host_cpus", "host_mem_mib", "nested", "sandbox_id", "vsock_cid", "image_size",
               "initrd_size", "guest_protection", "sev_cbitpos", "sev_reduced_phys_bits", "fips", "vsock",
               "sharedfs", "netns", "workload_cpus", "workload_mem_mib", "vhost_net",
               "qemu_binary")


def add_fact_flags(parser: argparse.ArgumentParser) -> None:
    """Add the host-fact flags to ``parser``."""
    g = parser.add_argument_group("host facts (default: the vectors' reference host; see --detect-host)")
    g.add_argument("--detect-host", action="store_true",
                   help="start from the facts probed on this host instead of the reference defaults")
    g.add_argument("--arch", choices=hostfacts.ARCHES)
    g.add_argument("--host-cpus", type=int)
    g.add_argument("--host-mem-mib", type=int)
    g.add_argument("--nested", action="store_true", default=None)
    g.add_argument("--id", dest="sandbox_id")
    g.add_argument("--vsock-cid", type=int)
    g.add_argument("--image-size", type=int, help="image file size (default: the file's, else 268435456)")
    g.add_argument("--initrd-size", type=int, help="initrd file size (default: the file's, else 4194304)")
    g.add_argument("--guest-protection", choices=("tdx", "sev", "cca", "none"))
    g.add_argument("--sev-cbitpos", type=int)
    g.add_argument("--sev-reduced-phys-bits", type=int)
    g.add_argument("--fips", action="store_true", default=None)
    g.add_argument("--no-vsock", dest="vsock", action="store_false", default=None)
    g.add_argument("--no-sharedfs", dest="sharedfs", action="store_false", default=None)
    g.add_argument("--no-qemu-binary", dest="qemu_binary", action="store_false", default=None,
                   help="the configured QEMU binary does not exist (Kata 3.30.0+ then rejects the config)")
    g.add_argument("--netns")
    g.add_argument("--workload-cpus", type=int)
    g.add_argument("--workload-mem-mib", type=int)
    g.add_argument("--net-endpoint", dest="net_endpoint", action="append", metavar="veth[:MAC]",
                   help="an interface of the pod network namespace (repeatable: eth0, eth1, ... in order; "
                        "MAC default 02:00:00:00:00:<index+1>)")
    g.add_argument("--no-vhost-net", dest="vhost_net", action="store_false", default=None,
                   help="the host has no /dev/vhost-net")


def fact_changes(args: argparse.Namespace) -> dict[str, object]:
    """The facts the parsed flags set explicitly (``--net-endpoint`` values become NetEndpoints)."""
    changes: dict[str, object] = {name: getattr(args, name) for name in FACT_FIELDS
                                  if getattr(args, name, None) is not None}
    specs = getattr(args, "net_endpoint", None)
    if specs is not None:
        changes["net_endpoints"] = endpoints_from_specs(specs)
    return changes


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
    id 64 x "1"); ``wants_daemon`` is ``--virtiofsd`` (print the shared-fs daemon argv).

    Every fact not on the line has its documented default, image and initrd sizes included: nothing on
    this host is read, so a vector gives the same result wherever it runs."""
    args = _parser().parse_args(shlex.split(text))
    return HostFacts(uid=0, rootless=False, xdg_runtime_dir="").with_overrides(**fact_changes(args)), args.virtiofsd


def facts_from_flags(text: str) -> HostFacts:
    """Only the HostFacts of a ``.flags`` line."""
    return parse_flags(text)[0]
