"""``katatest doctor``: QEMU binaries and versions, KVM verdict and why, virtiofsd, capability findings."""

from __future__ import annotations

import argparse
import os

from katatest.kata.hypervisors import qemu_paths
from katatest.launch.capabilities import installed_qemus, plan_findings, qemu_caps
from katatest.launch.kvm import accel_verdict
from katatest.launch.plan import VIRTIOFSD_LOCATIONS, read_argv_file
from katatest.launch.sweep import sweep
from katatest.launch.virtiofsd import flavour
from katatest.launch.vm import supervisor_mode

_ARCH_OF = {path: arch for arch, path in qemu_paths().items()}


def cmd_doctor(args: argparse.Namespace) -> int:
    qemus = installed_qemus()
    if not qemus:
        print("qemu: none of qemu-system-x86_64 / qemu-system-aarch64 is installed")
    for binary in qemus:
        caps = qemu_caps(binary)
        arch = _ARCH_OF.get(binary, "amd64")
        verdict = accel_verdict(binary, arch, use_cache=not args.reprobe)
        print(f"{binary}: {caps.version}")
        print(f"  {arch} guests: accel={verdict.accel} ({verdict.reason})")
        lacks = ["vhost-user-fs-pci cache-size (virtio-fs DAX window)"] if "cache-size" not in \
            caps.vhost_user_fs_props else []
        lacks += [f"object {o}" for o in ("tdx-guest", "sev-guest", "sev-snp-guest") if o not in caps.objects]
        if caps.bool_prefix_error:
            lacks.append("boolean 'no' prefixes in -machine (e.g. nosmm)")
        for item in lacks:
            print(f"  lacks: {item}")
    daemon = next((p for p in VIRTIOFSD_LOCATIONS if os.access(p, os.X_OK)), None)
    kinds = {"rust": "the Rust virtiofsd: Kata 3.30+'s argv runs unchanged",
             "c": "QEMU's C virtiofsd: Kata 3.30+'s Rust-virtiofsd argv is translated flag by flag"}
    kind = f" ({kinds.get(flavour(daemon), 'unknown kind')})" if daemon else ""
    print(f"virtiofsd: {daemon or 'not installed'}{kind}")
    print(f"/dev/vhost-vsock: {'present' if os.path.exists('/dev/vhost-vsock') else 'absent (vsock dropped)'}")
    print(f"/dev/log: {'present' if os.path.exists('/dev/log') else 'absent (virtiofsd --syslog dropped)'}")
    print(f"supervision: {supervisor_mode()}")
    _print_installed_kata()
    _print_assets()
    for path in args.argv_file or []:
        findings = plan_findings(read_argv_file(path))
        print(f"{path}: " + ("no findings" if not findings else ""))
        for f in findings:
            print(f"  lacks: {f.what} -- {f.evidence}" + (f" [known: {f.known}]" if f.known else
                                                             " [no known finding: the cell would error]"))
    if args.sweep:
        print(f"sweep: {sweep().summary()}")
    return 0


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
