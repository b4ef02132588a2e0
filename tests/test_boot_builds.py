"""Real boots on the QEMU and Rust virtiofsd a release ships (Debian's closest builds): Kata 3.30.0's shipped
config on QEMU 10.0 with virtiofsd 1.13, 4.1.0's on QEMU 11.1 with virtiofsd 1.14, amd64 and arm64, the daemon
argv unchanged (no flag translation), the guest's /proc/cmdline the generated -append."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from katatest.fixtures.guests import accel_for

from katatest.assets import qemu_builds
from katatest.expect.checks import SHARED_MOUNT_POINT, without_loader
from katatest.guest.boot import Builds, boot_guest
from katatest.host import facts as hostfacts
from katatest.kata.tomlconf import load_toml
from katatest.matrix.cell_config import base_config_path
from katatest.matrix.model import default_builds
from tests.faults.helpers import built_assets

pytestmark = [pytest.mark.boot, pytest.mark.usefixtures("isolated_env")]
ROOT = Path(__file__).resolve().parents[1]
CASES = [(r, a) for r in ("3.30.0", "4.1.0") for a in ("amd64", "arm64")]


def release_builds(release: str) -> Builds:
    qemu, virtiofsd = default_builds(release)
    found = (qemu_builds.find("qemu", qemu), qemu_builds.find("virtiofsd", virtiofsd))
    if None in found:
        pytest.fail(f"QEMU {qemu} / virtiofsd {virtiofsd} not provisioned: katatest assets build --qemu all")
    return Builds(*found)


@pytest.mark.parametrize(("release", "arch"), CASES, ids=[f"{r}-{a}" for r, a in CASES])
def test_release_boots_on_the_builds_it_ships(tmp_path: Path, release: str, arch: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("the pod-less shipped config's virtiofsd sandbox needs root here")
    builds = release_builds(release)
    host = hostfacts.detect()
    document = load_toml(base_config_path(arch, "qemu", release))
    assets = built_assets(arch)
    with boot_guest(document, host.with_overrides(arch=arch), host=host, assets=assets,
                    accel=accel_for(arch, assets.kernel), run_root=tmp_path / "runs", name=f"b-{release}",
                    release=release, builds=builds) as guest:
        kinds = {o.kind for o in guest.plan.overrides}
        assert "qemu-build" in kinds and "virtiofsd-build" in kinds
        assert "virtiofsd-c-flag" not in kinds  # Kata's Rust-virtiofsd argv runs unchanged
        version = guest.vm.qmp.execute("query-version")["qemu"]
        assert builds.qemu.version(arch).startswith(f"{version['major']}.{version['minor']}.{version['micro']}")
        daemon = without_loader(Path(f"/proc/{guest.vm.virtiofsd_pid}/cmdline").read_bytes().decode()
                                .split("\0")[:-1])
        assert daemon[0] == builds.virtiofsd.binary()
        assert daemon[1:] == [a for a in guest.rendered.daemon_values()[1:] if a != "--syslog"]
        append = guest.rendered.argv_values()[guest.rendered.argv_values().index("-append") + 1]
        assert guest.host.file("/proc/cmdline").content_string.rstrip("\n") == append
        assert f"kataShared {SHARED_MOUNT_POINT} virtiofs" in guest.host.file("/proc/mounts").content_string


def test_boot_cli_on_qemu_11_1(tmp_path: Path) -> None:
    """``katatest boot --kata-version 4.1.0 --qemu 11.1 CONFIG -- cat /proc/cmdline``: the generated -append, no
    virtiofsd flag translation, the Rust virtiofsd 1.14."""
    if os.geteuid() != 0:
        pytest.skip("the shipped config's virtiofsd sandbox needs root here")
    release_builds("4.1.0")
    config = base_config_path("amd64", "qemu", "4.1.0")
    run = subprocess.run([sys.executable, "-m", "katatest", "boot", "--kata-version", "4.1.0", "--qemu", "11.1",
                          str(config), "--", "cat", "/proc/cmdline"], capture_output=True, text=True, cwd=ROOT,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "builds: QEMU 11.1 (11.1." in run.stderr and "virtiofsd 1.14 (1.14." in run.stderr
    assert "virtiofsd-c-flag" not in run.stderr and "override virtiofsd-build" in run.stderr
    rendered = subprocess.run([sys.executable, "-m", "katatest", "render", "--kata-version", "4.1.0", "--detect-host",
                               str(config)], capture_output=True, text=True, cwd=ROOT).stdout.splitlines()
    assert run.stdout.rstrip("\n") == rendered[rendered.index("-append") + 1]
