"""Entry point of the QEMU generator: parsed TOML + host facts -> Rendered."""

from __future__ import annotations

from typing import Any

from katatest.argv import check_exec_safe
from katatest.hostfacts import HostFacts
from katatest.kata.loader import load_kata_config
from katatest.qemu.argv import render_argv
from katatest.qemu.build import build_qemu_config
from katatest.qemu.daemon import daemon_argv
from katatest.rendered import Rendered


def render_qemu(doc: dict[str, Any], facts: HostFacts, source: str = "") -> Rendered:
    """Render what Kata 3.0.0 launches for a QEMU sandbox: QEMU argv and shared-fs daemon argv."""
    cfg = load_kata_config(doc, facts, source)
    model = build_qemu_config(cfg, facts)
    argv, daemon = render_argv(model), daemon_argv(cfg, facts)
    check_exec_safe(argv, source)
    check_exec_safe(daemon or [], source)
    return Rendered(hypervisor="qemu", argv=argv, daemon=daemon)
