"""``katatest assets build|status|clean [--arch amd64|arm64|all]``."""

from __future__ import annotations

import argparse
import sys

from katatest.assets.cache import ARCHES, asset_status, cache_root, clean, ensure_assets, writable_cache_dir


def _arches(choice: str) -> tuple[str, ...]:
    return ARCHES if choice == "all" else (choice,)


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def cmd_assets(args: argparse.Namespace) -> int:
    for arch in _arches(args.arch):
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
    p.add_argument("--arch", choices=(*ARCHES, "all"), default="amd64", help="guest architecture (amd64)")
    p.set_defaults(handler=cmd_assets)

