"""ACRN reference generation, traced to Kata 3.0.0's ``virtcontainers/acrn.go`` and ``acrn_arch_base.go``.

No Kata-made vectors exist for ACRN: these cases are written from the 3.0.0 code (functions named in each
docstring) for the shipped ``configuration-acrn.toml`` (``src/runtime/config/configuration-acrn.toml.in``)
with its @PLACEHOLDERS@ substituted by the 3.0.0 Makefile defaults.
"""

from __future__ import annotations

import pytest

from katatest.errors import ConfigError
from katatest.generate.render import render_doc
from katatest.host.facts import HostFacts
from katatest.kata.tomlconf import parse_toml

SANDBOX = "1" * 64
VM_DIR = f"/run/vc/vm/{SANDBOX}"

# configuration-acrn.toml.in with ACRNPATH=/usr/bin/acrn-dm, ACRNCTLPATH=/usr/bin/acrnctl,
# KERNELPATH_ACRN=/usr/share/kata-containers/vmlinuz.container, IMAGEPATH=.../kata-containers.img,
# DEFMAXVCPUS_ACRN=1, DEFBRIDGES=1, DEFMEMSZ=2048, DEFBLOCKSTORAGEDRIVER_ACRN=virtio-blk,
# DEFNETWORKMODEL_ACRN=macvtap, DEFDISABLEGUESTSECCOMP=true, PROJECT_TYPE=kata.
SHIPPED = """
[hypervisor.acrn]
path = "/usr/bin/acrn-dm"
ctlpath = "/usr/bin/acrnctl"
kernel = "/usr/share/kata-containers/vmlinuz.container"
image = "/usr/share/kata-containers/kata-containers.img"
enable_annotations = ["enable_iommu"]
valid_hypervisor_paths = ["/usr/bin/acrn-dm"]
valid_ctlpaths = ["/usr/bin/acrnctl"]
kernel_params = ""
firmware = ""
default_maxvcpus = 1
default_bridges = 1
default_memory = 2048
block_device_driver = "virtio-blk"
disable_selinux = false

[agent.kata]

[runtime]
internetworking_model = "macvtap"
disable_guest_seccomp = true
sandbox_cgroup_only = false
disable_guest_empty_dir = false
experimental = []
"""

ARCH_PARAMS = (
    "tsc=reliable no_timer_check nohpet console=tty0 console=ttyS0 console=hvc0 log_buf_len=16M "
    "consoleblank=0 iommu=off i915.avail_planes_per_pipe=0x070F00 i915.enable_hangcheck=0 "
    "i915.nuclear_pageflip=1 i915.enable_guc_loading=0 i915.enable_guc_submission=0 i915.enable_guc=0 "
    "root=/dev/vda1 rw rootwait"
)
SYSTEMD_PARAMS = ("systemd.unit=kata-containers.target systemd.mask=systemd-networkd.service "
                  "systemd.mask=systemd-networkd.socket")
DUMMY_DISKS = [arg for slot in range(5, 13) for arg in ("-s", f"{slot},virtio-blk,nodisk")]


def _doc(**changes: object) -> dict:
    doc = parse_toml(SHIPPED)
    doc["hypervisor"]["acrn"].update(changes)
    return doc


def _argv(doc: dict, facts: HostFacts | None = None) -> list[str]:
    return render_doc(doc, facts or HostFacts(host_cpus=8, host_mem_mib=16384)).argv_values()


def test_shipped_config():
    """``Acrn.CreateVM`` + ``LaunchAcrn``: UUID (first free of ``acrnIdxToUUIDs``), ``-A`` (ACPIVirt), memory
    (``memoryTopology``: ``<MiB>M``), devices in ``buildDevices`` order with slot 2 skipped
    (``appendDevices``), kernel and ``kernelParameters``, then ``sandbox-<id>`` (``appendName``)."""
    assert _argv(_doc()) == [
        "/usr/bin/acrn-dm",
        "-U", "a7ada506-1ab0-4b6b-a0da-e513ca9b8c2f",
        "-A",
        "-m", "2048M",
        "-s", "0:0,hostbridge",
        "-s", "1:0,lpc", "-lcom1,stdio",
        "-s", f"3,virtio-console,@socket:console0={VM_DIR}/console.sock",
        "-s", "4,virtio-blk,/usr/share/kata-containers/kata-containers.img",
        *DUMMY_DISKS,
        "-k", "/usr/share/kata-containers/vmlinuz.container",
        "-B", f"{ARCH_PARAMS} quiet systemd.show_status=false panic=1 maxcpus=1 {SYSTEMD_PARAMS}",
        f"sandbox-{SANDBOX}",
    ]


def test_debug_kernel_parameters():
    """``acrnArchBase.kernelParameters(debug)`` with ``handleImagePath``: ``debug`` plus the systemd debug
    set instead of ``quiet systemd.show_status=false``; agent debug adds ``agent.log=debug``
    (``KataAgentKernelParams``) after the config's parameters."""
    doc = _doc(enable_debug=True)
    doc["agent"]["kata"]["enable_debug"] = True
    params = _argv(doc)[-2]
    assert params == (f"{ARCH_PARAMS} debug systemd.show_status=true systemd.log_level=debug "
                      f"systemd.log_target=kmsg printk.devkmsg=on panic=1 maxcpus=1 {SYSTEMD_PARAMS} "
                      "agent.log=debug")


def test_sizing_and_user_kernel_params_come_last():
    """``kernelParameters``: ``maxcpus`` is ``DefaultMaxVCPUs``; the config's ``kernel_params`` are appended
    last so they override the defaults; ``-m`` follows ``default_memory``."""
    argv = _argv(_doc(default_memory=4096, default_maxvcpus=4, kernel_params="panic=0 foo"))
    assert argv[argv.index("-m") + 1] == "4096M"
    assert argv[-2].endswith(f"panic=1 maxcpus=4 {SYSTEMD_PARAMS} panic=0 foo")


def test_rootless_console_socket_and_fips():
    """``GetVMConsole`` builds the socket under the (rootless) VM store; ``checkForFIPS`` adds ``fips=1``."""
    facts = HostFacts(host_cpus=8, host_mem_mib=16384, rootless=True, uid=1000, fips=True)
    argv = _argv(_doc(), facts)
    assert f"3,virtio-console,@socket:console0=/run/user/1000/run/vc/vm/{SANDBOX}/console.sock" in argv
    assert argv[-2].endswith(" fips=1")


def test_image_is_required():
    """``newAcrnHypervisorConfig``: "image must be defined in the configuration file"."""
    with pytest.raises(ConfigError) as caught:
        _argv(_doc(image=""))
    assert caught.value.key == "hypervisor.acrn.image"


def test_every_argument_has_sources():
    rendered = render_doc(_doc(), HostFacts())
    assert rendered.hypervisor == "acrn" and rendered.vmconfig is None and rendered.daemon is None
    assert all(arg.sources for arg in rendered.argv)
    assert "hypervisor.acrn.default_memory" in rendered.argv[rendered.argv_values().index("-m") + 1].sources
