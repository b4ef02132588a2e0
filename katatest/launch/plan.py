"""Launch plans: the generated argv plus the recorded overrides needed to start it on this host.

The only differences between what Kata would launch and what katatest launches are ``Override`` records,
each naming what it replaced, with what, and why.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING

from katatest.generate.options import option_values, props, set_prop
from katatest.launch.errors import PlanError
from katatest.launch.fds import InheritedFd, check_unique
from katatest.launch.virtiofsd import flavour, is_rust_argv, translation_overrides

if TYPE_CHECKING:
    from katatest.assets.qemu_builds import Build
    from katatest.launch.kvm import AccelVerdict

VIRTIOFSD_LOCATIONS = ("/usr/libexec/virtiofsd", "/usr/lib/qemu/virtiofsd", "/usr/bin/virtiofsd")
ROOTLESS_PREFIXES = ("/run/vc/", "/run/kata-containers/")
QMP_SOCKET_NAME = "qmp.sock"  # Kata's qmpSocket, in the VM's store dir (where it binds the fd-passed listener)
# Kata's default firmware files (by name) -> where Debian's packages install that firmware, first found wins
DEBIAN_FIRMWARE = {
    "AAVMF_CODE.fd": ("/usr/share/AAVMF/AAVMF_CODE.fd", "/usr/share/qemu-efi-aarch64/QEMU_EFI.fd"),
}


@dataclass(frozen=True)
class Override:
    """One deliberate difference from the generated argv: contiguous ``before`` items became ``after``."""

    kind: str
    before: tuple[str, ...]
    after: tuple[str, ...]
    reason: str
    target: str = "qemu"  # "qemu" (the QEMU argv) or "daemon" (the virtiofsd argv)

    def to_json(self) -> dict:
        return {**asdict(self), "before": list(self.before), "after": list(self.after)}


@dataclass(frozen=True)
class RunPaths:
    """Runtime paths named by the argv (sockets, pidfile, dirs Kata creates)."""

    vm_dir: str
    qmp_socket: str
    console_socket: str | None = None
    pidfile: str | None = None
    vhost_fs_socket: str | None = None
    shared_dir: str | None = None


@dataclass
class LaunchPlan:
    """What will actually be started: QEMU argv, virtiofsd argv, overrides and runtime paths."""

    argv: list[str]
    daemon_argv: list[str] | None
    overrides: list[Override]
    paths: RunPaths
    extra_fds: list[InheritedFd] = field(default_factory=list)  # fds named by the argv beyond the vsock

    @property
    def binary(self) -> str:
        return self.argv[0]

    @property
    def foreground(self) -> bool:
        """QEMU stays in the foreground (no ``-daemonize``, as Kata 3.30+ launches it): the supervised child."""
        return "-daemonize" not in self.argv

    @property
    def qmp_fd(self) -> int | None:
        """The fd number of the listening QMP socket QEMU expects (``-qmp unix:fd=N``), None for a path."""
        return qmp_listener_fd(self.argv)

    @property
    def vhost_vsock_fd(self) -> int | None:
        """The fd number at which QEMU expects an open /dev/vhost-vsock (Kata passes one)."""
        for value in option_values(self.argv, "-device"):
            if value.startswith("vhost-vsock"):
                fd = props(value).get("vhostfd")
                return int(fd) if fd and fd.isdigit() else None
        return None

    def inherited_fds(self) -> list[InheritedFd]:
        """Every fd QEMU must find open at a fixed number: what the argv names plus ``extra_fds``."""
        entries = list(self.extra_fds)
        qmp = self.qmp_fd
        if qmp is not None:
            entries.append(InheritedFd(qmp, "unix-listener", f"-qmp unix:fd={qmp}: the listening QMP socket, "
                                       "created by the launcher as Kata does", path=self.paths.qmp_socket))
        vsock = self.vhost_vsock_fd
        if vsock is not None:
            entries.append(InheritedFd(vsock, "device", "vhost-vsock vhostfd", path="/dev/vhost-vsock"))
        return check_unique(entries)

    def overrides_json(self) -> list[dict]:
        return [o.to_json() for o in self.overrides]


def apply_override(argv: list[str], override: Override) -> list[str]:
    """argv with the first contiguous occurrence of ``override.before`` replaced by ``override.after``."""
    n = len(override.before)
    for i in range(len(argv) - n + 1):
        if tuple(argv[i:i + n]) == override.before:
            return argv[:i] + list(override.after) + argv[i + n:]
    raise PlanError(f"override {override.kind}: {' '.join(override.before)!r} is not in the argv")


def apply_all(argv: list[str], overrides: Iterable[Override]) -> list[str]:
    for override in overrides:
        argv = apply_override(argv, override)
    return argv


def _replace_value(argv: Sequence[str], flag: str, old: str, new: str, kind: str, reason: str) -> Override:
    return Override(kind, (flag, old), (flag, new), reason)


# --- override builders ------------------------------------------------------------------------------

def binary_overrides(argv: Sequence[str], target: str = "qemu",
                     prefer: Callable[[str], bool] | None = None) -> list[Override]:
    """Swap a binary path that does not exist here for the installed one (one that ``prefer``s first)."""
    path = argv[0]
    if os.access(path, os.X_OK):
        return []
    name = os.path.basename(path)
    candidates = [shutil.which(name)] + ([*VIRTIOFSD_LOCATIONS] if name == "virtiofsd" else [])
    installed = [c for c in dict.fromkeys(candidates) if c and os.access(c, os.X_OK)]
    found = next((c for c in installed if prefer and prefer(c)), installed[0] if installed else None)
    if not found:
        raise PlanError(f"{name}: not installed ({path} does not exist and {name} is not on PATH)")
    return [Override("binary", (path,), (found,), f"{path} does not exist on this host; {name} is at {found}",
                     target)]


def _image_locations(argv: Sequence[str]) -> list[tuple[str, str]]:
    """(flag, value) of every argv value that names the guest image (nvdimm backend, image drive)."""
    nvdimm_memdevs = {props(v).get("memdev") for v in option_values(argv, "-device") if v.startswith("nvdimm")}
    found = [("-object", v) for v in option_values(argv, "-object")
             if v.startswith("memory-backend-file") and props(v).get("id") in nvdimm_memdevs]
    found += [("-drive", v) for v in option_values(argv, "-drive") if props(v).get("id", "").startswith("image-")]
    return found


def asset_overrides(argv: Sequence[str], assets: dict) -> list[Override]:
    """Point kernel, initrd, image (and its size) and firmware at the built guest assets."""
    out: list[Override] = []
    for flag, key in (("-kernel", "kernel"), ("-initrd", "initrd"), ("-bios", "firmware")):
        new = assets.get(key)
        for old in option_values(argv, flag):
            if new and str(new) != old:
                out.append(_replace_value(argv, flag, old, str(new), f"asset-{key}",
                                          f"the configured {key} {old} is replaced by katatest's built {key}"))
    image = assets.get("image")
    if image:
        size = int(assets.get("image_size") or os.path.getsize(image))
        for flag, old in _image_locations(argv):
            key = "mem-path" if flag == "-object" else "file"
            new = set_prop(old, key, str(image))
            reason = f"the configured image {props(old).get(key)} is replaced by katatest's built image"
            if flag == "-object" and "size" in props(old) and props(old)["size"] != str(size):
                new = set_prop(new, "size", str(size))
                reason += f" (size= set to its real size {size}, as Kata does for an existing image)"
            if new != old:
                out.append(Override("asset-image", (flag, old), (flag, new), reason))
    return out


def build_overrides(argv: Sequence[str], build: Build) -> list[Override]:
    """Kata's QEMU binary replaced by the QEMU build the plan runs on (through its root's loader, with its data
    directory), when that is not the binary the argv names."""
    arch = "arm64" if "aarch64" in os.path.basename(argv[0]) else "amd64"
    command = build.command(arch)
    if command == [argv[0]]:
        return []
    where = f"a private Debian {build.spec.debian} root ({build.root})" if build.root else "the host's"
    return [Override("qemu-build", (argv[0],), tuple(command),
                     f"the cell runs on {build.label} ({build.version(arch)}), {where}")]


def daemon_build_overrides(daemon: Sequence[str], build: Build) -> list[Override]:
    """Kata's virtiofsd replaced by the Rust virtiofsd build the plan runs with."""
    command = build.command()
    return [Override("virtiofsd-build", (daemon[0],), tuple(command),
                     f"the cell runs {build.label} ({build.version()}) from a private Debian {build.spec.debian} "
                     f"root ({build.root})", "daemon")] if command != [daemon[0]] else []


def firmware_overrides(argv: Sequence[str], locations: dict[str, Sequence[str]] | None = None,
                       build: Build | None = None) -> list[Override]:
    """A ``-bios`` file that does not exist here, named like a Kata default firmware, becomes Debian's file (the
    QEMU build's own when the plan runs on one)."""
    table = DEBIAN_FIRMWARE if locations is None else locations
    out = []
    for old in option_values(argv, "-bios"):
        if os.path.exists(old):
            continue
        found = build.firmware(os.path.basename(old)) if build is not None and build.root is not None else None
        found = found or next((c for c in table.get(os.path.basename(old), ()) if os.path.isfile(c)), None)
        if found:
            out.append(Override("firmware-path", ("-bios", old), ("-bios", found),
                                f"{old} (Kata's default firmware path) does not exist on this host; Debian "
                                f"installs that firmware as {found}"))
    return out


def accel_overrides(argv: Sequence[str], accel: AccelVerdict) -> list[Override]:
    """KVM unusable: TCG in -machine, ``max`` CPU model instead of ``host``, arm64 GIC ``max``."""
    if accel.accel != "tcg":
        return []
    out: list[Override] = []
    why = f"KVM is not usable ({accel.reason})"
    for old in option_values(argv, "-machine"):
        new = set_prop(old, "accel", "tcg")
        if props(new).get("gic-version") == "host":
            new = set_prop(new, "gic-version", "max")
        if new != old:
            extra = "; gic-version=host requires KVM, max is the TCG equivalent" if "gic-version=host" in old else ""
            out.append(Override("accel", ("-machine", old), ("-machine", new), f"{why}: accel=tcg{extra}"))
    for old in option_values(argv, "-cpu"):
        model, sep, features = old.partition(",")
        if model == "host":
            out.append(Override("cpu-model", ("-cpu", old), ("-cpu", f"max{sep}{features}"),
                                f"{why}: -cpu host needs KVM; max is TCG's all-features model "
                                "(features after the model kept)"))
    return out


def vsock_overrides(argv: Sequence[str], available: bool) -> list[Override]:
    """Drop the cold-plugged vhost-vsock device when /dev/vhost-vsock is absent."""
    if available:
        return []
    return [Override("drop-vsock", ("-device", v), (),
                     "/dev/vhost-vsock is absent on this host, so the vhost-vsock device cannot be backed")
            for v in option_values(argv, "-device") if v.startswith("vhost-vsock")]


_ROOTLESS_RE = re.compile(r"(?<![^=,:])(" + "|".join(re.escape(p) for p in ROOTLESS_PREFIXES) + ")")


def relocation_overrides(argv: Sequence[str], runtime_dir: str, target: str) -> list[Override]:
    """Move Kata's /run paths under a private XDG_RUNTIME_DIR, as Kata's rootless mode lays them out.

    Stand-in for rendering with ``HostFacts(rootless=True, xdg_runtime_dir=runtime_dir)``.
    """
    out = []
    for old in argv[1:]:
        new = _ROOTLESS_RE.sub(lambda m: runtime_dir.rstrip("/") + m.group(1), old)
        if new != old:
            out.append(Override("rootless-layout", (old,), (new,),
                                f"private runtime dir {runtime_dir} (Kata's rootless layout "
                                "$XDG_RUNTIME_DIR/run/...), so parallel VMs never share paths", target))
    return out


def syslog_overrides(daemon_argv: Sequence[str], syslog_available: bool, rust: bool = False) -> list[Override]:
    """Without /dev/log, virtiofsd ``--syslog`` dies: its seccomp filter SIGSYS-kills syslog()'s socket() retry.

    ``rust``: the daemon is the Rust virtiofsd (its --syslog has no syslog socket to log to either)."""
    if syslog_available or "--syslog" not in daemon_argv:
        return []
    why = ("the Rust virtiofsd would log to a socket that is not there" if rust else
           "virtiofsd's seccomp sandbox kills it (SIGSYS) when syslog() retries socket()")
    return [Override("drop-syslog", ("--syslog",), (),
                     f"no syslog socket (/dev/log) on this host: {why}; without --syslog it logs to stderr "
                     "(virtiofsd.log)", "daemon")]


# --- runtime paths ----------------------------------------------------------------------------------

def socket_paths(argv: Sequence[str]) -> list[str]:
    """Every unix socket path the argv names: -chardev socket path=, -qmp/-qmp-pretty/-monitor unix:."""
    out = [props(v)["path"] for v in option_values(argv, "-chardev") if v.startswith("socket,") and "path" in props(v)]
    for flag in ("-qmp", "-qmp-pretty", "-monitor"):
        for value in option_values(argv, flag):
            if value.startswith("unix:"):
                rest = value[len("unix:"):]
                path = props(rest).get("path") or (props(rest).get("") if "=" not in rest.split(",")[0] else None)
                if path:
                    out.append(path)
    return out


def qmp_listener_fd(argv: Sequence[str]) -> int | None:
    """N of ``-qmp unix:fd=N,...`` (QEMU inherits a listening socket), None when the QMP socket is a path."""
    for value in option_values(argv, "-qmp"):
        if value.startswith("unix:"):
            fd = props(value[len("unix:"):]).get("fd")
            if fd is not None:
                if not fd.isdigit():
                    raise PlanError(f"-qmp {value}: fd={fd} is not a file descriptor number")
                return int(fd)
    return None


def _chardev_path(argv: Sequence[str], chardev_id: str | None) -> str | None:
    for value in option_values(argv, "-chardev"):
        p = props(value)
        if chardev_id and p.get("id") == chardev_id:
            return p.get("path")
    return None


def run_paths(argv: Sequence[str], daemon_argv: Sequence[str] | None) -> RunPaths:
    """Parse the runtime paths out of the (final) argv."""
    qmp = next((v for v in option_values(argv, "-qmp") if v.startswith("unix:")), None)
    if qmp is None:
        raise PlanError("the argv has no -qmp unix: socket")
    devices = option_values(argv, "-device")
    console_id = next((props(v).get("chardev") for v in devices if v.startswith("virtconsole")), None)
    serial = next((v for v in option_values(argv, "-serial") if v.startswith("chardev:")), None)
    console = _chardev_path(argv, console_id or (serial[len("chardev:"):] if serial else None))
    pidfile = next(iter(option_values(argv, "-pidfile")), None)
    if qmp_listener_fd(argv) is None:
        qmp_socket = qmp[len("unix:"):].split(",")[0]
    else:  # Kata binds the listener at <VM store dir>/qmp.sock; the argv names that dir via pidfile/console
        store = pidfile or console
        if store is None:
            raise PlanError(f"-qmp {qmp}: the argv names no VM dir (-pidfile, console socket) for the QMP socket")
        qmp_socket = os.path.join(os.path.dirname(store), QMP_SOCKET_NAME)
    fs_id = next((props(v).get("chardev") for v in devices if v.startswith("vhost-user-fs")), None)
    shared = None
    if daemon_argv:
        shared = next((v[len("source="):] for v in option_values(daemon_argv, "-o") if v.startswith("source=")),
                      None) or next((a[len("--shared-dir="):] for a in daemon_argv if a.startswith("--shared-dir=")),
                                    None)
    shared = shared or next((props(v).get("path") for v in option_values(argv, "-fsdev")), None)
    return RunPaths(vm_dir=os.path.dirname(qmp_socket), qmp_socket=qmp_socket, console_socket=console,
                    pidfile=pidfile, vhost_fs_socket=_chardev_path(argv, fs_id), shared_dir=shared)


# --- the plan ---------------------------------------------------------------------------------------

def plan_launch(rendered_argv: Sequence[str], daemon_argv: Sequence[str] | None, *,
                assets: dict | None, accel: AccelVerdict, vhost_vsock_available: bool,
                extra: Sequence[Override] = (), syslog_available: bool | None = None,
                daemon_flavour: str | None = None, qemu_build: Build | None = None,
                virtiofsd_build: Build | None = None) -> LaunchPlan:
    """The launch plan for a generated argv on this host; every difference is a recorded Override.

    ``daemon_flavour`` ("rust" or "c"): which virtiofsd the daemon binary is (None: ask the binary);
    ``qemu_build`` / ``virtiofsd_build``: the QEMU and Rust virtiofsd builds to run (None: what is installed)."""
    argv = list(rendered_argv)
    overrides: list[Override] = []
    for build in (lambda a: binary_overrides(a) if qemu_build is None else build_overrides(a, qemu_build),
                  lambda a: asset_overrides(a, assets or {}),
                  lambda a: firmware_overrides(a, build=qemu_build), lambda a: accel_overrides(a, accel),
                  lambda a: vsock_overrides(a, vhost_vsock_available)):
        new = build(argv)
        argv = apply_all(argv, new)
        overrides += new
    daemon = list(daemon_argv) if daemon_argv is not None else None
    if daemon:
        if syslog_available is None:
            syslog_available = os.path.exists("/dev/log")
        prefer_rust = (lambda b: flavour(b) == "rust") if is_rust_argv(daemon) else None
        if virtiofsd_build is not None:
            daemon_flavour = "rust"
        for build in (lambda a: binary_overrides(a, target="daemon", prefer=prefer_rust) if virtiofsd_build is None
                      else daemon_build_overrides(a, virtiofsd_build),
                      lambda a: translation_overrides(a, daemon_flavour or flavour(a[0])) if is_rust_argv(a) else [],
                      lambda a: syslog_overrides(a, syslog_available, rust=is_rust_argv(a))):
            new = build(daemon)
            daemon = apply_all(daemon, new)
            overrides += new
    argv, daemon = _apply_targeted(argv, daemon, extra)
    overrides += list(extra)
    return LaunchPlan(argv, daemon, overrides, run_paths(argv, daemon))


def _apply_targeted(argv: list[str], daemon: list[str] | None,
                    overrides: Iterable[Override]) -> tuple[list[str], list[str] | None]:
    for o in overrides:
        if o.target == "daemon":
            if daemon is None:
                raise PlanError(f"override {o.kind}: this plan starts no daemon")
            daemon = apply_override(daemon, o)
        else:
            argv = apply_override(argv, o)
    return argv, daemon


def with_overrides(plan: LaunchPlan, overrides: Sequence[Override]) -> LaunchPlan:
    """A plan with further overrides applied and recorded."""
    argv, daemon = _apply_targeted(plan.argv, plan.daemon_argv, overrides)
    return replace(plan, argv=argv, daemon_argv=daemon, overrides=[*plan.overrides, *overrides],
                   paths=run_paths(argv, daemon))


def relocate(plan: LaunchPlan, runtime_dir: str) -> LaunchPlan:
    """The plan with Kata's /run paths moved under ``runtime_dir`` (recorded as overrides)."""
    extra = relocation_overrides(plan.argv, runtime_dir, "qemu")
    if plan.daemon_argv:
        extra += relocation_overrides(plan.daemon_argv, runtime_dir, "daemon")
    return with_overrides(plan, extra)


def read_argv_file(path: str | os.PathLike) -> list[str]:
    """An argv file (one argument per line), as the conformance vectors store them."""
    with open(path, encoding="utf-8") as fh:
        return [line.rstrip("\n") for line in fh if line.rstrip("\n") != ""]
