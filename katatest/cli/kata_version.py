"""The ``--kata-version`` flag shared by the subcommands that render a config (render, explain, lint, boot)."""

from __future__ import annotations

import argparse

from katatest.kata.releases import DEFAULT_RELEASE, known_releases


def add_kata_version_flag(parser: argparse.ArgumentParser) -> None:
    """``--kata-version VERSION`` (default 3.0.0); an unknown version is rejected when rendering (exit 2, listing
    the known releases). ``--release`` is a hidden alias of the flag's earlier name."""
    parser.add_argument("--kata-version", dest="kata_version", default=DEFAULT_RELEASE, metavar="VERSION",
                        help=f"the Kata release whose behaviour to reproduce: {', '.join(known_releases())} "
                             f"(default {DEFAULT_RELEASE})")
    parser.add_argument("--release", dest="kata_version", help=argparse.SUPPRESS)
