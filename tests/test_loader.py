"""The Kata 3.0.0 configuration loader against Kata's own conformance vectors, plus its defaulting maths."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from katatest.errors import ConfigError, HostFactsError
from katatest.host.facts import HostFacts
from katatest.host.flags import facts_from_flags, parse_flags
from katatest.kata import getters
from katatest.kata.hypervisor_config import Param
from katatest.kata.loader import load_kata_config
from katatest.kata.tomlconf import load_toml, parse_toml
from katatest.kata.validate import check_qemu_launch

VECTORS = Path(__file__).parent / "data" / "conformance"
CASES = sorted(VECTORS.glob("kata-3.0.0*/*/*.toml"))
CREATE_NETWORK = "createNetwork: "  # Sandbox.createNetwork (tests/test_conformance_net.py checks those)
LAUNCH_ERROR = re.compile(r"^LaunchQemu: (MaxCPUs \d+ must be equal to or greater than CPUs \d+)")


def _case_id(path: Path) -> str:
    return f"{path.parent.parent.name}/{path.parent.name}/{path.stem}"


def _load(toml: Path):
    facts = facts_from_flags(toml.with_suffix(".flags").read_text())
    return load_kata_config(load_toml(toml), facts, toml.name)


@pytest.mark.parametrize("toml", CASES, ids=_case_id)
def test_vector(toml: Path) -> None:
    err_file = toml.with_suffix(".err")
    if not err_file.exists():
        _load(toml)
        return
    if err_file.read_text().startswith(CREATE_NETWORK):  # the loader accepts it; the network step fails later
        _load(toml)
        return
    launch = LAUNCH_ERROR.match(err_file.read_text())
    if launch:  # govmm rejects it when building the QEMU argv, not the loader
        hv = _load(toml).hypervisor
        with pytest.raises(ConfigError, match=launch.group(1)) as err:
            check_qemu_launch(hv.num_vcpus, hv.default_max_vcpus)
        assert err.value.stage == "LaunchQemu"
        return
    with pytest.raises(ConfigError) as err:
        _load(toml)
    assert err.value.stage == err_file.read_text().split(":")[0]


def test_vectors_present() -> None:
    assert len(CASES) > 300


# --- defaulting and clamping maths (katautils getters) -------------------------------------------------


@pytest.mark.parametrize(
    ("requested", "host_cpus", "arch", "expected"),
    [
        (0, 8, "amd64", 1),
        (-1, 8, "amd64", 8),
        (4, 8, "amd64", 4),
        (8, 8, "amd64", 8),
        (9, 8, "amd64", 8),
        (-5, 300, "amd64", 240),
        (200, 300, "arm64", 123),
        (2, 1, "amd64", 1),
    ],
)
def test_default_vcpus(requested: int, host_cpus: int, arch: str, expected: int) -> None:
    assert getters.default_vcpus(requested, host_cpus, arch) == expected


@pytest.mark.parametrize(
    ("requested", "host_cpus", "arch", "expected"),
    [
        (0, 8, "amd64", 8),
        (4, 8, "amd64", 4),
        (8, 8, "amd64", 8),
        (16, 8, "amd64", 8),
        (0, 512, "amd64", 240),
        (0, 512, "arm64", 123),
        (100, 512, "arm64", 100),
    ],
)
def test_default_max_vcpus(requested: int, host_cpus: int, arch: str, expected: int) -> None:
    assert getters.default_max_vcpus(requested, host_cpus, arch) == expected


def test_memory_defaults() -> None:
    assert getters.default_mem_size(0) == 2048
    assert getters.default_mem_size(255) == 2048
    assert getters.default_mem_size(256) == 256
    assert getters.default_max_mem_size(0, 16384) == 16384
    assert getters.default_max_mem_size(20000, 16384) == 16384
    assert getters.default_max_mem_size(4096, 16384) == 4096


def test_bridges_and_lists() -> None:
    assert [getters.default_bridges(n) for n in (0, 1, 5, 6)] == [1, 1, 5, 5]
    assert getters.comma_list(",pmu=off , x2apic,") == "pmu=off,x2apic"
    # Go keeps a blank item (it only skips empty ones): it becomes an empty entry
    assert getters.comma_list("a, ,b") == "a,,b"
    assert getters.comma_list("") == ""
    assert getters.deserialize_params(" a=b  c d=e=f ") == [Param("a", "b"), Param("c"), Param("d", "e=f")]


# --- whole-config behaviour ----------------------------------------------------------------------------

QEMU = """
[hypervisor.qemu]
path = "/usr/bin/qemu-system-x86_64"
kernel = "/k"
image = "/i"
virtio_fs_daemon = "/usr/libexec/virtiofsd"
{extra}
[agent.kata]
{agent}
[runtime]
{runtime}
"""


def _cfg(extra: str = "", agent: str = "", runtime: str = "", facts: HostFacts | None = None):
    doc = parse_toml(QEMU.format(extra=extra, agent=agent, runtime=runtime))
    return load_kata_config(doc, facts or HostFacts(host_cpus=8, host_mem_mib=16384), "t.toml")


def test_qemu_defaults_and_sources() -> None:
    cfg = _cfg()
    hv = cfg.hypervisor
    assert cfg.hypervisor_type == "qemu"
    assert (hv.num_vcpus, hv.default_max_vcpus, hv.memory_size, hv.default_max_memory_size) == (
        1,
        8,
        2048,
        16384,
    )
    assert (hv.hypervisor_machine_type, hv.block_device_driver, hv.shared_fs) == (
        "q35",
        "virtio-scsi",
        "virtio-fs",
    )
    assert (hv.block_device_aio, hv.virtio_fs_cache, hv.msize9p, hv.mem_slots) == (
        "io_uring",
        "none",
        8192,
        10,
    )
    assert hv.entropy_source == "/dev/urandom"
    assert hv.kernel_params[:4] == [
        Param("systemd.unit", "kata-containers.target"),
        Param("systemd.mask", "systemd-networkd.service"),
        Param("systemd.mask", "systemd-networkd.socket"),
        Param("scsi_mod.scan", "none"),
    ]
    assert cfg.agent.long_live_conn
    assert cfg.sources["hypervisor.num_vcpus"] == (
        "hypervisor.qemu.default_vcpus",
        "host.host_cpus",
        "host.arch",
    )


def test_agent_kernel_params_come_before_user_params() -> None:
    cfg = _cfg('kernel_params = "quiet x=1"', agent="enable_debug = true\ndebug_console_enabled = true")
    names = [p.key for p in cfg.hypervisor.kernel_params]
    assert names[-5:] == ["agent.log", "agent.debug_console", "agent.debug_console_vport", "quiet", "x"]


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ('default_vcpus = "2"', "hypervisor.qemu.default_vcpus"),
        ("default_maxvcpus = -1", "hypervisor.qemu.default_maxvcpus"),
        ("default_vcpus = 2147483648", "hypervisor.qemu.default_vcpus"),
        ('block_device_driver = "bogus"', "hypervisor.qemu.block_device_driver"),
        ('block_device_aio = "posix"', "hypervisor.qemu.block_device_aio"),
        ('shared_fs = "none"', "hypervisor.qemu.shared_fs"),
        ('kernel_params = "=x"', "hypervisor.qemu.kernel_params"),
        ('initrd = "/r"', "hypervisor.qemu.initrd"),
        ('machine_type = "pc"', "hypervisor.qemu.machine_type"),
        ("enable_vhost_user_store = true", "hypervisor.qemu.enable_vhost_user_store"),
        ("confidential_guest = true", "hypervisor.qemu.confidential_guest"),
        ('machine_type = "microvm"\nenable_iommu = true', "hypervisor.qemu.enable_iommu"),
    ],
)
def test_rejections_name_the_key(extra: str, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        _cfg(extra)
    assert err.value.key == key


def test_runtime_rejections() -> None:
    for runtime, key in (
        ('internetworking_model = "bogus"', "runtime.internetworking_model"),
        ('vfio_mode = "x"', "runtime.vfio_mode"),
        ('experimental = ["newstore"]', "runtime.experimental"),
        ("disable_new_netns = true", "runtime.disable_new_netns"),
    ):
        with pytest.raises(ConfigError) as err:
            _cfg(runtime=runtime)
        assert err.value.key == key
    _cfg(runtime='disable_new_netns = true\ninternetworking_model = "none"')


def test_empty_daemon_rejected_for_virtio_fs_only() -> None:
    doc = parse_toml('[hypervisor.qemu]\nimage = "/i"\nshared_fs = "virtio-9p"\n')
    assert load_kata_config(doc, HostFacts()).hypervisor.shared_fs == "virtio-9p"
    with pytest.raises(ConfigError, match="virtio_fs_daemon"):
        load_kata_config(parse_toml('[hypervisor.qemu]\nimage = "/i"\n'), HostFacts())


def test_static_sandbox_sizing() -> None:
    facts = HostFacts(host_cpus=8, host_mem_mib=16384, workload_cpus=2, workload_mem_mib=512)
    cfg = _cfg("default_vcpus = 1", runtime="static_sandbox_resource_mgmt = true", facts=facts)
    assert (cfg.hypervisor.num_vcpus, cfg.hypervisor.memory_size) == (3, 2560)
    assert "host.workload_cpus" in cfg.sources["hypervisor.num_vcpus"]


def test_confidential_guest_pins_max_vcpus() -> None:
    facts = HostFacts(host_cpus=8, host_mem_mib=4096, guest_protection="tdx")
    cfg = _cfg("confidential_guest = true\ndefault_vcpus = 2", facts=facts)
    assert (cfg.hypervisor.num_vcpus, cfg.hypervisor.default_max_vcpus) == (2, 2)


def test_microvm_disables_nvdimm() -> None:
    assert _cfg('machine_type = "microvm"').hypervisor.disable_image_nvdimm


def test_initrd_must_fit_in_memory() -> None:
    doc = parse_toml(
        '[hypervisor.qemu]\ninitrd = "/nonexistent/r"\nvirtio_fs_daemon = "/d"\ndefault_memory = 300\n'
    )
    load_kata_config(doc, HostFacts(initrd_size=299 * 2**20))
    with pytest.raises(ConfigError, match="initrd"):
        load_kata_config(doc, HostFacts(initrd_size=300 * 2**20))
    with pytest.raises(ConfigError, match="empty"):
        load_kata_config(doc, HostFacts(initrd_size=0))


def test_template_needs_initrd() -> None:
    doc = parse_toml(
        '[hypervisor.qemu]\nimage = "/i"\nvirtio_fs_daemon = "/d"\n[factory]\nenable_template = true\n'
    )
    with pytest.raises(ConfigError) as err:
        load_kata_config(doc, HostFacts())
    assert err.value.key == "factory.enable_template"


def test_several_hypervisor_tables_rejected() -> None:
    doc = parse_toml('[hypervisor.qemu]\nimage = "/i"\n[hypervisor.clh]\nimage = "/i"\n')
    with pytest.raises(ConfigError, match="several hypervisor tables"):
        load_kata_config(doc, HostFacts())


def test_clh_and_firecracker_specifics() -> None:
    clh = load_kata_config(
        parse_toml('[hypervisor.clh]\nimage = "/i"\nvirtio_fs_daemon = "/d"\n'), HostFacts()
    )
    assert clh.hypervisor_type == "clh" and clh.hypervisor.disable_vhost_net
    assert clh.hypervisor.virtio_fs_cache == ""  # the clh path applies no default
    fc = load_kata_config(parse_toml('[hypervisor.firecracker]\nimage = "/i"\n'), HostFacts())
    assert fc.hypervisor_type == "fc" and fc.hypervisor.shared_fs == "" and fc.hypervisor.msize9p == 8192
    with pytest.raises(ConfigError, match="missing image and initrd"):
        load_kata_config(parse_toml("[hypervisor.firecracker]\n"), HostFacts())


def test_acrn_requires_image() -> None:
    acrn = load_kata_config(parse_toml('[hypervisor.acrn]\nimage = "/i"\n'), HostFacts())
    assert acrn.hypervisor.hypervisor_ctl_path == "/usr/bin/acrnctl"
    with pytest.raises(ConfigError) as err:
        load_kata_config(parse_toml('[hypervisor.acrn]\ninitrd = "/r"\n'), HostFacts())
    assert err.value.key == "hypervisor.acrn.image"


# --- .flags parsing -------------------------------------------------------------------------------------


def test_parse_flags() -> None:
    facts, daemon = parse_flags(
        "--arch arm64 --host-cpus 4 --host-mem-mib 2048 --nested --no-vsock --virtiofsd"
    )
    assert (facts.arch, facts.host_cpus, facts.host_mem_mib, facts.nested, facts.vsock) == (
        "arm64",
        4,
        2048,
        True,
        False,
    )
    assert daemon and facts.uid == 0 and not facts.rootless and facts.sandbox_id == "1" * 64
    facts, daemon = parse_flags("--host-cpus 2 --host-mem-mib 1024 --id abc --no-sharedfs")
    assert (facts.sandbox_id, facts.sharedfs, facts.nested, daemon) == ("abc", False, False, False)
    with pytest.raises(HostFactsError):
        parse_flags("--bogus 1")
