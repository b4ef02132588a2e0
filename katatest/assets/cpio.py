"""A deterministic writer for the ``newc`` cpio format the kernel unpacks as an initramfs."""

from __future__ import annotations

import stat
from dataclasses import dataclass, field

NEWC_MAGIC = b"070701"
TRAILER = "TRAILER!!!"


def _pad4(n: int) -> bytes:
    return b"\0" * (-n % 4)


@dataclass
class CpioWriter:
    """Accumulates cpio members in memory; ``getvalue()`` returns the archive with its trailer."""

    mtime: int = 0
    _chunks: list[bytes] = field(default_factory=list)
    _next_ino: int = 1
    _names: set[str] = field(default_factory=set)

    def _member(self, name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0),
                nlink: int = 1, ino: int | None = None) -> None:
        name = name.lstrip("/") or "."
        if name in self._names and name != TRAILER:
            raise ValueError(f"duplicate cpio member {name!r}")
        self._names.add(name)
        if ino is None:
            ino, self._next_ino = self._next_ino, self._next_ino + 1
        encoded = name.encode() + b"\0"
        fields = (ino, mode, 0, 0, nlink, self.mtime, len(data), 0, 0, rdev[0], rdev[1], len(encoded), 0)
        header = NEWC_MAGIC + b"".join(b"%08X" % v for v in fields)
        self._chunks += [header, encoded, _pad4(len(header) + len(encoded)), data, _pad4(len(data))]

    def add_dir(self, name: str, perm: int = 0o755) -> None:
        self._member(name, stat.S_IFDIR | perm, nlink=2)

    def add_file(self, name: str, data: bytes, perm: int = 0o644) -> None:
        self._member(name, stat.S_IFREG | perm, data)

    def add_symlink(self, name: str, target: str) -> None:
        self._member(name, stat.S_IFLNK | 0o777, target.encode())

    def add_char_device(self, name: str, major: int, minor: int, perm: int = 0o600) -> None:
        self._member(name, stat.S_IFCHR | perm, rdev=(major, minor))

    def getvalue(self) -> bytes:
        trailer = CpioWriter(mtime=0)
        trailer._member(TRAILER, 0, ino=0)
        return b"".join(self._chunks + trailer._chunks)


def read_newc(archive: bytes) -> list[tuple[str, int, bytes]]:
    """Parse a newc archive into (name, mode, data) tuples, trailer excluded (used by tests and checks)."""
    members, pos = [], 0
    while True:
        if archive[pos:pos + 6] != NEWC_MAGIC:
            raise ValueError(f"bad cpio magic at offset {pos}")
        fields = [int(archive[pos + 6 + 8 * i: pos + 14 + 8 * i], 16) for i in range(13)]
        mode, size, namesize = fields[1], fields[6], fields[11]
        name_start = pos + 110
        name = archive[name_start:name_start + namesize - 1].decode()
        data_start = name_start + namesize + (-(110 + namesize) % 4)
        data = archive[data_start:data_start + size]
        pos = data_start + size + (-size % 4)
        if name == TRAILER:
            return members
        members.append((name, mode, data))
