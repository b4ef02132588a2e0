"""Host facts: everything about the host that changes what Kata generates.

One explicit, immutable object. ``detect()`` probes the real host the way Kata 3.0.0 does;
CLI flags override single facts; ``with_file_sizes()`` measures the configured image/initrd for the CLI.
Nothing else in the generator reads the host, and every fact is bounded by what a host can have.
"""

from __future__ import annotations

import os
import platform
import re
from dataclasses import dataclass, replace
from pathlib import Path

from katatest.errors import HostFactsError
from katatest.host.endpoints import NetEndpoint, check_endpoints

DEFAULT_SANDBOX_ID = "1" * 64
DEFAULT_IMAGE_SIZE = 268435456
DEFAULT_INITRD_SIZE = 4194304
PROTECTIONS = ("none", "tdx", "sev", "cca")  # cca: Arm CCA realms (arm64)
ARCHES = ("amd64", "arm64")

# katautils.VerifyContainerID: the shim rejects any other sandbox id before creating the sandbox.
VALID_SANDBOX_ID = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+")
_MACHINE_TO_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}

MAX_CPUS = 8192  # Linux's largest NR_CPUS (x86_64 MAXSMP)
MAX_MEM_MIB = 2**32  # 4 PiB: the 52-bit physical address space of 5-level paging
MAX_FILE_SIZE = 2**50 - 1  # an image or initrd of a PiB or more is a typo, not a file
U32_MAX = 2**32 - 1
FACT_BOUNDS = {  # what a host can have, inclusive; the flag is --NAME with dashes
    "host_cpus": (1, MAX_CPUS),
    "host_mem_mib": (1, MAX_MEM_MIB),
    "vsock_cid": (0, U32_MAX),  # a CID is 32 bits; govmm drops a vsock device with a CID below 3
    "image_size": (0, MAX_FILE_SIZE),
    "initrd_size": (0, MAX_FILE_SIZE),
    "sev_cbitpos": (0, 63),  # 6-bit CPUID 0x8000001f fields
    "sev_reduced_phys_bits": (0, 63),
    "uid": (0, U32_MAX - 1),  # (uid_t)-1 is "no uid"
    "workload_cpus": (0, U32_MAX),  # Kata's uint32 sandbox sizing
    "workload_mem_mib": (0, U32_MAX),
}


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
    net_endpoints: tuple[NetEndpoint, ...] = ()  # the pod netns's interfaces, in scan order (eth0, eth1, ...)
    vhost_net: bool = True  # the host has /dev/vhost-net
    # The QEMU binary the config names exists. Never probed (like image_size without a file): the vectors' host
    # had /usr/bin/qemu-system-x86_64 and -aarch64; releases that stat() it reject a config when this is False.
    qemu_binary: bool = True

    def __post_init__(self) -> None:
        for name, (low, high) in FACT_BOUNDS.items():
            value = getattr(self, name)
            flag = f"--{name.replace('_', '-')}"
            if isinstance(value, bool) or not isinstance(value, int):
                raise HostFactsError(f"{flag}: expected an integer, got {value!r}")
            if not low <= value <= high:
                shown = value if value.bit_length() < 128 else f"a {value.bit_length()}-bit number"
                raise HostFactsError(f"{flag}: {shown} is outside what a host can have ({low}..{high})")
        if self.arch not in ARCHES:
            raise HostFactsError(f"--arch: unsupported architecture {self.arch!r} (use one of {ARCHES})")
        if self.guest_protection not in PROTECTIONS:
            raise HostFactsError(f"--guest-protection: unknown {self.guest_protection!r}")
        if not isinstance(self.sandbox_id, str) or not VALID_SANDBOX_ID.fullmatch(self.sandbox_id):
            raise HostFactsError(f"--id: invalid sandbox id {self.sandbox_id!r} "
                                 f"(Kata 3.0.0 requires ^{VALID_SANDBOX_ID.pattern}$)")
        check_endpoints(self.net_endpoints)

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


def known_host_arch() -> str:
    """This machine's architecture in Kata's names; a HostFactsError naming any other machine."""
    arch = host_arch()
    if arch not in ARCHES:
        raise HostFactsError(f"unsupported host architecture {arch!r} (uname -m): katatest knows amd64 "
                             f"(x86_64) and arm64 (aarch64) hosts")
    return arch


def detect_resources(root: Path = Path("/")) -> tuple[int, int]:
    """``(CPU count, RAM in MiB)`` of the host, clamped to what HostFacts accepts."""
    cpuinfo = _read(root / "proc/cpuinfo")
    cpus = sum(1 for line in cpuinfo.splitlines() if line.startswith("processor")) or os.cpu_count() or 1
    mem_mib = 1024
    for line in _read(root / "proc/meminfo").splitlines():
        fields = line.split()
        if line.startswith("MemTotal:") and len(fields) > 1 and fields[1].isdigit():
            mem_mib = int(fields[1]) // 1024
    return min(cpus, MAX_CPUS), min(max(mem_mib, 1), MAX_MEM_MIB)


def file_size(path: str) -> int | None:
    """The size Kata's ``os.Stat`` sees for a configured image/initrd path; None when there is no file."""
    try:
        return os.stat(path).st_size if path else None
    except (OSError, ValueError):
        return None


def with_file_sizes(facts: HostFacts, image_path: str = "", initrd_path: str = "") -> HostFacts:
    """``facts`` with the real sizes of the configured image/initrd files that exist on this host."""
    sizes = {"image_size": file_size(image_path), "initrd_size": file_size(initrd_path)}
    return facts.with_overrides(**{k: v for k, v in sizes.items() if v is not None})


def detect(root: Path = Path("/")) -> HostFacts:
    """Probe the real host (``root`` lets tests point at a fake sysfs/procfs tree)."""
    arch = known_host_arch()
    cpuinfo = _read(root / "proc/cpuinfo")
    cpus, mem_mib = detect_resources(root)
    protection = detect_protection(root) if arch == "amd64" else "none"
    cbitpos, reduced = detect_sev_bits(root) if protection == "sev" else (47, 1)
    return HostFacts(
        arch=arch,
        host_cpus=cpus,
        host_mem_mib=mem_mib,
        nested="hypervisor" in _cpu_flags(cpuinfo),
        guest_protection=protection,
        sev_cbitpos=cbitpos,
        sev_reduced_phys_bits=reduced,
        fips=_read(root / "proc/sys/crypto/fips_enabled") == "1",
        vhost_net=(root / "dev/vhost-net").exists(),
        uid=os.getuid(),
        rootless=os.getuid() != 0,
        xdg_runtime_dir=os.environ.get("XDG_RUNTIME_DIR", ""),
    )
