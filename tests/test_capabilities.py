"""Capability skips: only the known Kata-vs-QEMU findings make a cell "cannot boot here"; anything else errors."""

from __future__ import annotations

import dataclasses
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

from katatest.guest import boot
from katatest.guest.boot import CannotBoot, boot_guest
from katatest.host.facts import HostFacts
from katatest.launch.capabilities import (
    CAPABILITY,
    KNOWN_GAPS,
    QemuLacks,
    UnexpectedQemuGap,
    only_known,
    plan_findings,
    refusal_findings,
    virtiofsd_refusal,
)
from katatest.launch.errors import LaunchError
from katatest.launch.kvm import AccelVerdict
from katatest.launch.plan import read_argv_file
from katatest.launch.qemu_caps import capabilities, checked_in
from tests.test_qemu_units import config

VECTORS = Path(__file__).parent / "data/conformance/kata-3.0.0/named"
QEMU = "/usr/bin/qemu-system-x86_64"
CAPS = next(c for c in checked_in() if c.version.startswith("7.2.") and c.arch == "amd64")  # Debian 12's QEMU


def argv(*items: str) -> list[str]:
    return [QEMU, *items]


@pytest.mark.parametrize("args, what", [
    (("-machine", "q53,accel=kvm"), "machine type q53"),
    (("-machine", "q35,accel=kvm,nvdim=on"), "machine q35 property nvdim"),
    (("-object", "memory-backend-fle,id=dimm1"), "object type memory-backend-fle"),
    (("-device", "virtio-rng-pic,rng=rng0"), "device type virtio-rng-pic"),
])
def test_unknown_types_are_errors_not_skips(args, what):
    (finding,) = plan_findings(argv(*args), CAPS)
    assert finding.what == what and finding.known == ""
    with pytest.raises(UnexpectedQemuGap, match=f"QEMU lacks {what} .*no known QEMU build has it"):
        only_known([finding])


@pytest.mark.parametrize("args, known", [
    (("-machine", "q35,accel=kvm,nosmm"), CAPABILITY),
    (("-object", "tdx-guest,id=tdx"), CAPABILITY),
    (("-device", "vhost-user-fs-pci,chardev=c,tag=kataShared,cache-size=1024M"), CAPABILITY),
    (("-device", "vhost-user-fs-pci,chardev=c,tag=kataShared,iommu_platform=on"), "iommu-platform-without-viommu"),
])
def test_known_findings_stay_skips(args, known):
    findings = plan_findings(argv(*args), CAPS)
    assert [f.known for f in findings] == [known] and known in KNOWN_GAPS
    assert only_known(findings) == findings


def test_known_and_unknown_together_is_an_error():
    findings = plan_findings(argv("-object", "tdx-guest,id=tdx", "-device", "virtio-rng-pic"), CAPS)
    with pytest.raises(UnexpectedQemuGap, match="virtio-rng-pic") as err:
        only_known(findings)
    assert [f.what for f in err.value.findings] == ["device type virtio-rng-pic"]


def test_real_qemu_knows_every_device_of_the_vectors():
    if not os.access(QEMU, os.X_OK):
        pytest.skip(f"{QEMU} not installed")
    caps = capabilities((QEMU,), "amd64")
    assert {"virtio-blk-pci", "scsi-hd", "pci-bridge", "nvdimm"} <= set(caps.device_types)
    for name in ("default", "virtio_fs_cache_size", "machine_accelerators", "confidential_guest_tdx"):
        only_known(plan_findings(read_argv_file(VECTORS / f"{name}.argv"), caps))
    typo = [a.replace("virtio-rng-pci", "virtio-rng-pic") for a in read_argv_file(VECTORS / "default.argv")]
    with pytest.raises(UnexpectedQemuGap, match="device type virtio-rng-pic"):
        only_known(plan_findings(typo, caps))


def test_refusals_are_known_only_for_the_findings():
    stderr = ("qemu: -device nvdimm,id=nv0: memory hotplug is not enabled: missing acpi-ged device\n"
              "qemu: -device virtio-blk-pci,foo=1: Property 'virtio-blk-pci.foo' not found\n"
              "qemu: -object tdx-guest,id=tdx: invalid object type: tdx-guest\n"
              "qemu: -object memory-backend-fle,id=m: invalid object type: memory-backend-fle\n")
    found = refusal_findings(stderr)
    assert found[0].what.startswith("nvdimm on arm64 virt without firmware")
    assert [(f.what, f.known) for f in found[1:]] == [
        ("device property foo", ""), ("object type tdx-guest", ""), ("object type memory-backend-fle", "")]
    assert [f.known for f in found] == ["arm64-nvdimm-no-firmware", "", "", ""]


def _skip_outcome(stderr: str, tmp_path: Path) -> str:
    from katatest.fixtures.guests import _skip_for_refusal
    try:
        _skip_for_refusal(LaunchError("qemu failed", stderr, [QEMU]), tmp_path)
    except pytest.skip.Exception as skip:
        return str(skip)
    return "no skip"


def test_guest_fixture_skips_only_known_refusals(tmp_path):
    known = "qemu: -device nvdimm,id=nv0: memory hotplug is not enabled: missing acpi-ged device\n"
    unknown = "qemu: -object memory-backend-fle,id=m: invalid object type: memory-backend-fle\n"
    assert _skip_outcome(known, tmp_path).startswith(
        "cannot boot here [qemu-lacks]: QEMU finding: QEMU lacks nvdimm on arm64 virt")
    assert _skip_outcome(unknown, tmp_path) == "no skip"
    assert _skip_outcome(known + unknown, tmp_path) == "no skip"
    assert (tmp_path / "qemu-stderr.log").read_text() == known + unknown


SETGROUPS = "setgroups() failed with error=1:Operation not permitted\n"


def test_virtiofsd_refusal_is_known_only_for_setgroups():
    assert virtiofsd_refusal(SETGROUPS, euid=1000) == QemuLacks(
        "virtiofsd as a non-root user", SETGROUPS.strip(), "virtiofsd-setgroups")
    assert virtiofsd_refusal(SETGROUPS, euid=0) is None
    assert virtiofsd_refusal("unshare(CLONE_NEWPID | CLONE_NEWNS): Operation not permitted\n", euid=1000) is None
    assert virtiofsd_refusal("fuse: unknown option(s): `-o cahce=auto'\n", euid=1000) is None
    assert virtiofsd_refusal("", euid=1000) is None


def test_virtiofsd_as_non_root_logs_the_known_cause():
    """The real QEMU 7.2 virtiofsd, as a user with a supplementary group, exits with the setgroups line."""
    daemon = "/usr/lib/qemu/virtiofsd"
    if os.geteuid() != 0 or not os.access(daemon, os.X_OK) or not shutil.which("setpriv"):
        pytest.skip("needs root (to switch user), setpriv and QEMU's virtiofsd")
    shared = Path(tempfile.mkdtemp(prefix="kt-vfsd-"))
    try:
        shared.chmod(0o777)
        with socket.socket(socket.AF_UNIX) as listener, socket.socket(socket.AF_UNIX) as client:
            listener.bind(str(shared / "vhost.sock"))
            listener.listen(1)
            proc = subprocess.Popen(
                ["setpriv", "--reuid=65534", "--regid=65534", "--groups=65534", daemon, "-o", "cache=auto",
                 "-o", f"source={shared}", f"--fd={listener.fileno()}", "-f"],
                pass_fds=(listener.fileno(),), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            try:
                client.connect(str(shared / "vhost.sock"))
                log, _ = proc.communicate(timeout=20)
            finally:
                proc.kill()
                proc.wait()
        found = virtiofsd_refusal(log.decode(errors="replace"), euid=65534)
        assert found is not None and found.known == "virtiofsd-setgroups", log
    finally:
        shutil.rmtree(shared, ignore_errors=True)


@pytest.mark.usefixtures("isolated_env")  # its runtime dirs are swept by nobody else's session
@pytest.mark.parametrize("right, typo, what", [
    ("rng-random,", "rng-randon,", "object type rng-randon"),  # was "cannot boot here" (a skip)
    ("virtio-rng-pci", "virtio-rng-pic", "device type virtio-rng-pic"),
])
def test_boot_guest_errors_on_an_unknown_type(monkeypatch, tmp_path, right, typo, what):
    """A generator typo reaching the launch plan errors the boot (not "cannot boot here"), nothing left."""
    if not os.access(QEMU, os.X_OK):
        pytest.skip(f"{QEMU} not installed")
    real_plan = boot.plan_launch

    def typo_plan(*args, **kwargs):
        plan = real_plan(*args, **kwargs)
        return dataclasses.replace(plan, argv=[a.replace(right, typo) for a in plan.argv])

    monkeypatch.setattr(boot, "plan_launch", typo_plan)
    xdg = Path(tempfile.mkdtemp(prefix="kt-xdg-", dir="/tmp"))  # short: runtime_parent() takes it
    try:
        monkeypatch.setenv("XDG_RUNTIME_DIR", str(xdg))
        host = HostFacts(arch="amd64", host_cpus=2, host_mem_mib=4096)
        booting = boot_guest(config(), host, host=host, assets=None, accel=AccelVerdict("tcg", "test"),
                             run_root=tmp_path / "run")
        with pytest.raises(UnexpectedQemuGap, match=what) as err, booting:
            pass
        assert not isinstance(err.value, CannotBoot)
        assert not (tmp_path / "run").exists() or not list((tmp_path / "run").iterdir())
        assert not list(xdg.iterdir()), "the private runtime dir was left behind"
    finally:
        shutil.rmtree(xdg, ignore_errors=True)
