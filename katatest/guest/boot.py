"""Boot what the generator emits: render for a private rootless runtime dir, plan, launch, connect.

    with boot_guest(document, facts, assets=..., accel=...) as guest:
        guest.host.file("/proc/cmdline").content_string
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from katatest.assets.cache import GuestAssets
from katatest.assets.qemu_builds import Build
from katatest.errors import KatatestError
from katatest.generate.provenance import values
from katatest.generate.render import render_doc
from katatest.generate.rendered import Rendered
from katatest.guest import GuestChannel, guest_host
from katatest.guest.network import GuestNic, NoPodNetwork, build_pod_network, configure_like_the_agent
from katatest.guest.skip_reasons import check_reason
from katatest.host.facts import HostFacts
from katatest.kata.hypervisors import hypervisor
from katatest.kata.loader import load_kata_config
from katatest.kata.releases import DEFAULT_RELEASE, load_release
from katatest.launch.capabilities import QemuLacks, only_known, plan_findings, virtiofsd_refusal
from katatest.launch.errors import LaunchError, UntranslatableFlag
from katatest.launch.kvm import AccelVerdict
from katatest.launch.network import PodNetwork
from katatest.launch.plan import LaunchPlan, plan_launch
from katatest.launch.qemu_caps import Capabilities, capabilities
from katatest.launch.vm import VirtualMachine, make_runtime_dir

VHOST_VSOCK = "/dev/vhost-vsock"
READY_TIMEOUT = 90.0
START_TIMEOUT = 60.0  # at most this much of the ready timeout for QEMU (and virtiofsd) to start


class CannotBoot(KatatestError):
    """This host cannot boot the config for a named reason (``kind``, one of ``skip_reasons()``: QEMU lacks
    something, no TEE hardware, no VMM binary...): the cell is generation-only, and says why."""

    def __init__(self, reason: str, findings: list[QemuLacks] | None = None, kind: str = "qemu-lacks") -> None:
        super().__init__(reason)
        self.reason = reason
        self.findings = findings or []
        self.kind = check_reason(kind)


class VmmMissing(LaunchError):
    """The config's QEMU binary (``hypervisor.qemu.path``) does not exist on this host: not a reason to skip a
    cell (a run without its QEMU checks nothing), an error unless only generation was asked for."""


@dataclass
class BootedGuest:
    """A running guest and everything that led to it."""

    facts: HostFacts
    rendered: Rendered
    plan: LaunchPlan
    vm: VirtualMachine
    channel: GuestChannel
    host: Any  # testinfra.host.Host
    accel: AccelVerdict
    ready_banner: str = ""
    msize9p: int = 8192
    notes: list[str] = field(default_factory=list)
    network: PodNetwork | None = None  # the pod network's host side (when the rendering has endpoints)
    nics: list[GuestNic] = field(default_factory=list)  # the endpoints as configured in the guest

    @property
    def generated_argv(self) -> list[str]:
        return values(self.rendered.argv)

    def generated_option(self, flag: str) -> list[str]:
        argv = self.generated_argv
        return [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == flag]


def sandbox_id() -> str:
    """A short, unique sandbox id (sockets under a temp dir must stay within 107 bytes)."""
    return "kt" + secrets.token_hex(7)


def boot_facts(facts: HostFacts, runtime_dir: str) -> HostFacts:
    """Kata's rootless layout under a private XDG_RUNTIME_DIR, with a fresh sandbox id. Pod networks are
    rendered as on a Kata host with /dev/vhost-net; where it is missing the launch drops vhost (an override)."""
    return facts.with_overrides(rootless=True, xdg_runtime_dir=runtime_dir, sandbox_id=sandbox_id(),
                                vhost_net=True)


def preview_facts(facts: HostFacts) -> HostFacts:
    """``facts`` as ``boot_guest`` will render them, for checking a config before any asset is built: a
    sandbox id as long as boot_guest's (a non-root user's socket paths must fit), vhost-net as on Kata's hosts."""
    return facts.with_overrides(sandbox_id="kt" + "1" * 14, vhost_net=True)


def check_bootable(rendered: Rendered, host: HostFacts, target: HostFacts, builds: Builds | None = None) -> None:
    """Raise CannotBoot with the reason when this host cannot run the config at all (``builds``: the QEMU build
    it would run on, which then need not be at Kata's path)."""
    if rendered.hypervisor != "qemu":
        binary = rendered.binary
        if not shutil.which(binary):
            name = hypervisor(rendered.hypervisor).program
            raise CannotBoot(f"{name} not installed ({binary} missing); only QEMU guests boot here",
                             kind="vmm-not-installed")
        raise CannotBoot(f"booting {rendered.hypervisor} guests is not implemented by katatest",
                         kind="vmm-boot-not-implemented")
    if target.guest_protection != "none" and host.guest_protection != target.guest_protection:
        probe = {"sev": "/sys/module/kvm_amd/parameters/sev", "tdx": "/sys/firmware/tdx_seam"}
        raise CannotBoot(f"no {target.guest_protection.upper()} hardware on this host "
                         f"({probe.get(target.guest_protection, 'the host facts say')} says no)",
                         kind="no-tee-hardware")
    if (builds is None or builds.qemu is None) and not shutil.which(rendered.binary):
        raise VmmMissing(f"{rendered.binary} not installed (hypervisor.qemu.path): install QEMU "
                         "or point path at its binary")
    hugepages = hugepages_shortfall(values(rendered.argv))
    if hugepages:
        raise CannotBoot(hugepages, kind="no-hugepages")


def hugepages_shortfall(argv: list[str], mounts: str = "/proc/mounts", meminfo: str = "/proc/meminfo") -> str:
    """Why this host cannot back the guest RAM with /dev/hugepages ('' when it can)."""
    if not any("mem-path=/dev/hugepages" in a for a in argv):
        return ""
    try:
        with open(mounts) as fh:
            mounted = any(line.split()[1:3] == ["/dev/hugepages", "hugetlbfs"] for line in fh)
        with open(meminfo) as fh:
            info = dict(line.split(":", 1) for line in fh if ":" in line)
    except OSError as err:
        return f"cannot inspect huge pages: {err}"
    if not mounted:
        return "hugepages asked for, but /dev/hugepages is not a hugetlbfs mount on this host"
    page_kib = int(info.get("Hugepagesize", "2048 kB").split()[0])
    free_mib = int(info.get("HugePages_Free", "0").split()[0]) * page_kib // 1024
    size = argv[argv.index("-m") + 1].split(",")[0] if "-m" in argv else "0M"
    wanted_mib = int(size[:-1]) if size.endswith("M") else 0
    if free_mib < wanted_mib:
        return f"hugepages asked for, but only {free_mib} MiB of huge pages are free (need {wanted_mib} MiB)"
    return ""


def _assets_dict(assets: GuestAssets | None) -> dict | None:
    if assets is None:
        return None
    return {"kernel": str(assets.kernel), "initrd": str(assets.initrd), "image": str(assets.image),
            "image_size": assets.image_size}


@dataclass(frozen=True)
class Builds:
    """The QEMU build and the Rust virtiofsd build a guest runs on (None: what the host has installed)."""

    qemu: Build | None = None
    virtiofsd: Build | None = None

    def describe(self, arch: str) -> str:
        """``QEMU 11.1 (11.1.3 (Debian ...)), virtiofsd 1.14 (1.14.0)`` (what reports carry)."""
        parts = [f"{b.label} ({b.version(arch)})" for b in (self.qemu, self.virtiofsd) if b is not None]
        return ", ".join(parts) or "the host's QEMU"


def qemu_capabilities(argv: list[str], builds: Builds | None) -> Capabilities:
    """The capabilities of the QEMU the plan runs (the build's, or the binary the argv names)."""
    arch = "arm64" if "aarch64" in os.path.basename(argv[0]) else "amd64"
    if builds is not None and builds.qemu is not None:
        return capabilities(tuple(builds.qemu.command(arch)), arch)
    binary = argv[0] if os.access(argv[0], os.X_OK) else (shutil.which(os.path.basename(argv[0])) or argv[0])
    return capabilities((binary,), arch)


def plan_for_host(argv: list[str], daemon_argv: list[str] | None, *, assets: GuestAssets | None,
                  accel: AccelVerdict, builds: Builds | None = None) -> LaunchPlan:
    """The launch plan for this host; CannotBoot when a known finding (QEMU or virtiofsd lacks it) stands in
    the way, UnexpectedQemuGap for any other gap."""
    builds = builds or Builds()
    try:
        plan = plan_launch(argv, daemon_argv, assets=_assets_dict(assets), accel=accel,
                           vhost_vsock_available=os.path.exists(VHOST_VSOCK), qemu_build=builds.qemu,
                           virtiofsd_build=builds.virtiofsd)
    except UntranslatableFlag as err:
        lacks = QemuLacks(f"a C virtiofsd equivalent of Rust virtiofsd {err.flag}", str(err), "virtiofsd-rust-only")
        raise CannotBoot(f"only QEMU's C virtiofsd is installed ({err})", [lacks],
                         kind="virtiofsd-rust-only") from err
    # after the recorded overrides (e.g. accel=tcg on this host); a gap that is no known finding raises
    lacks = only_known(plan_findings(plan.argv, qemu_capabilities(argv, builds)))
    if lacks:
        raise CannotBoot("QEMU lacks " + "; ".join(f"{f.what} ({f.evidence})" for f in lacks), lacks)
    return plan


@contextlib.contextmanager
def launch_guest(plan: LaunchPlan, *, runtime_dir: str, run_root: str | os.PathLike, name: str,
                 deadline: float, channel_timeout: float = READY_TIMEOUT
                 ) -> Iterator[tuple[VirtualMachine, GuestChannel, str]]:
    """Start ``plan`` and wait (until ``deadline``, monotonic) for the guest: (vm, channel, ready banner).

    ``channel_timeout``: the channel's default timeout for each later command."""
    vm = VirtualMachine(plan, run_root, name=name, runtime_dir=runtime_dir, keep_artifacts=True,
                        start_timeout=max(min(START_TIMEOUT, deadline - time.monotonic()), 1.0))
    channel: GuestChannel | None = None
    try:
        try:
            vm.start()
        except LaunchError as err:
            log = vm.virtiofsd_log_path
            known = virtiofsd_refusal(log.read_text(errors="replace") if log.exists() else "", os.geteuid())
            if known and "virtiofsd exited" in str(err):  # only the known cause, read from virtiofsd's log
                raise CannotBoot(f"virtiofsd cannot run as a non-root user here ({known.evidence})", [known],
                                 kind="virtiofsd-rootless") from err
            raise
        channel = GuestChannel(vm.console_socket, vm.console_log_path, timeout=channel_timeout,
                               is_alive=vm.is_alive)
        banner = channel.wait_ready(deadline=deadline)
        yield vm, channel, banner
    finally:
        if channel is not None:
            channel.close()
        vm.stop()


@contextlib.contextmanager
def boot_guest(document: dict[str, Any], facts: HostFacts, *, host: HostFacts, assets: GuestAssets | None,
               accel: AccelVerdict, run_root: str | os.PathLike, name: str = "guest",
               ready_timeout: float = READY_TIMEOUT, release: str = DEFAULT_RELEASE,
               builds: Builds | None = None) -> Iterator[BootedGuest]:
    """Render ``document`` for ``facts`` as Kata ``release`` would, in a private runtime dir, launch it and wait
    for the guest.

    ``ready_timeout`` bounds everything from here to the guest's first answer (launch, QMP, console)."""
    deadline = time.monotonic() + ready_timeout
    runtime_dir = make_runtime_dir()
    try:
        facts = boot_facts(facts, runtime_dir)
        rendered = render_doc(document, facts, name, release=release)
        check_bootable(rendered, host, facts, builds)
        plan = plan_for_host(values(rendered.argv), rendered.daemon_values(), assets=assets, accel=accel,
                             builds=builds)
        with contextlib.ExitStack() as stack:
            pod = stack.enter_context(_pod_network(rendered)) if rendered.network else None
            plan = pod.apply(plan) if pod else plan
            vm, channel, banner = stack.enter_context(launch_guest(
                plan, runtime_dir=runtime_dir, run_root=run_root, name=name, deadline=deadline,
                channel_timeout=ready_timeout))
            booted = BootedGuest(facts, rendered, vm.plan, vm, channel, guest_host(channel), accel, banner,
                                 network=pod)
            _mount_like_the_agent(booted, load_kata_config(document, facts, name, load_release(release)).hypervisor)
            if pod:
                pod.close_fds()  # QEMU holds its own copies
                booted.nics = configure_like_the_agent(channel.check_output, pod)
            yield booted
    finally:
        shutil.rmtree(runtime_dir, ignore_errors=True)  # also when the VM never started


def _pod_network(rendered: Rendered) -> PodNetwork:
    try:
        return build_pod_network(rendered.network)
    except NoPodNetwork as why:
        raise CannotBoot(why.reason, kind=why.kind) from None


@dataclass
class ArgvGuest:
    """A running guest booted from a given argv (e.g. a Kata vector), not from a rendering."""

    argv: list[str]  # as given (Kata's)
    daemon_argv: list[str] | None
    plan: LaunchPlan
    vm: VirtualMachine
    channel: GuestChannel
    host: Any  # testinfra.host.Host
    ready_banner: str = ""

    def given_option(self, flag: str) -> list[str]:
        return [self.argv[i + 1] for i, a in enumerate(self.argv[:-1]) if a == flag]


@contextlib.contextmanager
def boot_argv(argv: list[str], daemon_argv: list[str] | None, *, assets: GuestAssets | None,
              accel: AccelVerdict, run_root: str | os.PathLike, name: str = "guest",
              ready_timeout: float = READY_TIMEOUT) -> Iterator[ArgvGuest]:
    """Boot ``argv`` (and start ``daemon_argv``) as given but for the recorded launch overrides: assets,
    accelerator, Kata's /run paths moved under a private runtime dir, the host's virtiofsd."""
    deadline = time.monotonic() + ready_timeout
    runtime_dir = make_runtime_dir()
    try:
        plan = plan_for_host(list(argv), list(daemon_argv) if daemon_argv else None, assets=assets, accel=accel)
        with launch_guest(plan, runtime_dir=runtime_dir, run_root=run_root, name=name, deadline=deadline,
                          channel_timeout=ready_timeout) as (vm, channel, banner):
            yield ArgvGuest(list(argv), list(daemon_argv) if daemon_argv else None, vm.plan, vm, channel,
                            guest_host(channel), banner)
    finally:
        shutil.rmtree(runtime_dir, ignore_errors=True)


GUEST_INIT_PATHS = ("/init", "/sbin/init")
DEFAULT_MSIZE9P = 8192  # what katatest's guest init mounts 9p with on its own


def _mount_like_the_agent(booted: BootedGuest, hv) -> None:
    """Kata's agent mounts 9p with the runtime's msize; our init used the default, so remount if needed."""
    booted.msize9p = hv.msize9p
    if hv.shared_fs != "virtio-9p" or hv.msize9p == DEFAULT_MSIZE9P:
        return
    script = ("umount /run/kata-containers/shared/containers 2>/dev/null; "
              + "; ".join(f"[ -x {p} ] && exec {p} mount-shared {hv.msize9p}" for p in GUEST_INIT_PATHS))
    booted.channel.run(script)
    booted.notes.append(f"9p remounted with msize={hv.msize9p} (as the agent would)")
