"""Step 3 for QEMU: Kata 3.0.0's QEMU model and argv (virtcontainers/qemu*.go and govmm), reimplemented."""
