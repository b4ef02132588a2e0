"""Launching Kata-style VMs: launch plans with recorded overrides, KVM probe, supervision, QMP, sweeping.

Submodules are imported on demand (the supervisor runs as a plain script and must stay light).
"""
