"""Real launches (TCG, probe kernel) of Kata 3.30.0's argv: QEMU in the foreground under the supervisor, the
QMP listener at fd 3, the same no-orphan guarantees as a daemonized QEMU."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from katatest.launch.errors import LaunchError
from katatest.launch.plan import LaunchPlan
from katatest.launch.sweep import sweep
from katatest.launch.vm import VirtualMachine
from tests.test_launcher import gone_within, mine
from tests.test_launcher import make_plan as launcher_plan

pytestmark = [pytest.mark.boot, pytest.mark.usefixtures("isolated_env")]
VECTORS = Path(__file__).parent / "data/conformance/kata-3.30.0/named"
ROOT = Path(__file__).resolve().parents[1]


def make_plan(name: str, asset_dir: Path) -> LaunchPlan:
    return launcher_plan(name, asset_dir, VECTORS)


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def test_foreground_qemu_is_the_supervised_child(tmp_path: Path) -> None:
    plan = make_plan("default", tmp_path / "assets")
    assert plan.foreground
    with VirtualMachine(plan, tmp_path / "runs") as vm:
        assert vm.qmp.status() == "running"
        assert parent_of(vm.qemu_pid) == vm.supervisor_pid  # not reparented: no daemonizing parent
        assert os.readlink(f"/proc/{vm.qemu_pid}/fd/3").startswith("socket:")
        assert Path(vm.plan.paths.qmp_socket).is_socket()
        spec = json.loads((vm.artifacts_dir / "supervisor.json").read_text())
        assert spec["foreground"] is True and spec["inherit"][0]["target"] == 3
        assert Path(vm.plan.paths.pidfile).read_text().strip()  # QEMU still writes Kata's pidfile
        pids, runtime_dir = [vm.qemu_pid, vm.virtiofsd_pid, vm.supervisor_pid], vm.runtime_dir
    assert gone_within(pids, 0) == []
    assert not os.path.exists(runtime_dir)
    assert mine() == []


def test_exit_after_the_greeting_is_a_refusal(tmp_path: Path) -> None:
    """A missing -bios: QEMU's monitor thread greets, then QEMU exits; readiness waits for a command's reply."""
    plan = make_plan("firmware_ovmf", tmp_path / "assets")  # -bios /usr/share/kata-containers/OVMF.fd
    with pytest.raises(LaunchError) as info:
        VirtualMachine(plan, tmp_path / "runs").start()
    assert "before its QMP socket answered" in str(info.value)
    assert "OVMF.fd" in info.value.stderr or "BIOS" in info.value.stderr
    assert mine() == []


CHILD = """
import json, sys, time
sys.path.insert(0, {root!r})
from tests.test_launcher_foreground import make_plan
from katatest.launch.vm import VirtualMachine
from pathlib import Path
vm = VirtualMachine(make_plan("default", Path({assets!r})), {runs!r}).start()
print(json.dumps({{"pids": [vm.qemu_pid, vm.virtiofsd_pid, vm.supervisor_pid], "status": vm.qmp.status(),
                  "runtime_dir": vm.runtime_dir}}), flush=True)
time.sleep(600)
"""


@pytest.mark.parametrize("victim", ["owner", "supervisor"])
@pytest.mark.parametrize("mode", ["pidns", "subreaper"])
def test_sigkill_leaves_no_foreground_qemu(tmp_path: Path, mode: str, victim: str) -> None:
    if mode == "pidns" and os.geteuid() != 0:
        pytest.skip("PID namespaces need root")
    make_plan("default", tmp_path / "assets")
    code = CHILD.format(root=str(ROOT), assets=str(tmp_path / "assets"), runs=str(tmp_path / "runs"))
    owner = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "KATATEST_SUPERVISOR": mode})
    try:
        report = json.loads(owner.stdout.readline())
        assert report["status"] == "running"
        qemu, _, supervisor = report["pids"]
        os.kill(owner.pid if victim == "owner" else supervisor, signal.SIGKILL)
        assert gone_within([qemu, supervisor] if victim == "owner" else [qemu], 5.0) == []
    finally:
        owner.kill()
        owner.wait()
        owner.stdout.close()
    assert gone_within(report["pids"], 5.0) == []
    leftovers = sweep()
    assert report["runtime_dir"] in leftovers.removed and leftovers.killed == []
