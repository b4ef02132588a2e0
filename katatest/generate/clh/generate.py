"""Entry point of the Cloud Hypervisor generator: parsed TOML + host facts -> Rendered."""

from __future__ import annotations

from typing import Any

from katatest.generate.clh.argv import clh_argv
from katatest.generate.clh.paths import VIRTIOFSD_SOCKET
from katatest.generate.clh.vmconfig import build_vmconfig
from katatest.generate.daemon import daemon_argv
from katatest.generate.provenance import FieldSources
from katatest.generate.rendered import Rendered
from katatest.generate.vmjson import flatten
from katatest.host.facts import HostFacts
from katatest.kata.hypervisors import hypervisor
from katatest.kata.loader import load_kata_config
from katatest.kata.releases import Release


def render_clh(doc: dict[str, Any], facts: HostFacts, source: str, release: Release) -> Rendered:
    """What Kata ``release`` launches for a clh sandbox: cloud-hypervisor argv, ``vm.create`` body, fs daemon
    (no clh behaviour differs between the known releases yet)."""
    cfg = load_kata_config(doc, facts, source)
    src = FieldSources(cfg, hypervisor("clh").table)
    vmconfig, vmconfig_sources = flatten(build_vmconfig(cfg, facts, src))
    return Rendered(
        hypervisor="clh",
        argv=clh_argv(cfg, facts, src),
        daemon=daemon_argv(cfg, facts, nydusd_socket=VIRTIOFSD_SOCKET),
        vmconfig=vmconfig,
        vmconfig_sources=vmconfig_sources,
        release=release.version,
    )
