"""Entry point of the ACRN generator: parsed TOML + host facts -> Rendered."""

from __future__ import annotations

from typing import Any

from katatest.generate.acrn.argv import acrn_argv
from katatest.generate.provenance import FieldSources
from katatest.generate.rendered import Rendered
from katatest.host.facts import HostFacts
from katatest.kata.hypervisors import hypervisor
from katatest.kata.loader import load_kata_config
from katatest.kata.releases import Release


def render_acrn(doc: dict[str, Any], facts: HostFacts, source: str, release: Release) -> Rendered:
    """What Kata ``release`` launches for an ACRN sandbox: the acrn-dm argv (no shared-fs daemon, no VM JSON;
    no ACRN behaviour differs between the known releases yet)."""
    cfg = load_kata_config(doc, facts, source)
    argv = acrn_argv(cfg, facts, FieldSources(cfg, hypervisor("acrn").table))
    return Rendered(hypervisor="acrn", argv=argv, release=release.version)
