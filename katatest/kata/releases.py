"""Kata releases as data: which hypervisors a release drives and the named behaviours its generators consult.

Each release is one file, ``katatest/data/releases/<version>.toml``. Behaviour that differs between releases is
read from there by name (``release.qemu.daemonize``), never from version comparisons in the generators."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from katatest.errors import KatatestError
from katatest.kata.hypervisors import NAMES
from katatest.kata.tomlconf import load_toml

DEFAULT_RELEASE = "3.0.0"
RELEASES_DIR = Path(__file__).resolve().parent.parent / "data" / "releases"
QMP_TRANSPORTS = ("socket",)  # the ways of passing QMP the QEMU generator implements


@dataclass(frozen=True)
class QemuBehaviour:
    """How a release launches QEMU (the ``[qemu]`` table of its file)."""

    daemonize: bool  # -daemonize among govmm's fixed flags
    qmp: str  # one of QMP_TRANSPORTS
    kernel_irqchip: bool  # kernel_irqchip=on in the amd64 -machine options
    debug_log: bool  # -D <vm dir>/qemu.log with enable_debug


@dataclass(frozen=True)
class Release:
    """One Kata release: its version, the hypervisors its Go runtime drives, and its behaviours."""

    version: str
    hypervisors: tuple[str, ...]
    qemu: QemuBehaviour


def known_releases() -> list[str]:
    """The versions that have a release file, sorted."""
    return sorted(p.stem for p in RELEASES_DIR.glob("*.toml"))


def _field(table: dict[str, Any], key: str, kind: type, where: str) -> Any:
    value = table.get(key)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise KatatestError(f"{where}: {key} must be a {kind.__name__}, got {value!r}")
    return value


def _parse(doc: dict[str, Any], where: str) -> Release:
    unknown = sorted(set(doc) - {"version", "hypervisors", "qemu"})
    if unknown:
        raise KatatestError(f"{where}: unknown keys {', '.join(unknown)}")
    hypervisors = _field(doc, "hypervisors", list, where)
    bad = [h for h in hypervisors if h not in NAMES]
    if bad:
        raise KatatestError(f"{where}: hypervisors: unknown {bad} (known: {', '.join(NAMES)})")
    qemu = _field(doc, "qemu", dict, where)
    extra = sorted(set(qemu) - {"daemonize", "qmp", "kernel_irqchip", "debug_log"})
    if extra:
        raise KatatestError(f"{where}: qemu: unknown keys {', '.join(extra)}")
    qmp = _field(qemu, "qmp", str, f"{where}: qemu")
    if qmp not in QMP_TRANSPORTS:
        raise KatatestError(f"{where}: qemu.qmp: {qmp!r} is not implemented (known: {', '.join(QMP_TRANSPORTS)})")
    behaviour = QemuBehaviour(daemonize=_field(qemu, "daemonize", bool, f"{where}: qemu"), qmp=qmp,
                              kernel_irqchip=_field(qemu, "kernel_irqchip", bool, f"{where}: qemu"),
                              debug_log=_field(qemu, "debug_log", bool, f"{where}: qemu"))
    return Release(_field(doc, "version", str, where), tuple(hypervisors), behaviour)


@functools.cache
def load_release(version: str = DEFAULT_RELEASE) -> Release:
    """The release ``version``; an unknown one is an error listing the known releases."""
    path = RELEASES_DIR / f"{version}.toml"
    if "/" in version or not path.is_file():
        raise KatatestError(f"unknown Kata release {version!r} (known: {', '.join(known_releases())})")
    release = _parse(load_toml(path), str(path))
    if release.version != version:
        raise KatatestError(f"{path}: version {release.version!r} does not match the file name")
    return release
