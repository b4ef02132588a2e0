"""Entry point of the QEMU generator: parsed TOML + host facts -> Rendered."""

from __future__ import annotations

from typing import Any

from katatest.errors import kata_stage
from katatest.generate.daemon import daemon_argv, daemon_omitted
from katatest.generate.provenance import check_exec_safe
from katatest.generate.qemu.argv import render_argv
from katatest.generate.qemu.build import build_qemu_config, nesting
from katatest.generate.qemu.network import network_devices
from katatest.generate.rendered import Rendered
from katatest.host.facts import HostFacts
from katatest.kata.loader import load_kata_config
from katatest.kata.releases import Release
from katatest.kata.validate import check_qemu_launch


def render_qemu(doc: dict[str, Any], facts: HostFacts, source: str, release: Release) -> Rendered:
    """Render what Kata ``release`` launches for a QEMU sandbox: QEMU argv and shared-fs daemon argv."""
    cfg = load_kata_config(doc, facts, source, release)  # LoadConfiguration .. CreateVM's own checks
    with kata_stage("CreateVM"):
        model = build_qemu_config(cfg, facts, release, source=source)
    nested_run, nested_src = nesting(cfg, facts)
    with kata_stage("createNetwork"):  # Sandbox.createNetwork: the pod's endpoints, cold-plugged
        network, plumbing = network_devices(cfg, facts, model.devices, nested_run, nested_src, model.transport,
                                            source, release.qemu, model.machine.type)
    model.devices += network
    with kata_stage("StartVM"):  # qemu.StartVM starts the shared-fs daemon before govmm's LaunchQemu
        daemon = daemon_argv(cfg, facts, behaviour=release.qemu, source=source)
    with kata_stage("LaunchQemu"):
        check_qemu_launch(model.smp.cpus, model.smp.max_cpus, source)
        argv = render_argv(model)
    check_exec_safe(argv, source)
    check_exec_safe(daemon or [], source)
    omitted = model.omitted + daemon_omitted(cfg, release.qemu)
    assumptions = []
    if facts.arch == "arm64" and release.qemu.pcie_topology == "vfio_ports" and not facts.net_endpoints:
        assumptions.append(NO_POD_NETNS)
    return Rendered(hypervisor="qemu", argv=argv, daemon=daemon, release=release.version, omitted=omitted,
                    network=tuple(plumbing), assumptions=assumptions)


NO_POD_NETNS = ("no --net-endpoint: katatest assumes no pod network namespace (as on the vectors' host); a real "
                "sandbox always has one (CNI's, or Kata's own unless disable_new_netns), and on arm64 Kata adds a "
                "pcie-root-port per link of it, lo included: render with --net-endpoint veth for that line")
