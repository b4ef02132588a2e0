"""The shared-fs daemon Kata 3.0.0 starts beside QEMU or Cloud Hypervisor: virtiofsd, or nydusd (virtio-fs-nydus)."""

from __future__ import annotations

import re

from katatest.errors import ConfigError
from katatest.generate.paths import sandbox_paths
from katatest.generate.provenance import Arg
from katatest.host.facts import HostFacts
from katatest.kata.hypervisor_config import KataConfig
from katatest.kata.releases import QemuBehaviour, load_release

RUST_CACHE_MODES = ("auto", "always", "metadata", "never")
VIRTIOFSD_SOCKET_FD = 3  # the listening socket is the first of cmd.ExtraFiles


def daemon_argv(cfg: KataConfig, facts: HostFacts, nydusd_socket: str = "vhost-fs.sock",
                behaviour: QemuBehaviour | None = None, source: str = "") -> list[Arg] | None:
    """virtiofsd's or nydusd's argv, or None when the config shares with virtio-9p.

    ``nydusd_socket`` names nydusd's vhost-user socket in the VM dir (clh uses ``virtiofsd.sock``);
    ``behaviour`` is the release's (``virtiofsd_argv``, ``nydusd_argv``; default 3.0.0's)."""
    behaviour = behaviour or load_release().qemu
    hv = cfg.hypervisor
    src = cfg.sources
    daemon_src = tuple(src.get("hypervisor.virtio_fs_daemon", ("hypervisor.qemu.virtio_fs_daemon",)))
    extra_src = tuple(src.get("hypervisor.virtio_fs_extra_args", ("hypervisor.qemu.virtio_fs_extra_args",)))
    paths = sandbox_paths(facts)
    path_src = ("host.sandbox_id", "host.rootless", "host.xdg_runtime_dir")
    if hv.shared_fs == "virtio-fs-nydus":
        debug_src = tuple(src.get("hypervisor.debug", ("hypervisor.qemu.enable_debug",)))
        args = [Arg(hv.virtio_fs_daemon, daemon_src)]
        if behaviour.nydusd_argv == "virtiofs":
            args.append(Arg("virtiofs", ("release.qemu.nydusd_argv",)))
        args += [Arg("--log-level", debug_src), Arg("debug" if hv.debug else "info", debug_src),
                Arg("--apisock", path_src), Arg(paths.socket("nydusd-api.sock"), path_src),
                Arg("--sock", path_src), Arg(paths.socket(nydusd_socket), path_src)]
    elif hv.shared_fs == "virtio-fs":
        cache_src = tuple(src.get("hypervisor.virtio_fs_cache", ("hypervisor.qemu.virtio_fs_cache",)))
        fixed = ("kata.fixed",)
        if behaviour.virtiofsd_cache_check and hv.virtio_fs_cache not in RUST_CACHE_MODES:
            raise ConfigError(cache_src[0], f"invalid virtio-fs cache mode {hv.virtio_fs_cache!r} (virtiofsd: "
                              f"{', '.join(RUST_CACHE_MODES)}; release.qemu.virtiofsd_cache_check)", source,
                              kata=f"Invalid virtio-fs cache mode: {re.escape(hv.virtio_fs_cache)}$")
        if behaviour.virtiofsd_argv == "rust":
            rust = ("release.qemu.virtiofsd_argv",)
            args = [Arg(hv.virtio_fs_daemon, daemon_src), Arg("--syslog", rust),
                    Arg("--cache=" + hv.virtio_fs_cache, cache_src + rust),
                    Arg("--shared-dir=" + paths.shared_dir, path_src + rust),
                    Arg(f"--fd={VIRTIOFSD_SOCKET_FD}", rust)]
            args += [Arg(extra, extra_src) for extra in hv.virtio_fs_extra_args]
            if behaviour.virtiofsd_xattr and not hv.disable_guest_selinux:
                args.append(Arg("--xattr", tuple(src.get("hypervisor.disable_guest_selinux",
                                                         ("hypervisor.qemu.disable_guest_selinux",)))
                                + ("release.qemu.virtiofsd_xattr",)))
            return args
        args = [Arg(hv.virtio_fs_daemon, daemon_src), Arg("--syslog", fixed),
                Arg("-o", cache_src), Arg("cache=" + hv.virtio_fs_cache, cache_src),
                Arg("-o", fixed), Arg("no_posix_lock", fixed),
                Arg("-o", path_src), Arg("source=" + paths.shared_dir, path_src),
                Arg(f"--fd={VIRTIOFSD_SOCKET_FD}", fixed), Arg("-f", fixed)]
    else:
        return None
    args += [Arg(extra, extra_src) for extra in hv.virtio_fs_extra_args]
    return args


def daemon_omitted(cfg: KataConfig, behaviour: QemuBehaviour) -> list[Arg]:
    """The C virtiofsd's arguments a Rust-virtiofsd release leaves out (Rendered.omitted)."""
    if cfg.hypervisor.shared_fs != "virtio-fs" or behaviour.virtiofsd_argv != "rust":
        return []
    rust = ("release.qemu.virtiofsd_argv",)
    return [Arg("-o", rust), Arg("no_posix_lock", rust), Arg("-f", rust)]
