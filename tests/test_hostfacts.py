"""Host facts: probing a fake /proc + /sys tree, validation, overrides and the rootless sandbox paths."""

from __future__ import annotations

import copy
import os
import platform
from pathlib import Path

import pytest

from katatest.errors import ConfigError, HostFactsError
from katatest.generate.paths import MAX_SOCKET_PATH_LEN, sandbox_paths
from katatest.generate.render import render_doc
from katatest.host import facts as hostfacts
from katatest.host.facts import HostFacts, detect, detect_protection, detect_sev_bits
from katatest.kata.tomlconf import parse_toml

NAMED = Path(__file__).parent / "data" / "conformance" / "kata-3.0.0" / "named"
DEFAULT_DOC = parse_toml((NAMED / "default.toml").read_text())

FLAGS = "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr vmx sse sse2"


def cpuinfo(cpus: int, flags: str = FLAGS, key: str = "flags") -> str:
    blocks = [f"processor\t: {i}\nvendor_id\t: GenuineIntel\n{key}\t\t: {flags}\n" for i in range(cpus)]
    return "\n".join(blocks)


def make_root(tmp: Path, files: dict[str, str], dirs: tuple[str, ...] = ()) -> Path:
    """A fake root: ``files`` maps paths relative to / to contents."""
    for rel, text in files.items():
        path = tmp / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for rel in dirs:
        (tmp / rel).mkdir(parents=True, exist_ok=True)
    return tmp


@pytest.fixture
def amd64(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(platform, "machine", lambda: "x86_64")


@pytest.fixture
def arm64(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(platform, "machine", lambda: "aarch64")


# ---------------------------------------------------------------------------------------------------------
# detect(root)


def test_detect_bare_metal(tmp_path: Path, amd64: None) -> None:
    root = make_root(tmp_path, {"proc/cpuinfo": cpuinfo(12), "proc/meminfo": "MemTotal:       16384000 kB\n"
                                "MemFree:         1234 kB\n"})
    facts = detect(root)
    assert facts.arch == "amd64"
    assert facts.host_cpus == 12
    assert facts.host_mem_mib == 16000
    assert facts.nested is False
    assert facts.guest_protection == "none"
    assert facts.fips is False


def test_detect_nested(tmp_path: Path, amd64: None) -> None:
    root = make_root(tmp_path, {"proc/cpuinfo": cpuinfo(2, FLAGS + " hypervisor")})
    facts = detect(root)
    assert facts.nested is True
    assert facts.host_cpus == 2


def test_detect_tdx_cpu_flag(tmp_path: Path, amd64: None) -> None:
    root = make_root(tmp_path, {"proc/cpuinfo": cpuinfo(4, FLAGS + " tdx")})
    assert detect_protection(root) == "tdx"
    assert detect(root).guest_protection == "tdx"


def test_detect_tdx_seam_dir(tmp_path: Path, amd64: None) -> None:
    root = make_root(tmp_path, {"proc/cpuinfo": cpuinfo(1)}, dirs=("sys/firmware/tdx_seam",))
    assert detect(root).guest_protection == "tdx"


def test_tdx_seam_must_be_a_directory(tmp_path: Path, amd64: None) -> None:
    root = make_root(tmp_path, {"sys/firmware/tdx_seam": "not a dir"})
    assert detect_protection(root) == "none"


@pytest.mark.parametrize(("value", "expected"), [("1", "sev"), ("Y", "sev"), ("1\n", "sev"), ("0", "none"),
                                                 ("N", "none"), ("", "none")])
def test_detect_sev(tmp_path: Path, amd64: None, value: str, expected: str) -> None:
    root = make_root(tmp_path, {"sys/module/kvm_amd/parameters/sev": value})
    assert detect_protection(root) == expected
    assert detect(root).guest_protection == expected


def test_tdx_wins_over_sev(tmp_path: Path, amd64: None) -> None:
    root = make_root(tmp_path, {"sys/module/kvm_amd/parameters/sev": "Y"}, dirs=("sys/firmware/tdx_seam",))
    assert detect_protection(root) == "tdx"


def test_sev_bits_from_fake_cpuid(tmp_path: Path, amd64: None) -> None:
    root = make_root(tmp_path, {"sys/module/kvm_amd/parameters/sev": "1"})
    cpuid = root / "dev/cpu/0/cpuid"
    cpuid.parent.mkdir(parents=True)
    ebx = 51 | (5 << 6)
    with open(cpuid, "wb") as f:  # sparse: only the 16 bytes of leaf 0x8000001f are written
        f.seek(0x8000001F)
        f.write(b"\0" * 4 + ebx.to_bytes(4, "little") + b"\0" * 8)
    assert detect_sev_bits(root) == (51, 5)
    facts = detect(root)
    assert (facts.guest_protection, facts.sev_cbitpos, facts.sev_reduced_phys_bits) == ("sev", 51, 5)


def test_sev_bits_default_when_unreadable(tmp_path: Path) -> None:
    assert detect_sev_bits(tmp_path) == (47, 1)
    short = tmp_path / "dev/cpu/0/cpuid"
    short.parent.mkdir(parents=True)
    short.write_bytes(b"\1" * 16)  # far too short to hold leaf 0x8000001f
    assert detect_sev_bits(tmp_path) == (47, 1)


@pytest.mark.parametrize(("value", "expected"), [("1", True), ("1\n", True), ("0", False), ("", False)])
def test_detect_fips(tmp_path: Path, amd64: None, value: str, expected: bool) -> None:
    root = make_root(tmp_path, {"proc/sys/crypto/fips_enabled": value})
    assert detect(root).fips is expected


def test_detect_fips_absent(tmp_path: Path, amd64: None) -> None:
    assert detect(tmp_path).fips is False


def test_detect_empty_root_falls_back(tmp_path: Path, amd64: None) -> None:
    facts = detect(tmp_path)
    assert facts.host_cpus == (os.cpu_count() or 1)
    assert facts.host_mem_mib == 1024
    assert facts.guest_protection == "none"
    assert facts.nested is False


@pytest.mark.parametrize("meminfo", ["MemTotal:\n", "MemTotal: lots kB\n", "MemTotal: 512 kB\n", "garbage",
                                     "MemTotal: -5 kB\n"])
def test_detect_odd_meminfo(tmp_path: Path, amd64: None, meminfo: str) -> None:
    root = make_root(tmp_path, {"proc/meminfo": meminfo})
    assert detect(root).host_mem_mib >= 1


def test_detect_binary_garbage(tmp_path: Path, amd64: None) -> None:
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc/cpuinfo").write_bytes(b"processor\t: 0\nflags\t: \xff\xfe hypervisor\n")
    (tmp_path / "proc/meminfo").write_bytes(b"\xff\xfe\x00")
    facts = detect(tmp_path)
    assert facts.host_cpus == 1
    assert facts.nested is True


def test_detect_arm64(tmp_path: Path, arm64: None) -> None:
    root = make_root(tmp_path, {"proc/cpuinfo": cpuinfo(8, "fp asimd evtstrm aes tdx", key="Features"),
                                "sys/module/kvm_amd/parameters/sev": "1"},
                     dirs=("sys/firmware/tdx_seam",))
    facts = detect(root)
    assert facts.arch == "arm64"
    assert facts.host_cpus == 8
    assert facts.guest_protection == "none"  # availableGuestProtection is amd64-only in 3.0.0


def test_detected_facts_render(tmp_path: Path, amd64: None) -> None:
    root = make_root(tmp_path, {"proc/cpuinfo": cpuinfo(4, FLAGS + " hypervisor"),
                                "proc/meminfo": "MemTotal: 8388608 kB\n", "proc/sys/crypto/fips_enabled": "1"})
    argv = render_doc(copy.deepcopy(DEFAULT_DOC), detect(root)).argv_values()
    assert "2048M,slots=10,maxmem=9216M" in argv
    assert argv[argv.index("-append") + 1].endswith(" fips=1")
    assert "virtio-serial-pci,disable-modern=true,id=serial0" in argv


# ---------------------------------------------------------------------------------------------------------
# Validation


@pytest.mark.parametrize(
    ("changes", "flag"),
    [
        ({"arch": "sparc"}, "--arch"),
        ({"arch": "x86_64"}, "--arch"),
        ({"guest_protection": "snp"}, "--guest-protection"),
        ({"host_cpus": 0}, "--host-cpus"),
        ({"host_cpus": -1}, "--host-cpus"),
        ({"host_mem_mib": 0}, "--host-mem-mib"),
        ({"vsock_cid": -1}, "--vsock-cid"),
        ({"image_size": -1}, "--image-size"),
        ({"initrd_size": -1}, "--initrd-size"),
        ({"sev_cbitpos": -1}, "--sev-cbitpos"),
        ({"sev_reduced_phys_bits": -1}, "--sev-reduced-phys-bits"),
        ({"workload_cpus": -1}, "--workload-cpus"),
        ({"workload_mem_mib": -1}, "--workload-mem-mib"),
        ({"host_cpus": "8"}, "--host-cpus"),
        ({"host_mem_mib": 1.5}, "--host-mem-mib"),
        ({"vsock_cid": True}, "--vsock-cid"),
        ({"sandbox_id": ""}, "--id"),
        ({"sandbox_id": "a"}, "--id"),
        ({"sandbox_id": "a/b"}, "--id"),
        ({"sandbox_id": "a,b"}, "--id"),
        ({"sandbox_id": "nul\0x"}, "--id"),
        ({"sandbox_id": "line\nbreak"}, "--id"),
        ({"sandbox_id": "trailing\n"}, "--id"),
        ({"sandbox_id": "-leading"}, "--id"),
        ({"sandbox_id": "ünïcödé"}, "--id"),
        ({"host_cpus": hostfacts.MAX_CPUS + 1}, "--host-cpus"),
        ({"host_mem_mib": 10**23}, "--host-mem-mib"),
        ({"host_mem_mib": 2**32 + 1}, "--host-mem-mib"),
        ({"image_size": 2**70}, "--image-size"),
        ({"image_size": 2**50}, "--image-size"),
        ({"initrd_size": 2**50}, "--initrd-size"),
        ({"vsock_cid": 2**32}, "--vsock-cid"),
        ({"sev_cbitpos": 64}, "--sev-cbitpos"),
        ({"sev_reduced_phys_bits": 64}, "--sev-reduced-phys-bits"),
        ({"uid": 2**32 - 1}, "--uid"),
        ({"workload_cpus": 2**32}, "--workload-cpus"),
        ({"workload_mem_mib": 2**32}, "--workload-mem-mib"),
        ({"host_mem_mib": 2**100000}, "--host-mem-mib"),
    ],
)
def test_invalid_facts(changes: dict[str, object], flag: str) -> None:
    with pytest.raises(HostFactsError) as err:
        HostFacts(**changes)  # type: ignore[arg-type]
    message = str(err.value)
    assert message.startswith(flag)
    assert len(message.splitlines()) == 1


def test_out_of_range_fact_error_is_short() -> None:
    with pytest.raises(HostFactsError) as err:
        HostFacts(host_mem_mib=2**100000)
    assert "a 100001-bit number" in str(err.value) and len(str(err.value)) < 120


def test_largest_host_is_accepted() -> None:
    """The bounds are inclusive and cover real hosts (8192 CPUs, 4 PiB, a 1 PiB - 1 image, CID 2**32 - 1)."""
    facts = HostFacts(host_cpus=hostfacts.MAX_CPUS, host_mem_mib=2**32, image_size=2**50 - 1,
                      initrd_size=2**50 - 1, vsock_cid=2**32 - 1, sev_cbitpos=63, sev_reduced_phys_bits=63,
                      workload_cpus=2**32 - 1, workload_mem_mib=2**32 - 1)
    assert (facts.host_cpus, facts.host_mem_mib) == (8192, 2**32)


@pytest.mark.parametrize("machine", ["riscv64", "s390x", "ppc64le", "i686", ""])
def test_unknown_host_arch_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, machine: str) -> None:
    """Not amd64 in disguise: probing a host of another architecture fails, naming it."""
    monkeypatch.setattr(platform, "machine", lambda: machine)
    root = make_root(tmp_path, {"proc/cpuinfo": cpuinfo(2), "proc/meminfo": "MemTotal: 2097152 kB\n"})
    with pytest.raises(HostFactsError) as err:
        detect(root)
    assert repr(machine) in str(err.value) and len(str(err.value).splitlines()) == 1
    assert hostfacts.detect_resources(root) == (2, 2048)  # what the reference facts still take from it


def test_detect_resources_clamped(tmp_path: Path) -> None:
    root = make_root(tmp_path, {"proc/cpuinfo": cpuinfo(2), "proc/meminfo": f"MemTotal: {2**60} kB\n"})
    assert hostfacts.detect_resources(root) == (2, hostfacts.MAX_MEM_MIB)


def test_with_file_sizes_measures_only_existing_files(tmp_path: Path) -> None:
    image = tmp_path / "image.img"
    image.write_bytes(b"x" * 1000)
    facts = hostfacts.with_file_sizes(HostFacts(), str(image), str(tmp_path / "absent.initrd"))
    assert (facts.image_size, facts.initrd_size) == (1000, hostfacts.DEFAULT_INITRD_SIZE)
    assert hostfacts.with_file_sizes(HostFacts(), "", "nul\0path") == HostFacts()


@pytest.mark.parametrize("sandbox_id", ["ab", "1" * 64, "a.b_c-d", "Z9", "x" * 300])
def test_valid_sandbox_ids(sandbox_id: str) -> None:
    assert HostFacts(sandbox_id=sandbox_id).sandbox_id == sandbox_id


def test_defaults() -> None:
    facts = HostFacts()
    assert (facts.arch, facts.sandbox_id, facts.vsock_cid) == ("amd64", "1" * 64, 3)
    assert (facts.image_size, facts.initrd_size) == (hostfacts.DEFAULT_IMAGE_SIZE, hostfacts.DEFAULT_INITRD_SIZE)
    assert (facts.sev_cbitpos, facts.sev_reduced_phys_bits) == (47, 1)


def test_with_overrides() -> None:
    base = HostFacts(host_cpus=8, host_mem_mib=16384)
    changed = base.with_overrides(arch="arm64", nested=True, host_cpus=4)
    assert (changed.arch, changed.nested, changed.host_cpus, changed.host_mem_mib) == ("arm64", True, 4, 16384)
    assert (base.arch, base.nested, base.host_cpus) == ("amd64", False, 8)
    assert base.with_overrides() == base
    with pytest.raises(HostFactsError):
        base.with_overrides(host_cpus=0)
    with pytest.raises(HostFactsError):
        base.with_overrides(sandbox_id="a/b")


def test_facts_are_immutable() -> None:
    facts = HostFacts()
    with pytest.raises(AttributeError):
        facts.host_cpus = 2  # type: ignore[misc]


# ---------------------------------------------------------------------------------------------------------
# Sandbox paths (root and rootless)


def test_root_paths() -> None:
    paths = sandbox_paths(HostFacts(sandbox_id="abc"))
    assert paths.vm_dir == "/run/vc/vm/abc"
    assert paths.socket("qmp.sock") == "/run/vc/vm/abc/qmp.sock"
    assert paths.shared_dir == "/run/kata-containers/shared/sandboxes/abc/shared"


def test_rootless_paths_use_xdg_runtime_dir() -> None:
    paths = sandbox_paths(HostFacts(sandbox_id="abc", rootless=True, uid=1000, xdg_runtime_dir="/run/user/1000"))
    assert paths.vm_dir == "/run/user/1000/run/vc/vm/abc"
    assert paths.socket("console.sock") == "/run/user/1000/run/vc/vm/abc/console.sock"
    assert paths.shared_dir == "/run/user/1000/run/kata-containers/shared/sandboxes/abc/shared"


def test_rootless_without_xdg_uses_uid() -> None:
    facts = HostFacts(sandbox_id="abc", rootless=True, uid=1234)
    assert facts.runtime_dir == "/run/user/1234"
    assert sandbox_paths(facts).vm_dir == "/run/user/1234/run/vc/vm/abc"


def test_xdg_ignored_when_not_rootless() -> None:
    paths = sandbox_paths(HostFacts(sandbox_id="abc", rootless=False, xdg_runtime_dir="/run/user/1000"))
    assert paths.vm_dir == "/run/vc/vm/abc"


def test_rootless_render_puts_every_socket_under_xdg() -> None:
    facts = HostFacts(host_cpus=8, host_mem_mib=16384, rootless=True, uid=1000, xdg_runtime_dir="/run/user/1000")
    rendered = render_doc(copy.deepcopy(DEFAULT_DOC), facts)
    argv = rendered.argv_values()
    vm_dir = f"/run/user/1000/run/vc/vm/{'1' * 64}"
    assert argv[argv.index("-qmp") + 1] == f"unix:{vm_dir}/qmp.sock,server=on,wait=off"
    assert argv[argv.index("-pidfile") + 1] == f"{vm_dir}/pid"
    assert any(f"path={vm_dir}/vhost-fs.sock" in a for a in argv)
    assert not any(a.startswith("/run/vc") or "path=/run/vc" in a for a in argv)
    assert rendered.daemon_values() is not None
    assert f"source=/run/user/1000/run/kata-containers/shared/sandboxes/{'1' * 64}/shared" in \
        rendered.daemon_values()


def test_socket_path_limit_boundary() -> None:
    name = "qmp.sock"
    fixed = len("/run/vc/vm/") + len("/" + name)
    ok = sandbox_paths(HostFacts(sandbox_id="a" * (MAX_SOCKET_PATH_LEN - fixed)))
    assert len(ok.socket(name)) == MAX_SOCKET_PATH_LEN
    too_long = sandbox_paths(HostFacts(sandbox_id="a" * (MAX_SOCKET_PATH_LEN - fixed + 1)))
    with pytest.raises(ConfigError) as err:
        too_long.socket(name)
    assert err.value.key == "host.sandbox_id"
    assert "108" in str(err.value)


def test_long_xdg_dir_rejected_when_rendering() -> None:
    facts = HostFacts(sandbox_id="abc", rootless=True, xdg_runtime_dir="/" + "x" * 100)
    with pytest.raises(ConfigError) as err:
        render_doc(copy.deepcopy(DEFAULT_DOC), facts)
    assert "socket path too long" in str(err.value)
    assert len(str(err.value).splitlines()) == 1
