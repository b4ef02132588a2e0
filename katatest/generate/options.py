"""Reading a plain argv: the values of a flag, and QEMU-style ``type,key=value`` option lists.

Shared by the launch plan (which rewrites argv) and the suites' expectations (which read it)."""

from __future__ import annotations

from collections.abc import Sequence


def option_values(argv: Sequence[str], flag: str) -> list[str]:
    """Values of every ``flag value`` pair in argv."""
    return [argv[i + 1] for i in range(len(argv) - 1) if argv[i] == flag]


def props(value: str) -> dict[str, str]:
    """``a,b=c,d=e`` -> {"": "a", "b": "c", "d": "e"} (a bare leading word is keyed by "")."""
    out: dict[str, str] = {}
    for i, item in enumerate(value.split(",")):
        key, sep, val = item.partition("=")
        if sep:
            out.setdefault(key, val)
        elif i == 0:
            out[""] = item
    return out


def set_prop(value: str, key: str, new: str) -> str:
    """``value`` with ``key=...`` replaced by ``key=new``."""
    return ",".join(f"{key}={new}" if item.partition("=")[0] == key and "=" in item else item
                    for item in value.split(","))
