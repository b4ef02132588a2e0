"""Unit tests of the QEMU generator's rules, on configs derived in-test from the shipped default config."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from katatest.errors import ConfigError
from katatest.generate.kernel_params import serialize
from katatest.generate.qemu import devices as dev
from katatest.generate.qemu.arch import AMD64_KERNEL_PARAMS
from katatest.generate.qemu.transport import MMIO, PCI
from katatest.generate.render import render_doc
from katatest.generate.rendered import Rendered
from katatest.host.facts import HostFacts
from katatest.kata.hypervisor_config import Param
from katatest.kata.tomlconf import parse_toml

NAMED = Path(__file__).parent / "data" / "conformance" / "kata-3.0.0" / "named"
BASE = {arch: parse_toml((NAMED / name).read_text())
        for arch, name in (("amd64", "default.toml"), ("arm64", "arm64_default.toml"))}
VM_DIR = "/run/vc/vm/" + "1" * 64

AMD64_PARAMS = " ".join(serialize(list(AMD64_KERNEL_PARAMS)))
NVDIMM_ROOT = "root=/dev/pmem0p1 rootflags=dax,data=ordered,errors=remount-ro ro rootfstype=ext4"
BLK_ROOT = "root=/dev/vda1 rootflags=data=ordered,errors=remount-ro ro rootfstype=ext4"
CONSOLE = "console=hvc0 console=hvc1"
IMAGE_CONFIG_PARAMS = ("systemd.unit=kata-containers.target systemd.mask=systemd-networkd.service "
                       "systemd.mask=systemd-networkd.socket scsi_mod.scan=none")


def config(arch: str = "amd64", sections: dict[str, dict[str, Any]] | None = None, **qemu: Any) -> dict[str, Any]:
    """The shipped config of ``arch`` with ``[hypervisor.qemu]`` keys changed (None removes a key)."""
    doc = copy.deepcopy(BASE[arch])
    table = doc["hypervisor"]["qemu"]
    for key, value in qemu.items():
        if value is None:
            table.pop(key, None)
        else:
            table[key] = value
    for name, changes in (sections or {}).items():
        target = doc
        for part in name.split("."):
            target = target.setdefault(part, {})
        target.update(changes)
    return doc


def facts(arch: str = "amd64", **changes: Any) -> HostFacts:
    return HostFacts(arch=arch, host_cpus=8, host_mem_mib=16384).with_overrides(**changes)


def rendered(doc: dict[str, Any] | None = None, arch: str = "amd64", **fact_changes: Any) -> Rendered:
    return render_doc(doc if doc is not None else config(arch), facts(arch, **fact_changes))


def argv(doc: dict[str, Any] | None = None, arch: str = "amd64", **fact_changes: Any) -> list[str]:
    return rendered(doc, arch, **fact_changes).argv_values()


def after(args: list[str], flag: str) -> list[str]:
    """Every value that follows ``flag``."""
    return [args[i + 1] for i, a in enumerate(args[:-1]) if a == flag]


def one(args: list[str], flag: str) -> str:
    found = after(args, flag)
    assert len(found) == 1, (flag, found)
    return found[0]


def devices(args: list[str]) -> list[str]:
    return after(args, "-device")


def rejected(doc: dict[str, Any], arch: str = "amd64", **fact_changes: Any) -> ConfigError:
    with pytest.raises(ConfigError) as err:
        rendered(doc, arch, **fact_changes)
    assert len(str(err.value).splitlines()) == 1
    return err.value


# ---------------------------------------------------------------------------------------------------------
# Kernel parameters


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ([], []),
        ([Param("", "")], []),
        ([Param("", "value")], ["value"]),
        ([Param("key", "")], ["key"]),
        ([Param("key", "value")], ["key=value"]),
        ([Param("k", "a=b,c")], ["k=a=b,c"]),
        ([Param("a"), Param("", ""), Param("b", "1")], ["a", "b=1"]),
    ],
)
def test_serialize(params: list[Param], expected: list[str]) -> None:
    assert serialize(params) == expected


def test_default_command_line_order() -> None:
    expected = " ".join([AMD64_PARAMS, NVDIMM_ROOT, CONSOLE, "quiet systemd.show_status=false", "panic=1",
                         "nr_cpus=8", IMAGE_CONFIG_PARAMS])
    assert one(argv(), "-append") == expected


def test_user_params_last_then_fips() -> None:
    doc = config(kernel_params="foo=bar  baz k= a=b=c",
                 sections={"agent.kata": {"enable_debug": True}})
    line = one(argv(doc, fips=True), "-append")
    head = " ".join([AMD64_PARAMS, NVDIMM_ROOT, CONSOLE, "quiet systemd.show_status=false", "panic=1", "nr_cpus=8",
                     IMAGE_CONFIG_PARAMS, "agent.log=debug"])
    assert line == head + " foo=bar baz k a=b=c fips=1"


def test_empty_kernel_param_name_rejected() -> None:
    assert rejected(config(kernel_params="ok=1 =value")).key == "hypervisor.qemu.kernel_params"


def test_debug_replaces_quiet() -> None:
    line = one(argv(config(enable_debug=True)), "-append")
    assert f"{CONSOLE} debug systemd.show_status=true systemd.log_level=debug panic=1" in line
    assert "quiet" not in line


def test_initrd_has_no_root_or_systemd_params() -> None:
    doc = config(image=None, initrd="/opt/initrd.img")
    line = one(argv(doc), "-append")
    assert line == f"{AMD64_PARAMS} {CONSOLE} quiet panic=1 nr_cpus=8 scsi_mod.scan=none"


def test_virtio_blk_root_without_nvdimm() -> None:
    line = one(argv(config(disable_image_nvdimm=True, block_device_driver="virtio-blk")), "-append")
    assert f"{BLK_ROOT} {CONSOLE}" in line
    assert "scsi_mod.scan" not in line


def test_arm64_command_line_order() -> None:
    line = one(argv(arch="arm64"), "-append")
    assert line == (f"iommu.passthrough=0 {NVDIMM_ROOT} {CONSOLE} quiet systemd.show_status=false panic=1 "
                    f"nr_cpus=8 {IMAGE_CONFIG_PARAMS}")


def test_iommu_params_follow_arch_params() -> None:
    line = one(argv(config(enable_iommu=True)), "-append")
    assert line.startswith(f"{AMD64_PARAMS} intel_iommu=on iommu=pt {NVDIMM_ROOT}")


def test_nr_cpus_follows_maxvcpus() -> None:
    assert "nr_cpus=4" in one(argv(config(default_maxvcpus=4)), "-append")
    assert "nr_cpus=240" in one(argv(host_cpus=4096), "-append")
    assert "nr_cpus=123" in one(argv(arch="arm64", host_cpus=4096), "-append")


# ---------------------------------------------------------------------------------------------------------
# Memory


@pytest.mark.parametrize(("offset", "host", "expected"), [(0, 16384, 17408), (1000, 16384, 18408), (0, 1, 1025),
                                                          (2**64 - 1, 16384, 17407)])
def test_amd64_maxmem(offset: int, host: int, expected: int) -> None:
    assert one(argv(config(memory_offset=offset), host_mem_mib=host), "-m") == f"2048M,slots=10,maxmem={expected}M"


def test_arm64_maxmem_has_no_offset() -> None:
    args = argv(config("arm64", memory_offset=1000), arch="arm64")
    assert one(args, "-m") == "2048M,slots=10,maxmem=16384M"


def test_default_maxmemory_below_host() -> None:
    assert one(argv(config(default_maxmemory=4096)), "-m") == "2048M,slots=10,maxmem=5120M"
    assert one(argv(config(default_maxmemory=10**9)), "-m") == "2048M,slots=10,maxmem=17408M"


@pytest.mark.parametrize(("slots", "shown"), [(0, "slots=10,"), (20, "slots=20,"), (255, "slots=255,"),
                                              (256, ""), (257, "slots=1,"), (2**32 - 1, "slots=255,")])
def test_slots_are_uint8(slots: int, shown: str) -> None:
    assert one(argv(config(memory_slots=slots)), "-m") == f"2048M,{shown}maxmem=17408M"


@pytest.mark.parametrize(("memory", "size"), [(0, 2048), (255, 2048), (256, 256), (4096, 4096)])
def test_default_memory(memory: int, size: int) -> None:
    args = argv(config(default_memory=memory))
    assert one(args, "-m").startswith(f"{size}M,")
    assert f"memory-backend-file,id=dimm1,size={size}M,mem-path=/dev/shm,share=on" in after(args, "-object")


# ---------------------------------------------------------------------------------------------------------
# CPU and SMP


@pytest.mark.parametrize(("features", "cpu"), [("", "host,"), (",", "host,"), ("pmu=off", "host,pmu=off"),
                                               (" pmu=off , ,vmx=on,", "host,pmu=off,,vmx=on")])
def test_cpu_model(features: str, cpu: str) -> None:
    """Kata's cpuFeatures: empty items dropped, then each item trimmed (so " " leaves an empty item)."""
    assert one(argv(config(cpu_features=features)), "-cpu") == cpu


def test_smp_default() -> None:
    args = argv()
    assert one(args, "-smp") == "1,cores=1,threads=1,sockets=8,maxcpus=8"
    assert args[-2] == "-smp"


def test_smp_error_when_vcpus_exceed_maxvcpus() -> None:
    err = rejected(config(default_vcpus=8, default_maxvcpus=4))
    assert err.key == "hypervisor.qemu.default_maxvcpus"
    assert "MaxCPUs 4" in str(err) and "CPUs 8" in str(err)


def test_vcpus_clamped_to_host() -> None:
    assert one(argv(config(default_vcpus=64)), "-smp") == "8,cores=1,threads=1,sockets=8,maxcpus=8"
    assert one(argv(config(default_vcpus=-1)), "-smp") == "8,cores=1,threads=1,sockets=8,maxcpus=8"


# ---------------------------------------------------------------------------------------------------------
# Nesting


def modern_flags(args: list[str]) -> list[str]:
    return [d for d in devices(args) if "disable-modern" in d]


def test_nested_amd64_disables_modern() -> None:
    flags = modern_flags(argv(nested=True))
    assert len(flags) == 3  # virtio-serial, virtio-scsi, vhost-vsock
    assert all("disable-modern=true" in d for d in flags)
    assert all("disable-modern=false" in d for d in modern_flags(argv(nested=False)))


def test_nested_ignored_with_disable_nesting_checks() -> None:
    flags = modern_flags(argv(config(disable_nesting_checks=True), nested=True))
    assert flags and all("disable-modern=false" in d for d in flags)


def test_nested_ignored_on_arm64() -> None:
    flags = modern_flags(argv(arch="arm64", nested=True))
    assert flags and all("disable-modern=false" in d for d in flags)


def test_nested_9p_and_block_image() -> None:
    doc = config(shared_fs="virtio-9p", disable_image_nvdimm=True)
    flags = modern_flags(argv(doc, nested=True))
    assert any(d.startswith("virtio-9p-pci,disable-modern=true") for d in flags)
    assert any(d.startswith("virtio-blk-pci,disable-modern=true") for d in flags)


# ---------------------------------------------------------------------------------------------------------
# microvm


def test_microvm_transport_and_memory_backend() -> None:
    args = argv(config(machine_type="microvm"))
    machines = after(args, "-machine")
    assert machines == ["microvm,accel=kvm,kernel_irqchip=on", "memory-backend=dimm1"]
    assert "-numa" not in args
    names = [d.split(",")[0] for d in devices(args)]
    assert names == ["virtio-serial-device", "virtconsole", "virtio-blk-device", "virtio-scsi-device",
                     "virtio-rng-device", "vhost-vsock-device", "vhost-user-fs-device"]
    assert not any("disable-modern" in d or "pci-bridge" in d for d in devices(args))
    assert "nvdimm=on" not in machines[0]


def test_microvm_no_root_ports_and_nested_has_no_disable_modern() -> None:
    args = argv(config(machine_type="microvm", pcie_root_port=2), nested=True)
    assert not any(d.startswith("pcie-root-port") or "disable-modern" in d for d in devices(args))


def test_q35_uses_numa() -> None:
    args = argv()
    assert one(args, "-numa") == "node,memdev=dimm1"
    assert after(args, "-machine") == ["q35,accel=kvm,kernel_irqchip=on,nvdimm=on"]


# ---------------------------------------------------------------------------------------------------------
# Bridges and PCIe root ports


def bridges(args: list[str]) -> list[str]:
    return [d for d in devices(args) if d.startswith("pci-bridge")]


@pytest.mark.parametrize(("requested", "count"), [(0, 1), (1, 1), (3, 3), (5, 5), (16, 5), (2**32 - 1, 5)])
def test_bridge_count(requested: int, count: int) -> None:
    found = bridges(argv(config(default_bridges=requested)))
    assert len(found) == count
    for index, bridge in enumerate(found):
        assert f"id=pci-bridge-{index},chassis_nr={index + 1},shpc=off,addr={index + 2:x}," in bridge


def test_bridge_addr_is_hex() -> None:
    assert "addr=11," in dev.PCIBridge(bus="pcie.0", id="pci-bridge-15", chassis=16, addr=17).params(PCI)[1]
    assert "addr=a," in dev.PCIBridge(bus="pcie.0", id="b", chassis=9, addr=10).params(PCI)[1]
    assert dev.PCIBridge(bus="", id="b").valid() is False


def test_arm64_bridges() -> None:
    assert len(bridges(argv(config("arm64", default_bridges=3), arch="arm64"))) == 3


@pytest.mark.parametrize("arch", ["amd64", "arm64"])
def test_pcie_root_ports(arch: str) -> None:
    ports = [d for d in devices(argv(config(arch, pcie_root_port=2), arch=arch)) if d.startswith("pcie-root-port")]
    assert ports == [f"pcie-root-port,id=rp{i},bus=pcie.0,chassis=0,slot={i},multifunction=off,"
                     "pref64-reserve=2097152B,mem-reserve=4194304B" for i in range(2)]


def test_root_ports_after_rng_before_vsock() -> None:
    names = [d.split(",")[0] for d in devices(argv(config(pcie_root_port=1)))]
    assert names.index("virtio-rng-pci") + 1 == names.index("pcie-root-port")
    assert names.index("pcie-root-port") + 1 == names.index("vhost-vsock-pci")


# ---------------------------------------------------------------------------------------------------------
# Shared filesystem


def test_9p_multidevs_amd64_only() -> None:
    amd = after(argv(config(shared_fs="virtio-9p")), "-fsdev")
    arm = after(argv(config("arm64", shared_fs="virtio-9p"), arch="arm64"), "-fsdev")
    shared = f"/run/kata-containers/shared/sandboxes/{'1' * 64}/shared"
    assert amd == [f"local,id=extra-9p-kataShared,path={shared},security_model=none,multidevs=remap"]
    assert arm == [f"local,id=extra-9p-kataShared,path={shared},security_model=none"]


def test_9p_has_no_daemon_and_ram_backend() -> None:
    r = rendered(config(shared_fs="virtio-9p"))
    assert r.daemon is None
    assert "memory-backend-ram,id=dimm1,size=2048M" in after(r.argv_values(), "-object")


def test_virtio_fs_cache_size() -> None:
    fs = [d for d in devices(argv(config(virtio_fs_cache_size=1024))) if d.startswith("vhost-user-fs")]
    assert len(fs) == 1 and fs[0].endswith(",tag=kataShared,cache-size=1024M")


def test_no_vsock_no_sharedfs() -> None:
    names = [d.split(",")[0] for d in devices(argv(vsock=False, sharedfs=False))]
    assert "vhost-vsock-pci" not in names and "vhost-user-fs-pci" not in names


def test_vsock_cid_out_of_range_is_dropped() -> None:
    assert not any(d.startswith("vhost-vsock") for d in devices(argv(vsock_cid=2)))
    assert any("guest-cid=4294967295" in d for d in devices(argv(vsock_cid=2**32 - 1)))


# ---------------------------------------------------------------------------------------------------------
# Confidential guests and firmware


def test_firmware_gives_bios() -> None:
    args = argv(config(firmware="/opt/OVMF.fd"))
    assert one(args, "-bios") == "/opt/OVMF.fd"
    assert args.index("-bios") > args.index("-append")


def test_sev_objects_and_no_bios() -> None:
    args = argv(config(confidential_guest=True, firmware="/opt/OVMF.sev.fd", default_vcpus=2),
                guest_protection="sev", sev_cbitpos=51, sev_reduced_phys_bits=5)
    assert "-bios" not in args
    assert after(args, "-machine") == ["q35,accel=kvm,kernel_irqchip=split,confidential-guest-support=sev"]
    assert "sev-guest,id=sev,cbitpos=51,reduced-phys-bits=5" in after(args, "-object")
    assert "if=pflash,format=raw,readonly=on,file=/opt/OVMF.sev.fd" in after(args, "-drive")
    assert one(args, "-smp") == "2,cores=1,threads=1,sockets=2,maxcpus=2"
    assert not any(d.startswith("nvdimm") for d in devices(args))


def test_tdx_objects_and_no_bios() -> None:
    args = argv(config(confidential_guest=True, firmware="/opt/OVMF.tdx.fd", firmware_volume="/opt/vars.fd"),
                guest_protection="tdx")
    assert "-bios" not in args
    assert after(args, "-machine") == ["q35,accel=kvm,kernel_irqchip=split,kvm-type=tdx,"
                                       "confidential-guest-support=tdx"]
    assert "loader,id=fd0,file=/opt/OVMF.tdx.fd,config-firmware-volume=/opt/vars.fd" in devices(args)
    assert "tdx-guest,id=tdx" in after(args, "-object")


def test_tdx_without_firmware_drops_loader() -> None:
    args = argv(config(confidential_guest=True), guest_protection="tdx")
    assert "tdx-guest,id=tdx" not in after(args, "-object")
    assert "-bios" not in args


def test_confidential_without_host_support() -> None:
    assert rejected(config(confidential_guest=True)).key == "hypervisor.qemu.confidential_guest"


def test_confidential_ignored_on_arm64() -> None:
    args = argv(config("arm64", confidential_guest=True), arch="arm64", guest_protection="tdx")
    assert after(args, "-machine") == ["virt,usb=off,accel=kvm,gic-version=host,nvdimm=on"]


# ---------------------------------------------------------------------------------------------------------
# Console, seccomp, debug log


def test_legacy_serial() -> None:
    args = argv(config(use_legacy_serial=True))
    assert one(args, "-serial") == "chardev:charconsole0"
    assert f"socket,id=charconsole0,path={VM_DIR}/console.sock,server=on,wait=off" in after(args, "-chardev")
    assert not any(d.startswith(("virtio-serial", "virtconsole")) for d in devices(args))
    assert "console=ttyS0 quiet" in one(args, "-append")
    assert args.index("-serial") + 2 == args.index("-chardev")


def test_seccomp_sandbox_is_last_but_smp() -> None:
    value = "on,obsolete=deny,spawn=deny,resourcecontrol=deny"
    args = argv(config(seccompsandbox=value, enable_debug=True))
    assert args[-6:-2] == ["-D", f"{VM_DIR}/qemu.log", "-sandbox", value]
    assert args[-2] == "-smp"


def test_debug_log() -> None:
    args = argv(config(enable_debug=True))
    assert one(args, "-D") == f"{VM_DIR}/qemu.log"
    assert args.index("-D") == args.index("-pidfile") + 2
    assert "-D" not in argv()


def test_debug_log_rootless() -> None:
    args = argv(config(enable_debug=True), rootless=True, xdg_runtime_dir="/run/user/1000")
    assert one(args, "-D") == f"/run/user/1000/run/vc/vm/{'1' * 64}/qemu.log"


def test_fixed_tail_order() -> None:
    args = argv(config(enable_debug=True))
    tail = args[args.index("-rtc"):]
    assert tail[:11] == ["-rtc", "base=utc,driftfix=slew,clock=host", "-global", "kvm-pit.lost_tick_policy=discard",
                         "-vga", "none", "-no-user-config", "-nodefaults", "-nographic", "--no-reboot", "-daemonize"]


# ---------------------------------------------------------------------------------------------------------
# Devices at the unit level


def test_transport_names() -> None:
    rng = dev.RngDevice(filename="/dev/urandom")
    assert rng.params(PCI)[-1] == "virtio-rng-pci,rng=rng0"
    assert rng.params(MMIO)[-1] == "virtio-rng-device,rng=rng0"
    vsock = dev.VhostVsock(context_id=3, disable_modern=True)
    assert vsock.params(PCI)[1] == "vhost-vsock-pci,disable-modern=true,vhostfd=3,id=vsock-3,guest-cid=3"
    assert vsock.params(MMIO)[1] == "vhost-vsock-device,vhostfd=3,id=vsock-3,guest-cid=3"


def test_sev_guest_validity() -> None:
    assert dev.SEVGuest(file="/f", cbitpos=47, reduced_phys_bits=1).valid()
    assert not dev.SEVGuest(file="", cbitpos=47, reduced_phys_bits=1).valid()
    assert not dev.SEVGuest(file="/f", cbitpos=0, reduced_phys_bits=1).valid()


# ---------------------------------------------------------------------------------------------------------
# Paths: spaces, commas, unicode, NUL, existing images


def test_awkward_paths_pass_through() -> None:
    kernel, image = "/opt/a b,c/vmlinüx", "/opt/日本 x,y.img"
    args = argv(config(kernel=kernel, image=image, path="/opt/q e m u"))
    assert args[0] == "/opt/q e m u"
    assert one(args, "-kernel") == kernel
    assert f"memory-backend-file,id=mem0,mem-path={image},size=268435456,readonly=on" in after(args, "-object")


@pytest.mark.parametrize("key", ["path", "kernel", "image", "entropy_source", "virtio_fs_daemon", "kernel_params",
                                 "cpu_features", "firmware"])
def test_nul_byte_rejected(key: str) -> None:
    err = rejected(config(**{key: "/x\0y"}))
    assert err.key.startswith("hypervisor.qemu.")
    assert "\0" not in str(err)


def test_nul_in_extra_args_rejected() -> None:
    assert rejected(config(virtio_fs_extra_args=["--ok", "bad\0"])).key == "hypervisor.qemu.virtio_fs_extra_args"


def test_image_size_is_the_host_fact_not_the_file(tmp_path: Path) -> None:
    """The generator reads nothing on this host: an existing image's own size does not matter."""
    image = tmp_path / "img"
    image.write_bytes(b"x" * 4097)
    args = argv(config(image=str(image)), image_size=1)
    assert f"memory-backend-file,id=mem0,mem-path={image},size=1,readonly=on" in after(args, "-object")


def test_empty_image_rejected() -> None:
    assert rejected(config(), image_size=0).key == "hypervisor.qemu.image"


def test_odd_table_names_keep_errors_on_one_line() -> None:
    doc = config()
    doc["agent"]["bad\nname"] = {"enable_debug": "yes"}
    err = rejected(doc)
    assert "\\n" in str(err)
