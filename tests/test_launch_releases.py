"""Launch plans for Kata 3.30.0's and 4.1.0's own argv: each difference a recorded override, before and after.

QMP as a listening socket at fd 3, vsock at fd 4, foreground QEMU, the Rust virtiofsd's argv on a host with only
QEMU's C virtiofsd, Kata's AAVMF firmware path. No QEMU is started here (``test_launcher_foreground.py`` does).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import tomllib

from katatest.guest.boot import CannotBoot, plan_for_host
from katatest.launch import virtiofsd
from katatest.launch.capabilities import CAPABILITY, KNOWN_GAPS, object_type, plan_findings, refusal_findings
from katatest.launch.errors import PlanError, UntranslatableFlag
from katatest.launch.kvm import AccelVerdict
from katatest.launch.plan import (
    LaunchPlan,
    apply_all,
    binary_overrides,
    firmware_overrides,
    option_values,
    plan_launch,
    read_argv_file,
    relocate,
    run_paths,
    socket_paths,
)
from katatest.launch.qemu_caps import checked_in

DATA = Path(__file__).parent / "data/conformance"
RELEASES = ("3.30.0", "4.1.0")
TCG = AccelVerdict("tcg", "test")
SID = "1" * 64
VM_DIR = f"/run/vc/vm/{SID}"
SHARED = f"/run/kata-containers/shared/sandboxes/{SID}/shared"
C_VIRTIOFSD = "/usr/lib/qemu/virtiofsd"


def qemu_caps(binary: str):
    """Debian 12's QEMU 7.2 (checked-in capabilities) for the binary's guest arch."""
    arch = "arm64" if "aarch64" in binary else "amd64"
    return next(c for c in checked_in() if c.version.startswith("7.2.") and c.arch == arch)


def vector(release: str, name: str) -> tuple[list[str], list[str] | None]:
    named = DATA / f"kata-{release}/named"
    daemon = named / f"{name}.virtiofsd.argv"
    return read_argv_file(named / f"{name}.argv"), read_argv_file(daemon) if daemon.exists() else None


def plan(release: str, name: str, **kw: object) -> LaunchPlan:
    argv, daemon = vector(release, name)
    for key, value in (("assets", None), ("accel", TCG), ("vhost_vsock_available", False),
                       ("syslog_available", True), ("daemon_flavour", "c")):
        kw.setdefault(key, value)
    return plan_launch(argv, daemon, **kw)


def kinds(p: LaunchPlan, target: str | None = None) -> list[str]:
    return [o.kind for o in p.overrides if target is None or o.target == target]


@pytest.mark.parametrize("release", RELEASES)
@pytest.mark.parametrize(("arch", "name"), [("amd64", "default"), ("arm64", "arm64_default")])
def test_named_default_is_the_shipped_config(release: str, arch: str, name: str) -> None:
    """The vector used as "the shipped default's argv" is Kata's Makefile-generated config (comments aside)."""
    with open(DATA / f"kata-{release}/base/configuration-qemu-{arch}.toml", "rb") as fh:
        shipped = tomllib.load(fh)
    with open(DATA / f"kata-{release}/named/{name}.toml", "rb") as fh:
        assert tomllib.load(fh) == shipped


# --- QMP at fd 3, vsock at fd 4 -------------------------------------------------------------------------

@pytest.mark.parametrize("release", RELEASES)
def test_qmp_listener_is_fd_3_at_kata_path(release: str) -> None:
    p = plan(release, "default")
    assert option_values(p.argv, "-qmp") == ["unix:fd=3,server=on,wait=off"]  # not an override: kept
    assert p.qmp_fd == 3
    assert p.paths.qmp_socket == f"{VM_DIR}/qmp.sock"  # Kata's qmpSocket in its VM store dir
    (qmp,) = p.inherited_fds()  # vsock dropped: no /dev/vhost-vsock
    assert (qmp.target, qmp.kind, qmp.path) == (3, "unix-listener", f"{VM_DIR}/qmp.sock")


@pytest.mark.parametrize("release", RELEASES)
def test_vsock_dropped_without_device_keeps_fd_3(release: str) -> None:
    argv, _ = vector(release, "default")
    p = plan(release, "default")
    (drop,) = [o for o in p.overrides if o.kind == "drop-vsock"]
    assert drop.before[0] == "-device" and "vhostfd=4" in drop.before[1] and drop.after == ()
    assert drop.before[1] in argv and drop.before[1] not in p.argv
    assert p.vhost_vsock_fd is None and [e.target for e in p.inherited_fds()] == [3]


@pytest.mark.parametrize("release", RELEASES)
def test_vsock_device_at_fd_4_when_available(release: str) -> None:
    argv, _ = vector(release, "default")
    p = plan(release, "default", vhost_vsock_available=True)
    assert "drop-vsock" not in kinds(p)
    assert [v for v in option_values(p.argv, "-device") if v.startswith("vhost-vsock")] == \
        [v for v in option_values(argv, "-device") if v.startswith("vhost-vsock")]
    entries = p.inherited_fds()
    assert [(e.target, e.kind, e.path) for e in entries] == [
        (3, "unix-listener", f"{VM_DIR}/qmp.sock"), (4, "device", "/dev/vhost-vsock")]


@pytest.mark.parametrize("release", RELEASES)
def test_relocation_moves_the_qmp_listener(release: str) -> None:
    p = relocate(plan(release, "default"), "/tmp/kt-abc")
    assert p.paths.qmp_socket == f"/tmp/kt-abc{VM_DIR}/qmp.sock"
    assert p.inherited_fds()[0].path == p.paths.qmp_socket
    assert option_values(p.argv, "-qmp") == ["unix:fd=3,server=on,wait=off"]
    # console, vhost-fs, pid, shared dir: the QMP path is not in the argv, so it needs no override of its own
    assert kinds(p).count("rootless-layout") == 4


def test_qmp_fd_needs_a_vm_dir() -> None:
    argv = ["/usr/bin/qemu-system-x86_64", "-qmp", "unix:fd=3,server=on,wait=off"]
    with pytest.raises(PlanError, match="names no VM dir"):
        run_paths(argv, None)
    with pytest.raises(PlanError, match="not a file descriptor number"):
        run_paths(["/usr/bin/qemu-system-x86_64", "-qmp", "unix:fd=x,server=on", "-pidfile", "/r/pid"], None)


def test_foreground_follows_the_argv() -> None:
    assert plan("3.30.0", "default").foreground and plan("4.1.0", "arm64_default").foreground
    old = read_argv_file(DATA / "kata-3.0.0/named/default.argv")
    old_plan = plan_launch(old, None, assets=None, accel=TCG, vhost_vsock_available=False)
    assert not old_plan.foreground and old_plan.qmp_fd is None
    assert old_plan.paths.qmp_socket == f"{VM_DIR}/qmp.sock"  # the 3.0.0 path form, unchanged


# --- virtiofsd: Rust argv, C daemon ---------------------------------------------------------------------

@pytest.mark.parametrize("release", RELEASES)
def test_rust_argv_translated_flag_by_flag_for_the_c_virtiofsd(release: str) -> None:
    _, daemon = vector(release, "default")
    assert daemon[1:] == ["--syslog", "--cache=auto", f"--shared-dir={SHARED}", "--fd=3", "--thread-pool-size=1",
                          "--announce-submounts"]
    p = plan(release, "default", syslog_available=False)
    translated = [(o.before, o.after) for o in p.overrides if o.kind == "virtiofsd-c-flag"]
    assert translated == [(("--cache=auto",), ("-o", "cache=auto")),
                          ((f"--shared-dir={SHARED}",), ("-o", f"source={SHARED}")),
                          (("--announce-submounts",), ("-o", "announce_submounts"))]
    assert all(o.target == "daemon" and "C virtiofsd" in o.reason for o in p.overrides
               if o.kind == "virtiofsd-c-flag")
    assert apply_all(daemon, [o for o in p.overrides if o.target == "daemon"]) == p.daemon_argv
    assert p.daemon_argv[1:] == ["-o", "cache=auto", "-o", f"source={SHARED}", "--fd=3", "--thread-pool-size=1",
                                 "-o", "announce_submounts"]
    assert p.paths.shared_dir == SHARED


def test_rust_virtiofsd_runs_the_argv_unchanged(tmp_path: Path) -> None:
    _, daemon = vector("4.1.0", "default")
    rust = tmp_path / "virtiofsd"
    rust.write_text("#!/bin/sh\necho 'Usage: virtiofsd [OPTIONS]'; echo '      --shared-dir <SHARED_DIR>'\n")
    rust.chmod(0o755)
    daemon[0] = str(rust)
    argv, _ = vector("4.1.0", "default")
    p = plan_launch(argv, daemon, assets=None, accel=TCG, vhost_vsock_available=False, syslog_available=True)
    assert virtiofsd.flavour(str(rust)) == "rust"
    assert kinds(p, "daemon") == [] and p.daemon_argv == daemon
    quiet = plan_launch(argv, daemon, assets=None, accel=TCG, vhost_vsock_available=False, syslog_available=False)
    (drop,) = [o for o in quiet.overrides if o.target == "daemon"]
    assert drop.kind == "drop-syslog" and "Rust virtiofsd" in drop.reason


def test_flavour_of_the_installed_c_virtiofsd() -> None:
    if not os.access(C_VIRTIOFSD, os.X_OK):
        pytest.skip(f"{C_VIRTIOFSD} not installed")
    assert virtiofsd.flavour(C_VIRTIOFSD) == "c"
    assert virtiofsd.flavour("/nonexistent/virtiofsd") == ""


def test_missing_binary_prefers_an_installed_rust_virtiofsd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    c, rust = tmp_path / "c-virtiofsd", tmp_path / "rust-virtiofsd"
    c.write_text("#!/bin/sh\necho '-o source=PATH'\n")
    rust.write_text("#!/bin/sh\necho '--shared-dir <DIR>'\n")
    for path in (c, rust):
        path.chmod(0o755)
    monkeypatch.setattr("katatest.launch.plan.VIRTIOFSD_LOCATIONS", (str(c), str(rust)))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    argv = ["/usr/libexec/virtiofsd", f"--shared-dir={SHARED}"]
    (chosen,) = binary_overrides(argv, "daemon", prefer=lambda b: virtiofsd.flavour(b) == "rust")
    assert chosen.after == (str(rust),) and chosen.target == "daemon"
    (first,) = binary_overrides(argv, "daemon")
    assert first.after == (str(c),)


def test_c_form_argv_is_never_translated() -> None:
    """Kata 3.0.0 wrote the C daemon's argv: nothing to translate, even for a Rust-only probe answer."""
    old = read_argv_file(DATA / "kata-3.0.0/named/default.virtiofsd.argv")
    assert not virtiofsd.is_rust_argv(old)
    assert virtiofsd.translation_overrides(old, "c") == []


@pytest.mark.parametrize(("rust", "c"), [
    ("--cache=never", ("-o", "cache=none")), ("--cache=always", ("-o", "cache=always")),
    ("--xattr", ("-o", "xattr")), ("--log-level=error", ("-o", "log_level=err")),
    ("--xattrmap=:map::user.virtiofs.:", ("-o", "xattrmap=:map::user.virtiofs.:")),
])
def test_each_flag_translation(rust: str, c: tuple[str, ...]) -> None:
    (o,) = virtiofsd.translation_overrides([C_VIRTIOFSD, f"--shared-dir={SHARED}", rust], "c")[1:]
    assert (o.before, o.after) == ((rust,), c)


def test_shared_options_pass_through() -> None:
    argv = [C_VIRTIOFSD, "--syslog", f"--shared-dir={SHARED}", "--fd=3", "--thread-pool-size=4", "-o", "xattr"]
    assert [o.before for o in virtiofsd.translation_overrides(argv, "c")] == [(f"--shared-dir={SHARED}",)]


def test_metadata_cache_has_no_c_equivalent() -> None:
    with pytest.raises(UntranslatableFlag, match="--cache=metadata: the C virtiofsd has no cache mode"):
        virtiofsd.translation_overrides([C_VIRTIOFSD, f"--shared-dir={SHARED}", "--cache=metadata"], "c")
    with pytest.raises(UntranslatableFlag, match="--inode-file-handles=mandatory"):
        virtiofsd.translation_overrides([C_VIRTIOFSD, f"--shared-dir={SHARED}", "--inode-file-handles=mandatory"],
                                        "c")


def test_metadata_cache_cell_cannot_boot_with_a_known_finding() -> None:
    argv, daemon = vector("3.30.0", "default")
    daemon = [a.replace("--cache=auto", "--cache=metadata") for a in daemon]
    if virtiofsd.flavour(C_VIRTIOFSD) != "c" or os.access("/usr/libexec/virtiofsd", os.X_OK):
        pytest.skip("needs a host whose only virtiofsd is QEMU's C one")
    with pytest.raises(CannotBoot) as info:
        plan_for_host(argv, daemon, assets=None, accel=TCG)
    assert [f.known for f in info.value.findings] == ["virtiofsd-rust-only"]
    assert "virtiofsd-rust-only" in KNOWN_GAPS


# --- arm64 firmware -------------------------------------------------------------------------------------

@pytest.mark.parametrize("release", RELEASES)
def test_kata_aavmf_path_maps_to_debians(release: str, tmp_path: Path) -> None:
    argv, _ = vector(release, "arm64_default")
    assert option_values(argv, "-bios") == ["/usr/share/aavmf/AAVMF_CODE.fd"]
    debian = tmp_path / "AAVMF_CODE.fd"
    debian.write_bytes(b"\0" * 64)
    (o,) = firmware_overrides(argv, {"AAVMF_CODE.fd": ("/nonexistent/AAVMF_CODE.fd", str(debian))})
    assert (o.kind, o.before, o.after) == ("firmware-path", ("-bios", "/usr/share/aavmf/AAVMF_CODE.fd"),
                                          ("-bios", str(debian)))
    assert "does not exist on this host" in o.reason and str(debian) in o.reason
    assert firmware_overrides(argv, {}) == []  # an unknown file name is left for QEMU to refuse


def test_existing_firmware_is_kept(tmp_path: Path) -> None:
    mine = tmp_path / "AAVMF_CODE.fd"
    mine.write_bytes(b"\0")
    assert firmware_overrides(["qemu", "-bios", str(mine)], {"AAVMF_CODE.fd": ("/elsewhere",)}) == []


def test_shipped_arm64_plan_uses_debians_firmware_here() -> None:
    if not os.path.isfile("/usr/share/AAVMF/AAVMF_CODE.fd"):
        pytest.skip("Debian's qemu-efi-aarch64 is not installed")
    p = plan("4.1.0", "arm64_default")
    assert option_values(p.argv, "-bios") == ["/usr/share/AAVMF/AAVMF_CODE.fd"]
    assert "firmware-path" in kinds(p, "qemu")


# --- findings of these releases' argv -------------------------------------------------------------------

def test_tdx_json_object_is_the_known_tdx_finding() -> None:
    argv, _ = vector("4.1.0", "confidential_guest_tdx")
    (obj,) = [v for v in option_values(argv, "-object") if v.startswith("{")]
    assert object_type(obj) == "tdx-guest"
    found = plan_findings(argv, qemu_caps("/usr/bin/qemu-system-x86_64"))
    assert [f.known for f in found] == [CAPABILITY]


def test_sev_snp_and_arm64_pvpanic_are_known() -> None:
    caps = qemu_caps("/usr/bin/qemu-system-x86_64")
    snp = ["/usr/bin/qemu-system-x86_64", "-object", "sev-snp-guest,id=sev-snp,cbitpos=47,reduced-phys-bits=1"]
    assert [f.known for f in plan_findings(snp, caps)] == [CAPABILITY]
    arm = ["/usr/bin/qemu-system-aarch64", "-machine", "virt,accel=tcg", "-device", "pvpanic"]
    (pvpanic,) = plan_findings(arm, qemu_caps(arm[0]))
    assert pvpanic.known == CAPABILITY and "(amd64 guests)" in pvpanic.evidence  # only x86 QEMUs have it


@pytest.mark.parametrize("release", RELEASES)
def test_shipped_defaults_need_no_finding(release: str) -> None:
    for name in ("default", "arm64_default"):
        p = plan(release, name)
        assert plan_findings(p.argv, qemu_caps(p.argv[0])) == []


def test_maxmem_below_memory_is_a_known_kata_finding() -> None:
    argv, _ = vector("4.1.0", "default")
    argv[argv.index("-m") + 1] = "4096M,slots=20,maxmem=3072M"  # Kata for default_memory 4096 on a 2 GiB host
    assert [f.known for f in plan_findings(argv, qemu_caps(argv[0]))] == ["maxmem-below-memory"]
    stderr = "qemu-system-x86_64: invalid value of maxmem: maximum memory size (0xc0000000) must be at least ..."
    assert [f.known for f in refusal_findings(stderr)] == ["maxmem-below-memory"]


def test_every_socket_the_argv_names_is_listed() -> None:
    argv, _ = vector("4.1.0", "default")
    argv += ["-monitor", f"unix:path={VM_DIR}/extra-monitor.sock,server=on,wait=off"]
    assert socket_paths(argv) == [f"{VM_DIR}/console.sock", f"{VM_DIR}/vhost-fs.sock", f"{VM_DIR}/extra-monitor.sock"]
    old = read_argv_file(DATA / "kata-3.0.0/named/default.argv")
    assert f"{VM_DIR}/qmp.sock" in socket_paths(old)  # the 3.0.0 path form; fd=3 names no path
