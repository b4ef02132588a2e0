"""Step 6, guest: boot a rendered config and talk to the guest (console command channel, testinfra backend)."""

from __future__ import annotations

from katatest.guest.backend import GuestBackend, guest_host
from katatest.guest.channel import GuestChannel
from katatest.guest.errors import GuestChannelError, GuestPanic, GuestTimeout
from katatest.guest.protocol import CommandResult

__all__ = ["CommandResult", "GuestBackend", "GuestChannel", "GuestChannelError", "GuestPanic",
           "GuestTimeout", "guest_host"]
