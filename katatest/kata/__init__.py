"""Kata 3.0.0's configuration loading (katautils) as Python: TOML -> HypervisorConfig and friends."""
