"""Errors of the host<->guest command channel."""

from __future__ import annotations

from katatest.errors import KatatestError


class GuestChannelError(KatatestError):
    """The guest console channel failed (no socket, guest gone, garbled reply); the console tail it carries is
    printed on real lines."""

    MULTILINE = True


class GuestPanic(GuestChannelError):
    """The guest kernel panicked; the message carries the console tail."""


class GuestTimeout(GuestChannelError):
    """The guest did not answer in time."""
