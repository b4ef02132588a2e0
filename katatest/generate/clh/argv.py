"""The cloud-hypervisor command line of Kata 3.0.0's ``launchClh``."""

from __future__ import annotations

from katatest.generate.clh.paths import API_SOCKET, PATH_SOURCES, clh_socket
from katatest.generate.provenance import Arg, FieldSources
from katatest.host.facts import HostFacts
from katatest.kata.hypervisor_config import KataConfig
from katatest.kata.hypervisors import hypervisor


def clh_argv(cfg: KataConfig, facts: HostFacts, src: FieldSources) -> list[Arg]:
    """Binary, ``--api-socket <path>``, ``-v`` when debugging, ``--seccomp false`` when disabled."""
    hv = cfg.hypervisor
    args = [Arg(hv.hypervisor_path or hypervisor("clh").default_paths[facts.arch], src("hypervisor_path")),
            Arg("--api-socket", ("kata.fixed",)),
            Arg(clh_socket(facts, API_SOCKET), PATH_SOURCES)]
    if hv.debug:
        args.append(Arg("-v", src("debug")))
    if hv.disable_seccomp:
        args += [Arg("--seccomp", src("disable_seccomp")), Arg("false", src("disable_seccomp"))]
    return args
