"""Dispatch a Kata configuration to the generator of its hypervisor."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from katatest.errors import ConfigError, HostFactsError
from katatest.generate.rendered import Rendered
from katatest.host.facts import HostFacts
from katatest.kata.hypervisors import HYPERVISORS, NAMES, by_section
from katatest.kata.hypervisors import hypervisor as _hypervisor
from katatest.kata.releases import DEFAULT_RELEASE, known_releases, load_release
from katatest.kata.tomlconf import load_toml

NET_ENDPOINT_HYPERVISORS = ("qemu",)  # the generators that cold-plug facts.net_endpoints


def hypervisor_of(doc: dict[str, Any], source: str = "", forced: str | None = None) -> str:
    """The hypervisor a config is for: its single ``[hypervisor.X]`` section, or ``forced``."""
    table = doc.get("hypervisor")
    if forced:
        if forced not in NAMES:
            raise ConfigError("--hypervisor", f"unknown hypervisor {forced!r}", source)
        section = _hypervisor(forced).section
        if not isinstance(table, dict) or section not in table:
            raise ConfigError("--hypervisor", f"{forced}: the configuration has no [hypervisor.{section}] section",
                              source)
        return forced
    if not isinstance(table, dict) or not table:
        raise ConfigError("hypervisor", "no [hypervisor.<name>] section", source)
    names = [h.name for h in map(by_section, table) if h is not None]
    if len(names) != 1:
        found = ", ".join(sorted(table)) or "none"
        wanted = ", ".join(f"[{h.table}]" for h in HYPERVISORS)
        raise ConfigError("hypervisor", f"expected exactly one of {wanted}, found: {found}", source)
    return names[0]


def boot_file_paths(doc: dict[str, Any], source: str = "", hypervisor: str | None = None) -> tuple[str, str]:
    """The ``image`` and ``initrd`` paths of the config's hypervisor table ('' when unset or not a string)."""
    section = _hypervisor(hypervisor_of(doc, source, hypervisor)).section
    table = doc["hypervisor"][section]
    if not isinstance(table, dict):
        return "", ""
    image, initrd = table.get("image", ""), table.get("initrd", "")
    return (image if isinstance(image, str) else ""), (initrd if isinstance(initrd, str) else "")


def render_doc(doc: dict[str, Any], facts: HostFacts, source: str = "", hypervisor: str | None = None,
               release: str = DEFAULT_RELEASE) -> Rendered:
    """Render a parsed config for ``facts`` as Kata ``release`` would, with its hypervisor's generator."""
    kata = load_release(release)
    name = hypervisor_of(doc, source, hypervisor)
    if name not in kata.hypervisors:
        modelled = [v for v in known_releases() if name in load_release(v).hypervisors]
        raise ConfigError("hypervisor", f"Kata {kata.version} does not drive {name} here: katatest models {name} "
                          f"for Kata {', '.join(modelled) or 'no release'} only (--kata-version)", source)
    if facts.net_endpoints and name not in NET_ENDPOINT_HYPERVISORS:
        raise HostFactsError(f"--net-endpoint: katatest renders pod network endpoints for "
                             f"{', '.join(NET_ENDPOINT_HYPERVISORS)} only, not {name}")
    if facts.net_endpoints and not kata.qemu.pod_network:
        modelled = [v for v in known_releases() if load_release(v).qemu.pod_network]
        raise HostFactsError(f"--net-endpoint: katatest models Kata's pod network endpoints for Kata "
                             f"{', '.join(modelled)} only, not {kata.version} (no network vectors for it yet)")
    return _hypervisor(name).render_function()(doc, facts, source, kata)


def render_file(path: str | Path, facts: HostFacts, hypervisor: str | None = None,
                release: str = DEFAULT_RELEASE) -> Rendered:
    """Render the config file at ``path``."""
    return render_doc(load_toml(path), facts, str(path), hypervisor, release)
