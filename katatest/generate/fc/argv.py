"""The firecracker or jailer command line of Kata 3.0.0's ``fcInit``."""

from __future__ import annotations

from katatest.generate.fc.paths import CHROOT_BASE_DIR, FcLayout
from katatest.generate.provenance import Arg, FieldSources
from katatest.host.facts import HostFacts
from katatest.kata.hypervisor_config import KataConfig

FC_CONFIG = "fcConfig.json"  # defaultFcConfig
ID_SOURCES = ("host.sandbox_id",)


def fc_argv(cfg: KataConfig, facts: HostFacts, layout: FcLayout, src: FieldSources) -> list[Arg]:
    """The jailer (``jailer_path`` set) wrapping firecracker, or firecracker with its own API socket."""
    hv = cfg.hypervisor
    fixed = ("kata.fixed",)
    jail_src = src("jailer_path")
    layout_src = ID_SOURCES + src("hypervisor_path", "jailer_path")
    config_file = [Arg("--config-file", fixed), Arg(layout.jailed_path(FC_CONFIG), layout_src)]
    if not layout.jailed:
        return [Arg(hv.hypervisor_path, src("hypervisor_path")),
                Arg("--api-sock", fixed), Arg(layout.api_socket, layout_src), *config_file]
    args = [Arg(hv.jailer_path, jail_src),
            Arg("--id", jail_src), Arg(layout.vm_id, ID_SOURCES),
            Arg("--exec-file", jail_src), Arg(hv.hypervisor_path, src("hypervisor_path")),
            Arg("--uid", jail_src), Arg("0", fixed),
            Arg("--gid", jail_src), Arg("0", fixed),
            Arg("--chroot-base-dir", jail_src), Arg(CHROOT_BASE_DIR, fixed),
            Arg("--daemonize", jail_src)]
    if facts.netns:
        args += [Arg("--netns", ("host.netns",)), Arg(facts.netns, ("host.netns",))]
    return args + [Arg("--", jail_src), *config_file]
