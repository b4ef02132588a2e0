"""The host-fact flags shared by every command that renders a config (the vectors' .flags vocabulary)."""

from __future__ import annotations

import argparse
import os

from katatest import hostfacts
from katatest.hostfacts import HostFacts


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
    g.add_argument("--image-size", type=int)
    g.add_argument("--initrd-size", type=int)
    g.add_argument("--guest-protection", choices=("tdx", "sev", "none"))
    g.add_argument("--sev-cbitpos", type=int)
    g.add_argument("--sev-reduced-phys-bits", type=int)
    g.add_argument("--fips", action="store_true", default=None)
    g.add_argument("--no-vsock", dest="vsock", action="store_false", default=None)
    g.add_argument("--no-sharedfs", dest="sharedfs", action="store_false", default=None)
    g.add_argument("--netns")
    g.add_argument("--workload-cpus", type=int)
    g.add_argument("--workload-mem-mib", type=int)


FACT_FIELDS = ("arch", "host_cpus", "host_mem_mib", "nested", "sandbox_id", "vsock_cid", "image_size",
                "initrd_size", "guest_protection", "sev_cbitpos", "sev_reduced_phys_bits", "fips", "vsock",
                "sharedfs", "netns", "workload_cpus", "workload_mem_mib")


def reference_facts() -> HostFacts:
    """The defaults of the conformance vectors' README; CPU count and RAM of this host."""
    real = hostfacts.detect()
    return HostFacts(host_cpus=real.host_cpus, host_mem_mib=real.host_mem_mib, uid=os.getuid(),
                     xdg_runtime_dir=os.environ.get("XDG_RUNTIME_DIR", ""))


def facts_from_args(args: argparse.Namespace, detect: bool = False) -> HostFacts:
    """Build HostFacts from parsed flags over the reference (or detected) defaults."""
    base = hostfacts.detect() if (detect or args.detect_host) else reference_facts()
    changes = {name: getattr(args, name) for name in FACT_FIELDS if getattr(args, name, None) is not None}
    return base.with_overrides(**changes)
