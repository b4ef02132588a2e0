"""rootfs: the guest's root is what the config says (pmem0p1 with dax, vda1, or the initrd)."""

from __future__ import annotations

from katatest.expect.checks import expected_root, mount_at, parse_mounts


def _root_mount(guest):
    return mount_at(parse_mounts(guest.host.file("/proc/mounts").content_string), "/")


def _same_block_device(guest, mounted: str, wanted: str) -> bool:
    """True when the root mount is ``wanted`` (the kernel shows a root= device as /dev/root)."""
    if mounted == wanted:
        return True
    if mounted != "/dev/root":
        return False
    root_dev = next(line.split()[2] for line in guest.host.file("/proc/self/mountinfo").content_string.splitlines()
                    if line.split()[4] == "/")
    wanted_dev = guest.host.check_output(f"cat /sys/class/block/{wanted.rsplit('/', 1)[-1]}/dev")
    return root_dev == wanted_dev


def test_root_device_and_options(guest, cell):
    append = guest.generated_option("-append")[0]
    root = _root_mount(guest)
    assert root is not None, "no / in /proc/mounts"
    if cell.rootfs == "initrd":
        assert "root=" not in append
        assert root.fstype in ("rootfs", "ramfs", "tmpfs"), root
        assert guest.generated_option("-initrd"), "an initrd cell boots with -initrd"
        return
    want = expected_root(append)
    assert _same_block_device(guest, root.source, str(want["device"])), f"/ is on {root.source}"
    assert root.fstype == want["fstype"]
    assert ("ro" in root.options) == want["read_only"]
    has_dax = any(opt == "dax" or opt.startswith("dax=") for opt in root.options)
    assert has_dax == want["dax"], f"rootflags asked dax={want['dax']}, mounted {root.options}"


def test_root_block_device_exists(guest, cell):
    if cell.rootfs == "initrd":
        assert not guest.host.file("/dev/pmem0").exists and not guest.host.file("/dev/vda").exists
        return
    device = expected_root(guest.generated_option("-append")[0])["device"]
    assert guest.host.run(f"test -b {device}").rc == 0
