"""Build the rootfs image in Kata's DAX layout, without loop devices.

Layout (Kata osbuilder ``image_builder.sh``)::

    | MBR #1 + nd_pfn_sb (2 MiB) | MBR #2 | ext4 rootfs partition |
                                 ^ 2 MiB: the "inner" disk a DAX-capable guest sees as /dev/pmem0

MBR #1's partition starts 2 MiB later than MBR #2's, so a guest without DAX (virtio-blk, or nvdimm
without PFN support) finds the same ext4 partition through MBR #1.
"""

from __future__ import annotations

import shutil
import struct
import tempfile
from pathlib import Path

from katatest.assets.progress import run_tool
from katatest.assets.tree import TreeEntry, materialize

MiB = 1 << 20
SECTOR = 512
DAX_HEADER_SIZE = 2 * MiB
DAX_ALIGNMENT = 2 * MiB
PFN_SB_OFFSET = 4096
PFN_SB_SIZE = 4096
PFN_SIGNATURE = b"NVDIMM_PFN_INFO\0"
PFN_MODE_RAM = 1
PARTITION_START = 1 * MiB  # MBR #2's partition, relative to the inner disk (Kata: rootfs_start=1)
EXT4_BLOCK_SIZE = 4096
DISK_LABEL_ID = "0x6b617461"  # fixed MBR disk identifier, for reproducible images
MIN_FS_SIZE = 16 * MiB


MEM_BOUNDARY = 128 * 1024 * 1024


def fletcher64(data: bytes) -> int:
    """The NVDIMM driver's Fletcher-64 over little-endian 32-bit words (``nd_fletcher64``)."""
    if len(data) % 4:
        raise ValueError("fletcher64 needs a multiple of 4 bytes")
    lo, hi = 0, 0
    for (word,) in struct.iter_unpack("<I", data):
        lo = (lo + word) & 0xFFFFFFFF
        hi = (hi + lo) & 0xFFFFFFFF
    return (hi << 32) | lo


def nd_pfn_sb(dataoff: int = DAX_HEADER_SIZE, align: int = DAX_ALIGNMENT) -> bytes:
    """The 4096-byte ``struct nd_pfn_sb`` info block (version 0.2, PFN_MODE_RAM) with its checksum."""
    head = struct.pack("<16s16s16sIHHQQIIII", PFN_SIGNATURE, bytes(16), bytes(16), 0, 0, 2, dataoff, 0,
                       PFN_MODE_RAM, 0, 0, align)
    body = head + bytes(PFN_SB_SIZE - 8 - len(head))
    return body + struct.pack("<Q", fletcher64(body + bytes(8)))


def round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def _run(cmd: list[str], stdin: str | None = None) -> None:
    run_tool(cmd, "apt-get install e2fsprogs fdisk", stdin)


def mbr_with_partition(disk_size: int, start: int, size: int) -> bytes:
    """The 512-byte MBR ``sfdisk`` writes for one Linux partition of ``size`` bytes at ``start``."""
    with tempfile.TemporaryDirectory(prefix="katatest-mbr-") as tmp:
        disk = Path(tmp) / "disk"
        with open(disk, "wb") as f:
            f.truncate(disk_size)
        _run(["sfdisk", "--quiet", "--no-reread", "--no-tell-kernel", str(disk)],
             f"label: dos\nlabel-id: {DISK_LABEL_ID}\nstart={start // SECTOR}, size={size // SECTOR}, type=83\n")
        return disk.read_bytes()[:SECTOR]


def _tree_size(root: Path) -> int:
    return sum(p.lstat().st_size for p in root.rglob("*"))


def make_ext4(entries: list[TreeEntry], dest: Path, size: int | None = None) -> int:
    """An ext4 filesystem image (4 KiB blocks, as DAX needs) holding the tree; returns its size."""
    with tempfile.TemporaryDirectory(prefix="katatest-rootfs-") as tmp:
        staging = Path(tmp) / "root"
        staging.mkdir()
        materialize(entries, staging)
        if size is None:
            size = round_up(max(MIN_FS_SIZE, 2 * _tree_size(staging) + 8 * MiB), DAX_ALIGNMENT)
        with open(dest, "wb") as f:
            f.truncate(size)
        _run(["mkfs.ext4", "-q", "-F", "-b", str(EXT4_BLOCK_SIZE), "-m", "3", "-L", "katatest-root",
              "-U", "6b617461-7465-7374-2d72-6f6f74667331", "-E", "root_owner=0:0,hash_seed="
              "6b617461-7465-7374-2d68-617368736565", "-d", str(staging), str(dest)])
    return size


def _splice(dest, src: Path, offset: int) -> None:
    dest.seek(offset)
    with open(src, "rb") as f:
        shutil.copyfileobj(f, dest, 4 * MiB)


def build_image(entries: list[TreeEntry], dest: Path) -> int:
    """Write the DAX-layout image to ``dest``; returns its size (a multiple of 128 MiB)."""
    with tempfile.TemporaryDirectory(prefix="katatest-image-") as tmp:
        part = Path(tmp) / "rootfs.ext4"
        fs_size = make_ext4(entries, part)
        # Kata: the partition spans 1 MiB .. disk end - 1 MiB (parted "1M" "-1M").
        inner_size = PARTITION_START + fs_size + (DAX_ALIGNMENT - PARTITION_START)
        # Kata's image_builder.sh aligns images to 128 MiB (mem_boundary_mb) so that memory hot-plugged
        # after the nvdimm stays aligned to the guest's memory block size.
        total = round_up(DAX_HEADER_SIZE + inner_size, MEM_BOUNDARY)
        inner_size = total - DAX_HEADER_SIZE
        mbr1 = mbr_with_partition(total, DAX_HEADER_SIZE + PARTITION_START, fs_size)
        mbr2 = mbr_with_partition(inner_size, PARTITION_START, fs_size)
        with open(dest, "wb") as out:
            out.truncate(total)
            out.write(mbr1)
            out.seek(PFN_SB_OFFSET)
            out.write(nd_pfn_sb())
            out.seek(DAX_HEADER_SIZE)
            out.write(mbr2)
            _splice(out, part, DAX_HEADER_SIZE + PARTITION_START)
    return total
