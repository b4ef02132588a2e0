"""shared fs: the kataShared volume is mounted where Kata's agent mounts it, and files round-trip."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from katatest.expect.checks import (
    SHARED_MOUNT_POINT,
    cache_mode_mismatch,
    mount_at,
    msize_mismatch,
    options,
    parse_mounts,
    process_argv,
    props,
)
from katatest.guest.reads import GuestReads, read_together
from katatest.kata.defaults import DEFAULT_MSIZE_9P, DEFAULT_VIRTIO_FS_CACHE
from katatest.matrix.cell_config import cell_document


@pytest.fixture(scope="session")
def shared(guest, cell):
    """(host dir, guest dir) of the shared volume, or skip when the cell shares nothing."""
    if cell.shared_fs == "none":
        pytest.skip("the cell shares no filesystem")
    log = guest.vm.virtiofsd_log_path
    if cell.shared_fs == "virtio-fs" and log.exists() and "virtio legacy devices aren't supported" in log.read_text():
        pytest.skip("QEMU finding: virtiofsd refuses legacy virtio (QEMU's virtio-mmio transport defaults to "
                    "force-legacy, and Kata's microvm argv does not turn it off)")
    host_dir = Path(guest.plan.paths.shared_dir)
    assert host_dir.is_dir(), f"Kata's shared dir {host_dir} does not exist on the host"
    return host_dir, SHARED_MOUNT_POINT


LARGE_FILE = 4 << 20  # a big file: 4 FUSE requests of 1 MiB, 512 9p reads at msize 8192 (not a TCG copy benchmark)
# Many files: 128 with 64-character names take several directory reads in every shared fs (9p at msize 8192:
# about 92 entries per Rreaddir; FUSE's 4 KiB readdir(plus) pages: 46 entries, 18 with attributes), and their
# contents come back file by file. (300 short names proved the same at 2.5x the guest's time under TCG.)
MANY_FILES = 128
MANY_NAME = "f{:03d}-" + "n" * 59
MOUNTS, MOUNT_ERRORS = "cat /proc/mounts", "cat /run/katatest/mount-errors 2>/dev/null"
G = SHARED_MOUNT_POINT
READ_FROM_HOST, MODE_FROM_HOST = f"cat {G}/from-host.bin", f"stat -Lc %a {G}/from-host.bin"
WRITE_FROM_GUEST = f"printf 'guest->host %s' $$ > {G}/from-guest.txt && chmod 600 {G}/from-guest.txt"
LARGE_SUM = f"md5sum {G}/large.bin"  # identity of the bytes, not security
MANY_COUNTS = f"ls {G}/many | wc -l; cat {G}/many/* | wc -c"


@dataclass(frozen=True)
class Traffic:
    """What the guest answered, and what the host had written for it."""

    reads: GuestReads
    from_host: bytes
    large: bytes


@pytest.fixture(scope="session")
def traffic(guest, shared) -> Traffic:
    """The host writes its files into the shared dir, then the guest, in one round trip, reads the mounts and
    the host's files and writes its own; each test checks its part."""
    host_dir, _ = shared
    from_host = os.urandom(4096) + b"host->guest\n"
    (host_dir / "from-host.bin").write_bytes(from_host)
    (host_dir / "from-host.bin").chmod(0o640)
    large = os.urandom(LARGE_FILE)
    (host_dir / "large.bin").write_bytes(large)
    many = host_dir / "many"
    many.mkdir(exist_ok=True)
    for index in range(MANY_FILES):
        (many / MANY_NAME.format(index)).write_text(str(index))
    reads = read_together(guest.channel, (MOUNTS, MOUNT_ERRORS, READ_FROM_HOST, MODE_FROM_HOST, WRITE_FROM_GUEST,
                                          LARGE_SUM, MANY_COUNTS), timeout=60)
    return Traffic(reads, from_host, large)


def _mount(traffic: Traffic):
    return mount_at(parse_mounts(traffic.reads.text(MOUNTS)), SHARED_MOUNT_POINT)


def test_kata_shared_is_mounted_with_the_configured_fs(cell, traffic):
    mount = _mount(traffic)
    errors = traffic.reads.stdout(MOUNT_ERRORS)
    assert mount is not None, f"nothing mounted at {SHARED_MOUNT_POINT}; mount errors: {errors}"
    assert mount.source == "kataShared"
    assert mount.fstype == {"virtio-fs": "virtiofs", "virtio-9p": "9p"}[cell.shared_fs]


def test_device_tag_matches(guest, cell, shared):
    argv = guest.generated_argv
    if cell.shared_fs == "virtio-fs":
        devices = [props(d) for d in options(argv, "-device") if d.startswith("vhost-user-fs")]
        assert [d["tag"] for d in devices] == ["kataShared"]
    else:
        devices = [props(d) for d in options(argv, "-device") if d.startswith("virtio-9p")]
        assert [d["mount_tag"] for d in devices] == ["kataShared"]


@pytest.fixture(scope="session")
def qemu_table(cell, kata_base_config) -> dict:
    """The cell's ``[hypervisor.qemu]`` table as configured (not what the harness derived from it)."""
    return cell_document(cell, kata_base_config).get("hypervisor", {}).get("qemu", {})


def test_9p_msize_is_the_configured_one(cell, traffic, qemu_table):
    """The guest's own mount options carry the configured msize_9p (Kata's default when unset)."""
    if cell.shared_fs != "virtio-9p":
        pytest.skip("virtio-fs cell: msize applies to 9p only")
    configured = qemu_table.get("msize_9p") or DEFAULT_MSIZE_9P
    mount = _mount(traffic)
    assert mount is not None, f"nothing mounted at {SHARED_MOUNT_POINT}"
    mismatch = msize_mismatch(mount, configured)
    assert not mismatch, mismatch


def test_virtiofsd_cache_mode_is_the_configured_one(guest, cell, shared, qemu_table):
    """The running daemon's /proc/PID/cmdline has the configured virtio_fs_cache (Kata's default when unset)."""
    if cell.shared_fs != "virtio-fs":
        pytest.skip("virtio-9p cell: no virtiofsd")
    configured = qemu_table.get("virtio_fs_cache") or DEFAULT_VIRTIO_FS_CACHE
    pid = guest.vm.virtiofsd_pid
    assert pid, "the launcher reports no virtiofsd pid for a virtio-fs cell"
    try:
        running = process_argv(pid)
    except OSError as err:
        pytest.fail(f"virtiofsd (pid {pid}) is not running: {err}")
    mismatch = cache_mode_mismatch(running, configured)
    assert not mismatch, mismatch


def test_host_to_guest_round_trip(traffic):
    assert traffic.reads.data(READ_FROM_HOST) == traffic.from_host
    assert traffic.reads.text(MODE_FROM_HOST) == "640"


def test_guest_to_host_round_trip(shared, traffic):
    host_dir, _ = shared
    assert traffic.reads.ok(WRITE_FROM_GUEST), traffic.reads.run(WRITE_FROM_GUEST)
    written = host_dir / "from-guest.txt"
    assert written.read_text().startswith("guest->host ")
    assert written.stat().st_mode & 0o777 == 0o600


def test_large_file(traffic):
    assert traffic.reads.text(LARGE_SUM).split()[0] == hashlib.md5(traffic.large).hexdigest()  # noqa: S324


def test_many_files(traffic):
    listing, total = traffic.reads.text(MANY_COUNTS).split()
    assert int(listing) == MANY_FILES
    assert int(total) == sum(len(str(i)) for i in range(MANY_FILES))
