"""Real boots (TCG) of Kata 3.30.0's and 4.1.0's own shipped-default argv, unchanged but for recorded overrides.

The input is the vector Kata's runtime produced for its shipped config (``named/default``, ``named/arm64_default``:
``test_launch_releases.py`` checks they are ``base/``'s configs), with katatest's built guest assets in place of
Kata's paths. What is proven: QEMU runs in the foreground with the QMP listener Kata would pass as fd 3, the
guest runs with exactly the argv's ``-append``, the share is served by the (translated) virtiofsd, and nothing
is left behind.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from katatest.fixtures.guests import accel_for

from katatest.expect.checks import SHARED_MOUNT_POINT
from katatest.guest.boot import boot_argv
from katatest.launch.plan import option_values, read_argv_file
from katatest.launch.proc import alive, owner_token
from katatest.launch.qmp import Qmp
from katatest.launch.sweep import Scope, katatest_processes
from katatest.launch.vm import RUNTIME_PREFIX
from tests.faults.helpers import built_assets

pytestmark = [pytest.mark.boot, pytest.mark.usefixtures("isolated_env")]
DATA = Path(__file__).parent / "data/conformance"
CASES = [(r, a, n) for r in ("3.30.0", "4.1.0") for a, n in (("amd64", "default"), ("arm64", "arm64_default"))]


def vector(release: str, name: str) -> tuple[list[str], list[str] | None]:
    base = DATA / f"kata-{release}/named/{name}"
    daemon = base.with_name(f"{name}.virtiofsd.argv")
    return read_argv_file(base.with_name(f"{name}.argv")), read_argv_file(daemon) if daemon.exists() else None


def mine() -> list[int]:
    me = owner_token()
    return [p.pid for p in katatest_processes() if p.environ.get("KATATEST_OWNER") == me]


@pytest.mark.parametrize(("release", "arch", "name"), CASES, ids=[f"{r}-{a}" for r, a, _ in CASES])
def test_shipped_default_argv_boots(tmp_path: Path, release: str, arch: str, name: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("Kata's 64-char sandbox id under a non-root XDG_RUNTIME_DIR exceeds the socket path limit, "
                    "and QEMU 7.2's C virtiofsd needs root (setgroups)")
    argv, daemon = vector(release, name)
    assets = built_assets(arch)
    with boot_argv(argv, daemon, assets=assets, accel=accel_for(arch, assets.kernel),
                   run_root=tmp_path / "runs", name=f"{release}-{arch}") as guest:
        plan, vm = guest.plan, guest.vm
        assert plan.foreground and "-daemonize" not in plan.argv
        cmdline = Path(f"/proc/{vm.qemu_pid}/cmdline").read_bytes().split(b"\0")[:-1]
        assert [a.decode() for a in cmdline] == plan.argv  # launched exactly as planned
        assert "unix:fd=3,server=on,wait=off" in option_values(plan.argv, "-qmp")
        assert os.readlink(f"/proc/{vm.qemu_pid}/fd/3").startswith("socket:")
        # every difference from Kata's argv is a recorded override, and -append is never one of them
        assert not [o for o in plan.overrides if "-append" in o.before]
        actual = guest.host.file("/proc/cmdline").content_string.rstrip("\n")
        assert actual == guest.given_option("-append")[0]
        # the fd-3 socket is Kata's QMP: a second client connects after the harness's
        assert vm.qmp.status() == "running"
        vm.qmp.close()
        vm.qmp = Qmp(plan.paths.qmp_socket, name="again")
        assert vm.qmp.execute("query-status")["running"] is True
        # the share, served by the virtiofsd the plan chose (the Rust argv translated for a C daemon)
        kinds = {o.kind for o in plan.overrides if o.target == "daemon"}
        assert "virtiofsd-c-flag" in kinds or "--shared-dir=" in " ".join(plan.daemon_argv)
        assert alive(vm.virtiofsd_pid)
        mounts = guest.host.file("/proc/mounts").content_string
        assert f"kataShared {SHARED_MOUNT_POINT} virtiofs" in mounts
        (Path(plan.paths.shared_dir) / "from-host").write_text(release)
        assert guest.host.file(f"{SHARED_MOUNT_POINT}/from-host").content_string == release
        if arch == "arm64":
            assert any(o.kind == "firmware-path" for o in plan.overrides)
        pids, runtime_dir = [vm.qemu_pid, vm.virtiofsd_pid, vm.supervisor_pid], vm.runtime_dir
    assert not [p for p in pids if alive(p)]
    assert not os.path.exists(runtime_dir)
    assert mine() == []


SHIPPED = Path(__file__).resolve().parent.parent / "katatest" / "data" / "base"


@pytest.mark.parametrize(("release", "arch"), [(r, a) for r, a, _ in CASES], ids=[f"{r}-{a}" for r, a, _ in CASES])
def test_katatest_boot_of_the_shipped_config(isolated_env: dict[str, str], release: str, arch: str) -> None:
    """``katatest boot --kata-version R`` of R's shipped config: the guest's /proc/cmdline is the -append
    ``katatest render`` generates for this host, and the run leaves no process or runtime dir behind."""
    if os.geteuid() != 0:
        pytest.skip("QEMU 7.2's C virtiofsd needs root (setgroups)")
    config = str(SHIPPED / release / f"configuration-qemu-{arch}.toml")
    flags = [config, "--kata-version", release, "--arch", arch]
    katatest = [sys.executable, "-m", "katatest"]
    rendered = subprocess.run([*katatest, "render", *flags, "--detect-host"], env=isolated_env, text=True,
                              capture_output=True, timeout=60, check=True).stdout.splitlines()
    booted = subprocess.run([*katatest, "boot", *flags, "--", "cat", "/proc/cmdline"], env=isolated_env,
                            text=True, capture_output=True, timeout=300)
    assert booted.returncode == 0, booted.stderr[-2000:]
    assert booted.stdout.rstrip("\n") == rendered[rendered.index("-append") + 1]
    scope = Scope.of(isolated_env)
    assert katatest_processes(scope=scope) == []
    left = [p for parent in scope.parents for p in Path(parent).glob(f"{RUNTIME_PREFIX}*") if scope.holds_dir(p)]
    assert left == [] and list(Path(isolated_env["TMPDIR"]).iterdir()) == []
