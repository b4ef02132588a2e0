"""Loading the declarative matrix file and selecting cells (by matrix name, arch, -k, shard)."""

from __future__ import annotations

import dataclasses
import fnmatch
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from katatest.errors import ConfigError, KatatestError
from katatest.host.endpoints import endpoints_from_specs
from katatest.kata.releases import DEFAULT_RELEASE, known_releases, load_release
from katatest.kata.tomlconf import Section, load_toml

DEFAULT_MATRIX_FILE = Path(__file__).resolve().parent.parent / "data" / "matrix.toml"
ROOTFS = ("image-nvdimm", "image-blk", "initrd")
SHARED_FS = ("virtio-fs", "virtio-9p", "none")
BLOCK_DRIVERS = ("virtio-scsi", "virtio-blk", "virtio-mmio")
HYPERVISORS = ("qemu", "clh", "fc")
PROTECTIONS = ("none", "sev", "tdx")
ARCHES = ("amd64", "arm64")


@dataclass(frozen=True)
class Cell:
    """One cell of the matrix: a base config plus dimension values and raw key overrides."""

    name: str
    arch: str
    rootfs: str
    shared_fs: str
    block_driver: str
    protection: str = "none"
    hypervisor: str = "qemu"
    variant: str = ""
    release: str = DEFAULT_RELEASE  # the Kata release whose generator renders the cell
    net_endpoints: tuple[str, ...] = ()  # the pod netns's interfaces, as --net-endpoint specs (veth[:MAC])
    nested: bool | None = None  # render as if Kata ran nested (True) or on bare metal (False); None: the host's
    description: str = ""
    settings: tuple[tuple[str, Any], ...] = ()
    expect: tuple[tuple[str, Any], ...] = ()
    qemu: str = ""  # the QEMU build the cell runs on ('' = the one closest to what its release bundles)

    @property
    def qemu_build(self) -> str:
        """The QEMU build (``katatest/data/qemu_builds.toml``) the cell's guest runs on."""
        return self.qemu or default_builds(self.release)[0]

    @property
    def virtiofsd_build(self) -> str:
        """The Rust virtiofsd build the cell runs ('' = the host's C virtiofsd: Kata 3.0.0's argv dialect)."""
        return default_builds(self.release)[1]

    @property
    def dims(self) -> dict[str, str]:
        return {"release": self.release, "qemu": self.qemu_build, "hypervisor": self.hypervisor, "arch": self.arch,
                "protection": self.protection, "rootfs": self.rootfs,
                "shared_fs": self.shared_fs, "block_driver": self.block_driver, "variant": self.variant,
                "network": ",".join(self.net_endpoints)}

    def expectation(self, key: str, default: Any = None) -> Any:
        return dict(self.expect).get(key, default)


@dataclass
class Matrix:
    cells: dict[str, Cell]
    matrices: dict[str, list[str]] = field(default_factory=dict)
    source: str = ""

    def named(self, name: str) -> list[Cell]:
        """The cells a matrix name selects. An entry is a cell-name pattern (e.g. ``*``), optionally with
        ``@RELEASE`` (a pattern too): those cells rendered as that Kata release, named ``CELL@RELEASE``, and
        ``~qemuBUILD`` (a pattern too): those cells run on that QEMU build, named ``CELL[@RELEASE]~qemuBUILD``."""
        if name not in self.matrices:
            raise ConfigError("matrices", f"no matrix named {name!r} (have: {', '.join(self.matrices)})",
                              self.source)
        selected: list[Cell] = []
        names: set[str] = set()
        for entry in self.matrices[name]:
            entry, _, build_pattern = entry.partition("~qemu")
            pattern, _, release_pattern = entry.partition("@")
            hits = [c for n, c in self.cells.items() if fnmatch.fnmatchcase(n, pattern)]
            if not hits:
                raise ConfigError(f"matrices.{name}", f"{pattern!r} names no cell", self.source)
            if release_pattern:
                hits = self._retargeted(hits, release_pattern, f"matrices.{name}")
            if build_pattern:
                hits = on_builds(hits, build_pattern, f"matrices.{name}", self.source)
            for cell in hits:  # once each (a cell without QEMU builds comes back once per build)
                if cell.name not in names:
                    names.add(cell.name)
                    selected.append(cell)
        return selected

    def _retargeted(self, cells: list[Cell], release_pattern: str, key: str) -> list[Cell]:
        """``cells`` as every release matching ``release_pattern`` that drives their hypervisor. A cell
        named with an exact release that does not drive its hypervisor is an error; a pattern skips it."""
        releases = [r for r in known_releases() if fnmatch.fnmatchcase(r, release_pattern)]
        if not releases:
            raise ConfigError(key, f"@{release_pattern} names no Kata release (known: "
                              f"{', '.join(known_releases())})", self.source)
        if release_pattern in releases:  # an exact release: every cell must be modelled for it
            gaps = [f"{c.name}@{release_pattern}: {unmodelled(c, release_pattern)}" for c in cells
                    if unmodelled(c, release_pattern)]
            if gaps:
                raise ConfigError(key, gaps[0], self.source)
        return [cell for release in releases for cell in as_release(cells, release)]

def default_builds(release: str) -> tuple[str, str]:
    """(QEMU build, Rust virtiofsd build) a release's cells run on: the builds closest to what it bundles; the
    release's argv in the C virtiofsd's dialect (3.0.0) keeps the host's C virtiofsd ('')."""
    from katatest.assets.qemu_builds import closest

    kata = load_release(release)
    qemu = closest("qemu", kata.bundled_qemu)
    virtiofsd = closest("virtiofsd", kata.bundled_virtiofsd) if kata.qemu.virtiofsd_argv == "rust" else ""
    return qemu, virtiofsd


def on_builds(cells: list[Cell], build_pattern: str, key: str, source: str = "") -> list[Cell]:
    """``cells`` run on every QEMU build matching ``build_pattern``, each named ``CELL~qemuBUILD`` unless the
    build is the cell's default (``*``: every build, the default one keeps the cell's own name)."""
    from katatest.assets.qemu_builds import names

    builds = [b for b in names("qemu") if fnmatch.fnmatchcase(b, build_pattern)]
    if not builds:
        raise ConfigError(key, f"~qemu{build_pattern} names no QEMU build (known: {', '.join(names('qemu'))})",
                          source)
    return [on_build(cell, build) for build in builds for cell in cells]


def on_build(cell: Cell, build: str) -> Cell:
    """``cell`` on QEMU build ``build`` (its own name when that is its release's default build; a cell of
    another VMM is what it is)."""
    if build == cell.qemu_build or cell.hypervisor != "qemu":
        return cell
    base = cell.name.split("~qemu")[0]
    description = cell.description.removesuffix(f" on QEMU {cell.qemu}") if cell.qemu else cell.description
    if build == default_builds(cell.release)[0]:  # back on its release's build: the cell's own name
        return dataclasses.replace(cell, name=base, qemu="", description=description)
    return dataclasses.replace(cell, name=f"{base}~qemu{build}", qemu=build,
                               description=f"{description or base} on QEMU {build}")


def unmodelled(cell: Cell, release: str) -> str:
    """What of ``cell`` katatest does not model for Kata ``release`` ('' when it models all of it)."""
    kata = load_release(release)
    if cell.hypervisor not in kata.hypervisors:
        return f"Kata {release} is not modelled for {cell.hypervisor} in katatest"
    if cell.net_endpoints and not kata.qemu.pod_network:
        return f"Kata {release}'s pod network endpoints are not modelled in katatest"
    return ""


def as_release(cells: list[Cell], release: str) -> list[Cell]:
    """Every cell of ``cells`` katatest models for ``release``, rendered as that release (an installed Kata's:
    ``--kata-config`` with ``--katatest-kata-version``), once each."""
    out: list[Cell] = []
    for cell in cells:
        moved = cell if cell.release == release else retarget(cell, release)
        if not unmodelled(cell, release) and moved.name not in {c.name for c in out}:
            out.append(moved)
    return out


def retarget(cell: Cell, release: str) -> Cell:
    """``cell`` rendered from Kata ``release``'s shipped config instead, on that release's QEMU build: named
    ``CELL@RELEASE``."""
    base = cell.name.split("~qemu")[0]
    return dataclasses.replace(cell, name=f"{base}@{release}", release=release, qemu="",
                               description=f"{base} on Kata {release}'s shipped configuration")


def _choice(section: Section, key: str, choices: tuple[str, ...], default: str | None = None) -> str:
    value = section.str(key, default or "") if default is not None or section.has(key) else ""
    if value not in choices:
        raise ConfigError(section.key(key), f"must be one of {', '.join(choices)}, not {value!r}", section.source)
    return value


def _nested(section: Section) -> bool | None:
    value = section.table.get("nested")
    if value is not None and not isinstance(value, bool):
        raise ConfigError(section.key("nested"), f"must be true or false, not {value!r}", section.source)
    return value


def _endpoints(section: Section) -> tuple[str, ...]:
    specs = tuple(section.strs("net_endpoints"))
    try:
        endpoints_from_specs(specs)
    except KatatestError as err:
        raise ConfigError(section.key("net_endpoints"), str(err), section.source) from None
    return specs


def parse_cell(name: str, section: Section) -> Cell:
    settings = section.table.get("set", {})
    expect = section.table.get("expect", {})
    for key, table in (("set", settings), ("expect", expect)):
        if not isinstance(table, dict):
            raise ConfigError(section.key(key), "must be a table", section.source)
    for key in settings:
        if key.split(".")[0] not in ("hypervisor", "agent", "runtime", "factory"):
            raise ConfigError(section.key(f"set.{key}"), "keys start with hypervisor./agent./runtime./factory.",
                              section.source)
    return Cell(
        name=name,
        arch=_choice(section, "arch", ARCHES),
        rootfs=_choice(section, "rootfs", ROOTFS),
        shared_fs=_choice(section, "shared_fs", SHARED_FS),
        block_driver=_choice(section, "block_driver", BLOCK_DRIVERS),
        protection=_choice(section, "protection", PROTECTIONS, "none"),
        hypervisor=_choice(section, "hypervisor", HYPERVISORS, "qemu"),
        variant=section.str("variant"),
        release=_choice(section, "release", tuple(known_releases()), DEFAULT_RELEASE),
        net_endpoints=_endpoints(section),
        nested=_nested(section),
        description=section.str("description"),
        settings=tuple(settings.items()),
        expect=tuple(expect.items()),
    )


def load_matrix(path: str | Path = DEFAULT_MATRIX_FILE) -> Matrix:
    """Parse a matrix file; every problem is a ConfigError naming the key."""
    doc = load_toml(path)
    source = str(path)
    cells_table = Section(doc.get("cell"), "cell", source)
    cells = {name: parse_cell(name, cells_table.sub(name)) for name in cells_table.table}
    matrices_table = Section(doc.get("matrices"), "matrices", source)
    matrices = {name: matrices_table.strs(name) for name in matrices_table.table}
    return Matrix(cells=cells, matrices=matrices, source=source)


def parse_shard(text: str) -> tuple[int, int]:
    """``I/N`` (1-based) -> (I, N)."""
    try:
        index, total = (int(part) for part in text.split("/"))
    except ValueError:
        raise ConfigError("--shard", f"expected I/N, got {text!r}") from None
    if not 1 <= index <= total:
        raise ConfigError("--shard", f"need 1 <= I <= N, got {text!r}")
    return index, total


def check_releases(releases: list[str] | None) -> None:
    """Every requested release is known (an error naming the option and the known ones otherwise)."""
    unknown = [r for r in releases or [] if r not in known_releases()]
    if unknown:
        raise ConfigError("--katatest-kata-version", f"unknown Kata release {unknown[0]!r} "
                          f"(known: {', '.join(known_releases())})")


def select_cells(cells: list[Cell], arches: list[str] | None = None, shard: str | None = None,
                 releases: list[str] | None = None, qemu_builds: list[str] | None = None) -> list[Cell]:
    """Filter by architecture and Kata release, run on the given QEMU builds (each cell on each), then keep
    shard I of N (cells sorted by name, round-robin)."""
    check_releases(releases)
    chosen = [c for c in cells if (not arches or c.arch in arches) and (not releases or c.release in releases)]
    if qemu_builds:
        from katatest.assets.qemu_builds import names

        unknown = [b for b in qemu_builds if b not in names("qemu")]
        if unknown:
            raise ConfigError("--katatest-qemu", f"unknown QEMU build {unknown[0]!r} (known: "
                              f"{', '.join(names('qemu'))})")
        moved = [on_build(c, b) for b in qemu_builds for c in chosen if c.hypervisor == "qemu"]
        chosen = [c for i, c in enumerate(moved) if c.name not in {m.name for m in moved[:i]}]
    if shard:
        index, total = parse_shard(shard)
        ordered = sorted(chosen, key=lambda c: c.name)
        chosen = [c for position, c in enumerate(ordered) if position % total == index - 1]
    return chosen
