"""Beside step 5, guest assets: a Kata-style kernel, a busybox initrd and a DAX rootfs image, built and cached."""

from __future__ import annotations

from katatest.assets.cache import AssetState, GuestAssets, asset_status, clean, ensure_assets

__all__ = ["AssetState", "GuestAssets", "asset_status", "clean", "ensure_assets"]
