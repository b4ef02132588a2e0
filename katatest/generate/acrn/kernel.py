"""The guest kernel command line of Kata 3.0.0's ACRN driver (``Acrn.kernelParameters``)."""

from __future__ import annotations

from katatest.generate.kernel_params import serialize_params
from katatest.generate.provenance import FieldSources, Sources
from katatest.host.facts import HostFacts
from katatest.kata.hypervisor_config import KataConfig, Param

ACRN_KERNEL_PARAMS = (
    Param("tsc", "reliable"), Param("no_timer_check"), Param("nohpet"), Param("console", "tty0"),
    Param("console", "ttyS0"), Param("console", "hvc0"), Param("log_buf_len", "16M"),
    Param("consoleblank", "0"), Param("iommu", "off"), Param("i915.avail_planes_per_pipe", "0x070F00"),
    Param("i915.enable_hangcheck", "0"), Param("i915.nuclear_pageflip", "1"),
    Param("i915.enable_guc_loading", "0"), Param("i915.enable_guc_submission", "0"), Param("i915.enable_guc", "0"),
)
ROOT_PARAMS = (Param("root", "/dev/vda1 rw rootwait"),)
NON_DEBUG_PARAMS = (Param("quiet"),)
SYSTEMD_NON_DEBUG_PARAMS = (Param("systemd.show_status", "false"),)
DEBUG_PARAMS = (Param("debug"),)
SYSTEMD_DEBUG_PARAMS = (
    Param("systemd.show_status", "true"), Param("systemd.log_level", "debug"),
    Param("systemd.log_target", "kmsg"), Param("printk.devkmsg", "on"),
)
DEFAULT_PARAMS = (Param("panic", "1"),)  # acrnDefaultKernelParameters


def arch_kernel_params(debug: bool, has_image: bool) -> list[Param]:
    """``acrnArchBase.kernelParameters`` after ``handleImagePath`` (root and systemd params with an image)."""
    params = list(ACRN_KERNEL_PARAMS) + (list(ROOT_PARAMS) if has_image else [])
    if debug:
        params += DEBUG_PARAMS + (SYSTEMD_DEBUG_PARAMS if has_image else ())
    else:
        params += NON_DEBUG_PARAMS + (SYSTEMD_NON_DEBUG_PARAMS if has_image else ())
    return params


def kernel_command_line(cfg: KataConfig, facts: HostFacts, src: FieldSources) -> tuple[str, Sources]:
    """Arch params, ``panic=1``, ``maxcpus=<default_maxvcpus>``, then the config's own (they win)."""
    hv = cfg.hypervisor
    params = arch_kernel_params(hv.debug, hv.image_path != "") + list(DEFAULT_PARAMS)
    params.append(Param("maxcpus", str(hv.default_max_vcpus)))
    params += hv.kernel_params
    if facts.fips:  # katautils.checkForFIPS appends to the config's parameters
        params.append(Param("fips", "1"))
    sources = src("debug", "image_path", "default_max_vcpus", "kernel_params") + ("host.fips",)
    return serialize_params(params), sources
