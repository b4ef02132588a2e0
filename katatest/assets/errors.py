"""Errors raised while building or locating guest assets."""

from __future__ import annotations

from katatest.errors import KatatestError


class AssetError(KatatestError):
    """A guest asset (kernel, initrd, image) cannot be built, found or trusted."""
