"""Build the guest initrd: a gzip'd newc cpio of the guest tree, written in Python (no root needed)."""

from __future__ import annotations

import gzip
from pathlib import Path

from katatest.assets.cpio import CpioWriter
from katatest.assets.tree import TreeEntry

CONSOLE_DEVICE = (5, 1)


def initrd_bytes(entries: list[TreeEntry]) -> bytes:
    """The uncompressed cpio archive: the tree plus /dev/console for the kernel's first open."""
    cpio = CpioWriter(mtime=0)
    for e in entries:
        if e.kind == "dir":
            cpio.add_dir(e.path, 0o1777 if e.path == "tmp" else e.perm)
        elif e.kind == "file":
            cpio.add_file(e.path, e.data, e.perm)
        else:
            cpio.add_symlink(e.path, e.target)
    cpio.add_char_device("dev/console", *CONSOLE_DEVICE)
    return cpio.getvalue()


def write_initrd(entries: list[TreeEntry], dest: Path) -> Path:
    """Write the gzip'd cpio deterministically (gzip header mtime 0)."""
    dest.write_bytes(gzip.compress(initrd_bytes(entries), compresslevel=9, mtime=0))
    return dest
