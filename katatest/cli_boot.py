"""``katatest boot CONFIG [flags] [-- CMD ...]``: boot the generated argv, run CMD in the guest, tear down."""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
from pathlib import Path

from katatest.assets.cache import ensure_assets
from katatest.boot import CannotBoot, VmmMissing, boot_guest, check_bootable
from katatest.cli_facts import add_fact_flags, facts_from_args
from katatest.hostfacts import detect
from katatest.launch.kvm import accel_verdict
from katatest.qemu.arch import QEMU_PATHS
from katatest.render import render_doc
from katatest.tomlconf import load_toml


def cmd_boot(args: argparse.Namespace) -> int:
    host = detect()
    facts = facts_from_args(args, detect=True)
    document = load_toml(args.config)
    try:  # before assets: a missing QEMU must not wait for a kernel build to be reported
        preview = facts.with_overrides(sandbox_id="kt" + "1" * 14)  # short, like boot_guest's ids
        check_bootable(render_doc(document, preview, Path(args.config).stem), host, preview)
    except VmmMissing:
        raise  # exit 2: the user's setup is wrong, not this host's capabilities
    except CannotBoot as why:
        print(f"katatest: cannot boot here: {why.reason}", file=sys.stderr)
        return 3
    assets = ensure_assets(facts.arch, progress=lambda line: print(f"[assets] {line}", file=sys.stderr),
                           kernel_path=args.kernel, initrd_path=args.initrd, image_path=args.image)
    accel = accel_verdict(QEMU_PATHS[facts.arch], facts.arch, str(assets.kernel))
    print(f"accelerator: {accel.accel} ({accel.reason})", file=sys.stderr)
    command = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    command = command or ["cat", "/proc/cmdline"]
    with tempfile.TemporaryDirectory(prefix="katatest-boot-") as run_root:
        try:
            with boot_guest(document, facts, host=host, assets=assets, accel=accel, run_root=run_root,
                            name=Path(args.config).stem) as guest:
                for override in guest.plan.overrides:
                    print(f"override {override.kind}: {' '.join(override.before)!r} -> "
                          f"{' '.join(override.after)!r} ({override.reason})", file=sys.stderr)
                result = guest.channel.run(shlex.join(command), timeout=args.timeout)
        except CannotBoot as why:
            print(f"katatest: cannot boot here: {why.reason}", file=sys.stderr)
            return 3
    sys.stdout.buffer.write(result.stdout)
    sys.stderr.buffer.write(result.stderr)
    return result.exit_status


def register_boot(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("boot", help="boot a Kata config's generated argv and run a command in the guest")
    p.add_argument("config", help="a Kata 3.0.0 configuration-qemu.toml")
    add_fact_flags(p)
    p.add_argument("--kernel", help="guest kernel to use instead of the built one")
    p.add_argument("--initrd", help="guest initrd to use instead of the built one")
    p.add_argument("--image", help="guest rootfs image to use instead of the built one")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds CMD may run in the guest")
    p.add_argument("cmd", nargs=argparse.REMAINDER, help="-- CMD ... (default: cat /proc/cmdline)")
    p.set_defaults(handler=cmd_boot)
