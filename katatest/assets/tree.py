"""The guest root tree (busybox, applet links, katatest init) shared by the initrd and the image."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from katatest.assets.busybox import applet_paths

DIRECTORIES = ("bin", "sbin", "usr", "usr/bin", "usr/sbin", "etc", "proc", "sys", "dev", "run", "tmp",
               "root", "mnt", "var", "lib")
ETC_FILES = {
    "etc/passwd": b"root:x:0:0:root:/root:/bin/sh\n",
    "etc/group": b"root:x:0:\n",
    "etc/hostname": b"katatest-guest\n",
    "etc/os-release": b'NAME="katatest guest"\nID=katatest\nVERSION_ID=1\n',
}


@dataclass(frozen=True)
class TreeEntry:
    """One member of the guest tree: kind is "dir", "file" or "symlink"."""

    path: str
    kind: str
    data: bytes = b""
    perm: int = 0o755
    target: str = ""


def init_script() -> bytes:
    """The guest init (busybox sh), as shipped in ``katatest/data/guest/init``."""
    return resources.files("katatest").joinpath("data", "guest", "init").read_bytes()


def guest_tree(busybox: Path, applets: list[str] | None = None) -> list[TreeEntry]:
    """Directories first, then files and links, in a stable order."""
    entries = [TreeEntry(d, "dir") for d in DIRECTORIES]
    entries.append(TreeEntry("bin/busybox", "file", busybox.read_bytes(), 0o755))
    init = init_script()
    entries += [TreeEntry("init", "file", init, 0o755), TreeEntry("sbin/init", "file", init, 0o755)]
    entries += [TreeEntry(p, "file", data, 0o644) for p, data in ETC_FILES.items()]
    entries.append(TreeEntry("etc/mtab", "symlink", target="/proc/mounts"))
    taken = {e.path for e in entries}
    for applet in applets if applets is not None else applet_paths():
        if applet not in taken:
            entries.append(TreeEntry(applet, "symlink", target="/bin/busybox"))
            taken.add(applet)
    return entries


def materialize(entries: list[TreeEntry], root: Path) -> None:
    """Write the tree under ``root`` (for ``mkfs.ext4 -d``)."""
    for e in entries:
        dest = root / e.path
        if e.kind == "dir":
            dest.mkdir(parents=True, exist_ok=True)
            dest.chmod(0o1777 if e.path == "tmp" else e.perm)
        elif e.kind == "file":
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(e.data)
            dest.chmod(e.perm)
        else:
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.symlink_to(e.target)
