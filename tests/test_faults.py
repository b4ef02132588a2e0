"""Faults the harness must survive (issue 5). Each test injects one fault and ends by proving, with
``katatest.launch.sweep``, that no QEMU/virtiofsd/supervisor process, socket or runtime/run dir is left.

Boot tests use the cached amd64 guest assets (skipped if not built) and TCG; the signal and concurrency
tests drive ``python -m pytest suites/...`` subprocesses on the fast cell ``amd64-initrd-9p-blk``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from katatest.fixtures.guests import accel_for

from katatest.assets.cache import GuestAssets, ensure_assets
from katatest.assets.errors import AssetError
from katatest.errors import KatatestError
from katatest.generate.render import render_doc
from katatest.guest import GuestChannelError, GuestPanic, GuestTimeout
from katatest.guest.boot import VmmMissing, boot_guest, check_bootable
from katatest.guest.channel import TRANSFER_SLACK
from katatest.launch.errors import LaunchError
from katatest.launch.kvm import AccelVerdict
from katatest.launch.proc import alive
from tests.faults.helpers import (
    FAST_CELL,
    FS_CELL,
    ROOT,
    built_assets,
    cell_config,
    children,
    finish,
    gone_within,
    leftovers,
    processes_left,
    spawn_pytest,
    wait_for_vm,
)
from tests.faults.hold_guest import RELEASE_ENV

ME = os.getpid()
pytestmark = pytest.mark.usefixtures("isolated_env")  # VMs, sub-sessions and sweeps: own TMPDIR/XDG
SHARED = "/run/kata-containers/shared/containers"
TCG = AccelVerdict("tcg", "fault tests")


def boot(name: str, tmp_path: Path, kernel_params: str | None = None, assets: GuestAssets | None = None,
         ready_timeout: float = 90.0, **qemu_keys: object):
    document, facts, host = cell_config(name, kernel_params, **qemu_keys)
    return boot_guest(document, facts, host=host, assets=assets or built_assets(), accel=accel_for("amd64"),
                      run_root=tmp_path / "runs", name=name, ready_timeout=ready_timeout)


def launched_at(tmp_path: Path) -> float:
    """When QEMU was started: the launcher writes the argv artifact just before starting it."""
    (argv,) = (tmp_path / "runs").glob("*/argv")
    return argv.stat().st_mtime


# -- 1-3: the guest or QEMU fails while booting ----------------------------------------------------------
@pytest.mark.boot
@pytest.mark.parametrize(("cell_name", "params", "says"), [
    (FAST_CELL, "rdinit=/bin/false", "Attempted to kill init"),
    ("amd64-blk-9p-scsi", "root=/dev/nonexistent", "Unable to mount root fs"),
], ids=["initrd-init-exits", "image-no-root"])
def test_guest_panic_fails_boot_fast_with_console_tail(tmp_path: Path, cell_name: str, params: str,
                                                        says: str) -> None:
    """A panicking guest: GuestPanic within 10 s of QEMU's start, carrying the panic text."""
    with pytest.raises(GuestPanic) as info, boot(cell_name, tmp_path, params):
        pytest.fail("a panicking guest booted")
    after_start = time.time() - launched_at(tmp_path)
    assert after_start < 10, f"panic reported {after_start:.1f}s after QEMU started"
    assert "Kernel panic - not syncing" in str(info.value) and says in str(info.value)
    assert leftovers([ME]) == []


@pytest.mark.boot
def test_silent_guest_times_out_with_console_tail(tmp_path: Path) -> None:
    """init never answers (a plain shell is PID 1): bounded GuestTimeout naming the wait, with the tail."""
    start = time.monotonic()
    with pytest.raises(GuestTimeout) as info, boot(FAST_CELL, tmp_path, "rdinit=/bin/sh", ready_timeout=6):
        pytest.fail("a guest without katatest's init answered")
    elapsed = time.monotonic() - start
    assert "guest init not ready after 6s; console tail:" in str(info.value)
    assert "KTPING" in str(info.value)  # the shell got (and choked on) our pings: the tail is the console's
    assert elapsed < 6 + 15, f"boot_guest took {elapsed:.0f}s with ready_timeout=6"
    assert leftovers([ME]) == []


@pytest.mark.boot
def test_never_ready_guest_fails_within_the_ready_timeout(tmp_path: Path) -> None:
    """arm64 QEMU handed the amd64 kernel never opens its console: every stage (launch, QMP, connect,
    each ping sent into a socket nobody reads) is bounded by the one ready timeout."""
    amd64 = built_assets("amd64")
    document, facts, host = cell_config("arm64-initrd")
    wrong = GuestAssets("arm64", amd64.kernel, amd64.initrd, amd64.image, amd64.image_size)
    start = time.monotonic()
    with pytest.raises(GuestTimeout) as info, boot_guest(
            document, facts, host=host, assets=wrong, accel=TCG, run_root=tmp_path / "runs",
            name="never-ready", ready_timeout=6):
        pytest.fail("a guest without a kernel it can run answered")
    elapsed = time.monotonic() - start
    assert "guest init not ready after" in str(info.value) and "console tail:" in str(info.value)
    assert elapsed < 6 + 6, f"boot_guest took {elapsed:.0f}s with ready_timeout=6"
    assert leftovers([ME]) == []


def fake_assets(tmp_path: Path, kernel: bool = True) -> GuestAssets:
    """Assets that let QEMU get as far as parsing its argv (no real guest needed)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    image = tmp_path / "rootfs.img"
    image.write_bytes(b"\0" * (4 << 20))
    (tmp_path / "initrd.img").write_bytes(b"\0" * 512)
    if kernel:
        (tmp_path / "bzImage").write_bytes(b"\0" * 4096)
    return GuestAssets("amd64", tmp_path / "bzImage", tmp_path / "initrd.img", image, image.stat().st_size)


@pytest.mark.boot
def test_qemu_rejecting_the_argv_raises_launch_error_with_stderr_and_argv(tmp_path: Path) -> None:
    """A -machine property value QEMU refuses (its capabilities data cannot tell): LaunchError with QEMU's stderr
    (also in the message) and the argv."""
    document, facts, host = cell_config(FAST_CELL, machine_accelerators="dump-guest-core=bogus")
    with pytest.raises(LaunchError) as info, boot_guest(document, facts, host=host, accel=TCG,
                                                        assets=fake_assets(tmp_path / "a"),
                                                        run_root=tmp_path / "runs"):
        pytest.fail("QEMU accepted dump-guest-core=bogus")
    err = info.value
    assert "dump-guest-core" in err.stderr and "dump-guest-core" in str(err)
    machine = err.argv[err.argv.index("-machine") + 1]
    assert "dump-guest-core=bogus" in machine and err.argv[0].endswith("qemu-system-x86_64")
    assert leftovers([ME]) == []


@pytest.mark.boot
def test_missing_kernel_file_raises_launch_error(tmp_path: Path) -> None:
    """A kernel path that does not exist: QEMU refuses; the LaunchError says which file."""
    assets = fake_assets(tmp_path / "a", kernel=False)
    document, facts, host = cell_config(FAST_CELL)
    with pytest.raises(LaunchError) as info, boot_guest(document, facts, host=host, accel=TCG, assets=assets,
                                                        run_root=tmp_path / "runs"):
        pytest.fail("QEMU started without a kernel")
    assert str(assets.kernel) in info.value.stderr and "kernel" in str(info.value)
    assert str(assets.kernel) in info.value.argv
    assert leftovers([ME]) == []


# -- 4-5: a daemon or QEMU dies while the guest is in use ----------------------------------------------
@pytest.mark.boot
def test_virtiofsd_death_fails_shared_fs_ops_and_next_vm_is_fine(tmp_path: Path) -> None:
    """SIGKILL virtiofsd: shared-fs ops fail within a bound (no hang), teardown is clean, a new VM works."""
    with boot(FS_CELL, tmp_path) as guest:
        assert guest.channel.check_output("cat /run/katatest/shared-fs") == "virtiofs"
        assert guest.channel.run(f"ls {SHARED}", timeout=10).exit_status == 0
        os.kill(guest.vm.virtiofsd_pid, signal.SIGKILL)
        assert gone_within([guest.vm.virtiofsd_pid], 5) == []
        start = time.monotonic()
        try:
            result = guest.channel.run(f"ls {SHARED} && echo x > {SHARED}/after-kill", timeout=5)
            outcome = f"exit {result.exit_status}"
            assert result.exit_status != 0, "shared-fs op succeeded with virtiofsd dead"
        except GuestChannelError as err:  # GuestTimeout, or the VM went down with its daemon
            outcome = type(err).__name__
        failed_after = time.monotonic() - start
        # the guest-side timeout (5 s) usually kills the stuck op (exit 137); when the guest itself wedges,
        # the host gives up after the transfer slack (GuestTimeout): bounded either way
        bound = 5 + TRANSFER_SLACK + 20
        assert failed_after < bound, f"shared-fs op took {failed_after:.0f}s to fail ({outcome})"
        stop_start = time.monotonic()
    stopped_in = time.monotonic() - stop_start
    assert stopped_in < 30, f"teardown took {stopped_in:.0f}s"
    assert leftovers([ME]) == []
    with boot(FS_CELL, tmp_path / "second") as again:
        assert again.channel.check_output("cat /run/katatest/shared-fs") == "virtiofs"
        again.channel.check_output(f"echo fine > {SHARED}/second")
        assert (Path(again.plan.paths.shared_dir) / "second").read_text() == "fine\n"
    assert leftovers([ME]) == []
    print(f"virtiofsd killed: shared-fs op -> {outcome} after {failed_after:.1f}s; teardown {stopped_in:.1f}s")


@pytest.mark.boot
def test_qemu_death_fails_channel_fast_and_teardown_does_not_hang(tmp_path: Path) -> None:
    """SIGKILL QEMU: the next channel call says "the VM exited" within 3 s; teardown within 10 s."""
    with boot(FAST_CELL, tmp_path) as guest:
        assert guest.host.file("/proc/cmdline").exists
        os.kill(guest.vm.qemu_pid, signal.SIGKILL)
        start = time.monotonic()
        with pytest.raises(GuestChannelError, match="the VM exited"):
            guest.channel.run("true", timeout=60)
        assert time.monotonic() - start < 3
        with pytest.raises(GuestChannelError, match="the VM exited"):
            guest.host.run("uname -a")  # testinfra goes through the same channel
        stop_start = time.monotonic()
    assert time.monotonic() - stop_start < 10
    assert leftovers([ME]) == []


# -- 6: the pytest run is interrupted or killed ---------------------------------------------------------
SWEPT_RE = re.compile(r"katatest: reaped leftovers of dead runs at session (start|finish): (.*)")


def next_run_reaps(tmp_path: Path, left: list[str]) -> None:
    """A new session sweeps at its start what the dead run left, and says so."""
    out = finish(spawn_pytest(["suites/test_cmdline.py", "-k", "no-such-cell"], tmp_path / "next"), 60)
    still = [entry for entry in left if os.path.exists(entry.split(" ", 1)[1])]
    assert still == [], f"next session did not reap {still}:\n{out}"
    reported = " ".join(m.group(2) for m in SWEPT_RE.finditer(out))
    unreported = [entry for entry in left if entry.split(" ", 1)[1] not in reported]
    # another session running concurrently may have reaped them first; it would then have reported them
    assert not unreported or "reaped" not in out, out


@pytest.mark.boot
@pytest.mark.parametrize(("sig", "when"), [
    (signal.SIGINT, "running"), (signal.SIGTERM, "booting"), (signal.SIGKILL, "running"),
], ids=["ctrl-c-running", "sigterm-booting", "sigkill-running"])
def test_signalled_pytest_run_leaves_nothing(tmp_path: Path, sig: signal.Signals, when: str) -> None:
    """Ctrl-C tears down cleanly; SIGTERM/SIGKILL: QEMU gone within 5 s, dirs reaped by the next session."""
    built_assets()
    run = spawn_pytest(["suites/test_cmdline.py", "-k", FAST_CELL, "-p", "tests.faults.hold_guest"],
                       tmp_path / "reports")
    try:
        qemu = wait_for_vm(run, ready=when == "running")
        family = [run.pid]
        if sig == signal.SIGINT:
            os.killpg(run.pid, sig)  # what a terminal's Ctrl-C does
        else:
            os.kill(run.pid, sig)
        out = finish(run, 60)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.communicate()
    assert gone_within([qemu.pid], 5) == [], f"QEMU {qemu.pid} survived {sig.name} of pytest"
    assert processes_left(family, 5) == []
    left = leftovers(family)
    if sig == signal.SIGINT:
        assert run.returncode == 2 and "KeyboardInterrupt" in out, out
        assert left == [], f"Ctrl-C left {left}"
    else:
        assert run.returncode == -sig
        next_run_reaps(tmp_path, left)
    assert leftovers(family) == []


@pytest.mark.boot
def test_sigkill_of_an_xdist_worker_leaves_nothing(tmp_path: Path) -> None:
    """SIGKILL one xdist worker mid-suite: its QEMU goes within 5 s; the controller reaps its dirs at finish."""
    built_assets()
    release = tmp_path / "release"  # the other worker's tests stop holding their guests once the kill is done
    run = spawn_pytest(["suites/test_cmdline.py", "-k", FAST_CELL, "-n", "2", "--dist", "loadgroup",
                        "--max-worker-restart", "0", "-p", "tests.faults.hold_guest"], tmp_path / "reports",
                       env={RELEASE_ENV: str(release)})
    try:
        qemu = wait_for_vm(run, ready=True)
        worker = int(qemu.environ["KATATEST_OWNER"].split(":")[0])
        assert worker in children(run.pid) and worker != run.pid
        os.kill(worker, signal.SIGKILL)
        release.touch()
        assert gone_within([qemu.pid], 5) == [], f"QEMU {qemu.pid} survived SIGKILL of worker {worker}"
        assert processes_left([worker], 5) == []
        out = finish(run, 120)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.communicate()
    assert run.returncode != 0 and "crashed" in out, out
    assert leftovers([worker, run.pid]) == [], out
    assert "reaped leftovers of dead runs at session finish" in out or "reaped" not in out, out


# -- 7: the environment is broken ------------------------------------------------------------------------
def katatest_cli(*args: str, env: dict[str, str] | None = None,
                 wrap: list[str] | None = None) -> subprocess.CompletedProcess:
    cmd = [*(wrap or []), sys.executable, "-m", "katatest", *args]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


def assert_one_line_error(proc: subprocess.CompletedProcess, *words: str) -> None:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("katatest: "), proc.stderr
    assert "Traceback" not in proc.stderr and all(w in lines[0] for w in words), lines[0]


UNWRITABLE = ["/proc/katatest-cache"]


@pytest.mark.parametrize("command", [["assets", "status"], ["assets", "build"],
                                     ["boot", "katatest/data/base/configuration-qemu-amd64.toml"]])
def test_unwritable_cache_dir_is_one_actionable_line(command: list[str]) -> None:
    """KATATEST_CACHE_DIR under /proc: exit 2, one line naming the dir and the variable to set."""
    proc = katatest_cli(*command, env={"KATATEST_CACHE_DIR": UNWRITABLE[0]})
    assert_one_line_error(proc, UNWRITABLE[0], "not writable", "$KATATEST_CACHE_DIR")


def test_read_only_cache_dir_is_one_actionable_line(tmp_path: Path) -> None:
    """A read-only mount as the cache (even root cannot write it): the same one-line error."""
    if os.geteuid() != 0:
        pytest.skip("mounting a read-only dir needs root (a non-root user just gets EACCES)")
    cache = tmp_path / "ro-cache"
    cache.mkdir()
    wrap = ["unshare", "--mount", "sh", "-c", f'mount -t tmpfs -o ro none {cache} && exec "$@"', "sh"]
    proc = katatest_cli("assets", "build", env={"KATATEST_CACHE_DIR": str(cache)}, wrap=wrap)
    assert_one_line_error(proc, str(cache), "Read-only file system")


def test_unwritable_cache_is_an_asset_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process: ensure_assets raises AssetError (a KatatestError), not an OSError."""
    monkeypatch.setenv("KATATEST_CACHE_DIR", UNWRITABLE[0])
    with pytest.raises(AssetError) as info:
        ensure_assets("amd64", progress=lambda line: None)
    assert isinstance(info.value, KatatestError)


def test_missing_qemu_binary_is_one_actionable_line(tmp_path: Path) -> None:
    """hypervisor.qemu.path missing: exit 2 before any asset is built, naming the binary and the key."""
    config = tmp_path / "configuration-qemu.toml"
    text = (ROOT / "katatest/data/base/configuration-qemu-amd64.toml").read_text()
    config.write_text(text.replace('path = "/usr/bin/qemu-system-x86_64"', 'path = "/opt/none/qemu-system-x86_64"'))
    start = time.monotonic()
    proc = katatest_cli("boot", str(config), env={"KATATEST_CACHE_DIR": str(tmp_path / "empty-cache")})
    assert_one_line_error(proc, "/opt/none/qemu-system-x86_64", "hypervisor.qemu.path")
    assert time.monotonic() - start < 30 and not (tmp_path / "empty-cache").exists()  # nothing built
    document, facts, host = cell_config(FAST_CELL, path="/opt/none/qemu-system-x86_64")
    with pytest.raises(VmmMissing):
        check_bootable(render_doc(document, facts, "missing"), host, facts)


# -- 8: concurrent sessions ------------------------------------------------------------------------------
def runtime_dir_of(reports: Path, cell: str) -> str:
    argv = (reports / "cells" / cell / "launch-argv.txt").read_text()
    match = re.search(r"(/\S+?/kt-[^/]+)/run/vc/vm/", argv)
    assert match, argv
    return match.group(1)


@pytest.mark.boot
def test_two_sessions_at_once_do_not_collide(tmp_path: Path) -> None:
    """Two pytest sessions of the same cell at the same time: both pass, in distinct runtime dirs."""
    built_assets()
    runs = [spawn_pytest(["suites/test_cmdline.py", "-k", FAST_CELL], tmp_path / f"r{i}") for i in (0, 1)]
    try:
        outs = [finish(run, 400) for run in runs]
    finally:
        for run in runs:
            if run.poll() is None:
                os.killpg(run.pid, signal.SIGKILL)
    assert [run.returncode for run in runs] == [0, 0], "\n\n".join(outs)
    dirs = {runtime_dir_of(tmp_path / f"r{i}", FAST_CELL) for i in (0, 1)}
    assert len(dirs) == 2 and not any(os.path.exists(d) for d in dirs)
    assert leftovers([run.pid for run in runs]) == []
    for i in (0, 1):  # each session kept its channel's recovery counts with the cell
        stats = json.loads((tmp_path / f"r{i}" / "cells" / FAST_CELL / "channel.json").read_text())
        assert stats["commands"] > 0 and stats["console"], stats


@pytest.mark.boot
def test_xdist_n4_does_not_collide(tmp_path: Path) -> None:
    """``-n 4`` over both initrd cells: both cells pass, each in its own runtime dir."""
    built_assets()
    run = spawn_pytest(["suites/test_cmdline.py", "-k", "amd64-initrd", "-n", "4", "--dist", "loadgroup"],
                       tmp_path / "reports")
    workers: set[int] = set()
    deadline = time.monotonic() + 400
    while run.poll() is None and time.monotonic() < deadline:
        workers |= set(children(run.pid))
        time.sleep(1)
    out = finish(run, 60)
    assert run.returncode == 0, out
    dirs = {runtime_dir_of(tmp_path / "reports", c) for c in (FAST_CELL, FS_CELL)}
    assert len(dirs) == 2
    assert leftovers(workers | {run.pid}) == []
    assert not any(alive(p) for p in workers)
