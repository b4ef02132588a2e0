"""Talking to a booted guest: the console command channel and a testinfra backend over it."""

from __future__ import annotations

from katatest.guest.backend import GuestBackend, guest_host
from katatest.guest.channel import GuestChannel
from katatest.guest.errors import GuestChannelError, GuestPanic, GuestTimeout
from katatest.guest.protocol import CommandResult

__all__ = ["CommandResult", "GuestBackend", "GuestChannel", "GuestChannelError", "GuestPanic",
           "GuestTimeout", "guest_host"]
