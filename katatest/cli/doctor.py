"""``katatest doctor``: QEMU binaries and versions, KVM verdict and why, virtiofsd, capability findings."""

from __future__ import annotations

import argparse
import os

from katatest.kata.hypervisors import qemu_paths
from katatest.launch.capabilities import plan_findings
from katatest.launch.kvm import accel_verdict
from katatest.launch.plan import VIRTIOFSD_LOCATIONS, read_argv_file
from katatest.launch.qemu_caps import capabilities
from katatest.launch.sweep import sweep
from katatest.launch.virtiofsd import flavour
from katatest.launch.vm import supervisor_mode

_ARCH_OF = {path: arch for arch, path in qemu_paths().items()}


def cmd_doctor(args: argparse.Namespace) -> int:
    builds = _print_builds(args)
    print(f"/dev/vhost-vsock: {'present' if os.path.exists('/dev/vhost-vsock') else 'absent (vsock dropped)'}")
    print(f"/dev/log: {'present' if os.path.exists('/dev/log') else 'absent (virtiofsd --syslog dropped)'}")
    print(f"supervision: {supervisor_mode()}")
    _print_installed_kata()
    _print_assets()
    _print_refusals(builds)
    for path in args.argv_file or []:
        argv = read_argv_file(path)
        arch = "arm64" if "aarch64" in argv[0] else "amd64"
        for build in builds:
            findings = plan_findings(argv, capabilities(tuple(build.command(arch)), arch))
            print(f"{path} on QEMU {build.name}: " + ("no findings" if not findings else ""))
            for f in findings:
                print(f"  lacks: {f.what} -- {f.evidence}" + (f" [known: {f.known}]" if f.known else
                                                                 " [no known finding: the cell would error]"))
    if args.sweep:
        print(f"sweep: {sweep().summary()}")
    return 0


def _print_builds(args: argparse.Namespace) -> list:
    """Every QEMU build found or provisioned (path, full version per arch, KVM verdict) and every virtiofsd."""
    from katatest.assets import qemu_builds

    found = []
    for name in qemu_builds.names("qemu"):
        build = qemu_builds.find("qemu", name)
        if build is None:
            print(f"QEMU {name}: not provisioned (katatest assets build --qemu {name})")
            continue
        found.append(build)
        where = "the host's (/usr/bin)" if build.root is None else str(build.root)
        print(f"QEMU {name}: {where}")
        for arch, version in build.versions.items():
            line = f"  {arch}: {version}"
            if build.root is None and arch in _ARCH_OF.values():
                verdict = accel_verdict(qemu_paths()[arch], arch, use_cache=not args.reprobe)
                line += f"; accel={verdict.accel} ({verdict.reason})"
            print(line)
    for name in qemu_builds.names("virtiofsd"):
        build = qemu_builds.find("virtiofsd", name)
        print(f"virtiofsd {name} (Rust): " + (f"{build.version()} in {build.root}" if build else
                                              f"not provisioned (katatest assets build --virtiofsd {name})"))
    daemon = next((p for p in VIRTIOFSD_LOCATIONS if os.access(p, os.X_OK)), None)
    kinds = {"rust": "Rust", "c": "QEMU's C virtiofsd: Kata 3.0.0's cells use it"}
    kind = f" ({kinds.get(flavour(daemon), 'unknown kind')})" if daemon else ""
    print(f"host virtiofsd: {daemon or 'not installed'}{kind}")
    return found


def _print_refusals(builds: list) -> None:
    """What each QEMU build refuses of each release's shipped QEMU configs (capability findings, from data)."""
    from katatest.generate.render import render_file
    from katatest.host.flags import parse_flags
    from katatest.matrix.cell_config import BASE_DIR

    configs = sorted(BASE_DIR.glob("configuration-qemu-*.toml")) + sorted(BASE_DIR.glob("*/configuration-qemu*.toml"))
    for build in builds:
        clean = []
        for config in configs:
            release = config.parent.name if config.parent != BASE_DIR else "3.0.0"
            arch = "arm64" if config.stem.endswith("arm64") else "amd64"
            tee = next((t for k, t in (("tdx", "tdx"), ("snp", "sev"), ("cca", "cca")) if k in config.stem), "none")
            facts, _ = parse_flags(f"--arch {arch} --host-cpus 8 --host-mem-mib 16384 --guest-protection {tee}")
            argv = render_file(config, facts, release=release).argv_values()
            found = plan_findings(argv, capabilities(tuple(build.command(arch)), arch))
            if found:
                print(f"QEMU {build.name} refuses of Kata {release}'s {config.name}: "
                      + "; ".join(f.what for f in found))
            else:
                clean.append(f"{release}/{config.stem.removeprefix('configuration-')}")
        print(f"QEMU {build.name} refuses nothing of: {', '.join(clean)}")


def _print_installed_kata() -> None:
    """The installed Kata's version (``kata-runtime --version``) and which release to pass for it."""
    from katatest.host.installed_kata import installed_kata_version, release_advice
    from katatest.kata.releases import known_releases

    version = installed_kata_version()
    if version is None:
        print("installed Kata: none (no kata-runtime on PATH)")
    else:
        print(f"installed Kata: {version}: {release_advice(version, known_releases())}")


def _print_assets() -> None:
    """The guest asset cache, per architecture (built, missing, corrupt or overridden)."""
    from katatest.assets.cache import asset_status, cache_root
    from katatest.errors import KatatestError

    try:
        print(f"asset cache: {cache_root()}")
        for arch in ("amd64", "arm64"):
            states = ", ".join(f"{s.name} {s.state}" for s in asset_status(arch))
            print(f"  {arch}: {states}")
    except KatatestError as err:
        print(f"asset cache: unusable: {err}")


def register_doctor(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("doctor", help="check QEMU, KVM, virtiofsd and QEMU capabilities on this host")
    p.add_argument("--reprobe", action="store_true", help="probe KVM again instead of using the cached verdict")
    p.add_argument("--argv-file", action="append", help="also check an argv file (one argument per line)")
    p.add_argument("--sweep", action="store_true", help="kill/remove what dead katatest runs left behind")
    p.set_defaults(handler=cmd_doctor)
