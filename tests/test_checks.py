"""The suites' comparison helpers measure the guest / the running daemon, and reject wrong values."""

from __future__ import annotations

import subprocess
import sys

import pytest

from katatest.expect.checks import (
    LINUX_9P_DEFAULT_MSIZE,
    BlockHotplug,
    Mount,
    cache_mode_mismatch,
    daemon_options,
    hotplugged_disk_mismatch,
    mount_at,
    mount_msize,
    msize_mismatch,
    parse_mounts,
    process_argv,
)

SHARED = "/run/kata-containers/shared/containers"
MOUNTS = (f"kataShared {SHARED} 9p rw,nodev,relatime,cache=mmap,access=client,msize=8192,trans=virtio 0 0\n"
          f"kataShared /mnt 9p rw,nodev,relatime,cache=mmap,access=client,trans=virtio 0 0\n"
          f"kataShared /fs virtiofs rw,relatime 0 0\n")


def test_msize_comes_from_the_guest_mount_options():
    mounts = parse_mounts(MOUNTS)
    shared = mount_at(mounts, SHARED)
    assert shared is not None and mount_msize(shared) == 8192
    assert msize_mismatch(shared, 8192) == ""
    assert "msize=8192, msize_9p is 16384" in msize_mismatch(shared, 16384)
    default = mount_at(mounts, "/mnt")  # Linux hides msize when it is its own default
    assert default is not None and mount_msize(default) == LINUX_9P_DEFAULT_MSIZE
    assert msize_mismatch(default, 8192) != ""
    virtiofs = mount_at(mounts, "/fs")
    assert virtiofs is not None and "not 9p" in msize_mismatch(virtiofs, 8192)
    with pytest.raises(ValueError, match="msize"):
        mount_msize(Mount("kataShared", SHARED, "9p", ("msize=1", "msize=2")))


VIRTIOFSD = ["/usr/lib/qemu/virtiofsd", "-o", "cache=auto", "-o", "no_posix_lock", "-o", "source=/x", "--fd=3",
             "-f"]


@pytest.mark.parametrize("args, modes", [
    (VIRTIOFSD, ["auto"]),
    (["virtiofsd", "-o", "source=/x,cache=always"], ["always"]),
    (["virtiofsd", "-ocache=none"], ["none"]),
    (["virtiofsd", "--cache=never"], ["never"]),
    (["virtiofsd", "--cache", "auto", "--shared-dir", "/x"], ["auto"]),
    (["virtiofsd", "-o", "source=/x"], []),
])
def test_daemon_options(args, modes):
    assert daemon_options(args, "cache") == modes


def test_cache_mode_rejects_a_wrong_or_missing_mode():
    assert cache_mode_mismatch(VIRTIOFSD, "auto") == ""
    assert "cache=['auto'], virtio_fs_cache is 'always'" in cache_mode_mismatch(VIRTIOFSD, "always")
    assert "its default" in cache_mode_mismatch(["/usr/lib/qemu/virtiofsd", "-o", "source=/x"], "auto")
    assert "not virtiofsd" in cache_mode_mismatch(["/usr/bin/qemu-system-x86_64", "-o", "cache=auto"], "auto")
    assert "exited?" in cache_mode_mismatch([], "auto")


def test_process_argv_reads_the_running_process():
    code = "import sys; print('up', flush=True); sys.stdin.read()"
    proc = subprocess.Popen([sys.executable, "-c", code, "-o", "cache=auto", "a b"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"up\n"  # exec'd: its cmdline is final
        assert process_argv(proc.pid)[1:] == ["-c", code, "-o", "cache=auto", "a b"]
    finally:
        proc.communicate(b"")
    with pytest.raises(OSError):
        process_argv(proc.pid)  # reaped: gone


SCSI_DISK = "/sys/devices/pci0000:00/0000:00:04.0/virtio2/host0/target0:0:1/0:0:1:1/block/sda"
BLK_DISK = "/sys/devices/pci0000:00/0000:00:02.0/0000:01:01.0/virtio5/block/vdb"


def test_hotplugged_disk_must_be_where_kata_put_it():
    scsi = BlockHotplug("sd", scsi_address=(1, 1))
    assert hotplugged_disk_mismatch(scsi, "sda", SCSI_DISK, "sd") == ""
    assert "not a sd* disk" in hotplugged_disk_mismatch(scsi, "vdb", BLK_DISK, "virtio_blk")
    assert "0:1:1 on virtio-scsi" in hotplugged_disk_mismatch(scsi, "sda", SCSI_DISK.replace("0:0:1:1", "0:0:1:0"),
                                                               "sd")
    assert hotplugged_disk_mismatch(scsi, "sda", SCSI_DISK, "sr") != ""
    blk = BlockHotplug("vd", pci_path=(2, 1))
    assert hotplugged_disk_mismatch(blk, "vdb", BLK_DISK, "virtio_blk") == ""
    assert "PCI path 02/01" in hotplugged_disk_mismatch(
        blk, "vdb", "/sys/devices/pci0000:00/0000:00:03.0/virtio5/block/vdb", "virtio_blk")  # on the root bus
    assert "not a vd* disk" in hotplugged_disk_mismatch(blk, "sda", SCSI_DISK, "sd")


def test_cache_mode_never_is_none_for_the_c_virtiofsd():
    """Kata 3.30+'s virtio_fs_cache = "never" reaches QEMU's C virtiofsd translated as -o cache=none."""
    c_daemon = ["/usr/lib/qemu/virtiofsd", "-o", "cache=none", "-o", "source=/x"]
    assert cache_mode_mismatch(c_daemon, "never") == ""
    assert cache_mode_mismatch(["/usr/libexec/virtiofsd", "--cache=never"], "never") == ""
    assert "virtio_fs_cache is 'auto'" in cache_mode_mismatch(c_daemon, "auto")
