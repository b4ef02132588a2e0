"""A testinfra backend over the guest console channel, so suites can use testinfra's modules on a guest."""

from __future__ import annotations

from typing import Any

import testinfra.host
from testinfra.backend import base

from katatest.guest.channel import GuestChannel


class GuestBackend(base.BaseBackend):
    """Runs testinfra's commands through a :class:`GuestChannel` (busybox sh in the guest)."""

    NAME = "katatest-guest"

    def __init__(self, channel: GuestChannel, hostname: str = "katatest-guest",
                 command_timeout: float | None = None, **kwargs: Any) -> None:
        super().__init__(hostname, **kwargs)
        self.channel = channel
        self.command_timeout = command_timeout

    def get_pytest_id(self) -> str:
        return self.hostname

    def get_encoding(self) -> str:
        return "utf-8"  # the guest has no python for testinfra's probe; busybox speaks bytes

    def run(self, command: str, *args: str, **kwargs: Any) -> base.CommandResult:
        cmd = self.get_command(command, *args)
        result = self.channel.run(cmd, timeout=self.command_timeout)
        return self.result(result.exit_status, self.encode(cmd), result.stdout, result.stderr)


def guest_host(channel: GuestChannel, hostname: str = "katatest-guest",
               command_timeout: float | None = None) -> testinfra.host.Host:
    """A testinfra ``Host`` for the guest behind ``channel``: ``host.file(...)``, ``host.run(...)``..."""
    backend = GuestBackend(channel, hostname, command_timeout)
    host = testinfra.host.Host(backend)
    backend.set_host(host)
    return host
