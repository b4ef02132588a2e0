"""Entry point of the Cloud Hypervisor generator: parsed TOML + host facts -> Rendered."""

from __future__ import annotations

from typing import Any

from katatest.clh.argv import clh_argv
from katatest.clh.paths import VIRTIOFSD_SOCKET
from katatest.clh.vmconfig import build_vmconfig
from katatest.hostfacts import HostFacts
from katatest.kata.loader import load_kata_config
from katatest.provenance import FieldSources
from katatest.qemu.daemon import daemon_argv
from katatest.rendered import Rendered
from katatest.vmjson import flatten


def render_clh(doc: dict[str, Any], facts: HostFacts, source: str = "") -> Rendered:
    """What Kata 3.0.0 launches for a clh sandbox: cloud-hypervisor argv, ``vm.create`` body, fs daemon."""
    cfg = load_kata_config(doc, facts, source)
    src = FieldSources(cfg, "hypervisor.clh")
    vmconfig, vmconfig_sources = flatten(build_vmconfig(cfg, facts, src))
    return Rendered(
        hypervisor="clh",
        argv=clh_argv(cfg, facts, src),
        daemon=daemon_argv(cfg, facts, nydusd_socket=VIRTIOFSD_SOCKET),
        vmconfig=vmconfig,
        vmconfig_sources=vmconfig_sources,
    )
