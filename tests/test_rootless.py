"""The suites as an unprivileged user: Kata's rootless paths under the user's own XDG_RUNTIME_DIR, no root.

Setup (as root): a user ``kt-rootless`` (``useradd`` if missing) and a private base dir ``/tmp/ktr-*``
owned by it holding ``home/`` (HOME), ``xdg/`` (XDG_RUNTIME_DIR, 0700), ``tmp/`` (TMPDIR), ``reports/`` and
``cache/`` (KATATEST_CACHE_DIR): a *copy* of the built amd64 asset sets, the busybox memo and the accel
verdict, owned by the user (root's ``~/.cache`` is not readable by others, and the cache must be
writable for its locks). The interpreter lives under ``/root/.pyenv``, unreadable by others, so the run
happens in a private mount namespace where ``/root`` is a tmpfs holding only ``.pyenv`` (bind-mounted,
read-only); nothing outside that namespace changes. The user's run must pass, launch QEMU with every
Kata runtime path under its XDG_RUNTIME_DIR, and leave no file of its own anywhere else.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from katatest.assets.cache import cache_root
from katatest.matrix.model import load_matrix
from tests.faults.helpers import FAST_CELL, FS_CELL, ROOT, built_assets, pytest_cmd

pytestmark = pytest.mark.boot
USER = "kt-rootless"
WORLD_WRITABLE = ("/tmp", "/var/tmp", "/dev/shm", "/run", "/work")
PYENV = Path("/root/.pyenv")


def rootless_user() -> pwd.struct_passwd:
    if os.geteuid() != 0:
        pytest.skip("creating a user and switching to it needs root")
    try:
        return pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", USER], check=True)
        return pwd.getpwnam(USER)


def chown_tree(path: Path, user: pwd.struct_passwd) -> None:
    for root, dirs, files in os.walk(path):
        for name in [root, *(os.path.join(root, n) for n in dirs + files)]:
            os.lchown(name, user.pw_uid, user.pw_gid)


def world_readable(path: Path) -> bool:
    """Whether any user can reach ``path`` (every ancestor searchable, the path itself readable)."""
    path = path.absolute()
    for ancestor in [*reversed(path.parents), path]:
        mode = ancestor.stat().st_mode
        if not mode & 0o001 or (ancestor == path and not mode & 0o004):
            return False
    return True


def user_cache(dest: Path) -> None:
    """Copy the built amd64 asset sets, the busybox memo and accel verdicts into ``dest``."""
    assets = built_assets()
    src = cache_root()
    for directory in {assets.kernel.parent, assets.initrd.parent, assets.image.parent}:
        shutil.copytree(directory, dest / "amd64" / directory.name)
    if (src / "memo").is_dir():
        shutil.copytree(src / "memo", dest / "memo")
    for verdict in src.glob("accel-*.json"):
        shutil.copy2(verdict, dest / verdict.name)


def as_user(user: pwd.struct_passwd, env: dict[str, str], argv: list[str], timeout: float
            ) -> subprocess.CompletedProcess:
    """Run ``argv`` as ``user`` in a mount namespace where only /root/.pyenv of /root is visible."""
    python_home = Path(sys.executable).resolve().parents[1]
    if PYENV not in python_home.parents:
        raise AssertionError(f"unexpected interpreter location {python_home}")
    builds = cache_root() / "builds"  # the QEMU / virtiofsd builds (private Debian roots), read-only for the user
    cache = env.get("KATATEST_CACHE_DIR", "")
    share = (f"mkdir -p {cache}/builds; mount --bind {builds} {cache}/builds; mount -o remount,bind,ro "
             f"{cache}/builds; " if cache and builds.is_dir() else "")
    script = (f"set -e; {share}stage=$(mktemp -d /tmp/ktr-stage-XXXXXX); mount --bind {PYENV} $stage; "
              f"mount -t tmpfs -o mode=0755 none /root; mkdir /root/.pyenv; mount --bind $stage {PYENV}; "
              f"mount -o remount,bind,ro {PYENV}; umount $stage; rmdir $stage; "
              f"exec setpriv --reuid={user.pw_uid} --regid={user.pw_gid} --init-groups "
              f"--reset-env env \"$@\"")
    cmd = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh",
           *(f"{k}={v}" for k, v in env.items()), *argv]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def files_of(user: pwd.struct_passwd, exclude: Path) -> list[str]:
    """Files owned by ``user`` in the world-writable places it could write to, outside ``exclude``."""
    found = subprocess.run(["find", *WORLD_WRITABLE, "-xdev", "-path", str(exclude), "-prune", "-o",
                            "-user", str(user.pw_uid), "-print"], capture_output=True, text=True)
    return found.stdout.split()


def test_suites_pass_rootless_under_the_users_xdg_runtime_dir() -> None:
    """The default amd64 matrix as a plain user: passes (virtio-fs cells skip with the reason), XDG paths,
    nothing written outside the user's dirs."""
    user = rootless_user()
    base = Path(tempfile.mkdtemp(prefix="ktr-", dir="/tmp"))
    try:
        dirs = {name: base / name for name in ("home", "xdg", "tmp", "reports", "cache")}
        for path in dirs.values():
            path.mkdir()
        user_cache(dirs["cache"])
        os.chmod(dirs["xdg"], 0o700)
        chown_tree(base, user)
        python = Path(sys.executable).absolute()  # the venv's python: its site-packages must stay in use
        unreadable = [str(p) for p in (ROOT, python) if PYENV not in p.parents and not world_readable(p)]
        if unreadable:
            pytest.skip(f"an unprivileged user cannot read {unreadable} (checkout under a private dir)")
        env = {"HOME": str(dirs["home"]), "XDG_RUNTIME_DIR": str(dirs["xdg"]), "TMPDIR": str(dirs["tmp"]),
               "KATATEST_CACHE_DIR": str(dirs["cache"]), "PATH": f"{python.parent}:/usr/sbin:/usr/bin:/bin",
               "PYTHONDONTWRITEBYTECODE": "1", "LANG": "C.UTF-8", "USER": USER}
        status = as_user(user, env, [str(python), "-m", "katatest", "assets", "status"], 120)
        assert status.returncode == 0 and "missing" not in status.stdout, status.stdout + status.stderr
        run = as_user(user, env, [str(python), *pytest_cmd(
            "suites", "-n", "2", "--dist", "loadgroup", "-rs",
            "--katatest-reports", str(dirs["reports"]), "--junitxml", str(dirs["reports"] / "junit.xml"))[1:]],
            1500)
        assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-3000:]
        suite = ET.parse(dirs["reports"] / "junit.xml").getroot().find("testsuite")
        assert suite is not None and int(suite.get("tests", 0)) > int(suite.get("skipped", 0)), run.stdout[-3000:]
        xdg = str(dirs["xdg"])
        cells = [c for c in load_matrix().named("default") if c.arch == "amd64" and c.hypervisor == "qemu"
                 and c.protection == "none"]
        booted = [c.name for c in cells if (dirs["reports"] / "cells" / c.name / "launch-argv.txt").exists()]
        nine_p = [c.name for c in cells if c.shared_fs == "virtio-9p" and not c.net_endpoints]
        assert FAST_CELL in booted and set(nine_p) <= set(booted), (booted, run.stdout[-3000:])
        networked = [c.name for c in cells if c.net_endpoints]
        assert networked and not set(networked) & set(booted), booted  # namespaces and taps need root
        assert "the pod network needs privileges this run lacks" in run.stdout, run.stdout[-3000:]
        if FS_CELL not in booted:  # QEMU 7.2's C virtiofsd calls setgroups(): root only; a skip with the reason
            assert "virtiofsd cannot run as a non-root user" in run.stdout, run.stdout[-3000:]
        for cell in booted:
            argv = (dirs["reports"] / "cells" / cell / "launch-argv.txt").read_text()
            kata_paths = re.findall(r"(/[^\s,=]*/run/(?:vc|kata-containers)/[^\s,]*)", argv)
            assert kata_paths and all(p.startswith(f"{xdg}/kt-") for p in kata_paths), (cell, kata_paths)
        assert not list(dirs["xdg"].iterdir()), "runtime dirs left under XDG_RUNTIME_DIR"
        assert files_of(user, base) == []
        assert subprocess.run(["pgrep", "-u", USER], capture_output=True).stdout == b""
        print(f"rootless: booted {booted}; {suite.get('tests')} tests, {suite.get('skipped')} skipped")
    finally:
        shutil.rmtree(base, ignore_errors=True)
