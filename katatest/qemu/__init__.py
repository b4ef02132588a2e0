"""Kata 3.0.0's QEMU argv generation (virtcontainers/qemu*.go and govmm), reimplemented."""
