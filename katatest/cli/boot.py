"""``katatest boot CONFIG [flags] [-- CMD ...]``: boot the generated argv, run CMD in the guest, tear down.

Flags go anywhere before ``--``; the guest command is exactly what follows it (default: cat /proc/cmdline).
The launcher, QMP and testinfra are imported only here, when a guest is really booted."""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
from pathlib import Path

from katatest.cli.facts import config_facts
from katatest.cli.kata_version import add_kata_version_flag
from katatest.host.flags import add_fact_flags
from katatest.kata.tomlconf import load_toml

DEFAULT_COMMAND = ("cat", "/proc/cmdline")


def cmd_boot(args: argparse.Namespace) -> int:
    from katatest.assets.cache import ensure_assets
    from katatest.generate.render import render_doc
    from katatest.guest.boot import CannotBoot, VmmMissing, boot_guest, check_bootable, preview_facts
    from katatest.host.facts import detect
    from katatest.kata.hypervisors import qemu_paths
    from katatest.launch.kvm import accel_verdict

    command = list(args.command_argv or DEFAULT_COMMAND)
    builds = chosen_builds(args)
    host = detect()
    document = load_toml(args.config)
    facts = config_facts(args, document, detect=True)
    try:  # before assets: a missing QEMU must not wait for a kernel build to be reported
        preview = preview_facts(facts)
        check_bootable(render_doc(document, preview, Path(args.config).stem, release=args.kata_version), host,
                       preview, builds)
    except VmmMissing:
        raise  # exit 2: the user's setup is wrong, not this host's capabilities
    except CannotBoot as why:
        print(f"katatest: cannot boot here: {why.reason}", file=sys.stderr)
        return 3
    assets = ensure_assets(facts.arch, progress=lambda line: print(f"[assets] {line}", file=sys.stderr),
                           kernel_path=args.kernel, initrd_path=args.initrd, image_path=args.image)
    accel = accel_verdict(qemu_paths()[facts.arch], facts.arch, str(assets.kernel))
    print(f"accelerator: {accel.accel} ({accel.reason})", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="katatest-boot-") as run_root:
        try:
            with boot_guest(document, facts, host=host, assets=assets, accel=accel, run_root=run_root,
                            name=Path(args.config).stem, release=args.kata_version, builds=builds) as guest:
                print(f"builds: {builds.describe(facts.arch)}", file=sys.stderr)
                for override in guest.plan.overrides:
                    print(f"override {override.kind}: {' '.join(override.before)!r} -> "
                          f"{' '.join(override.after)!r} ({override.reason})", file=sys.stderr)
                for nic in guest.nics:
                    print(f"network: {nic.endpoint} ({nic.model}, {nic.queues} queue(s)) is the guest's {nic.ifname} "
                          f"{nic.mac} {nic.address}, host side {nic.peer} in netns {guest.network.peer_netns}",
                          file=sys.stderr)
                result = guest.channel.run(shlex.join(command), timeout=args.timeout)
        except CannotBoot as why:
            print(f"katatest: cannot boot here: {why.reason}", file=sys.stderr)
            return 3
    sys.stdout.buffer.write(result.stdout)
    sys.stderr.buffer.write(result.stderr)
    return result.exit_status


def chosen_builds(args: argparse.Namespace):
    """The QEMU / Rust virtiofsd builds ``--qemu`` / ``--virtiofsd`` name (``--qemu`` alone: the virtiofsd build
    of the release's cells); neither: the host's QEMU and virtiofsd."""
    from katatest.assets import qemu_builds
    from katatest.guest.boot import Builds
    from katatest.matrix.model import default_builds

    qemu = qemu_builds.require("qemu", args.qemu) if args.qemu else None
    virtiofsd_name = args.virtiofsd or (default_builds(args.kata_version)[1] if args.qemu else "")
    virtiofsd = qemu_builds.require("virtiofsd", virtiofsd_name) if virtiofsd_name else None
    return Builds(qemu, virtiofsd)


def register_boot(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("boot", help="boot a Kata config's generated argv and run a command in the guest",
                       usage="katatest boot CONFIG [flags] [-- CMD ...]",
                       epilog="Everything after the first -- is the guest command (default: cat /proc/cmdline).")
    p.add_argument("config", help="a Kata configuration-qemu.toml (of the release --kata-version names)")
    add_fact_flags(p)
    add_kata_version_flag(p)
    p.add_argument("--kernel", help="guest kernel to use instead of the built one")
    p.add_argument("--initrd", help="guest initrd to use instead of the built one")
    p.add_argument("--image", help="guest rootfs image to use instead of the built one")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds CMD may run in the guest")
    p.add_argument("--qemu", metavar="BUILD", help="run on this QEMU build (7.2, 10.0, 11.1; katatest assets build "
                                                    "--qemu BUILD), with the release's Rust virtiofsd build")
    p.add_argument("--virtiofsd", metavar="BUILD", help="run this Rust virtiofsd build (1.13, 1.14)")
    p.set_defaults(handler=cmd_boot, command_argv=None)
