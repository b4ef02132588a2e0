"""A cell's Kata configuration (base config + dimensions + overrides) and host facts."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from katatest.errors import ConfigError
from katatest.host.endpoints import endpoints_from_specs
from katatest.host.facts import HostFacts
from katatest.kata.hypervisors import hypervisor
from katatest.kata.releases import DEFAULT_RELEASE
from katatest.kata.tomlconf import load_toml
from katatest.matrix.model import Cell

BASE_DIR = Path(__file__).resolve().parent.parent / "data" / "base"
KATA_INITRD = "/usr/share/kata-containers/kata-containers-initrd.img"


def base_config_path(arch: str, hypervisor: str = "qemu", release: str = DEFAULT_RELEASE) -> Path:
    """Kata ``release``'s shipped configuration-<hypervisor>.toml for ``arch`` (3.0.0's in ``base/``, a later
    release's in ``base/<release>/``)."""
    folder = BASE_DIR if release == DEFAULT_RELEASE else BASE_DIR / release
    path = folder / f"configuration-{hypervisor}-{arch}.toml"
    if not path.exists():
        raise ConfigError("arch", f"no shipped Kata {release} {hypervisor} configuration for {arch} in katatest")
    return path


def _set_key(doc: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    table = doc
    for part in parts[:-1]:
        table = table.setdefault(part, {})
        if not isinstance(table, dict):
            raise ConfigError(dotted, "cannot set a key below a non-table value")
    table[parts[-1]] = value


def cell_document(cell: Cell, base: dict[str, Any] | None = None) -> dict[str, Any]:
    """The parsed TOML of the cell's configuration."""
    doc = copy.deepcopy(base if base is not None else load_toml(base_config_path(cell.arch, cell.hypervisor,
                                                                                       cell.release)))
    qemu = doc.setdefault("hypervisor", {}).setdefault(hypervisor(cell.hypervisor).section, {})
    if cell.rootfs == "initrd":
        qemu.pop("image", None)
        qemu["initrd"] = qemu.get("initrd") or KATA_INITRD
    else:
        qemu.pop("initrd", None)
        qemu.setdefault("image", "/usr/share/kata-containers/kata-containers.img")
        qemu["disable_image_nvdimm"] = cell.rootfs == "image-blk"
    if cell.shared_fs != "none":
        qemu["shared_fs"] = cell.shared_fs
    qemu["block_device_driver"] = cell.block_driver
    if cell.protection != "none":
        qemu["confidential_guest"] = True
    for key, value in cell.settings:
        _set_key(doc, key, value)
    return doc


def cell_facts(cell: Cell, host: HostFacts) -> HostFacts:
    """The host facts a cell is rendered with: the real host's, with the cell's arch and TEE."""
    changes: dict[str, Any] = {"arch": cell.arch, "net_endpoints": endpoints_from_specs(cell.net_endpoints)}
    if cell.protection != "none":
        changes["guest_protection"] = cell.protection
    if cell.arch != host.arch:
        changes["nested"] = False
    if cell.nested is not None:
        changes["nested"] = cell.nested and cell.arch == "amd64"  # Kata checks nesting on amd64 only
    return host.with_overrides(**changes)
