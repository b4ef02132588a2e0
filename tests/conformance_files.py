"""Shared helpers for the golden-file tests: where the data lives and the regenerate switch."""

from __future__ import annotations

import os
from pathlib import Path

from katatest.conformance.vectors import Vector, discover

DATA = Path(__file__).parent / "data" / "conformance"
GOLDEN = Path(__file__).parent / "golden"
QEMU_SUITE = "kata-3.0.0"
NET_SUITE = "kata-3.0.0-net"  # QEMU with pod network endpoints
# The network vectors with an explain golden: three endpoints with 2 queues each; microvm's virtio-net-device.
NET_GOLDENS = ("net_vcpus_2_3", "net_microvm")


def regenerate() -> bool:
    """``KATATEST_REGEN=1`` rewrites the project's own goldens (never Kata's vectors)."""
    return os.environ.get("KATATEST_REGEN", "") not in ("", "0")


def qemu_vectors() -> list[Vector]:
    return discover(DATA, QEMU_SUITE)


def net_vectors() -> list[Vector]:
    return discover(DATA, NET_SUITE)
