"""Entry point of the Firecracker generator: parsed TOML + host facts -> Rendered."""

from __future__ import annotations

from typing import Any

from katatest.fc.argv import fc_argv
from katatest.fc.fcconfig import build_fcconfig
from katatest.fc.paths import fc_layout
from katatest.hostfacts import HostFacts
from katatest.kata.loader import load_kata_config
from katatest.provenance import FieldSources
from katatest.rendered import Rendered
from katatest.vmjson import flatten


def render_fc(doc: dict[str, Any], facts: HostFacts, source: str = "") -> Rendered:
    """What Kata 3.0.0 launches for a Firecracker sandbox: firecracker/jailer argv and ``fcConfig.json``."""
    cfg = load_kata_config(doc, facts, source)
    src = FieldSources(cfg, "hypervisor.firecracker")
    layout = fc_layout(cfg.hypervisor.hypervisor_path, cfg.hypervisor.jailer_path, facts)
    fcconfig, fcconfig_sources = flatten(build_fcconfig(cfg, facts, layout, src))
    return Rendered(hypervisor="fc", argv=fc_argv(cfg, facts, layout, src),
                    vmconfig=fcconfig, vmconfig_sources=fcconfig_sources)
