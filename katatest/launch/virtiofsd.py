"""Kata 3.30+'s virtiofsd argv is the Rust daemon's; Debian 12 ships QEMU's C virtiofsd. Which one a binary is,
and the flag-by-flag translation (each flag one recorded Override) when only the C one is installed.

The two spell the same options differently: Rust ``--shared-dir=DIR --cache=auto --announce-submounts``,
C ``-o source=DIR -o cache=auto -o announce_submounts``. Flags both accept (``--fd``, ``--syslog``,
``--thread-pool-size``, ``-o OPT``) stay as they are. Both run in the foreground by default.
"""

from __future__ import annotations

import functools
import subprocess
from collections.abc import Sequence
from typing import TYPE_CHECKING

from katatest.launch.errors import UnknownVirtiofsdFlag, UntranslatableFlag

if TYPE_CHECKING:
    from katatest.launch.plan import Override

RUST_MARK = "--shared-dir"  # only the Rust daemon has it (its -o source= is a compat alias)
C_MARK = "source=PATH"  # the C daemon's --help line for its shared dir
CACHE_MODES = {"auto": "auto", "always": "always", "never": "none"}  # Rust -> C; Rust's "metadata" has none
LOG_LEVELS = {"error": "err", "warn": "warn", "info": "info", "debug": "debug"}  # Rust -> C
SAME_IN_BOTH = ("--fd=", "--syslog", "--thread-pool-size=", "--socket-path=", "--socket-group=", "--rlimit-nofile=")
# Rust flag (without value) -> C -o option (a value follows as ``=VALUE``)
AS_C_OPTION = {
    "--shared-dir": "source", "--announce-submounts": "announce_submounts", "--xattr": "xattr",
    "--xattrmap": "xattrmap", "--posix-acl": "posix_acl", "--security-label": "security_label",
    "--allow-direct-io": "allow_direct_io", "--writeback": "writeback", "--no-readdirplus": "no_readdirplus",
    "--sandbox": "sandbox", "--modcaps": "modcaps",
}


# Every option of the Rust virtiofsd (1.x --help); a flag outside it is no reason to skip, it is an error.
RUST_FLAGS = frozenset({
    "--shared-dir", "--tag", "--socket-path", "--socket-group", "--fd", "--log-level", "--thread-pool-size",
    "--xattr", "--xattrmap", "--posix-acl", "--security-label", "--sandbox", "--seccomp", "--announce-submounts",
    "--inode-file-handles", "--cache", "--allow-direct-io", "--writeback", "--no-readdirplus", "--killpriv-v2",
    "--no-killpriv-v2", "--rlimit-nofile", "--modcaps", "--syslog", "--preserve-noatime", "--allow-mmap",
    "--migration-mode", "--migration-on-error", "--migration-verify-handles", "--migration-confirm-paths",
    "--translate-uid", "--translate-gid", "--uid-map", "--gid-map", "--readonly", "--print-capabilities",
    "--help", "--version", "--compat-options", "--socket",
})


def is_rust_argv(argv: Sequence[str]) -> bool:
    """Whether ``argv`` is written for the Rust virtiofsd (Kata 3.30+): it names the share ``--shared-dir``."""
    return any(a == RUST_MARK or a.startswith(RUST_MARK + "=") for a in argv[1:])


@functools.cache
def flavour(binary: str) -> str:
    """``rust`` or ``c``: which virtiofsd ``binary`` is, from its ``--help`` ("" when it says neither)."""
    try:
        proc = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=10,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    text = proc.stdout + proc.stderr
    return "rust" if RUST_MARK in text else "c" if C_MARK in text else ""


def _c_form(arg: str) -> tuple[str, ...] | None:
    """The C virtiofsd's spelling of one Rust argument; None when it needs no change."""
    if arg == "-o" or arg.startswith(SAME_IN_BOTH) or not arg.startswith("--"):
        return None
    name, sep, value = arg.partition("=")
    if name == "--cache":
        if value not in CACHE_MODES:
            raise UntranslatableFlag(arg, f"the C virtiofsd has no cache mode {value!r} (it has "
                                          f"{', '.join(sorted(set(CACHE_MODES.values())))})")
        return ("-o", f"cache={CACHE_MODES[value]}")
    if name == "--log-level":
        if value not in LOG_LEVELS:
            raise UntranslatableFlag(arg, f"the C virtiofsd has no log level {value!r}")
        return ("-o", f"log_level={LOG_LEVELS[value]}")
    if name in AS_C_OPTION:
        return ("-o", AS_C_OPTION[name] + (f"={value}" if sep else ""))
    if name not in RUST_FLAGS:
        raise UnknownVirtiofsdFlag(arg)
    raise UntranslatableFlag(arg, "a Rust virtiofsd flag with no known C virtiofsd equivalent")


def translation_overrides(argv: Sequence[str], binary_flavour: str) -> list[Override]:
    """One ``virtiofsd-c-flag`` Override (target daemon) per Rust flag the C virtiofsd spells differently.

    Nothing when ``argv`` is not written for the Rust daemon or the binary is a Rust virtiofsd."""
    from katatest.launch.plan import Override

    if binary_flavour == "rust" or not is_rust_argv(argv):
        return []
    binary = argv[0]
    out = []
    for index, arg in enumerate(argv[1:], start=1):
        if argv[index - 1] == "-o":
            continue  # the value of a -o: an option both accept
        after = _c_form(arg)
        if after is not None:
            name, _, value = arg.partition("=")
            key, _, mapped = after[1].partition("=")
            spelled = f" ({value!r} is {mapped!r})" if name in ("--cache", "--log-level") else ""
            out.append(Override("virtiofsd-c-flag", (arg,), after,
                                f"{binary} is QEMU's C virtiofsd (no Rust virtiofsd installed) and Kata's argv is "
                                f"the Rust daemon's: Rust {name} is C -o {key}{spelled}", "daemon"))
    return out
