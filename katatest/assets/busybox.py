"""Locate (or download) a static busybox for the guest architecture, and list its applets."""

from __future__ import annotations

import functools
import hashlib
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from katatest.assets.errors import AssetError
from katatest.assets.progress import run_tool

HOST_BUSYBOX = Path("/bin/busybox")
APT_LISTS = Path("/var/lib/apt/lists")
ELF_MACHINE = {"amd64": 0x3E, "arm64": 0xB7}
# Applets never linked: the guest's /init and /sbin/init are katatest's own init script.
SKIPPED_APPLETS = {"sbin/init", "init", "linuxrc"}


@dataclass(frozen=True)
class Busybox:
    """A static busybox binary for ``arch`` and its Debian package version."""

    arch: str
    path: Path
    version: str


def _run(cmd: list[str]) -> str:
    return run_tool(cmd, "is this a Debian system?")


def elf_machine(path: Path) -> int:
    header = path.read_bytes()[:20]
    if header[:4] != b"\x7fELF":
        raise AssetError(f"{path} is not an ELF binary")
    return int.from_bytes(header[18:20], "little")


def _check_machine(arch: str, path: Path) -> None:
    if elf_machine(path) != ELF_MACHINE[arch]:
        raise AssetError(f"{path} is not a {arch} binary")


def host_package_version() -> str:
    """Installed version of the host's busybox-static package."""
    try:
        return _run(["dpkg-query", "-W", "-f=${Version}", "busybox-static"]).strip()
    except AssetError:
        raise AssetError("busybox-static is not installed (apt-get install busybox-static)") from None


def _apt_lists_stamp(arch: str) -> str:
    """Identity (names, sizes, mtimes) of apt's package lists for ``arch``."""
    files = sorted(APT_LISTS.glob(f"*binary-{arch}_Packages*"))
    stamp = [(f.name, f.stat().st_size, int(f.stat().st_mtime)) for f in files]
    return hashlib.sha256(json.dumps(stamp).encode()).hexdigest()[:16]


def candidate_version(arch: str, memo_dir: Path | None = None) -> str:
    """Version of busybox-static:<arch> apt would download (foreign architectures must be enabled).

    ``apt-cache`` takes seconds here (no pkgcache.bin), so answers are memoized in ``memo_dir``, keyed by
    the identity of apt's package lists, and within the process.
    """
    if arch == "amd64":
        return host_package_version()
    stamp = _apt_lists_stamp(arch)
    memo = memo_dir / f"busybox-static-{arch}-{stamp}.version" if memo_dir else None
    if memo is not None and memo.is_file():
        return memo.read_text().strip()
    version = _apt_candidate(arch, stamp)
    if memo is not None:
        memo.parent.mkdir(parents=True, exist_ok=True)
        memo.write_text(version + "\n")
    return version


@functools.cache
def _apt_candidate(arch: str, stamp: str) -> str:
    try:
        text = _run(["apt-cache", "show", "--no-all-versions", f"busybox-static:{arch}"])
    except AssetError:
        raise AssetError(f"busybox-static:{arch} unknown to apt; run `dpkg --add-architecture {arch} "
                         "&& apt-get update`") from None
    for line in text.splitlines():
        if line.startswith("Version:"):
            return line.split(":", 1)[1].strip()
    raise AssetError(f"apt-cache shows no version for busybox-static:{arch}")


def fetch_busybox(arch: str, dest_dir: Path) -> Busybox:
    """Copy (amd64) or download and unpack (other arches) busybox into ``dest_dir``."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / "busybox"
    if arch == "amd64":
        if not HOST_BUSYBOX.is_file():
            raise AssetError("/bin/busybox missing (apt-get install busybox-static)")
        version = host_package_version()
        shutil.copyfile(HOST_BUSYBOX, dest)
    else:
        version = candidate_version(arch)
        with tempfile.TemporaryDirectory(prefix="katatest-busybox-") as tmp:
            _run(["sh", "-c", f"cd {tmp} && apt-get download busybox-static:{arch}"])
            debs = list(Path(tmp).glob("*.deb"))
            if not debs:
                raise AssetError(f"apt-get download busybox-static:{arch} produced no .deb")
            _run(["dpkg-deb", "-x", str(debs[0]), f"{tmp}/root"])
            shutil.copyfile(Path(tmp) / "root/bin/busybox", dest)
    dest.chmod(0o755)
    _check_machine(arch, dest)
    return Busybox(arch, dest, version)


def applet_paths() -> list[str]:
    """Applet install paths (e.g. ``usr/bin/awk``) from the host busybox.

    Debian builds busybox-static with one configuration for every architecture, so the host's list
    (same package version) is the guest's list; the guest binary itself cannot run here.
    """
    text = _run([str(HOST_BUSYBOX), "--list-full"])
    return sorted({p.strip("/") for p in text.split()} - SKIPPED_APPLETS)
