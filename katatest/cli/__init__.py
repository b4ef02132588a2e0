"""The ``katatest`` command line, above every step: one module per subcommand, imported when it runs.

Subcommands are listed in one static table and only the chosen one's module is imported, so ``render``,
``explain`` and ``lint`` need nothing beyond the standard library (tomli below Python 3.11). A command that
takes a guest command (``boot``) gets everything after the first ``--`` as that command; its flags may go
anywhere before it.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Callable, NoReturn

from katatest.errors import KatatestError

EXIT_USAGE = 2
SETUP_COMMAND = "bash scripts/setup.sh"
# Import names of the third-party packages katatest uses -> their distribution names (pyproject.toml).
THIRD_PARTY = {"testinfra": "pytest-testinfra", "qemu": "qemu.qmp", "pytest": "pytest", "_pytest": "pytest",
               "xdist": "pytest-xdist", "tomli": "tomli"}


@dataclass(frozen=True)
class Command:
    """One subcommand: its name and help (for ``--help``) and where its registrar lives."""

    name: str
    help: str
    module: str
    registrar: str
    takes_command: bool = False  # everything after the first ``--`` is a command to run (args.command_argv)

    def register(self) -> Callable[[argparse._SubParsersAction], None]:
        return getattr(importlib.import_module(self.module), self.registrar)


COMMANDS = (
    Command("render", "print the argv Kata (3.0.0, or --kata-version) would launch", "katatest.cli.render",
            "register_render"),
    Command("explain", "the argv annotated with the keys/facts that produced each argument",
            "katatest.cli.render", "register_explain"),
    Command("boot", "boot a Kata config's generated argv and run a command in the guest", "katatest.cli.boot",
            "register_boot", takes_command=True),
    Command("doctor", "check QEMU, KVM, virtiofsd and QEMU capabilities on this host", "katatest.cli.doctor",
            "register_doctor"),
    Command("assets", "build, inspect or remove the cached guest kernel/initrd/image", "katatest.cli.assets",
            "register_assets"),
    Command("diff-releases", "every QEMU and daemon argv difference of one config between two Kata releases",
            "katatest.cli.diff_releases", "register_diff_releases"),
    Command("lint", "find arguments QEMU would parse differently from what the config meant",
            "katatest.cli.lint", "register_lint"),
    Command("report", "merge shard reports or re-render the HTML matrix", "katatest.cli.report",
            "register_report"),
    Command("hotplug", "the QMP commands Kata sends for a script of hot-plug operations", "katatest.cli.hotplug",
            "register_hotplug"),
)
_BY_NAME = {c.name: c for c in COMMANDS}


class MissingDependency(KatatestError):
    """A Python package katatest needs for this command is not installed."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line on stderr (exit 2), like every other error."""

    def error(self, message: str) -> NoReturn:
        hint = getattr(self, "error_hint", "")
        hint = f"; {hint}" if hint and "unrecognized arguments" in message else ""
        self.exit(EXIT_USAGE, f"{self.prog}: error: {' '.join(message.split())}{hint} (see --help)\n")


def chosen_command(argv: Sequence[str]) -> Command | None:
    """The subcommand named by the first non-option argument (None when there is none or it is unknown)."""
    for arg in argv:
        if not arg.startswith("-"):
            return _BY_NAME.get(arg)
    return None


def build_parser(chosen: Command | None = None) -> argparse.ArgumentParser:
    """The parser: the chosen subcommand in full, every other one as its name and help only."""
    parser = _Parser(prog="katatest", description="Conformance and integration harness for the hypervisor "
                     "layer of Kata Containers 3.0.0.")
    if chosen is not None and chosen.takes_command:
        parser.error_hint = f"{chosen.name}: the guest command goes after --"  # type: ignore[attr-defined]
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        if command == chosen:
            command.register()(sub)
        else:
            sub.add_parser(command.name, help=command.help)
    return parser


def split_command(argv: Sequence[str]) -> tuple[list[str], list[str] | None]:
    """``(flags and operands, guest command)``: split at the first ``--`` (None when there is none)."""
    argv = list(argv)
    if "--" not in argv:
        return argv, None
    cut = argv.index("--")
    return argv[:cut], argv[cut + 1:]


def missing_dependency(err: ModuleNotFoundError, command: str) -> MissingDependency | None:
    """The one-line error for a third-party package that is not installed (None for anything else)."""
    top = (err.name or "").partition(".")[0]
    if top not in THIRD_PARTY:
        return None
    return MissingDependency(f"{command} needs the Python package {THIRD_PARTY[top]} (no module {err.name!r}); "
                             f"set up with: {SETUP_COMMAND}")


def _run(argv: list[str]) -> int:
    chosen = chosen_command(argv)
    trailing = None
    if chosen is not None and chosen.takes_command:
        argv, trailing = split_command(argv)
    args = build_parser(chosen).parse_args(argv)
    if chosen is not None and chosen.takes_command:
        args.command_argv = trailing
    return args.handler(args)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return _run(argv)
    except KatatestError as err:
        print(f"katatest: {err}", file=sys.stderr)
        return EXIT_USAGE
    except ModuleNotFoundError as err:
        chosen = chosen_command(argv)
        missing = missing_dependency(err, chosen.name if chosen else "katatest")
        if missing is None:
            raise
        print(f"katatest: {missing}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("katatest: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
