"""rootfs: the guest's root is what the config says (pmem0p1 with dax, vda1, or the initrd)."""

from __future__ import annotations

from katatest.fixtures.guests import group_reads

from katatest.expect.checks import expected_root, mount_at, parse_mounts

MOUNTS, MOUNTINFO = "cat /proc/mounts", "cat /proc/self/mountinfo"
NO_ROOT_DISK = "test ! -e /dev/pmem0 && test ! -e /dev/vda"


def _root_device(guest) -> str:
    """The block device root= names (an initrd cell has none)."""
    return str(expected_root(guest.generated_option("-append")[0])["device"])


def _device_reads(guest) -> list[str]:
    """What the group reads: the mounts, and the root= device's numbers and type (or that there is no disk)."""
    device = _root_device(guest)
    if not device:
        return [MOUNTS, MOUNTINFO, NO_ROOT_DISK]
    return [MOUNTS, MOUNTINFO, f"cat /sys/class/block/{device.rsplit('/', 1)[-1]}/dev", f"test -b {device}"]


reads = group_reads(_device_reads)


def _same_block_device(reads, mounted: str, wanted: str) -> bool:
    """True when the root mount is ``wanted`` (the kernel shows a root= device as /dev/root)."""
    if mounted == wanted:
        return True
    if mounted != "/dev/root":
        return False
    root_dev = next(line.split()[2] for line in reads.text(MOUNTINFO).splitlines() if line.split()[4] == "/")
    wanted_dev = reads.text(f"cat /sys/class/block/{wanted.rsplit('/', 1)[-1]}/dev")
    return root_dev == wanted_dev


def test_root_device_and_options(guest, cell, reads):
    append = guest.generated_option("-append")[0]
    root = mount_at(parse_mounts(reads.text(MOUNTS)), "/")
    assert root is not None, "no / in /proc/mounts"
    if cell.rootfs == "initrd":
        assert "root=" not in append
        assert root.fstype in ("rootfs", "ramfs", "tmpfs"), root
        assert guest.generated_option("-initrd"), "an initrd cell boots with -initrd"
        return
    want = expected_root(append)
    assert _same_block_device(reads, root.source, str(want["device"])), f"/ is on {root.source}"
    assert root.fstype == want["fstype"]
    assert ("ro" in root.options) == want["read_only"]
    has_dax = any(opt == "dax" or opt.startswith("dax=") for opt in root.options)
    assert has_dax == want["dax"], f"rootflags asked dax={want['dax']}, mounted {root.options}"


def test_root_block_device_exists(guest, cell, reads):
    if cell.rootfs == "initrd":
        assert reads.ok(NO_ROOT_DISK)
        return
    device = _root_device(guest)
    assert reads.ok(f"test -b {device}")
