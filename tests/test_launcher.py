"""Real launches (TCG) of conformance-vector argvs: lifecycle, QMP, virtiofsd, no orphans, no collisions.

The guest kernel is katatest's probe kernel (it parks the vCPU after a marker), so no guest assets are needed:
what is proven here is process lifecycle and overrides, not the guest.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from katatest.launch.capabilities import refusal_findings
from katatest.launch.errors import LaunchError
from katatest.launch.kvm import AccelVerdict
from katatest.launch.plan import LaunchPlan, plan_launch, read_argv_file
from katatest.launch.probe_kernel import write_probe_kernel
from katatest.launch.proc import alive
from katatest.launch.sweep import katatest_processes, sweep
from katatest.launch.vm import VirtualMachine

pytestmark = [pytest.mark.boot, pytest.mark.usefixtures("isolated_env")]  # own TMPDIR and XDG_RUNTIME_DIR
VECTORS = Path(__file__).parent / "data/conformance/kata-3.0.0/named"
ROOT = Path(__file__).resolve().parents[1]


def make_plan(name: str, asset_dir: Path, vectors: Path = VECTORS) -> LaunchPlan:
    """The launch plan of vector ``name`` (from ``vectors``) with katatest's probe kernel and a blank image."""
    asset_dir.mkdir(parents=True, exist_ok=True)
    kernel = write_probe_kernel(asset_dir / "probe.bin")
    image = asset_dir / "image"
    if not image.exists():
        image.write_bytes(b"\0" * (4 << 20))
    daemon = vectors / f"{name}.virtiofsd.argv"
    return plan_launch(read_argv_file(vectors / f"{name}.argv"),
                       read_argv_file(daemon) if daemon.exists() else None,
                       assets={"kernel": str(kernel), "image": str(image)}, accel=AccelVerdict("tcg", "test"),
                       vhost_vsock_available=os.path.exists("/dev/vhost-vsock"))


def gone_within(pids: list[int], seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    live = [p for p in pids if p and alive(p)]
    while live and time.monotonic() < deadline:
        time.sleep(0.1)
        live = [p for p in live if alive(p)]
    return live


def mine() -> list[int]:
    """Processes launched by this test process (its owner token is in their environment)."""
    from katatest.launch.proc import owner_token

    me = owner_token()
    return [p.pid for p in katatest_processes() if p.environ.get("KATATEST_OWNER") == me]


def test_launch_virtio_fs_vector(tmp_path: Path) -> None:
    plan = make_plan("default", tmp_path / "assets")
    with VirtualMachine(plan, tmp_path / "runs") as vm:
        assert vm.qmp.status() == "running"
        assert Path(vm.console_socket).exists()
        assert alive(vm.qemu_pid) and alive(vm.virtiofsd_pid)
        assert vm.plan.paths.vm_dir.startswith(vm.runtime_dir + "/run/vc/vm/")
        assert oct(os.stat(vm.runtime_dir).st_mode & 0o777) == "0o700"
        assert oct(os.stat(vm.plan.paths.shared_dir).st_mode & 0o777) == "0o700"
        cmdline = Path(f"/proc/{vm.qemu_pid}/cmdline").read_bytes().split(b"\0")[:-1]
        assert [a.decode() for a in cmdline] == vm.plan.argv  # launched exactly as planned
        overrides = json.loads((vm.artifacts_dir / "overrides.json").read_text())
        assert {"accel", "cpu-model", "asset-kernel", "rootless-layout"} <= {o["kind"] for o in overrides}
        pids, runtime_dir = [vm.qemu_pid, vm.virtiofsd_pid, vm.supervisor_pid], vm.runtime_dir
    assert gone_within(pids, 0) == []
    assert not os.path.exists(runtime_dir)
    assert mine() == []


def test_launch_9p_vector_without_daemon(tmp_path: Path) -> None:
    with VirtualMachine(make_plan("virtio_9p", tmp_path / "assets"), tmp_path / "runs") as vm:
        assert vm.virtiofsd_pid is None
        assert vm.qmp.execute("query-status")["running"] is True
    assert mine() == []


def test_refusal_carries_stderr_and_findings(tmp_path: Path) -> None:
    plan = make_plan("arm64_default", tmp_path / "assets")  # nvdimm on virt without firmware
    with pytest.raises(LaunchError) as info:
        VirtualMachine(plan, tmp_path / "runs").start()
    assert "acpi-ged" in info.value.stderr and "QEMU lacks: nvdimm on arm64 virt without firmware" in str(info.value)
    assert any("firmware" in f.what for f in refusal_findings(info.value.stderr))
    (artifacts,) = (tmp_path / "runs").iterdir()  # kept on failure
    assert info.value.argv == (artifacts / "argv").read_text().splitlines()  # the argv as launched
    assert {"argv", "overrides.json", "qemu.stderr", "virtiofsd.argv"} <= {p.name for p in artifacts.iterdir()}
    assert mine() == []


CHILD = """
import json, sys, time
sys.path.insert(0, {root!r})
from tests.test_launcher import make_plan
from katatest.launch.vm import VirtualMachine
from pathlib import Path
vm = VirtualMachine(make_plan("default", Path({assets!r})), {runs!r}).start()
print(json.dumps({{"pids": [vm.qemu_pid, vm.virtiofsd_pid, vm.supervisor_pid], "status": vm.qmp.status(),
                  "runtime_dir": vm.runtime_dir, "sockets": [vm.plan.paths.qmp_socket, vm.console_socket]}}),
      flush=True)
if {stop!r}:
    sys.stdin.read()
    vm.stop()
else:
    time.sleep(600)
"""


def spawn_owner(tmp_path: Path, stop: bool, env: dict | None = None) -> subprocess.Popen:
    make_plan("default", tmp_path / "assets")  # assets exist before the owners race for them
    code = CHILD.format(root=str(ROOT), assets=str(tmp_path / "assets"), runs=str(tmp_path / "runs"), stop=stop)
    return subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, env={**os.environ, **(env or {})})


@pytest.mark.parametrize("mode", ["pidns", "subreaper"])
def test_sigkill_of_owner_leaves_no_processes(tmp_path: Path, mode: str) -> None:
    if mode == "pidns" and os.geteuid() != 0:
        pytest.skip("PID namespaces need root")
    owner = spawn_owner(tmp_path, stop=False, env={"KATATEST_SUPERVISOR": mode})
    try:
        report = json.loads(owner.stdout.readline())
        assert report["status"] == "running" and all(alive(p) for p in report["pids"])
    finally:
        owner.send_signal(signal.SIGKILL)
        owner.wait()
        owner.stdout.close()
        owner.stdin.close()
    assert gone_within(report["pids"], 5.0) == []
    leftovers = sweep()  # the owner could not remove its runtime dir; the sweeper does
    assert report["runtime_dir"] in leftovers.removed and leftovers.killed == []


def test_concurrent_launches_never_collide(tmp_path: Path) -> None:
    owners = [spawn_owner(tmp_path, stop=True) for _ in range(2)]
    try:
        reports = [json.loads(o.stdout.readline()) for o in owners]
    finally:
        for o in owners:
            o.stdin.close()
        rcs = [o.wait(60) for o in owners]
        for o in owners:
            o.stdout.close()
    assert rcs == [0, 0]
    assert [r["status"] for r in reports] == ["running", "running"]
    assert reports[0]["runtime_dir"] != reports[1]["runtime_dir"]
    assert not set(reports[0]["sockets"]) & set(reports[1]["sockets"])
    assert gone_within(reports[0]["pids"] + reports[1]["pids"], 5.0) == []
    assert not any(os.path.exists(r["runtime_dir"]) for r in reports)
