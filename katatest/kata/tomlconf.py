"""Reading a Kata TOML file with the type rules of Go's TOML decoding.

Kata decodes its configuration into Go structs: a key of the wrong type, or a number that does not fit
its Go integer type, aborts loading. Absent keys keep Go's zero value. Unknown keys are ignored.
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path
from typing import Any

from katatest.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on older Pythons only
    import tomli as tomllib

_INT_RANGES = {
    "int32": (-(2**31), 2**31 - 1),
    "int64": (-(2**63), 2**63 - 1),
    "int": (-(2**63), 2**63 - 1),
    "uint8": (0, 2**8 - 1),
    "uint16": (0, 2**16 - 1),
    "uint32": (0, 2**32 - 1),
    "uint64": (0, 2**64 - 1),
}


MAX_CONFIG_BYTES = 1 << 20  # Kata's shipped configs are ~30 KiB; anything near this is not a config


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "a special file"


def read_config(path: str | Path, limit: int = MAX_CONFIG_BYTES, what: str = "configuration") -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes; anything else is a ConfigError naming it (and
    ``what`` it should have been).

    Opened non-blocking (a FIFO must not hang the open) and checked with fstat before reading; at most
    ``limit + 1`` bytes are read, so a file that grows meanwhile is caught as well."""
    source = str(path)
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as err:
        raise ConfigError("", f"cannot read {what}: {err.strerror or err}", source) from None
    except ValueError as err:  # e.g. an embedded NUL byte in the path
        raise ConfigError("", f"cannot read {what}: {err}", source) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError("", f"cannot read {what}: {_kind(info.st_mode)}, not a regular file", source)
        too_big = f"cannot read {what}: larger than {limit} bytes"
        if info.st_size > limit:
            raise ConfigError("", too_big, source)
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, limit + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:
            raise ConfigError("", too_big, source)
        return b"".join(chunks)
    except OSError as err:
        raise ConfigError("", f"cannot read {what}: {err.strerror or err}", source) from None
    finally:
        os.close(fd)


def load_toml(path: str | Path) -> dict[str, Any]:
    """Parse ``path``; unreadable, oversized or malformed files become a ConfigError naming the file."""
    return parse_toml(read_config(path), str(path))


def parse_toml(data: bytes | str, source: str = "<config>") -> dict[str, Any]:
    """Parse TOML text into a dict, errors as ConfigError."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as err:
            raise ConfigError("", f"not UTF-8 text ({err.reason} at byte {err.start})", source) from None
    try:
        return tomllib.loads(data)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError("", f"invalid TOML: {err}", source) from None
    except RecursionError:
        raise ConfigError("", "invalid TOML: nested too deeply", source) from None


class Section:
    """Typed access to one TOML table; every key read is recorded as ``prefix.key``."""

    def __init__(self, table: Any, prefix: str, source: str = "") -> None:
        if table is None:
            table = {}
        if not isinstance(table, dict):
            raise ConfigError(prefix, f"must be a table, not {_tname(table)}", source)
        self.table = table
        self.prefix = prefix
        self.source = source

    def key(self, name: str) -> str:
        """The dotted name of ``name`` in this section (used as provenance)."""
        return f"{self.prefix}.{name}"

    def has(self, name: str) -> bool:
        return name in self.table

    def _fail(self, name: str, problem: str) -> ConfigError:
        return ConfigError(self.key(name), problem, self.source)

    def str(self, name: str, default: str = "") -> str:
        value = self.table.get(name, default)
        if not isinstance(value, str):
            raise self._fail(name, f"expected a string, got {_tname(value)}")
        return value

    def bool(self, name: str, default: bool = False) -> bool:
        value = self.table.get(name, default)
        if not isinstance(value, bool):
            raise self._fail(name, f"expected a boolean, got {_tname(value)}")
        return value

    def int(self, name: str, gotype: str = "uint32", default: int = 0) -> int:
        value = self.table.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._fail(name, f"expected an integer ({gotype}), got {_tname(value)}")
        low, high = _INT_RANGES[gotype]
        if not low <= value <= high:
            raise self._fail(name, f"{value} does not fit in {gotype} ({low}..{high})")
        return value

    def float(self, name: str, default: float = 0.0) -> float:
        value = self.table.get(name, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self._fail(name, f"expected a number, got {_tname(value)}")
        return float(value)

    def strs(self, name: str) -> list[str]:
        value = self.table.get(name, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self._fail(name, f"expected an array of strings, got {_tname(value)}")
        return list(value)

    def sub(self, name: str) -> Section:
        return Section(self.table.get(name), self.key(name), self.source)


def _tname(value: Any) -> str:
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, (int, float)):
        return f"number {value}"
    if isinstance(value, str):
        return f"string {value!r}" if len(value) < 40 else "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return type(value).__name__
