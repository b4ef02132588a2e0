"""Does this QEMU build have what a plan needs? Findings are ``QemuLacks(what, evidence, known)``.

Two sources: the build's capabilities data (``katatest.launch.qemu_caps``: one file per build version and arch,
probed over QMP), and QEMU's stderr when it refused to start (``refusal_findings``).

A capability finding comes from the data alone: a machine, device or object type, a device, object or machine
property, a CPU model the argv uses and the build lacks, while a QEMU build katatest knows (a checked-in
capabilities file) has it: something a QEMU upgrade removed or added, a finding of that (release, build) pair;
and the boolean ``no`` prefixes a build refuses to parse. What no known QEMU has is ``UnexpectedQemuGap``: a
generator or config error, never a skip. ``RUNTIME_GAPS`` are the named findings no capabilities file can show
(QEMU's semantics at start-up, the host, virtiofsd).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

from katatest.errors import KatatestError
from katatest.generate.options import option_values, props
from katatest.kata.hypervisors import qemu_paths
from katatest.launch.qemu_caps import Capabilities, known_qemus

CAPABILITY = "capability"  # the ``known`` of a finding derived from the capabilities data
# Named findings no capabilities file can show (README findings), name -> what it is.
RUNTIME_GAPS = {
    "arm64-nvdimm-no-firmware": "arm64 virt + nvdimm without firmware: no ACPI GED device for memory hotplug",
    "kvm-only": "an option with no TCG equivalent on a host without usable KVM",
    "iommu-platform-without-viommu": "iommu_platform=on on vhost-user-fs without a vIOMMU in the argv",
    "virtiofsd-setgroups": "QEMU 7.2's C virtiofsd calls setgroups(), which a non-root user may not",
    "virtiofsd-rust-only": "Kata 3.30+'s Rust virtiofsd argv uses a flag the C virtiofsd has no equivalent for "
                           "(virtio_fs_cache = \"metadata\")",
    "maxmem-below-memory": "default_memory above the host's RAM (+ memory_offset): Kata's maxmem= is then below "
                           "-m, which every QEMU refuses",
}
KNOWN_GAPS = {**RUNTIME_GAPS, CAPABILITY: "the build's capabilities data lack it and a known QEMU build has it"}
# -machine options QEMU takes that are not machine properties (accelerator options and legacy spellings).
MACHINE_NON_PROPS = frozenset({"type", "accel", "kernel_irqchip", "kernel-irqchip", "kvm-shadow-mem",
                               "kvm_shadow_mem", "dirty-ring-size"})
DEVICE_NON_PROPS = frozenset({"driver", "id", "bus"})
OBJECT_NON_PROPS = frozenset({"qom-type", "id"})


@dataclass(frozen=True)
class QemuLacks:
    """Something a plan needs that the QEMU build does not have, with the evidence.

    ``known`` names the ``KNOWN_GAPS`` entry it is ("" when it is none of them)."""

    what: str
    evidence: str
    known: str = ""


class UnexpectedQemuGap(KatatestError):
    """QEMU lacks something no known QEMU build has: an error of the cell, not a skip."""

    def __init__(self, findings: list[QemuLacks]) -> None:
        self.findings = findings
        super().__init__("QEMU lacks " + "; ".join(f"{f.what} ({f.evidence})" for f in findings)
                         + ": no known QEMU build has it (a generator or config error?)")


def only_known(findings: list[QemuLacks]) -> list[QemuLacks]:
    """``findings`` when every one is a known gap; UnexpectedQemuGap naming the others otherwise."""
    unknown = [f for f in findings if f.known not in KNOWN_GAPS]
    if unknown:
        raise UnexpectedQemuGap(unknown)
    return findings


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


def _others(known: Sequence[Capabilities], caps: Capabilities, has) -> list[str]:
    """The known builds (other than ``caps``) for which ``has(capabilities)`` holds, by short name."""
    having = [k for k in known if k.version != caps.version and has(k)]
    same_arch = [k for k in having if k.arch == caps.arch]  # named first: the builds a user would switch to
    return list(dict.fromkeys(k.short for k in same_arch or having))


def _lacks(what: str, missing: str, caps: Capabilities, others: list[str]) -> QemuLacks:
    """A finding when another known build has it, else an unexpected gap (``known`` '')."""
    have = f" ({', '.join(others)} {'has' if len(others) == 1 else 'have'} it)" if others else \
        " (no QEMU build katatest knows has it)"
    return QemuLacks(what, f"{caps.short}: {missing}{have}", CAPABILITY if others else "")


def _check_props(kind: str, name: str, given: Sequence[str], table: str, caps: Capabilities,
                 known: Sequence[Capabilities]) -> list[QemuLacks]:
    """Properties ``given`` of ``kind`` type ``name`` that the build's ``table`` (machines|devices|objects) lacks."""
    have = getattr(caps, table).get(name)
    if have is None:
        return []  # not one of the probed types: nothing to compare
    out = []
    for prop in given:
        base = prop.split(".")[0]  # sgx-epc.0.memdev: the compound property sgx-epc
        if base in have or prop in have:
            continue
        others = _others(known, caps, lambda k, b=base: b in getattr(k, table).get(name, ()))
        out.append(_lacks(f"{kind} {name} property {prop}", f"{kind} {name} has no property {prop}", caps,
                          others))
    return out


def plan_findings(argv: Sequence[str], caps: Capabilities,
                  known: Sequence[Capabilities] | None = None) -> list[QemuLacks]:
    """What ``argv`` asks for that the build ``caps`` describes lacks (no QEMU run needed), each a capability
    finding when a ``known`` build (default: Debian's checked-in builds and Kata's patched ones) has it."""
    known = known_qemus() if known is None else known
    out: list[QemuLacks] = memory_findings(argv)
    for machine in option_values(argv, "-machine"):
        given = props(machine)
        mtype = given.get("")
        if mtype and not caps.has_machine(mtype):
            out.append(_lacks(f"machine type {mtype}", f"no machine {mtype}", caps,
                              _others(known, caps, lambda k, t=mtype: k.has_machine(t))))
            continue
        prefixes = _machine_bool_prefixes(machine)
        if prefixes and caps.bool_prefix_error:
            out.append(QemuLacks(f"boolean 'no' prefixes in -machine ({', '.join(prefixes)})",
                                 f"{caps.short}: {caps.bool_prefix_error}", CAPABILITY))
        keys = [k for k in given if k and k not in MACHINE_NON_PROPS and k not in prefixes]
        out += _check_props("machine", mtype or "", keys, "machines", caps, known)
    for obj in option_values(argv, "-object"):
        otype = object_type(obj)
        if otype and not caps.has_object(otype):
            out.append(_lacks(f"object type {otype}", f"no object type {otype}", caps,
                              _others(known, caps, lambda k, t=otype: k.has_object(t))))
            continue
        out += _check_props("object", otype, [k for k in _object_props(obj) if k not in OBJECT_NON_PROPS],
                            "objects", caps, known)
    for dev in option_values(argv, "-device"):
        given = props(dev)
        dtype = given.get("") or given.get("driver", "")
        if dtype and not caps.has_device(dtype):
            out.append(_lacks(f"device type {dtype}", f"no device type {dtype}", caps,
                              _others(known, caps, lambda k, t=dtype: k.has_device(t))))
            continue
        out += _check_props("device", dtype, [k for k in given if k and k not in DEVICE_NON_PROPS], "devices",
                            caps, known)
    for cpu in option_values(argv, "-cpu"):
        model = cpu.split(",")[0]
        if model not in ("host", "max") and caps.cpu_models and model not in caps.cpu_models:
            out.append(_lacks(f"CPU model {model}", f"no CPU model {model}", caps,
                              _others(known, caps, lambda k, m=model: m in k.cpu_models)))
    devices = option_values(argv, "-device")
    has_viommu = any(d.startswith(("intel-iommu", "virtio-iommu", "amd-iommu")) for d in devices)
    for dev in devices:
        if dev.startswith("vhost-user-fs") and props(dev).get("iommu_platform") in ("on", "true") and not has_viommu:
            out.append(QemuLacks("a vIOMMU for iommu_platform=on on vhost-user-fs",
                                 "the argv sets iommu_platform=on but adds no intel-iommu/virtio-iommu device",
                                 "iommu-platform-without-viommu"))
    return out


def _object_props(value: str) -> list[str]:
    """The property names of an ``-object`` value (``type,k=v`` or QEMU's JSON form)."""
    if value.lstrip().startswith("{"):
        try:
            parsed = json.loads(value)
        except ValueError:
            return []
        return list(parsed) if isinstance(parsed, dict) else []
    return [k for k in props(value) if k]


# (pattern, what, known gap or "" -- a refusal that is no known finding fails the cell)
_REFUSALS = (
    (re.compile(r"missing acpi-ged device"),
     "nvdimm on arm64 virt without firmware (memory hotplug needs the ACPI GED device, which exists only "
     "with firmware loaded)", "arm64-nvdimm-no-firmware"),
    (re.compile(r"Expected '=' after parameter"), "boolean 'no' option prefixes", CAPABILITY),
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
