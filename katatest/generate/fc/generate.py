"""Entry point of the Firecracker generator: parsed TOML + host facts -> Rendered."""

from __future__ import annotations

from typing import Any

from katatest.generate.fc.argv import fc_argv
from katatest.generate.fc.fcconfig import build_fcconfig
from katatest.generate.fc.paths import fc_layout
from katatest.generate.provenance import FieldSources
from katatest.generate.rendered import Rendered
from katatest.generate.vmjson import flatten
from katatest.host.facts import HostFacts
from katatest.kata.hypervisors import hypervisor
from katatest.kata.loader import load_kata_config
from katatest.kata.releases import Release


def render_fc(doc: dict[str, Any], facts: HostFacts, source: str, release: Release) -> Rendered:
    """What Kata ``release`` launches for a Firecracker sandbox: firecracker/jailer argv and ``fcConfig.json``
    (no fc behaviour differs between the known releases yet)."""
    cfg = load_kata_config(doc, facts, source)
    src = FieldSources(cfg, hypervisor("fc").table)
    layout = fc_layout(cfg.hypervisor.hypervisor_path, cfg.hypervisor.jailer_path, facts)
    fcconfig, fcconfig_sources = flatten(build_fcconfig(cfg, facts, layout, src))
    return Rendered(hypervisor="fc", argv=fc_argv(cfg, facts, layout, src),
                    vmconfig=fcconfig, vmconfig_sources=fcconfig_sources, release=release.version)
