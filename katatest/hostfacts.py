"""Host facts: everything about the host that changes what Kata generates.

One explicit, immutable object. ``detect()`` probes the real host the way Kata 3.0.0 does;
CLI flags override single facts. Nothing else in the generator reads the host.
"""

from __future__ import annotations

import os
import platform
import re
from dataclasses import dataclass, replace
from pathlib import Path

from katatest.errors import HostFactsError

DEFAULT_SANDBOX_ID = "1" * 64
DEFAULT_IMAGE_SIZE = 268435456
DEFAULT_INITRD_SIZE = 4194304
PROTECTIONS = ("none", "tdx", "sev")
ARCHES = ("amd64", "arm64")

# katautils.VerifyContainerID: the shim rejects any other sandbox id before creating the sandbox.
VALID_SANDBOX_ID = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+")
_MACHINE_TO_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


@dataclass(frozen=True)
class HostFacts:
    """The facts of one host, as Kata's runtime would see them."""

    arch: str = "amd64"
    host_cpus: int = 1
    host_mem_mib: int = 1024
    nested: bool = False
    sandbox_id: str = DEFAULT_SANDBOX_ID
    vsock_cid: int = 3
    image_size: int = DEFAULT_IMAGE_SIZE
    initrd_size: int = DEFAULT_INITRD_SIZE
    guest_protection: str = "none"
    sev_cbitpos: int = 47
    sev_reduced_phys_bits: int = 1
    fips: bool = False
    vsock: bool = True
    sharedfs: bool = True
    uid: int = 0
    rootless: bool = False
    xdg_runtime_dir: str = ""
    netns: str = ""
    workload_cpus: int = 0
    workload_mem_mib: int = 0

    def __post_init__(self) -> None:
        for name in ("host_cpus", "host_mem_mib", "vsock_cid", "image_size", "initrd_size", "sev_cbitpos",
                     "sev_reduced_phys_bits", "uid", "workload_cpus", "workload_mem_mib"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise HostFactsError(f"--{name.replace('_', '-')}: expected an integer, got {value!r}")
        if self.arch not in ARCHES:
            raise HostFactsError(f"--arch: unsupported architecture {self.arch!r} (use one of {ARCHES})")
        if self.guest_protection not in PROTECTIONS:
            raise HostFactsError(f"--guest-protection: unknown {self.guest_protection!r}")
        for name in ("host_cpus", "host_mem_mib"):
            if getattr(self, name) < 1:
                raise HostFactsError(f"--{name.replace('_', '-')}: must be at least 1")
        for name in ("vsock_cid", "image_size", "initrd_size", "sev_cbitpos", "sev_reduced_phys_bits",
                     "workload_cpus", "workload_mem_mib"):
            if getattr(self, name) < 0:
                raise HostFactsError(f"--{name.replace('_', '-')}: must not be negative")
        if not isinstance(self.sandbox_id, str) or not VALID_SANDBOX_ID.fullmatch(self.sandbox_id):
            raise HostFactsError(f"--id: invalid sandbox id {self.sandbox_id!r} "
                                 f"(Kata 3.0.0 requires ^{VALID_SANDBOX_ID.pattern}$)")

    @property
    def runtime_dir(self) -> str:
        """XDG_RUNTIME_DIR as Kata's rootless code computes it."""
        return self.xdg_runtime_dir or f"/run/user/{self.uid}"

    def with_overrides(self, **changes: object) -> HostFacts:
        """A copy with some facts replaced."""
        return replace(self, **changes)


def host_arch() -> str:
    """This machine's architecture in Kata's names (amd64, arm64), or the raw machine name."""
    return _MACHINE_TO_ARCH.get(platform.machine(), platform.machine())


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace").strip()
    except OSError:
        return ""


def _cpu_flags(cpuinfo: str) -> set[str]:
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return set(value.split())
    return set()


def detect_protection(root: Path = Path("/")) -> str:
    """The TEE this host offers, probed like Kata 3.0.0's ``availableGuestProtection`` (amd64)."""
    cpuinfo = _read(root / "proc/cpuinfo")
    if (root / "sys/firmware/tdx_seam").is_dir() or "tdx" in _cpu_flags(cpuinfo):
        return "tdx"
    if _read(root / "sys/module/kvm_amd/parameters/sev") in ("1", "Y"):
        return "sev"
    return "none"


def detect_sev_bits(root: Path = Path("/")) -> tuple[int, int]:
    """SEV C-bit position and reduced physical bits from CPUID 0x8000001f (defaults when unreadable)."""
    try:
        with open(root / "dev/cpu/0/cpuid", "rb") as cpuid:
            cpuid.seek(0x8000001F)
            regs = cpuid.read(16)
    except OSError:
        return 47, 1
    if len(regs) < 8:
        return 47, 1
    ebx = int.from_bytes(regs[4:8], "little")
    return ebx & 0x3F, (ebx >> 6) & 0x3F


def detect(root: Path = Path("/")) -> HostFacts:
    """Probe the real host (``root`` lets tests point at a fake sysfs/procfs tree)."""
    arch = host_arch() if host_arch() in ARCHES else "amd64"
    cpuinfo = _read(root / "proc/cpuinfo")
    cpus = sum(1 for line in cpuinfo.splitlines() if line.startswith("processor")) or os.cpu_count() or 1
    mem_mib = 1024
    for line in _read(root / "proc/meminfo").splitlines():
        fields = line.split()
        if line.startswith("MemTotal:") and len(fields) > 1 and fields[1].isdigit():
            mem_mib = int(fields[1]) // 1024
    protection = detect_protection(root) if arch == "amd64" else "none"
    cbitpos, reduced = detect_sev_bits(root) if protection == "sev" else (47, 1)
    return HostFacts(
        arch=arch,
        host_cpus=cpus,
        host_mem_mib=max(mem_mib, 1),
        nested="hypervisor" in _cpu_flags(cpuinfo),
        guest_protection=protection,
        sev_cbitpos=cbitpos,
        sev_reduced_phys_bits=reduced,
        fips=_read(root / "proc/sys/crypto/fips_enabled") == "1",
        uid=os.getuid(),
        rootless=os.getuid() != 0,
        xdg_runtime_dir=os.environ.get("XDG_RUNTIME_DIR", ""),
    )
