"""Launch plans from the conformance vectors: every difference from Kata's argv is a recorded override."""

from __future__ import annotations

from pathlib import Path

import pytest

from katatest.launch.capabilities import plan_findings, refusal_findings
from katatest.launch.errors import PlanError
from katatest.launch.kvm import AccelVerdict, accel_verdict
from katatest.launch.plan import (
    LaunchPlan,
    Override,
    apply_all,
    option_values,
    plan_launch,
    read_argv_file,
    relocate,
)
from katatest.launch.probe_kernel import probe_kernel_bytes
from katatest.launch.qemu_caps import capabilities

VECTORS = Path(__file__).parent / "data/conformance/kata-3.0.0/named"
TCG = AccelVerdict("tcg", "test")
KVM = AccelVerdict("kvm", "test")


def vector(name: str) -> tuple[list[str], list[str] | None]:
    daemon = VECTORS / f"{name}.virtiofsd.argv"
    return read_argv_file(VECTORS / f"{name}.argv"), read_argv_file(daemon) if daemon.exists() else None


@pytest.fixture
def assets(tmp_path: Path) -> dict:
    (tmp_path / "kernel").write_bytes(probe_kernel_bytes())
    (tmp_path / "initrd").write_bytes(b"initrd")
    (tmp_path / "image").write_bytes(b"\0" * (6 << 20))
    return {"kernel": str(tmp_path / "kernel"), "initrd": str(tmp_path / "initrd"),
            "image": str(tmp_path / "image"), "image_size": 6 << 20}


def plan(name: str, **kw: object) -> LaunchPlan:
    argv, daemon = vector(name)
    kw.setdefault("assets", None)
    kw.setdefault("accel", TCG)
    kw.setdefault("vhost_vsock_available", False)
    kw.setdefault("syslog_available", True)
    return plan_launch(argv, daemon, **kw)


def test_overrides_are_the_only_difference(assets: dict) -> None:
    argv, daemon = vector("default")
    p = plan_launch(argv, daemon, assets=assets, accel=TCG, vhost_vsock_available=False, syslog_available=False)
    qemu = [o for o in p.overrides if o.target == "qemu"]
    assert apply_all(argv, qemu) == p.argv
    assert apply_all(daemon, [o for o in p.overrides if o.target == "daemon"]) == p.daemon_argv
    assert all(o.reason for o in p.overrides)
    kinds = {o.kind for o in p.overrides}
    assert {"asset-kernel", "asset-image", "accel", "cpu-model", "drop-vsock", "drop-syslog"} <= kinds
    assert option_values(p.argv, "-machine") == ["q35,accel=tcg,kernel_irqchip=on,nvdimm=on"]
    assert option_values(p.argv, "-cpu") == ["max,pmu=off"]
    assert option_values(p.argv, "-kernel") == [assets["kernel"]]
    assert f"mem-path={assets['image']},size={6 << 20},readonly=on" in option_values(p.argv, "-object")[0]
    assert not any(v.startswith("vhost-vsock") for v in option_values(p.argv, "-device"))
    # QEMU 7.2 accepts the kvm-pit global under TCG (it names a device TCG never creates): kept.
    assert option_values(p.argv, "-global") == ["kvm-pit.lost_tick_policy=discard"]
    assert "-daemonize" in p.argv


def test_kvm_and_vsock_keep_kata_argv() -> None:
    argv, _ = vector("default")
    p = plan("default", accel=KVM, vhost_vsock_available=True)
    assert [o.kind for o in p.overrides if o.target == "qemu"] in ([], ["binary"])
    assert p.argv[1:] == argv[1:]
    assert p.vhost_vsock_fd == 3


def test_cpu_features_after_model_are_kept() -> None:
    assert option_values(plan("cpu_features").argv, "-cpu") == ["max,pmu=off,vmx=off"]


def test_arm64_gic_and_cpu() -> None:
    p = plan("arm64_default")
    assert option_values(p.argv, "-machine") == ["virt,usb=off,accel=tcg,gic-version=max,nvdimm=on"]
    assert option_values(p.argv, "-cpu")[0].startswith("max")
    assert any("gic-version=host requires KVM" in o.reason for o in p.overrides)


def test_initrd_and_image_drive(assets: dict) -> None:
    assert option_values(plan("initrd", assets=assets).argv, "-initrd") == [assets["initrd"]]
    drive = option_values(plan("image_nvdimm_disabled", assets=assets).argv, "-drive")[0]
    assert f"file={assets['image']}," in drive


def test_run_paths() -> None:
    sid = "1" * 64
    p = plan("default")
    assert p.paths.vm_dir == f"/run/vc/vm/{sid}"
    assert p.paths.qmp_socket == f"/run/vc/vm/{sid}/qmp.sock"
    assert p.paths.console_socket == f"/run/vc/vm/{sid}/console.sock"
    assert p.paths.vhost_fs_socket == f"/run/vc/vm/{sid}/vhost-fs.sock"
    assert p.paths.pidfile == f"/run/vc/vm/{sid}/pid"
    assert p.paths.shared_dir == f"/run/kata-containers/shared/sandboxes/{sid}/shared"
    assert plan("legacy_serial").paths.console_socket == f"/run/vc/vm/{sid}/console.sock"
    nine_p = plan("virtio_9p")
    assert nine_p.daemon_argv is None and nine_p.paths.vhost_fs_socket is None
    assert nine_p.paths.shared_dir == f"/run/kata-containers/shared/sandboxes/{sid}/shared"


def test_relocation_moves_every_run_path() -> None:
    p = relocate(plan("default"), "/tmp/kt-abc")
    assert not any("/run/vc/" in a and "/tmp/kt-abc/run/vc/" not in a for a in p.argv)
    assert p.paths.vm_dir == "/tmp/kt-abc/run/vc/vm/" + "1" * 64
    assert p.paths.shared_dir.startswith("/tmp/kt-abc/run/kata-containers/shared/")
    assert any(a == "source=" + p.paths.shared_dir for a in p.daemon_argv)
    assert [o.kind for o in p.overrides].count("rootless-layout") == 5  # qmp, console, vhost-fs, pid, source


def test_unknown_override_is_one_clear_error() -> None:
    with pytest.raises(PlanError, match="not in the argv"):
        plan("default", extra=[Override("x", ("-nope",), (), "test")])


def test_extra_override_recorded() -> None:
    o = Override("drop-rtc", ("-rtc", "base=utc,driftfix=slew,clock=host"), (), "test")
    p = plan("default", extra=[o])
    assert "-rtc" not in p.argv and p.overrides[-1] == o


def test_capability_findings() -> None:
    caps = capabilities(("/usr/bin/qemu-system-x86_64",), "amd64")
    assert any("cache-size" in f.what for f in plan_findings(vector("virtio_fs_cache_size")[0], caps))
    assert any("tdx-guest" in f.what for f in plan_findings(vector("confidential_guest_tdx")[0], caps))
    assert any("nosmm" in f.what for f in plan_findings(vector("machine_accelerators")[0], caps))
    assert plan_findings(vector("default")[0], caps) == []


def test_refusal_findings() -> None:
    stderr = ("qemu-system-aarch64: -device nvdimm,id=nv0,memdev=mem0: memory hotplug is not enabled: "
              "missing acpi-ged device\n")
    (finding,) = refusal_findings(stderr)
    assert "acpi-ged" in finding.evidence and "firmware" in finding.what


def test_accel_forced_and_cross_arch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KATATEST_ACCEL", "tcg")
    assert accel_verdict("/usr/bin/qemu-system-x86_64") == AccelVerdict("tcg", "forced by KATATEST_ACCEL")
    monkeypatch.delenv("KATATEST_ACCEL")
    assert accel_verdict("/usr/bin/qemu-system-aarch64", "arm64").reason.startswith("cross-arch")
