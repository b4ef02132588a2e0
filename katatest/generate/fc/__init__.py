"""Step 3 for Firecracker: what Kata 3.0.0's ``virtcontainers/fc.go`` launches and writes to ``fcConfig.json``."""
