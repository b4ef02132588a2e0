"""QEMU builds as inputs: Debian's builds as data, capability findings derived from per-build capabilities
files (never hand-written lists), each release's cells on the build closest to what it bundles."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import pytest

from katatest.assets import qemu_builds
from katatest.conformance.vectors import VECTOR_SETS, discover
from katatest.launch.capabilities import CAPABILITY, UnexpectedQemuGap, only_known, plan_findings
from katatest.launch.qemu_caps import CAPS_DIR, Capabilities, checked_in, kata_patched, known_qemus
from katatest.matrix.model import default_builds, load_matrix
from tests.conformance_files import DATA

ROOT = Path(__file__).resolve().parents[1]


def caps(version: str, arch: str = "amd64") -> Capabilities:
    return next(c for c in checked_in() if c.version.startswith(version) and c.arch == arch)


def test_a_capabilities_file_per_debian_build_and_arch() -> None:
    versions = {(c.version.split()[0].rsplit(".", 1)[0], c.arch) for c in checked_in()}
    assert versions == {(b, a) for b in qemu_builds.names("qemu") for a in ("amd64", "arm64")}
    for c in checked_in():
        assert c.machines and c.devices and c.object_types and c.device_types, c.version
        assert (CAPS_DIR / f"qemu-{re.sub(r'[^A-Za-z0-9.+-]+', '_', c.version)}-{c.arch}.json").is_file()


def test_findings_come_from_the_capabilities_data() -> None:
    """A build whose data lack a property the argv passes yields the finding; with the property, none."""
    argv = ["/usr/bin/qemu-system-x86_64", "-machine", "q35,accel=kvm", "-device",
            "virtio-blk-pci,drive=d,scsi=off,config-wce=off"]
    with_scsi = caps("7.2")
    assert "scsi" in with_scsi.devices["virtio-blk-pci"]
    assert plan_findings(argv, with_scsi) == []
    devices = {**with_scsi.devices, "virtio-blk-pci": [p for p in with_scsi.devices["virtio-blk-pci"]
                                                       if p != "scsi"]}
    without = dataclasses.replace(with_scsi, version="99.0.0 (test)", devices=devices)
    (finding,) = plan_findings(argv, without)
    assert finding.known == CAPABILITY and finding.what == "device virtio-blk-pci property scsi"
    assert "QEMU 7.2.22 (amd64 guests) has it" in finding.evidence
    assert only_known([finding]) == [finding]


def test_what_no_known_qemu_has_is_an_error_not_a_finding() -> None:
    argv = ["/usr/bin/qemu-system-x86_64", "-device", "virtio-blk-pci,drive=d,scssi=off", "-object",
            "memory-backend-fiel,id=m"]
    findings = plan_findings(argv, caps("11.1"))
    assert {f.known for f in findings} == {""}
    with pytest.raises(UnexpectedQemuGap, match="no known QEMU build has it"):
        only_known(findings)


def test_what_qemu_upgrades_changed_is_in_the_data() -> None:
    """QEMU 10.0 dropped virtio-blk's scsi property and added sev-snp-guest; 10.1 added tdx-guest."""
    assert "scsi" in caps("7.2").devices["virtio-blk-pci"] and "scsi" not in caps("10.0").devices["virtio-blk-pci"]
    assert not caps("7.2").has_object("sev-snp-guest") and caps("10.0").has_object("sev-snp-guest")
    assert not caps("10.0").has_object("tdx-guest") and caps("11.1").has_object("tdx-guest")
    assert {k.version for k in kata_patched()} <= {k.version for k in known_qemus()}


@pytest.mark.parametrize("build", qemu_builds.names("qemu"))
def test_every_vector_argv_has_only_named_findings_on_every_build(build: str) -> None:
    """Kata's own argv of every release, on every Debian build: whatever a build lacks, some known QEMU has."""
    for suite in VECTOR_SETS:
        for vector in discover(DATA, suite):
            argv = vector.expected_lines(".argv")
            if not argv or "qemu-system" not in argv[0]:
                continue
            arch = "arm64" if "aarch64" in argv[0] else "amd64"
            only_known(plan_findings(argv, caps(build, arch)))


@pytest.mark.parametrize(("bundled", "kind", "build"), [("6.2.0", "qemu", "7.2"), ("10.2.1", "qemu", "10.0"),
                                                         ("11.0.1", "qemu", "11.1"), ("1.13.3", "virtiofsd", "1.13"),
                                                         ("1.14.0", "virtiofsd", "1.14")])
def test_the_closest_build(bundled: str, kind: str, build: str) -> None:
    assert qemu_builds.closest(kind, bundled) == build


def test_each_release_runs_on_its_closest_builds_and_every_report_says_which() -> None:
    assert default_builds("3.0.0") == ("7.2", "")  # 3.0.0's C-dialect virtiofsd argv: the host's C daemon
    assert default_builds("3.30.0") == ("10.0", "1.13")
    assert default_builds("4.1.0") == ("11.1", "1.14")
    cells = {c.name: c for c in load_matrix().named("default")}
    assert cells["amd64-nvdimm-virtiofs-scsi~qemu11.1"].dims["qemu"] == "11.1"
    assert cells["amd64-nvdimm-virtiofs-scsi@4.1.0"].dims["qemu"] == "11.1"
    assert cells["amd64-nvdimm-virtiofs-scsi"].dims["qemu"] == "7.2"
    full = load_matrix().named("full")
    assert {c.qemu_build for c in full if c.hypervisor == "qemu"} == set(qemu_builds.names("qemu"))


def test_unknown_build_is_one_line() -> None:
    run = subprocess.run([sys.executable, "-m", "katatest", "assets", "build", "--qemu", "9.9"], capture_output=True,
                         text=True, cwd=ROOT)
    assert run.returncode == 2 and len(run.stderr.splitlines()) == 1 and "known: 7.2, 10.0, 11.1" in run.stderr


def test_lint_names_what_a_build_refuses(capsys: pytest.CaptureFixture[str]) -> None:
    """Kata 3.0.0's image on virtio-blk passes scsi=off: QEMU 7.2 takes it, 11.1 has no such property (exit 1)."""
    from katatest.cli import main

    named = DATA / "kata-3.0.0" / "named"
    flags = (named / "image_nvdimm_disabled_virtio_blk.flags").read_text().split()
    config = str(named / "image_nvdimm_disabled_virtio_blk.toml")
    assert main(["lint", config, *flags, "--qemu", "7.2"]) == 0
    capsys.readouterr()
    assert main(["lint", config, *flags, "--qemu", "11.1"]) == 1
    out = capsys.readouterr().out
    assert "QEMU 11.1 refuses device virtio-blk-pci property scsi: QEMU 11.1.3 (amd64 guests)" in out


def test_an_installed_katas_qemu_and_virtiofsd_are_a_build(tmp_path: Path) -> None:
    """/opt/kata/bin/qemu-system-x86_64 and /opt/kata/libexec/virtiofsd (here: Debian's, at other paths) run as
    they are: the build's command is the binary itself, its version what it says."""
    qemu, virtiofsd = qemu_builds.installed_kata("/usr/bin/qemu-system-x86_64", "/usr/lib/qemu/virtiofsd", "amd64")
    assert qemu is not None and qemu.command("amd64") == ["/usr/bin/qemu-system-x86_64"]
    assert qemu.version("amd64").startswith("7.2.") and qemu.name == "kata"
    assert virtiofsd is not None and virtiofsd.command() == ["/usr/lib/qemu/virtiofsd"]
    assert qemu_builds.installed_kata(str(tmp_path / "absent"), "", "amd64") == (None, None)
