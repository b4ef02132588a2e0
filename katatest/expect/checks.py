"""Pure helpers the suites use to derive expectations from a generated argv and read guest facts."""

from __future__ import annotations

import re
from dataclasses import dataclass

from katatest.generate.options import option_values as options
from katatest.generate.options import props

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


def device_props(value: str) -> dict[str, str]:
    """A ``-device`` value's properties, its type under ``""`` whether written first (``virtio-blk-pci,...``) or
    as ``driver=`` (Kata's network devices: ``driver=virtio-net-pci,netdev=...``)."""
    fields = props(value)
    if not fields.get("") and "driver" in fields:
        fields[""] = fields["driver"]
    return fields


def pci_devices_from_argv(argv: list[str]) -> list[tuple[str, tuple[str, ...]]]:
    """(driver, acceptable vendor:device ids) for each PCI device the argv adds."""
    out = []
    for value in options(argv, "-device"):
        driver = device_props(value)[""]
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


# Linux (>= 5.19) shows no msize= option when a 9p mount uses the client default (net/9p/client.c).
LINUX_9P_DEFAULT_MSIZE = 128 * 1024


def mount_msize(mount: Mount) -> int:
    """The msize a 9p mount negotiated, from its /proc/mounts options."""
    values = [o.split("=", 1)[1] for o in mount.options if o.startswith("msize=")]
    if len(values) > 1 or (values and not values[0].isdigit()):
        raise ValueError(f"unexpected msize options in {','.join(mount.options)}")
    return int(values[0]) if values else LINUX_9P_DEFAULT_MSIZE


def msize_mismatch(mount: Mount, configured: int) -> str:
    """Why the guest's 9p mount does not use the configured ``msize_9p`` ('' when it does)."""
    if mount.fstype != "9p":
        return f"{mount.target} is {mount.fstype}, not 9p"
    msize = mount_msize(mount)
    if msize != configured:
        return f"guest mounted {mount.target} with msize={msize}, msize_9p is {configured} ({','.join(mount.options)})"
    return ""


def daemon_options(argv: list[str], name: str) -> list[str]:
    """Values of option ``name`` in a virtiofsd argv: ``-o a,name=X``, ``-oname=X``, ``--name=X``, ``--name X``."""
    found = []
    for index, arg in enumerate(argv):
        if arg == "-o" and index + 1 < len(argv):
            opts = argv[index + 1]
        elif arg.startswith("-o") and not arg.startswith("--"):
            opts = arg[2:]
        elif arg.startswith(f"--{name}="):
            found.append(arg.split("=", 1)[1])
            continue
        elif arg == f"--{name}" and index + 1 < len(argv):
            found.append(argv[index + 1])
            continue
        else:
            continue
        found += [o.split("=", 1)[1] for o in opts.split(",") if o.startswith(f"{name}=")]
    return found


def process_argv(pid: int, proc: str = "/proc") -> list[str]:
    """The argv of a running process, from ``/proc/PID/cmdline``."""
    with open(f"{proc}/{pid}/cmdline", "rb") as fh:
        raw = fh.read()
    return [a.decode(errors="replace") for a in raw.split(b"\0")[:-1]] if raw else []


# Rust virtiofsd cache modes QEMU's C virtiofsd spells differently (the launcher translates a 3.30+ argv)
C_CACHE_MODES = {"never": "none"}


def without_loader(argv: list[str]) -> list[str]:
    """A process argv without the dynamic loader that runs a build's binary (``ld-linux... --library-path L``)."""
    if argv and argv[0].rsplit("/", 1)[-1].startswith("ld-linux"):
        rest = argv[1:]
        while rest and rest[0].startswith("--"):
            rest = rest[2:] if rest[0] in ("--library-path", "--preload", "--argv0", "--audit") else rest[1:]
        return rest
    return argv


def cache_mode_mismatch(running_argv: list[str], configured: str) -> str:
    """Why a running virtiofsd does not use the configured ``virtio_fs_cache`` ('' when it does)."""
    running_argv = without_loader(running_argv)
    if not running_argv or "virtiofsd" not in running_argv[0].rsplit("/", 1)[-1]:
        return f"the process is not virtiofsd: {' '.join(running_argv) or '(no cmdline: exited?)'}"
    modes = daemon_options(running_argv, "cache")
    c_spelling = C_CACHE_MODES.get(configured)  # a Rust-virtiofsd argv translated for the C daemon (never -> none)
    if modes != [configured] and modes != [c_spelling]:
        return f"virtiofsd runs with cache={modes or 'its default'}, virtio_fs_cache is {configured!r}: " + \
            " ".join(running_argv)
    return ""


@dataclass(frozen=True)
class BlockHotplug:
    """Where the guest sees a drive Kata hot-plugged (``KataHotplug.drive``)."""

    guest_prefix: str  # "sd" (scsi-hd on the virtio-scsi controller) or "vd" (virtio-blk)
    scsi_address: tuple[int, int] | None = None  # (scsi-id, lun) the agent scans for
    pci_path: tuple[int, int] | None = None  # (bridge slot on the root bus, slot on the bridge)


def hotplugged_disk_mismatch(plug: BlockHotplug, disk: str, sysfs_path: str, driver: str) -> str:
    """Why guest disk ``disk`` (``readlink -f /sys/block/DISK``, its device's driver) is not the hot-plugged
    drive where Kata put it ('' when it is)."""
    if not disk.startswith(plug.guest_prefix):
        return f"new disk {disk} is not a {plug.guest_prefix}* disk"
    if plug.scsi_address is not None:
        scsi_id, lun = plug.scsi_address
        if driver != "sd" or not re.search(rf"/virtio\d+/host\d+/target\d+:0:{scsi_id}/\d+:0:{scsi_id}:{lun}/block/"
                                           rf"{disk}$", sysfs_path):
            return f"{disk} ({sysfs_path}, driver {driver}) is not SCSI disk 0:{scsi_id}:{lun} on virtio-scsi"
        return ""
    assert plug.pci_path is not None
    bridge, slot = plug.pci_path
    if driver != "virtio_blk" or not re.search(
            rf"/0000:00:{bridge:02x}\.0/0000:[0-9a-f]{{2}}:{slot:02x}\.0/virtio\d+/block/{disk}$", sysfs_path):
        return f"{disk} ({sysfs_path}, driver {driver}) is not virtio-blk at PCI path {bridge:02x}/{slot:02x}"
    return ""
