"""Kernel parameters every VMM's generator shares: Kata 3.0.0's two serialisations and its root parameters."""

from __future__ import annotations

from katatest.kata.hypervisor_config import Param

# The rootfs parameters of virtcontainers (``kernelRootParams``): a DAX image on an nvdimm, or a virtio-blk disk.
NVDIMM_DAX_ROOT = (Param("root", "/dev/pmem0p1"), Param("rootflags", "dax,data=ordered,errors=remount-ro ro"),
                   Param("rootfstype", "ext4"))
# rootflags per rootfs_type, without and with DAX (GetKernelRootParams).
ROOTFLAGS = {"ext4": ("data=ordered,errors=remount-ro ro", "dax,data=ordered,errors=remount-ro ro"),
             "xfs": ("ro", "dax ro"), "erofs": ("ro", "dax ro")}


def root_params(rootfs_type: str, nvdimm: bool, dax: bool) -> tuple[Param, ...]:
    """root= / rootflags= / rootfstype= for an image on an nvdimm (``/dev/pmem0p1``) or virtio-blk."""
    return (Param("root", "/dev/pmem0p1" if nvdimm else "/dev/vda1"),
            Param("rootflags", ROOTFLAGS[rootfs_type][nvdimm and dax]), Param("rootfstype", rootfs_type))


VIRTIO_BLK_ROOT = (Param("root", "/dev/vda1"), Param("rootflags", "data=ordered,errors=remount-ro ro"),
                   Param("rootfstype", "ext4"))


def serialize(params: list[Param]) -> list[str]:
    """Kata's ``SerializeParams(params, "=")``: empty params dropped, bare keys or values kept."""
    return [p.value if p.key == "" else p.key if p.value == "" else f"{p.key}={p.value}"
            for p in params if p.key != "" or p.value != ""]


def serialize_params(params: list[Param]) -> str:
    """:func:`serialize` joined by spaces, as a kernel command line."""
    return " ".join(serialize(params))


def clh_params_to_string(params: list[Param]) -> str:
    """clh's ``kernelParamsToString``: ``key[=value]`` joined by spaces (an empty key is kept)."""
    return " ".join(p.key + (f"={p.value}" if p.value else "") for p in params).strip()
