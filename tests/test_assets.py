"""Unit tests of the guest asset builders: nd_pfn_sb, cpio, kernel config checks, image layout, cache."""

from __future__ import annotations

import gzip
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from katatest.assets import cache, image, kernel
from katatest.assets.cpio import CpioWriter, read_newc
from katatest.assets.errors import AssetError
from katatest.assets.initrd import initrd_bytes, write_initrd
from katatest.assets.tree import guest_tree, init_script

MiB = 1 << 20
# First 64 bytes and checksum of the block Kata 3.0.0's nsdax tool writes for `nsdax img 2097152 2097152`.
KATA_NSDAX_HEAD = bytes.fromhex(
    "4e5644494d4d5f50464e5f494e464f00" + "00" * 32 + "00000000" + "0000" + "0200"
    + "0000200000000000" + "0000000000000000" + "01000000" + "00000000" + "00000000" + "00002000")
KATA_NSDAX_CHECKSUM = 0x685B032BE3943830


def test_fletcher64_words_are_little_endian_running_sums():
    data = struct.pack("<II", 1, 2)
    assert image.fletcher64(data) == (4 << 32) | 3


def test_fletcher64_wraps_32_bit_halves():
    data = struct.pack("<II", 0xFFFFFFFF, 2)
    lo = (0xFFFFFFFF + 2) & 0xFFFFFFFF
    hi = (0xFFFFFFFF + lo) & 0xFFFFFFFF
    assert image.fletcher64(data) == (hi << 32) | lo


def test_nd_pfn_sb_matches_kata_nsdax_output():
    sb = image.nd_pfn_sb()
    assert len(sb) == 4096
    assert sb[: len(KATA_NSDAX_HEAD)] == KATA_NSDAX_HEAD
    assert sb[len(KATA_NSDAX_HEAD):-8] == bytes(4096 - 8 - len(KATA_NSDAX_HEAD))
    (checksum,) = struct.unpack("<Q", sb[-8:])
    assert checksum == KATA_NSDAX_CHECKSUM
    assert image.fletcher64(sb[:-8] + bytes(8)) == checksum


def test_cpio_round_trip_and_padding():
    w = CpioWriter()
    w.add_dir("bin")
    w.add_file("bin/tool", b"\x00\x01binary\xff", 0o755)
    w.add_symlink("bin/sh", "/bin/busybox")
    w.add_char_device("dev/console", 5, 1)
    archive = w.getvalue()
    assert len(archive) % 4 == 0
    members = {name: (mode, data) for name, mode, data in read_newc(archive)}
    assert members["bin/tool"] == (0o100755, b"\x00\x01binary\xff")
    assert members["bin/sh"] == (0o120777, b"/bin/busybox")
    assert members["dev/console"][0] == 0o020600
    assert archive.endswith(b"\0") and b"TRAILER!!!" in archive


def test_cpio_rejects_duplicates():
    w = CpioWriter()
    w.add_dir("bin")
    with pytest.raises(ValueError):
        w.add_dir("bin")


@pytest.mark.skipif(shutil.which("cpio") is None, reason="GNU cpio not installed")
def test_cpio_readable_by_gnu_cpio(tmp_path):
    entries = guest_tree(Path("/bin/busybox"), applets=["bin/sh", "usr/bin/awk"])
    out = write_initrd(entries, tmp_path / "initrd.img")
    listing = subprocess.run(["cpio", "-it", "--quiet"], input=gzip.decompress(out.read_bytes()),
                             capture_output=True, check=True).stdout.decode().split()
    assert {"init", "sbin/init", "bin/busybox", "bin/sh", "usr/bin/awk", "dev/console"} <= set(listing)


def test_initrd_is_deterministic():
    entries = guest_tree(Path("/bin/busybox"), applets=["bin/sh"])
    assert initrd_bytes(entries) == initrd_bytes(entries)


def test_guest_tree_keeps_own_init_and_links_applets():
    entries = {e.path: e for e in guest_tree(Path("/bin/busybox"))}
    assert entries["sbin/init"].data == init_script() == entries["init"].data
    assert entries["bin/mount"].kind == "symlink" and entries["bin/mount"].target == "/bin/busybox"
    assert entries["bin/base64"].kind == "symlink"


def test_init_script_is_valid_sh():
    subprocess.run(["/bin/busybox", "sh", "-n", "/dev/stdin"], input=init_script(), check=True)


def test_parse_config_and_missing_options():
    final = kernel.parse_config("CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=\"x\"\n")
    assert final == {"CONFIG_A": "y", "CONFIG_B": "n", "CONFIG_C": '"x"'}
    wanted = {"CONFIG_A": "y", "CONFIG_B": "n", "CONFIG_D": "y", "CONFIG_E": "n"}
    assert kernel.missing_options(wanted, final) == ["CONFIG_D=y (got n)"]


@pytest.mark.parametrize("arch", ["amd64", "arm64"])
def test_fragments_request_the_brief_options(arch):
    wanted = kernel.wanted_options(arch)
    for option in ("PCIEPORTBUS", "HOTPLUG_PCI_PCIE", "HOTPLUG_PCI_SHPC", "HOTPLUG_PCI_ACPI", "VIRTIO_FS",
                   "NET_9P_VIRTIO", "9P_FS", "ACPI_NFIT", "NVDIMM_PFN", "NVDIMM_DAX", "FS_DAX", "ZONE_DEVICE",
                   "BLK_DEV_PMEM", "SCSI_VIRTIO", "HW_RANDOM_VIRTIO", "VIRTIO_VSOCKETS", "PVPANIC_PCI",
                   "DEVTMPFS_MOUNT", "BLK_DEV_INITRD", "RD_GZIP", "EXT4_FS", "MSDOS_PARTITION"):
        assert wanted.get(f"CONFIG_{option}") == "y", option
    extra = {"amd64": ("INTEL_IOMMU", "SERIAL_8250_CONSOLE"), "arm64": ("ARM_SMMU_V3", "ARM64_PMEM",
                                                                         "SERIAL_AMBA_PL011_CONSOLE")}
    for option in extra[arch]:
        assert wanted.get(f"CONFIG_{option}") == "y", option


def _mbr_partition(sector0: bytes) -> tuple[int, int]:
    assert sector0[510:512] == b"\x55\xaa"
    start, count = struct.unpack("<II", sector0[446 + 8: 446 + 16])
    return start * 512, count * 512


def test_image_has_kata_dax_layout(tmp_path):
    entries = guest_tree(Path("/bin/busybox"), applets=["bin/sh"])
    dest = tmp_path / "rootfs.img"
    size = image.build_image(entries, dest)
    data = dest.read_bytes()
    assert size == len(data) and size % (2 * MiB) == 0
    assert data[4096:8192] == image.nd_pfn_sb()
    start1, len1 = _mbr_partition(data[:512])
    start2, len2 = _mbr_partition(data[2 * MiB: 2 * MiB + 512])
    assert start1 == start2 + 2 * MiB and start2 == 1 * MiB and len1 == len2
    assert start1 + len1 <= size
    superblock = data[start1 + 1024: start1 + 2048]
    assert superblock[0x38:0x3A] == b"\x53\xef"  # ext4 magic
    assert struct.unpack("<I", superblock[24:28])[0] == 2  # 1024 << 2 = 4096-byte blocks
    part = tmp_path / "part.ext4"
    part.write_bytes(data[start1:start1 + len1])
    subprocess.run(["e2fsck", "-fn", str(part)], check=True, capture_output=True)
    cat = subprocess.run(["debugfs", "-R", "cat /sbin/init", str(part)], capture_output=True, check=True)
    assert cat.stdout == init_script()


@pytest.fixture
def tmp_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KATATEST_CACHE_DIR", str(tmp_path / "cache"))
    for var in cache.OVERRIDE_ENV.values():
        monkeypatch.delenv(var, raising=False)
    return tmp_path / "cache"


def test_cache_builds_once_verifies_and_rebuilds_corrupt(tmp_cache, tmp_path):
    fake_kernel = tmp_path / "bzImage"
    fake_kernel.write_bytes(b"kernel")
    messages: list[str] = []
    first = cache.ensure_assets("amd64", messages.append, kernel_path=fake_kernel)
    assert first.kernel == fake_kernel and first.image.is_file() and first.initrd.is_file()
    assert first.image_size == first.image.stat().st_size
    assert str(first.image).startswith(str(tmp_cache))
    built = len(messages)
    again = cache.ensure_assets("amd64", messages.append, kernel_path=fake_kernel)
    assert again == first and len(messages) == built  # cache hit: nothing rebuilt
    os.chmod(first.initrd, 0o644)
    first.initrd.write_bytes(b"corrupt")
    repaired = cache.ensure_assets("amd64", messages.append, kernel_path=fake_kernel)
    assert repaired.initrd.read_bytes()[:2] == b"\x1f\x8b"
    assert any("SHA256SUMS" in m for m in messages)
    states = {s.name: s.state for s in cache.asset_status("amd64")}
    assert states == {"kernel": "missing", "initrd": "built", "image": "built"}
    assert cache.clean("amd64")
    assert {s.state for s in cache.asset_status("amd64")} == {"missing"}


def test_overrides_from_environment(tmp_cache, tmp_path, monkeypatch):
    files = {}
    for name, var in cache.OVERRIDE_ENV.items():
        files[name] = tmp_path / name
        files[name].write_bytes(b"x" * 10)
        monkeypatch.setenv(var, str(files[name]))
    assets = cache.ensure_assets("amd64", print)
    assert (assets.kernel, assets.initrd, assets.image, assets.image_size) == (
        files["kernel"], files["initrd"], files["image"], 10)
    assert not tmp_cache.exists() or not any(tmp_cache.glob("amd64/*"))


def test_missing_override_is_one_clear_error(tmp_cache, tmp_path):
    with pytest.raises(AssetError, match="does not exist"):
        cache.ensure_assets("amd64", print, kernel_path=tmp_path / "nope")
    with pytest.raises(AssetError, match="unknown guest architecture"):
        cache.ensure_assets("riscv64", print)


def test_cli_status_and_clean(tmp_cache, capsys):
    from katatest.cli import main

    assert main(["assets", "status", "--arch", "amd64"]) == 0
    assert "amd64 kernel missing" in capsys.readouterr().out
    assert main(["assets", "clean", "--arch", "all"]) == 0
    assert "removed 0" in capsys.readouterr().out


def test_concurrent_ensure_builds_once(tmp_cache, tmp_path):
    fake_kernel = tmp_path / "bzImage"
    fake_kernel.write_bytes(b"kernel")
    code = ("import sys; from katatest.assets import ensure_assets; "
            f"a = ensure_assets('amd64', lambda m: print('P', m), kernel_path={str(fake_kernel)!r}); "
            "print('IMAGE', a.image)")
    env = dict(os.environ, KATATEST_CACHE_DIR=str(tmp_cache))
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
             for _ in range(3)]
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs)
    images = {line for out in outputs for line in out.splitlines() if line.startswith("IMAGE")}
    assert len(images) == 1
    builds = sum(out.count("writing DAX image") for out in outputs)
    assert builds == 1
    assert not list((tmp_cache / "amd64").glob(".tmp-*"))
