"""The only reasons a cell may go unbooted are data (katatest/data/skip_reasons.toml); each is given where it
should be (one test per reason, named in the file), and what is not one of them is an error of the cell."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from katatest.conformance.vectors import Vector
from katatest.generate.render import render_doc, render_file
from katatest.guest import boot, hotplug_host
from katatest.guest import network as guest_network
from katatest.guest.boot import CannotBoot, VmmMissing, check_bootable, plan_for_host
from katatest.guest.skip_reasons import SKIP_REASONS_FILE, check_reason, skip_reasons
from katatest.host.flags import parse_flags
from katatest.kata.tomlconf import load_toml
from katatest.launch import capabilities, qemu_caps
from katatest.launch.errors import PlanError, UnknownVirtiofsdFlag
from katatest.launch.kvm import AccelVerdict
from katatest.launch.plan import read_argv_file
from katatest.matrix.cell_config import BASE_DIR
from tests.conformance_files import DATA

ROOT = Path(__file__).resolve().parents[1]
TCG = AccelVerdict("tcg", "test")
NONE = parse_flags("")[0]


def test_every_reason_names_a_test_that_exists() -> None:
    assert len(skip_reasons()) >= 10
    for reason in skip_reasons().values():
        path, _, name = reason.test.partition("::")
        assert re.search(rf"^def {name}\(", (ROOT / path).read_text(), re.MULTILINE), reason


def test_every_reason_the_code_gives_is_named() -> None:
    """Each ``kind=`` and skip_message(...) in the code names a reason of the file; an unknown name is a bug."""
    given = set()
    for source in [*(ROOT / "katatest").rglob("*.py"), *(ROOT / "fixtures").rglob("*.py")]:
        given |= set(re.findall(r'(?:kind=|skip_message\()"([a-z0-9-]+)"', source.read_text()))
    assert given and given <= set(skip_reasons()), given - set(skip_reasons())
    with pytest.raises(AssertionError, match="not a named skip reason"):
        check_reason("qemu-is-old")
    assert SKIP_REASONS_FILE.is_file()


def _shipped(release: str, name: str, flags: str = "") -> tuple:
    config = BASE_DIR / release / name
    facts = parse_flags(flags)[0]
    return render_file(config, facts, release=release), facts


def test_generation_only_requested(tmp_path: Path) -> None:
    """``--katatest-generation-only`` boots nothing: the cell is generation-only with that reason."""
    reports = tmp_path / "reports"
    run = subprocess.run([sys.executable, "-m", "pytest", "suites", "-q", "-p", "no:cacheprovider",
                          "-k", "amd64-initrd-9p-blk", "--katatest-kata-version", "3.0.0",
                          "--katatest-generation-only",
                          f"--katatest-reports={reports}"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-2000:]
    cells = {c["name"]: c for c in json.loads((reports / "summary.json").read_text())["cells"]}
    cell = cells["amd64-initrd-9p-blk"]
    assert cell["outcome"] == "generation-only" and cell["boots"] == 0
    assert "[generation-only-requested]" in cell["boot_skip_reason"]


def test_vmm_not_installed() -> None:
    doc = load_toml(BASE_DIR / "configuration-clh-amd64.toml")
    doc["hypervisor"]["clh"]["path"] = "/nonexistent/cloud-hypervisor"
    rendered = render_doc(doc, NONE)
    with pytest.raises(CannotBoot) as why:
        check_bootable(rendered, NONE, NONE)
    assert why.value.kind == "vmm-not-installed"


def test_vmm_boot_not_implemented() -> None:
    doc = load_toml(BASE_DIR / "configuration-clh-amd64.toml")
    doc["hypervisor"]["clh"]["path"] = sys.executable  # an installed program
    doc["hypervisor"]["clh"]["valid_hypervisor_paths"] = [sys.executable]
    with pytest.raises(CannotBoot) as why:
        check_bootable(render_doc(doc, NONE), NONE, NONE)
    assert why.value.kind == "vmm-boot-not-implemented"


def test_no_tee_hardware() -> None:
    rendered, target = _shipped("4.1.0", "configuration-qemu-snp-amd64.toml", "--guest-protection sev")
    with pytest.raises(CannotBoot) as why:
        check_bootable(rendered, NONE, target)
    assert why.value.kind == "no-tee-hardware" and "SEV" in why.value.reason


def test_no_hugepages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A host whose /proc/mounts has no hugetlbfs on /dev/hugepages cannot back the guest's RAM."""
    mounts = tmp_path / "mounts"
    mounts.write_text("proc /proc proc rw 0 0\n")
    real = boot.hugepages_shortfall
    monkeypatch.setattr(boot, "hugepages_shortfall", lambda argv: real(argv, mounts=str(mounts)))
    doc = load_toml(BASE_DIR / "configuration-qemu-amd64.toml")
    doc["hypervisor"]["qemu"]["enable_hugepages"] = True
    with pytest.raises(CannotBoot) as why:
        check_bootable(render_doc(doc, NONE), NONE, NONE)
    assert why.value.kind == "no-hugepages" and "hugetlbfs" in why.value.reason


def test_qemu_lacks(monkeypatch: pytest.MonkeyPatch) -> None:
    """A QEMU build without the tdx-guest object (QEMU 7.2's capabilities) cannot launch a TDX argv: a finding."""
    real = qemu_caps.capabilities(("/usr/bin/qemu-system-x86_64",), "amd64")
    without = dataclasses.replace(real, object_types=[t for t in real.object_types if t != "tdx-guest"])
    monkeypatch.setattr(boot, "plan_findings", lambda argv, caps: capabilities.plan_findings(argv, without))
    argv = read_argv_file(DATA / "kata-4.1.0" / "shipped" / "shipped_amd64_tdx.argv")
    with pytest.raises(CannotBoot) as why:
        plan_for_host(argv, None, assets=None, accel=TCG)
    assert why.value.kind == "qemu-lacks" and "tdx-guest" in why.value.reason


def _daemon(flag: str) -> list[str]:
    vector = Vector("kata-4.1.0", "named", "default", DATA / "kata-4.1.0" / "named")
    daemon = vector.expected_lines(".virtiofsd.argv")
    assert daemon is not None
    daemon = [a if not a.startswith("--cache=") else flag for a in daemon] if flag.startswith("--cache=") \
        else [*daemon, flag]
    return daemon


def test_virtiofsd_rust_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the C virtiofsd here, and the argv asks for Rust's --cache=metadata: no C equivalent, a finding."""
    monkeypatch.setattr("katatest.launch.plan.flavour", lambda binary: "c", raising=False)
    monkeypatch.setattr("katatest.launch.virtiofsd.flavour", lambda binary: "c")
    argv = read_argv_file(DATA / "kata-4.1.0" / "named" / "default.argv")
    with pytest.raises(CannotBoot) as why:
        plan_for_host(argv, _daemon("--cache=metadata"), assets=None, accel=TCG)
    assert why.value.kind == "virtiofsd-rust-only"
    with pytest.raises(UnknownVirtiofsdFlag):  # a flag no Rust virtiofsd has: an error, never a skip
        plan_for_host(argv, _daemon("--annouce-submounts"), assets=None, accel=TCG)


def test_virtiofsd_rootless() -> None:
    """virtiofsd's own log saying it cannot setgroups() as a non-root user is the known cause (and only it)."""
    log = "[ERROR virtiofsd] Error entering sandbox: SetGroups(Os { code: 1, kind: PermissionDenied })\n"
    c_log = "virtiofsd: setgroups: Operation not permitted\n"
    known = [capabilities.virtiofsd_refusal(text, 1000) for text in (log, c_log)]
    assert known[1] is not None and known[1].known == "virtiofsd-setgroups", known
    assert capabilities.virtiofsd_refusal("virtiofsd: something else\n", 1000) is None
    assert capabilities.virtiofsd_refusal(c_log, 0) is None
    assert CannotBoot("x", kind="virtiofsd-rootless").kind == "virtiofsd-rootless"


def _net_rendering():
    vector = DATA / "kata-3.0.0-net" / "named"
    flags = (vector / "net_default.flags").read_text()
    return render_file(vector / "net_default.toml", parse_flags(flags)[0])


def test_network_privileges(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(guest_network, "unavailable_reason", lambda: "/dev/net/tun is absent (no tun/tap driver)")
    with pytest.raises(CannotBoot) as why:
        boot._pod_network(_net_rendering())
    assert why.value.kind == "network-privileges" and "/dev/net/tun" in why.value.reason


def test_network_not_plumbed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rate limiters are rendered but not plumbed by katatest (named); any other plan error is an error."""
    monkeypatch.setattr(guest_network, "unavailable_reason", lambda: None)
    rendered = _net_rendering()
    limited = dataclasses.replace(rendered, network=tuple(dataclasses.replace(p, tx_rate=1000)
                                                         for p in rendered.network))
    with pytest.raises(CannotBoot) as why:
        boot._pod_network(limited)
    assert why.value.kind == "network-not-plumbed"
    broken = dataclasses.replace(rendered, network=tuple(dataclasses.replace(p, addresses=("10.0.0.300/24",))
                                                        for p in rendered.network))
    with pytest.raises(Exception) as err:
        boot._pod_network(broken)
    assert not isinstance(err.value, CannotBoot)


def test_missing_qemu_is_an_error_not_a_skip() -> None:
    doc = load_toml(BASE_DIR / "configuration-qemu-amd64.toml")
    doc["hypervisor"]["qemu"]["path"] = "/nonexistent/qemu-system-x86_64"
    doc["hypervisor"]["qemu"]["valid_hypervisor_paths"] = ["/nonexistent/qemu-system-x86_64"]
    with pytest.raises(VmmMissing) as err:
        check_bootable(render_doc(doc, NONE), NONE, NONE)
    assert not isinstance(err.value, CannotBoot) and isinstance(err.value, PlanError.__mro__[1])


def test_hidden_qemu_fails_the_run(tmp_path: Path) -> None:
    """The cell's QEMU binary hidden (an empty, non-executable file bound over it in a private mount namespace):
    ``pytest suites`` on the cell exits non-zero and its guest is an error, not generation-only."""
    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.skip("hiding /usr/bin/qemu-system-x86_64 takes a private mount namespace: root and unshare")
    blank = tmp_path / "blank"
    blank.write_text("")
    reports = tmp_path / "reports"
    script = (f"mount --bind {blank} /usr/bin/qemu-system-x86_64 && exec {sys.executable} -m pytest suites -q "
              f"-p no:cacheprovider -k amd64-nvdimm-virtiofs-scsi --katatest-kata-version 3.0.0 "
              f"--katatest-reports={reports}")
    run = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode != 0, run.stdout[-2000:]
    cell = json.loads((reports / "summary.json").read_text())["cells"][0]
    assert (cell["name"], cell["outcome"], cell["boot"]) == ("amd64-nvdimm-virtiofs-scsi", "error", "error")
    assert Path("/usr/bin/qemu-system-x86_64").stat().st_size > 0  # hidden in the namespace only


# --- the hot-plug checks' host side (katatest/guest/hotplug_host.py) ---------------------------------------

def test_needs_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hotplug_host.os, "geteuid", lambda: 1000)
    with pytest.raises(hotplug_host.CannotHotplug) as why, hotplug_host.loop_disk(tmp_path, 1 << 20):
        pass
    assert why.value.kind == "needs-root" and "[needs-root]" in str(why.value)
    assert not list(tmp_path.iterdir())


def test_no_loop_device(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """losetup failing (no loop driver, every device taken) is the named reason, with losetup's own words."""
    monkeypatch.setattr(hotplug_host.os, "geteuid", lambda: 0)
    monkeypatch.setattr(hotplug_host, "LOSETUP", ("sh", "-c", "echo 'losetup: cannot find an unused loop device' >&2; "
                                                  "exit 1", "losetup"))
    with pytest.raises(hotplug_host.CannotHotplug) as why, hotplug_host.loop_disk(tmp_path, 1 << 20):
        pass
    assert why.value.kind == "no-loop-device" and "unused loop device" in why.value.reason


def test_no_vhost_net(monkeypatch: pytest.MonkeyPatch) -> None:
    """A config that wants vhost on a host without /dev/vhost-net is the named reason; without vhost it is not
    asked for (the NIC is then built, as far as this host allows)."""
    monkeypatch.setattr(hotplug_host.network, "unavailable_reason", lambda: None)
    monkeypatch.setattr(hotplug_host.network, "VHOST_NET", "/nonexistent/vhost-net")
    with pytest.raises(hotplug_host.CannotHotplug) as why, hotplug_host.hotplug_nic("02:00:00:00:01:01", 1, True):
        pass
    assert why.value.kind == "no-vhost-net" and "/nonexistent/vhost-net" in why.value.reason
    monkeypatch.setattr(hotplug_host.network, "unavailable_reason", lambda: "/dev/net/tun is absent")
    with pytest.raises(hotplug_host.CannotHotplug) as why, hotplug_host.hotplug_nic("02:00:00:00:01:01", 1, False):
        pass
    assert why.value.kind == "network-privileges"


def test_tcg_cpu_unplug_event() -> None:
    """The missing DEVICE_DELETED after a completed vCPU unplug is the named finding under TCG only; under KVM
    it is a failure (None), and a device_del that never completed is no finding at all."""
    done = [('{"execute":"device_del"}', 'device_del {"id": "cpu-0"}: done, but no DEVICE_DELETED {"device": '
                                         '"cpu-0"} within 1.0 s of it')]
    finding = hotplug_host.unplug_event_finding("tcg", done)
    assert finding is not None and finding.kind == "tcg-cpu-unplug-event"
    assert hotplug_host.unplug_event_finding("kvm", done) is None
    assert hotplug_host.unplug_event_finding("tcg", [("x", "no DEVICE_DELETED for cpu-0 within 30 s")]) is None
