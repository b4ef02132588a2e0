"""Pure helpers the suites use to derive expectations from a generated argv and read guest facts."""

from __future__ import annotations

from dataclasses import dataclass

from katatest.launch.plan import option_values as options
from katatest.launch.plan import props

SHARED_MOUNT_POINT = "/run/kata-containers/shared/containers"


def machine_type(argv: list[str]) -> str:
    """The machine type of the first ``-machine`` (q35, microvm, virt)."""
    return props(options(argv, "-machine")[0])[""]


def cmdline_params(cmdline: str) -> dict[str, str]:
    """Last value per key of a kernel command line (what the kernel honours)."""
    params: dict[str, str] = {}
    for word in cmdline.split():
        key, _, value = word.partition("=")
        params[key] = value
    return params


@dataclass(frozen=True)
class Mount:
    source: str
    target: str
    fstype: str
    options: tuple[str, ...]


def parse_mounts(text: str) -> list[Mount]:
    mounts = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 4:
            mounts.append(Mount(fields[0], fields[1], fields[2], tuple(fields[3].split(","))))
    return mounts


def mount_at(mounts: list[Mount], target: str) -> Mount | None:
    """The mount visible at ``target`` (the last one mounted there)."""
    hits = [m for m in mounts if m.target == target]
    return hits[-1] if hits else None


def expected_root(append: str) -> dict[str, object]:
    """What the guest root should look like, from the generated kernel command line."""
    params = cmdline_params(append)
    words = append.split()
    flags = params.get("rootflags", "").split(",")
    return {
        "device": params.get("root", ""),
        "fstype": params.get("rootfstype", ""),
        "read_only": "ro" in words,
        "dax": "dax" in flags,
    }


def memory_mib(value: str) -> int:
    """QEMU sizes such as ``2048M``, ``2G`` or plain bytes -> MiB."""
    units = {"K": 1 / 1024, "M": 1, "G": 1024, "T": 1024 * 1024}
    if value and value[-1].upper() in units:
        return int(float(value[:-1]) * units[value[-1].upper()])
    return int(value) // (1024 * 1024)


def smp(argv: list[str]) -> dict[str, int]:
    """``-smp 1,cores=1,threads=1,sockets=8,maxcpus=8`` -> {"cpus": 1, "cores": 1, ...}."""
    value = options(argv, "-smp")[-1]
    fields = props(value)
    out = {k: int(v) for k, v in fields.items() if k}
    out["cpus"] = int(fields[""])
    return out


def cpu_list_count(text: str) -> int:
    """Count CPUs in a sysfs list such as ``0-3,6``."""
    count = 0
    for part in text.strip().split(","):
        if not part:
            continue
        low, _, high = part.partition("-")
        count += int(high or low) - int(low) + 1
    return count


VIRTIO_VENDOR = "1af4"
# driver -> (transitional device id, modern device id); None where the device has no such variant.
VIRTIO_PCI_IDS = {
    "virtio-blk-pci": ("1001", "1042"),
    "virtio-serial-pci": ("1003", "1043"),
    "virtio-scsi-pci": ("1004", "1048"),
    "virtio-rng-pci": ("1005", "1044"),
    "virtio-9p-pci": ("1009", "1049"),
    "vhost-user-fs-pci": (None, "105a"),
    "vhost-vsock-pci": (None, "1053"),
    "virtio-net-pci": ("1000", "1041"),
    "virtio-balloon-pci": ("1002", "1045"),
}
OTHER_PCI_IDS = {
    "pci-bridge": ("1b36", "0001"),
    "pcie-root-port": ("1b36", "000c"),
}
# Devices every machine type brings even with -nodefaults.
MACHINE_PCI_DEVICES = {
    "q35": [("8086", "29c0"), ("8086", "2918"), ("8086", "2922"), ("8086", "2930")],
    "virt": [("1b36", "0008")],
    "microvm": [],
}


def pci_devices_from_argv(argv: list[str]) -> list[tuple[str, tuple[str, ...]]]:
    """(driver, acceptable vendor:device ids) for each PCI device the argv adds."""
    out = []
    for value in options(argv, "-device"):
        driver = props(value)[""]
        if driver in VIRTIO_PCI_IDS:
            ids = tuple(f"{VIRTIO_VENDOR}:{d}" for d in VIRTIO_PCI_IDS[driver] if d)
            out.append((driver, ids))
        elif driver in OTHER_PCI_IDS:
            vendor, device = OTHER_PCI_IDS[driver]
            out.append((driver, (f"{vendor}:{device}",)))
    return out


def has_virtio_modern_capability(config_space: bytes) -> bool:
    """Whether a PCI config space lists a virtio 1.0 (modern) vendor capability."""
    if len(config_space) < 0x40 or not config_space[0x06] & 0x10:
        return False
    pointer = config_space[0x34] & 0xFC
    seen = set()
    while pointer and pointer not in seen and pointer + 4 <= len(config_space):
        seen.add(pointer)
        cap_id, next_pointer = config_space[pointer], config_space[pointer + 1]
        if cap_id == 0x09 and config_space[pointer + 3] in (1, 2, 3, 4, 5):
            return True
        pointer = next_pointer & 0xFC
    return False
