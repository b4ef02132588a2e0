"""The suites' comparison helpers measure the guest / the running daemon, and reject wrong values."""

from __future__ import annotations

import subprocess
import sys

import pytest

from katatest.expect.checks import (
    LINUX_9P_DEFAULT_MSIZE,
    CannotHotplug,
    Mount,
    cache_mode_mismatch,
    daemon_options,
    hotplugged_disk_mismatch,
    kata_block_hotplug,
    mount_at,
    mount_msize,
    msize_mismatch,
    parse_mounts,
    process_argv,
)
from tests.test_qemu_units import argv as render
from tests.test_qemu_units import config

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


def test_scsi_hotplug_is_scsi_hd_on_the_controller_bus():
    argv = render()  # the shipped config: block_device_driver = virtio-scsi
    plug = kata_block_hotplug(argv, "virtio-scsi", "drive-hp0", "/dev/loop7", index=257, aio="io_uring")
    assert plug.commands == (
        ("blockdev-add", {"driver": "raw", "read-only": False, "node-name": "drive-hp0",
                          "file": {"driver": "host_device", "filename": "/dev/loop7", "aio": "io_uring"}}),
        ("device_add", {"id": "virtio-drive-hp0", "driver": "scsi-hd", "drive": "drive-hp0",
                        "bus": "scsi0.0", "scsi-id": 1, "lun": 1, "share-rw": "on"}))
    assert plug.guest_prefix == "sd" and plug.scsi_address == (1, 1)


def test_virtio_blk_hotplug_is_virtio_blk_pci_on_the_bridge():
    argv = render(config(block_device_driver="virtio-blk", default_vcpus=2))
    plug = kata_block_hotplug(argv, "virtio-blk", "drive-hp0", "/tmp/d.img", index=0, aio="threads",
                              cache=(True, False), file_driver="file")
    blockdev, device = (args for _, args in plug.commands)
    assert blockdev["cache"] == {"direct": True, "no-flush": False} and blockdev["file"]["driver"] == "file"
    assert device == {"id": "virtio-drive-hp0", "driver": "virtio-blk-pci", "drive": "drive-hp0", "addr": "01",
                      "bus": "pci-bridge-0", "num-queues": "2", "romfile": "", "share-rw": "on"}
    assert plug.guest_prefix == "vd" and plug.pci_path == (2, 1)


def test_hotplug_needs_what_kata_needs():
    with pytest.raises(CannotHotplug, match="bridges"):
        kata_block_hotplug(render(config(block_device_driver="virtio-blk", machine_type="microvm")), "virtio-blk", "d",
                           "/x", index=0, aio="threads")
    with pytest.raises(CannotHotplug, match="no scsi0"):
        kata_block_hotplug(render(config(block_device_driver="virtio-blk")), "virtio-scsi", "d", "/x", index=0,
                           aio="threads")
    with pytest.raises(CannotHotplug, match="not recognized"):
        kata_block_hotplug(render(), "nvdimm", "d", "/x", index=0, aio="threads")


SCSI_DISK = "/sys/devices/pci0000:00/0000:00:04.0/virtio2/host0/target0:0:1/0:0:1:1/block/sda"
BLK_DISK = "/sys/devices/pci0000:00/0000:00:02.0/0000:01:01.0/virtio5/block/vdb"


def test_hotplugged_disk_must_be_where_kata_put_it():
    scsi = kata_block_hotplug(render(), "virtio-scsi", "d", "/x", index=257, aio="threads")
    assert hotplugged_disk_mismatch(scsi, "sda", SCSI_DISK, "sd") == ""
    assert "not a sd* disk" in hotplugged_disk_mismatch(scsi, "vdb", BLK_DISK, "virtio_blk")
    assert "0:1:1 on virtio-scsi" in hotplugged_disk_mismatch(scsi, "sda", SCSI_DISK.replace("0:0:1:1", "0:0:1:0"),
                                                               "sd")
    assert hotplugged_disk_mismatch(scsi, "sda", SCSI_DISK, "sr") != ""
    blk = kata_block_hotplug(render(config(block_device_driver="virtio-blk")), "virtio-blk", "d", "/x", index=0,
                             aio="threads")
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
