"""Does this QEMU binary have what a plan needs? Findings are ``QemuLacks(what, evidence, known)``.

Two sources: the binary's own help (``-device help``, ``-device vhost-user-fs-pci,help``, ``-object help``,
``-machine help``, ``-accel help``, a boolean-prefix parse probe), cached per binary; and QEMU's stderr when it
refused to start (``refusal_findings``).

Only the known gaps between Kata's argv (3.0.0, 3.30.0, 4.1.0) and upstream QEMU 7.2 (``KNOWN_GAPS``, the
README's findings) make a cell "cannot boot here". Anything else QEMU lacks (an unknown machine, object or device
type: a generator typo, a misspelt config value) is ``UnexpectedQemuGap``, an error.
"""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

from katatest.errors import KatatestError
from katatest.generate.options import option_values, props
from katatest.kata.hypervisors import qemu_paths

# The known Kata vs upstream QEMU 7.2 findings (README "Findings") and host limits: name -> what it is.
KNOWN_GAPS = {
    "virtio-fs-dax": "virtio_fs_cache_size > 0 emits vhost-user-fs-pci cache-size, which upstream QEMU lacks",
    "bool-prefix": "machine_accelerators with boolean 'no' prefixes (nosmm), which QEMU 7.2 rejects",
    "tdx-guest": "TDX: QEMU 7.2 has no tdx-guest object",
    "arm64-nvdimm-no-firmware": "arm64 virt + nvdimm without firmware: no ACPI GED device for memory hotplug",
    "kvm-only": "an option with no TCG equivalent on a host without usable KVM",
    "iommu-platform-without-viommu": "iommu_platform=on on vhost-user-fs without a vIOMMU in the argv",
    "virtiofsd-setgroups": "QEMU 7.2's C virtiofsd calls setgroups(), which a non-root user may not",
    "virtiofsd-rust-only": "Kata 3.30+'s Rust virtiofsd argv uses a flag the C virtiofsd has no equivalent for "
                           "(virtio_fs_cache = \"metadata\")",
    "sev-snp-guest": "SEV-SNP: QEMU 7.2 has no sev-snp-guest object (QEMU 9.1 added it)",
    "maxmem-below-memory": "default_memory above the host's RAM (+ memory_offset): Kata's maxmem= is then below "
                           "-m, which every QEMU refuses",
    "arm64-pvpanic-isa": "arm64 guest_memory_dump_path emits -device pvpanic, an ISA device qemu-system-aarch64 "
                         "lacks (it has pvpanic-pci)",
}
MISSING_OBJECT_GAPS = {"tdx-guest": "tdx-guest", "sev-snp-guest": "sev-snp-guest"}


@dataclass(frozen=True)
class QemuLacks:
    """Something a plan needs that the QEMU binary does not have, with the evidence.

    ``known`` names the ``KNOWN_GAPS`` entry it is ("" when it is none of them)."""

    what: str
    evidence: str
    known: str = ""


class UnexpectedQemuGap(KatatestError):
    """QEMU lacks something that is no known Kata-vs-QEMU finding: an error of the cell, not a skip."""

    def __init__(self, findings: list[QemuLacks]) -> None:
        self.findings = findings
        super().__init__("QEMU lacks " + "; ".join(f"{f.what} ({f.evidence})" for f in findings)
                         + ": no known Kata vs QEMU finding (a generator or config error?)")


def only_known(findings: list[QemuLacks]) -> list[QemuLacks]:
    """``findings`` when every one is a known gap; UnexpectedQemuGap naming the others otherwise."""
    unknown = [f for f in findings if f.known not in KNOWN_GAPS]
    if unknown:
        raise UnexpectedQemuGap(unknown)
    return findings


@dataclass(frozen=True)
class QemuCaps:
    """What one QEMU binary offers, as its help output says."""

    binary: str
    version: str
    machines: frozenset[str]
    objects: frozenset[str]
    devices: frozenset[str]  # names and aliases in ``-device help``
    accels: frozenset[str]
    vhost_user_fs_props: frozenset[str]
    bool_prefix_error: str  # QEMU's complaint about ``-machine ...,noX`` ("" if accepted)


def _run(argv: list[str]) -> str:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=20, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"error: {exc}"
    return proc.stdout + proc.stderr


def _first_words(text: str, skip_first_line: bool = True) -> frozenset[str]:
    lines = text.splitlines()[1:] if skip_first_line else text.splitlines()
    return frozenset(line.split()[0] for line in lines if line.strip() and not line.startswith(" " * 4))


def _device_names(text: str) -> frozenset[str]:
    """``name "virtio-blk-pci", bus PCI, alias "virtio-blk"`` lines -> {"virtio-blk-pci", "virtio-blk"}."""
    return frozenset(name for line in text.splitlines() if line.startswith("name ")
                     for name in re.findall(r'(?:^name|alias) "([^"]+)"', line))


@functools.cache
def qemu_caps(binary: str) -> QemuCaps:
    """Probe ``binary`` once per process."""
    version = _run([binary, "-version"]).splitlines()
    objects = frozenset(line.strip() for line in _run([binary, "-object", "help"]).splitlines()[1:] if line.strip())
    fs_help = _run([binary, "-device", "vhost-user-fs-pci,help"])
    fs_props = frozenset(m.group(1) for m in re.finditer(r"^\s+([\w-]+)=", fs_help, re.M))
    bool_probe = _run([binary, "-machine", "none,nodump-guest-core", "-version"])
    bool_error = next((line for line in bool_probe.splitlines() if "Expected '='" in line), "")
    return QemuCaps(binary, version[0] if version else "unknown", _first_words(_run([binary, "-machine", "help"])),
                    objects, _device_names(_run([binary, "-device", "help"])),
                    frozenset(_first_words(_run([binary, "-accel", "help"]))), fs_props, bool_error)


def _machine_bool_prefixes(machine: str) -> list[str]:
    return [item for item in machine.split(",")[1:] if "=" not in item and item.startswith("no")]


def object_type(value: str) -> str:
    """The type of an ``-object`` value: ``type,id=...`` or QEMU's JSON form ``{"qom-type": ...}`` (TDX, 3.30+)."""
    if value.lstrip().startswith("{"):
        try:
            parsed = json.loads(value)
        except ValueError:
            return value
        return str(parsed.get("qom-type", "")) if isinstance(parsed, dict) else value
    return props(value).get("", "")


def _mib(size: str) -> int | None:
    return int(size[:-1]) if size.endswith("M") and size[:-1].isdigit() else None


def memory_findings(argv: Sequence[str]) -> list[QemuLacks]:
    """``-m N,maxmem=M`` with M < N: Kata clamps maxmem to the host's RAM but not the initial memory."""
    out = []
    for value in option_values(argv, "-m"):
        initial, maximum = _mib(value.split(",")[0]), _mib(props(value).get("maxmem", ""))
        if initial is not None and maximum is not None and maximum < initial:
            out.append(QemuLacks("maxmem at least the initial memory", f"-m {value}: maxmem {maximum}M < {initial}M",
                                 "maxmem-below-memory"))
    return out


def plan_findings(argv: Sequence[str], caps: QemuCaps | None = None) -> list[QemuLacks]:
    """What ``argv`` asks for that its QEMU binary lacks (no QEMU run needed beyond the cached help)."""
    caps = caps or qemu_caps(argv[0])
    out: list[QemuLacks] = memory_findings(argv)
    for machine in option_values(argv, "-machine"):
        mtype = props(machine).get("")
        if mtype and mtype not in caps.machines:
            out.append(QemuLacks(f"machine type {mtype}", f"not in `{caps.binary} -machine help`"))
        accel = props(machine).get("accel")
        if accel and accel not in caps.accels:
            out.append(QemuLacks(f"accelerator {accel}", f"not in `{caps.binary} -accel help`"))
        prefixes = _machine_bool_prefixes(machine)
        if prefixes and caps.bool_prefix_error:
            out.append(QemuLacks(f"boolean 'no' prefixes in -machine ({', '.join(prefixes)})",
                                 caps.bool_prefix_error, "bool-prefix"))
    for obj in option_values(argv, "-object"):
        otype = object_type(obj)
        if otype and otype not in caps.objects:
            out.append(QemuLacks(f"object type {otype}", f"not in `{caps.binary} -object help` ({caps.version})",
                                 MISSING_OBJECT_GAPS.get(otype, "")))
    devices = option_values(argv, "-device")
    arm64 = any(props(m).get("") == "virt" or props(m).get("", "").startswith("virt-") for m in
                option_values(argv, "-machine"))
    for dtype in dict.fromkeys(props(d).get("", "") for d in devices):
        if dtype and dtype not in caps.devices:
            known = "arm64-pvpanic-isa" if dtype == "pvpanic" and arm64 else ""
            out.append(QemuLacks(f"device type {dtype}", f"not in `{caps.binary} -device help` ({caps.version})",
                                 known))
    has_viommu = any(d.startswith(("intel-iommu", "virtio-iommu", "amd-iommu")) for d in devices)
    for dev in devices:
        if not dev.startswith("vhost-user-fs"):
            continue
        p = props(dev)
        if "cache-size" in p and "cache-size" not in caps.vhost_user_fs_props:
            out.append(QemuLacks("vhost-user-fs-pci cache-size (virtio-fs DAX window)",
                                 f"`{caps.binary} -device vhost-user-fs-pci,help` has no cache-size",
                                 "virtio-fs-dax"))
        if p.get("iommu_platform") in ("on", "true") and not has_viommu:
            out.append(QemuLacks("a vIOMMU for iommu_platform=on on vhost-user-fs",
                                 "the argv sets iommu_platform=on but adds no intel-iommu/virtio-iommu device",
                                 "iommu-platform-without-viommu"))
    return out


# (pattern, what, known gap or "" -- a refusal that is no known finding fails the cell)
_REFUSALS = (
    (re.compile(r"missing acpi-ged device"),
     "nvdimm on arm64 virt without firmware (memory hotplug needs the ACPI GED device, which exists only "
     "with firmware loaded)", "arm64-nvdimm-no-firmware"),
    (re.compile(r"Expected '=' after parameter"), "boolean 'no' option prefixes", "bool-prefix"),
    (re.compile(r"requires KVM"), "KVM (for an option that has no TCG equivalent)", "kvm-only"),
    (re.compile(r"invalid value of maxmem"), "maxmem at least the initial memory", "maxmem-below-memory"),
    (re.compile(r"Property '[^']*\.([\w-]+)' not found"), "device property", ""),
    (re.compile(r"invalid object type: (\S+)"), "object type", ""),
)


def refusal_findings(stderr: str) -> list[QemuLacks]:
    """Findings from the stderr of a QEMU that refused to start."""
    out = []
    for line in stderr.splitlines():
        for pattern, what, known in _REFUSALS:
            m = pattern.search(line)
            if m:
                detail = f" {m.group(1)}" if m.groups() else ""
                if what == "object type" and m.group(1) == "tdx-guest":
                    known = "tdx-guest"
                out.append(QemuLacks(what + detail, line.strip(), known))
                break
    return out


VIRTIOFSD_SETGROUPS = re.compile(r"setgroups.*(?:Operation not permitted|error=1\b)", re.I)


def virtiofsd_refusal(log: str, euid: int) -> QemuLacks | None:
    """The known reason a virtiofsd exited at start (QEMU 7.2's C virtiofsd calls setgroups(), root only),
    read from its log; None when the log shows another cause (then the cell fails)."""
    if euid == 0:
        return None
    line = next((line.strip() for line in log.splitlines() if VIRTIOFSD_SETGROUPS.search(line)), "")
    return QemuLacks("virtiofsd as a non-root user", line, "virtiofsd-setgroups") if line else None


def installed_qemus() -> list[str]:
    """The QEMU system emulators katatest can use that exist on this host."""
    return [p for p in qemu_paths().values() if os.access(p, os.X_OK)]
