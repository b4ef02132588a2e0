"""Is KVM usable here? ``/dev/kvm`` existing is not enough, so boot a tiny guest under it and time it.

Probe: the long-mode multiboot probe kernel (``probe_kernel``) under TCG (baseline) and under KVM
(5 s timeout); KVM passes only if it exits through ``isa-debug-exit`` with the marker on the serial port and
is not pathologically slower than TCG (a broken nested KVM emulates real mode instruction by instruction:
on this project's machines the probe takes ~3.4 s under KVM vs ~0.1 s under TCG, and Linux hangs after its
real-mode setup). If a Linux kernel is available (``linux_kernel``, ``$KATATEST_PROBE_KERNEL`` or
``/boot/vmlinuz-*``), it must also print ``Linux version`` under KVM within the timeout.
The verdict is cached on disk per boot id and QEMU binary. ``KATATEST_ACCEL=kvm|tcg`` forces it.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from katatest.errors import KatatestError
from katatest.host.facts import host_arch
from katatest.launch.probe_kernel import EXIT_STATUS, MARKER, write_probe_kernel
from katatest.launch.proc import die_with_parent

PROBE_TIMEOUT = 5.0
ACCELS = ("kvm", "tcg")


@dataclass(frozen=True)
class AccelVerdict:
    """Which accelerator guests use, and why."""

    accel: str
    reason: str


@dataclass(frozen=True)
class ProbeRun:
    ok: bool
    seconds: float
    detail: str


def cache_dir() -> Path:
    base = os.environ.get("KATATEST_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "katatest")
    path = Path(base)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown-boot"


def _cache_file(qemu: str, linux_kernel: str | None) -> Path | None:
    """Where the verdict is cached; None when the cache dir cannot be created (then it is not cached)."""
    st = os.stat(qemu)
    key = f"{_boot_id()}|{os.path.realpath(qemu)}|{st.st_size}|{st.st_mtime_ns}|{linux_kernel or ''}"
    try:
        directory = cache_dir()
    except OSError:
        return None
    return directory / f"accel-{hashlib.sha256(key.encode()).hexdigest()[:16]}.json"


def _run(argv: list[str], timeout: float, expect: bytes, want_status: int | None) -> ProbeRun:
    start = time.monotonic()
    try:
        proc = subprocess.run(argv, capture_output=True, timeout=timeout, preexec_fn=die_with_parent)
    except subprocess.TimeoutExpired as exc:
        seen = expect in (exc.stdout or b"")
        return ProbeRun(seen and want_status is None, time.monotonic() - start,
                        f"no exit within {timeout:.0f} s" + ("" if seen else " and no serial output"))
    elapsed = time.monotonic() - start
    if expect not in proc.stdout:
        err = proc.stderr.decode(errors="replace").strip().splitlines()
        return ProbeRun(False, elapsed, f"exit {proc.returncode} without the marker" + (f": {err[-1]}" if err else ""))
    if want_status is not None and proc.returncode != want_status:
        return ProbeRun(False, elapsed, f"exit {proc.returncode}, expected {want_status}")
    return ProbeRun(True, elapsed, "ok")


def _probe_argv(qemu: str, accel: str, kernel: str, append: str = "", mem: str = "64M") -> list[str]:
    argv = [qemu, "-machine", f"q35,accel={accel}", "-m", mem, "-nodefaults", "-display", "none",
            "-no-user-config", "-serial", "stdio", "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
            "-kernel", kernel, "-no-reboot"]
    return argv + (["-append", append] if append else [])


def find_linux_kernel() -> str | None:
    env = os.environ.get("KATATEST_PROBE_KERNEL")
    if env:
        return env
    found = sorted(glob.glob("/boot/vmlinuz-*"))
    return found[-1] if found else None


EMULATION_SLACK = 0.3  # seconds: QEMU start-up noise between the two probe runs


def emulated(kvm_seconds: float, tcg_seconds: float | None, timeout: float = PROBE_TIMEOUT) -> bool:
    """KVM is emulating when the probe under it is clearly slower than under TCG: a working KVM runs the probe
    guest at least as fast as TCG (both ~0.1 s, mostly QEMU's start), a broken nested one 20-50x slower."""
    limit = 3 * tcg_seconds + EMULATION_SLACK if tcg_seconds is not None else timeout
    return kvm_seconds > limit


def probe_kvm(qemu: str, linux_kernel: str | None = None, timeout: float = PROBE_TIMEOUT) -> AccelVerdict:
    """Boot the probe guests under KVM (no cache)."""
    if not os.path.exists("/dev/kvm"):
        return AccelVerdict("tcg", "/dev/kvm does not exist")
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return AccelVerdict("tcg", "/dev/kvm is not accessible to this user")
    with tempfile.TemporaryDirectory(prefix="kt-probe-") as tmp:
        kernel = str(write_probe_kernel(Path(tmp) / "probe.bin"))
        tcg = _run(_probe_argv(qemu, "tcg", kernel), timeout, MARKER, EXIT_STATUS)
        kvm = _run(_probe_argv(qemu, "kvm", kernel), timeout, MARKER, EXIT_STATUS)
    if not kvm.ok:
        return AccelVerdict("tcg", f"probe guest under KVM failed: {kvm.detail} ({kvm.seconds:.1f} s)")
    if emulated(kvm.seconds, tcg.seconds if tcg.ok else None, timeout):
        return AccelVerdict("tcg", f"probe guest under KVM took {kvm.seconds:.1f} s vs {tcg.seconds:.2f} s "
                                   "under TCG: KVM is emulating (broken nested virtualisation)")
    if linux_kernel:
        argv = _probe_argv(qemu, "kvm", linux_kernel, "console=ttyS0 earlyprintk=serial,ttyS0 panic=-1", "256M")
        linux = _run(argv, timeout, b"Linux version", None)
        if not linux.ok:
            return AccelVerdict("tcg", f"Linux ({os.path.basename(linux_kernel)}) under KVM: {linux.detail}")
        return AccelVerdict("kvm", f"probe guest ({kvm.seconds:.2f} s) and Linux start under KVM")
    return AccelVerdict("kvm", f"probe guest ran under KVM in {kvm.seconds:.2f} s "
                               f"(TCG {tcg.seconds:.2f} s; no Linux kernel to try)")


def accel_verdict(qemu: str, guest_arch: str = "amd64", linux_kernel: str | None = None,
                  use_cache: bool = True) -> AccelVerdict:
    """The accelerator for guests of ``guest_arch`` run by ``qemu``: forced, cross-arch, cached or probed."""
    forced = os.environ.get("KATATEST_ACCEL", "")
    if forced:
        if forced not in ACCELS:
            raise KatatestError(f"KATATEST_ACCEL: must be kvm or tcg, not {forced!r}")
        return AccelVerdict(forced, "forced by KATATEST_ACCEL")
    host = host_arch()
    if guest_arch != host:
        return AccelVerdict("tcg", f"cross-arch: {guest_arch} guest on an {host} host")
    if host not in ("amd64", "arm64"):
        return AccelVerdict("tcg", f"no KVM probe for {host} hosts")
    if not os.path.exists(qemu):
        raise KatatestError(f"{qemu}: QEMU binary not found")
    linux_kernel = linux_kernel or find_linux_kernel()
    path = _cache_file(qemu, linux_kernel)
    if use_cache and path is not None and path.exists():
        try:
            return AccelVerdict(**json.loads(path.read_text()))
        except (ValueError, TypeError, OSError):
            pass
    verdict = probe_kvm(qemu, linux_kernel) if host == "amd64" else probe_kvm_arm64(qemu, linux_kernel)
    if path is not None:
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        try:
            tmp.write_text(json.dumps(asdict(verdict)))
            tmp.replace(path)
        except OSError:
            pass  # a read-only cache only costs a probe next time
    return verdict


def _probe_argv_arm64(qemu: str, accel: str, kernel: str, mem: str = "256M") -> list[str]:
    machine = "virt,accel=kvm,gic-version=host" if accel == "kvm" else "virt,accel=tcg,gic-version=max"
    return [qemu, "-machine", machine, "-cpu", "host" if accel == "kvm" else "max", "-m", mem, "-nodefaults",
            "-display", "none", "-no-user-config", "-serial", "stdio", "-kernel", kernel, "-no-reboot",
            "-append", "console=ttyAMA0 earlycon panic=-1"]


def probe_kvm_arm64(qemu: str, linux_kernel: str | None, timeout: float = PROBE_TIMEOUT) -> AccelVerdict:
    """arm64 hosts: KVM only if a Linux kernel starts under it (KVM and TCG timed in the same run)."""
    if not os.path.exists("/dev/kvm"):
        return AccelVerdict("tcg", "/dev/kvm does not exist")
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return AccelVerdict("tcg", "/dev/kvm is not accessible to this user")
    if not linux_kernel:
        return AccelVerdict("tcg", "no arm64 Linux kernel to probe KVM with (build the assets first)")
    kvm = _run(_probe_argv_arm64(qemu, "kvm", linux_kernel), timeout, b"Linux version", None)
    if not kvm.ok:
        return AccelVerdict("tcg", f"Linux ({os.path.basename(linux_kernel)}) under KVM: {kvm.detail}")
    return AccelVerdict("kvm", f"Linux started under KVM in {kvm.seconds:.2f} s")
