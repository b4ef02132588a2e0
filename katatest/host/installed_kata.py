"""An installed Kata on this host: the version ``kata-runtime --version`` reports, and which release to pass."""

from __future__ import annotations

import re
import shutil
import subprocess

VERSION_LINE = re.compile(r"^\s*kata-runtime\s*:\s*(\d+\.\d+\.\d+)\S*\s*$", re.MULTILINE)


def installed_kata_version(binary: str = "kata-runtime", timeout: float = 10.0) -> str | None:
    """The installed runtime's version (``kata-runtime  : 3.2.0``), or None when none is installed or it
    says nothing recognisable."""
    path = shutil.which(binary)
    if path is None:
        return None
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=timeout).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return parse_version_output(out)


def parse_version_output(text: str) -> str | None:
    match = VERSION_LINE.search(text)
    return match.group(1) if match else None


def _key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def release_advice(installed: str, known: list[str]) -> str:
    """What to pass for an installed Kata: its own release when katatest knows it, else the closest earlier."""
    if installed in known:
        return f"pass --kata-version {installed} (and --kata-config with its configuration-qemu.toml)"
    earlier = [k for k in known if _key(k) < _key(installed)]
    if not earlier:
        return f"katatest knows no release up to {installed} (known: {', '.join(known)})"
    closest = max(earlier, key=_key)
    return (f"katatest has no data for Kata {installed} (known: {', '.join(known)}); the closest earlier is "
            f"{closest}: pass --kata-version {closest} and expect the differences of the releases between")
