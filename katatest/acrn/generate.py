"""Entry point of the ACRN generator: parsed TOML + host facts -> Rendered."""

from __future__ import annotations

from typing import Any

from katatest.acrn.argv import acrn_argv
from katatest.hostfacts import HostFacts
from katatest.kata.loader import load_kata_config
from katatest.provenance import FieldSources
from katatest.rendered import Rendered


def render_acrn(doc: dict[str, Any], facts: HostFacts, source: str = "") -> Rendered:
    """What Kata 3.0.0 launches for an ACRN sandbox: the acrn-dm argv (no shared-fs daemon, no VM JSON)."""
    cfg = load_kata_config(doc, facts, source)
    return Rendered(hypervisor="acrn", argv=acrn_argv(cfg, facts, FieldSources(cfg, "hypervisor.acrn")))
