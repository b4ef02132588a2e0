"""Host facts from the command line: the reference host (or the probed one) with the flags over it."""

from __future__ import annotations

import argparse
import os
from typing import Any

from katatest.generate.render import boot_file_paths
from katatest.host import facts as hostfacts
from katatest.host.facts import HostFacts
from katatest.host.flags import fact_changes


def reference_facts() -> HostFacts:
    """The defaults of the conformance vectors' README; CPU count and RAM of this host."""
    cpus, mem_mib = hostfacts.detect_resources()
    return HostFacts(host_cpus=cpus, host_mem_mib=mem_mib, uid=os.getuid(),
                     xdg_runtime_dir=os.environ.get("XDG_RUNTIME_DIR", ""))


def facts_from_args(args: argparse.Namespace, detect: bool = False) -> HostFacts:
    """Build HostFacts from parsed flags over the reference (or detected) defaults."""
    base = hostfacts.detect() if (detect or args.detect_host) else reference_facts()
    return base.with_overrides(**fact_changes(args))


def config_facts(args: argparse.Namespace, doc: dict[str, Any], detect: bool = False) -> HostFacts:
    """:func:`facts_from_args`, plus the sizes of the config's image/initrd files that exist on this host
    (as Kata stat()s them) unless ``--image-size``/``--initrd-size`` give them."""
    facts = facts_from_args(args, detect)
    image, initrd = boot_file_paths(doc, args.config, getattr(args, "hypervisor", None))
    return hostfacts.with_file_sizes(facts, "" if args.image_size is not None else image,
                                     "" if args.initrd_size is not None else initrd)
