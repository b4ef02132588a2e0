"""``katatest assets build|status|clean [--arch amd64|arm64|all]``."""

from __future__ import annotations

import argparse
import sys

from katatest.assets.cache import ARCHES, asset_status, cache_root, clean, ensure_assets, writable_cache_dir
from katatest.assets.errors import AssetError


def _arches(choice: str) -> tuple[str, ...]:
    return ARCHES if choice == "all" else (choice,)


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _builds(args: argparse.Namespace) -> list[tuple[str, str]]:
    """(kind, name) of the QEMU / virtiofsd builds named by --qemu / --virtiofsd (``all``: every one; --qemu all
    brings every virtiofsd build too: the daemons the releases' cells pair with their QEMU)."""
    from katatest.assets import qemu_builds

    out = []
    for kind, choice in (("qemu", args.qemu), ("virtiofsd", args.virtiofsd)):
        if choice:
            out += [(kind, n) for n in (qemu_builds.names(kind) if choice == "all" else [choice])]
    if args.qemu == "all" and not args.virtiofsd:
        out += [("virtiofsd", n) for n in qemu_builds.names("virtiofsd")]
    for kind, name in out:
        qemu_builds.spec(kind, name)  # an unknown one: one line naming the known ones
    return out


def cmd_assets(args: argparse.Namespace) -> int:
    builds = _builds(args)
    if args.arch is None:
        args.arch = "amd64" if not builds else ""
    if builds and args.action != "build" and args.action != "status":
        raise AssetError("assets clean --qemu/--virtiofsd: remove the build's directory under "
                         f"{cache_root() / 'builds'} by hand")
    from katatest.assets import qemu_builds

    for kind, name in builds:
        build = qemu_builds.provision(kind, name, _progress) if args.action == "build" else qemu_builds.find(kind, name)
        where = "the host's own" if build and build.root is None else (build.root if build else "-")
        state = "provisioned" if build else "missing"
        versions = ", ".join(f"{a} {v}" for a, v in build.versions.items()) if build else ""
        print(f"{kind} {name} {state} {where}{'  ' + versions if versions else ''}")
    for arch in _arches(args.arch) if args.arch else ():
        if args.action == "build":
            a = ensure_assets(arch, progress=_progress)
            print(f"{arch} kernel {a.kernel}\n{arch} initrd {a.initrd}\n{arch} image  {a.image} "
                  f"({a.image_size} bytes)")
        elif args.action == "status":
            states = asset_status(arch)
            for s in states:
                where = s.path if s.path is not None else "-"
                print(f"{arch} {s.name:<6} {s.state:<11} {where}{'  ' + s.detail if s.detail else ''}")
            if any(s.state != "built" and s.state != "override" for s in states):
                writable_cache_dir()  # what is missing must be buildable: say so now, not at boot time
        else:
            removed = clean(arch)
            print(f"{arch}: removed {len(removed)} cached asset set(s) from {cache_root() / arch}")
    return 0


def register_assets(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("assets", help="build, inspect or remove the cached guest kernel/initrd/image")
    p.add_argument("action", choices=("build", "status", "clean"))
    p.add_argument("--arch", choices=(*ARCHES, "all"), default=None,
                   help="guest architecture (amd64 when no --qemu/--virtiofsd is given)")
    p.add_argument("--qemu", metavar="BUILD|all", default=None,
                   help="a QEMU build from Debian's archives (katatest/data/qemu_builds.toml: 7.2, 10.0, 11.1); "
                        "all: every QEMU and virtiofsd build")
    p.add_argument("--virtiofsd", metavar="BUILD|all", default=None,
                   help="a Rust virtiofsd build from Debian's archives (1.13, 1.14)")
    p.set_defaults(handler=cmd_assets)

