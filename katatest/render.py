"""Dispatch a Kata configuration to the generator of its hypervisor."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from katatest.errors import ConfigError
from katatest.hostfacts import HostFacts
from katatest.rendered import Rendered
from katatest.tomlconf import load_toml

HYPERVISORS = ("qemu", "clh", "fc", "acrn")
SECTION_TO_HYPERVISOR = {"qemu": "qemu", "clh": "clh", "firecracker": "fc", "acrn": "acrn"}
HYPERVISOR_TO_SECTION = {name: section for section, name in SECTION_TO_HYPERVISOR.items()}


def hypervisor_of(doc: dict[str, Any], source: str = "", forced: str | None = None) -> str:
    """The hypervisor a config is for: its single ``[hypervisor.X]`` section, or ``forced``."""
    table = doc.get("hypervisor")
    if forced:
        if forced not in HYPERVISORS:
            raise ConfigError("--hypervisor", f"unknown hypervisor {forced!r}", source)
        section = HYPERVISOR_TO_SECTION[forced]
        if not isinstance(table, dict) or section not in table:
            raise ConfigError("--hypervisor", f"{forced}: the configuration has no [hypervisor.{section}] section",
                              source)
        return forced
    if not isinstance(table, dict) or not table:
        raise ConfigError("hypervisor", "no [hypervisor.<name>] section", source)
    names = [SECTION_TO_HYPERVISOR[name] for name in table if name in SECTION_TO_HYPERVISOR]
    if len(names) != 1:
        found = ", ".join(sorted(table)) or "none"
        wanted = ", ".join(f"[hypervisor.{n}]" for n in SECTION_TO_HYPERVISOR)
        raise ConfigError("hypervisor", f"expected exactly one of {wanted}, found: {found}", source)
    return names[0]


def boot_file_paths(doc: dict[str, Any], source: str = "", hypervisor: str | None = None) -> tuple[str, str]:
    """The ``image`` and ``initrd`` paths of the config's hypervisor table ('' when unset or not a string)."""
    section = HYPERVISOR_TO_SECTION[hypervisor_of(doc, source, hypervisor)]
    table = doc["hypervisor"][section]
    if not isinstance(table, dict):
        return "", ""
    image, initrd = table.get("image", ""), table.get("initrd", "")
    return (image if isinstance(image, str) else ""), (initrd if isinstance(initrd, str) else "")


def render_doc(doc: dict[str, Any], facts: HostFacts, source: str = "", hypervisor: str | None = None) -> Rendered:
    """Render a parsed config for ``facts``."""
    name = hypervisor_of(doc, source, hypervisor)
    if name == "qemu":
        from katatest.qemu.generate import render_qemu

        return render_qemu(doc, facts, source)
    if name == "clh":
        from katatest.clh.generate import render_clh

        return render_clh(doc, facts, source)
    if name == "fc":
        from katatest.fc.generate import render_fc

        return render_fc(doc, facts, source)
    from katatest.acrn.generate import render_acrn

    return render_acrn(doc, facts, source)


def render_file(path: str | Path, facts: HostFacts, hypervisor: str | None = None) -> Rendered:
    """Render the config file at ``path``."""
    return render_doc(load_toml(path), facts, str(path), hypervisor)
