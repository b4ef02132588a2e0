"""QEMU and Rust virtiofsd builds from Debian's archives, side by side with the system's QEMU.

A build is data (``katatest/data/qemu_builds.toml``): Debian's own QEMU 7.2 (the system's, ``/usr/bin``), or a
private Debian root made with ``mmdebstrap`` (bookworm-backports' 10.0, sid's 11.1, trixie's and sid's Rust
virtiofsd), cached under ``<cache>/builds/`` keyed by its spec and run through the root's own dynamic loader and
libraries. Nothing is installed on the host; ``katatest assets build --qemu 7.2|10.0|11.1|all`` provisions them.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from katatest.assets.cache import _locked, cache_root
from katatest.assets.errors import AssetError
from katatest.kata.hypervisors import qemu_paths
from katatest.kata.tomlconf import load_toml

BUILDS_FILE = Path(__file__).resolve().parent.parent / "data" / "qemu_builds.toml"
MIRROR = "http://deb.debian.org/debian"
QEMU_BINARIES = {"amd64": "usr/bin/qemu-system-x86_64", "arm64": "usr/bin/qemu-system-aarch64"}
VIRTIOFSD_BINARY = "usr/libexec/virtiofsd"
LIB_DIRS = ("lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu")
LOADER = "lib64/ld-linux-x86-64.so.2"
MODULE_DIR = "usr/lib/x86_64-linux-gnu/qemu"
# Kata's default firmware file names -> where a Debian root (or the host) has them.
FIRMWARE = {"AAVMF_CODE.fd": ("usr/share/AAVMF/AAVMF_CODE.fd", "usr/share/qemu-efi-aarch64/QEMU_EFI.fd"),
            "QEMU_EFI.fd": ("usr/share/qemu-efi-aarch64/QEMU_EFI.fd",)}
TRIM = ("usr/share/doc", "usr/share/man", "usr/share/locale", "usr/share/info")
Progress = Callable[[str], None]


@dataclass(frozen=True)
class BuildSpec:
    """One build as ``qemu_builds.toml`` declares it."""

    kind: str  # qemu | virtiofsd
    name: str  # the selector: major.minor
    debian: str
    system: bool = False
    sources: tuple[str, ...] = ()
    include: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        text = json.dumps([self.kind, self.name, self.debian, self.sources, self.include])
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Build:
    """A provisioned build: where it is, how to run it, its exact versions."""

    spec: BuildSpec
    root: Path | None  # None: the host's own (Debian 12's QEMU, an installed Kata's)
    versions: dict[str, str] = field(default_factory=dict)  # arch (or "virtiofsd") -> full version
    paths: dict[str, str] = field(default_factory=dict)  # arch (or "virtiofsd") -> binary, for an installed Kata

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def label(self) -> str:
        """``QEMU 11.1`` / ``virtiofsd 1.14``."""
        return f"{'QEMU' if self.spec.kind == 'qemu' else 'virtiofsd'} {self.name}"

    def prefix(self) -> list[str]:
        """What runs a binary of the root: its dynamic loader with its libraries, QEMU's modules from the root
        too (QEMU looks in its compiled-in /usr/lib/... otherwise: the host's, another build's); [] for the
        host's own build."""
        if self.root is None:
            return []
        libs = ":".join(str(self.root / d) for d in LIB_DIRS)
        return ["/usr/bin/env", f"QEMU_MODULE_DIR={self.root / MODULE_DIR}", str(self.root / LOADER),
                "--library-path", libs]

    def binary(self, arch: str = "amd64") -> str:
        if self.paths:
            return self.paths.get("virtiofsd" if self.spec.kind == "virtiofsd" else arch, "")
        if self.spec.kind == "virtiofsd":
            return str(self.root / VIRTIOFSD_BINARY) if self.root else ""
        return str(self.root / QEMU_BINARIES[arch]) if self.root else qemu_paths()[arch]

    def command(self, arch: str = "amd64") -> list[str]:
        """The argv prefix that runs the build's QEMU for ``arch`` (or its virtiofsd), data dir included."""
        if self.spec.kind == "virtiofsd":
            return [*self.prefix(), self.binary()]
        data = ["-L", str(self.root / "usr/share/qemu")] if self.root else []  # an installed one knows its own
        return [*self.prefix(), self.binary(arch), *data]

    def firmware(self, name: str) -> str | None:
        """The build's file for a Kata default firmware name (``AAVMF_CODE.fd``), None when it has none."""
        base = self.root if self.root is not None else Path("/")
        return next((str(base / c) for c in FIRMWARE.get(name, ()) if (base / c).is_file()), None)

    def version(self, arch: str = "amd64") -> str:
        return self.versions.get("virtiofsd" if self.spec.kind == "virtiofsd" else arch, "")


@functools.cache
def specs() -> dict[tuple[str, str], BuildSpec]:
    """Every declared build by (kind, name)."""
    doc = load_toml(BUILDS_FILE)
    out = {}
    for kind in ("qemu", "virtiofsd"):
        for name, entry in doc.get(kind, {}).items():
            out[kind, name] = BuildSpec(kind, name, entry["debian"], bool(entry.get("system", False)),
                                        tuple(entry.get("sources", ())), tuple(entry.get("include", ())))
    return out


def names(kind: str = "qemu") -> list[str]:
    """The selectors of ``kind``'s builds, oldest first."""
    return sorted((n for k, n in specs() if k == kind), key=_version_key)


def spec(kind: str, name: str) -> BuildSpec:
    try:
        return specs()[kind, name]
    except KeyError:
        raise AssetError(f"unknown {kind} build {name!r} (known: {', '.join(names(kind))})") from None


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", version))


def closest(kind: str, version: str) -> str:
    """The build of ``kind`` closest to ``version`` (what a Kata release bundles): the same major.minor, else
    the nearest by (major, minor), the newer one on a tie."""
    want = _version_key(version)[:2]

    def distance(name: str) -> tuple[int, int]:
        have = _version_key(name)[:2]
        return (abs((have[0] - want[0]) * 100 + have[1] - want[1]), -have[0] * 100 - have[1])

    return min(names(kind), key=distance)


def _builds_dir() -> Path:
    return cache_root() / "builds"


def _root_dir(s: BuildSpec) -> Path:
    return _builds_dir() / f"{s.kind}-{s.name}-{s.key}"


def _run_version(command: list[str]) -> str:
    try:
        proc = subprocess.run([*command, "--version"], capture_output=True, text=True, timeout=30,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unknown ({exc})"
    first = (proc.stdout or proc.stderr).strip().splitlines()
    text = first[0] if first else ""
    match = re.search(r"version (\S+(?: \([^)]*\))?)|virtiofsd (\S+)", text)
    return (match.group(1) or match.group(2)) if match else text or f"unknown (exit {proc.returncode})"


def _system_build(s: BuildSpec) -> Build:
    versions = {arch: _run_version([path]) for arch, path in qemu_paths().items() if os.access(path, os.X_OK)}
    return Build(s, None, versions)


def find(kind: str, name: str) -> Build | None:
    """The provisioned build (the system's QEMU for a system build), None when it is not there."""
    s = spec(kind, name)
    if s.system:
        build = _system_build(s)
        return build if build.versions else None
    manifest = _root_dir(s) / "build.json"
    if not manifest.is_file():
        return None
    return Build(s, manifest.parent, json.loads(manifest.read_text())["versions"])


def require(kind: str, name: str) -> Build:
    """The build, or AssetError saying how to provision it."""
    build = find(kind, name)
    if build is None:
        s = spec(kind, name)
        how = ("bash scripts/setup.sh (Debian's qemu-system-x86 / -arm)" if s.system
               else f"katatest assets build --{kind} {name}")
        raise AssetError(f"{kind} build {name} is not provisioned here: run {how}")
    return build


def provision(kind: str, name: str, progress: Progress) -> Build:
    """The build, made (once, under a lock) when it is not there."""
    s = spec(kind, name)
    if s.system:
        return require(kind, name)
    final = _root_dir(s)
    with _locked(f"build-{kind}-{name}", progress):
        found = find(kind, name)
        if found is not None:
            return found
        if not shutil.which("mmdebstrap"):
            raise AssetError("mmdebstrap is not installed (scripts/setup.sh installs it): it makes the private "
                             f"Debian root of {kind} build {name}")
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{kind}-{name}-", dir=final.parent))
        try:
            root = tmp / "root"
            progress(f"{kind} {name}: mmdebstrap {s.debian} ({', '.join(s.include)})")
            argv = ["mmdebstrap", "--variant=essential", "--aptopt=Acquire::Check-Valid-Until \"false\"",
                    f"--include={','.join(s.include)}", s.debian, str(root),
                    *(f"deb {MIRROR} {suite} main" for suite in s.sources)]
            proc = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL)
            if proc.returncode != 0:
                tail = " | ".join(line for line in proc.stderr.splitlines() if line.startswith("E:"))[-600:]
                raise AssetError(f"{kind} build {name}: mmdebstrap failed (exit {proc.returncode}): {tail}")
            for junk in TRIM:
                shutil.rmtree(root / junk, ignore_errors=True)
            build = Build(s, root)
            arches = ("virtiofsd",) if kind == "virtiofsd" else tuple(QEMU_BINARIES)
            versions = {a: _run_version(build.prefix() + [build.binary(a if a != "virtiofsd" else "amd64")])
                        for a in arches}
            if any(v.startswith("unknown") for v in versions.values()):
                raise AssetError(f"{kind} build {name}: its binaries do not run: {versions}")
            (root / "build.json").write_text(json.dumps({"kind": kind, "name": name, "debian": s.debian,
                                                        "include": list(s.include), "versions": versions},
                                                       indent=2))
            os.rename(root, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        progress(f"{kind} {name}: {', '.join(f'{a} {v}' for a, v in versions.items())} in {final}")
        return require(kind, name)


def installed_kata(qemu_path: str, virtiofsd_path: str, arch: str) -> tuple[Build | None, Build | None]:
    """An installed Kata's own QEMU and virtiofsd (the paths its configuration names, e.g. /opt/kata/bin/...)
    as builds, when they exist: what release qualification on a bare-metal runner runs."""
    qemu = virtiofsd = None
    if qemu_path and os.access(qemu_path, os.X_OK):
        qemu = Build(BuildSpec("qemu", "kata", "installed Kata", system=True), None,
                     {arch: _run_version([qemu_path])}, {arch: qemu_path})
    if virtiofsd_path and os.access(virtiofsd_path, os.X_OK):
        virtiofsd = Build(BuildSpec("virtiofsd", "kata", "installed Kata", system=True), None,
                          {"virtiofsd": _run_version([virtiofsd_path])}, {"virtiofsd": virtiofsd_path})
    return qemu, virtiofsd


def provisioned() -> list[Build]:
    """Every build found or provisioned here."""
    return [b for kind, name in specs() if (b := find(kind, name)) is not None]
