"""Provenance is never invented: an argument or VM config field without sources is a generator bug."""

from __future__ import annotations

import pytest

from katatest.generate.provenance import Arg, FieldSources, MissingProvenance
from katatest.generate.qemu import devices as dev
from katatest.generate.qemu.argv import render_argv
from katatest.generate.qemu.build import build_qemu_config
from katatest.generate.vmjson import flatten, leaf
from katatest.host.facts import HostFacts
from katatest.kata.loader import load_kata_config
from tests.test_qemu_units import config

FACTS = HostFacts(arch="amd64", host_cpus=8, host_mem_mib=16384)


@pytest.mark.parametrize("sources", [(), ("",)])
def test_arg_without_sources_is_an_error(sources):
    with pytest.raises(MissingProvenance, match="'-foo'"):
        Arg("-foo", sources)


def test_qemu_device_without_sources_is_an_error_not_kata_fixed():
    cfg = build_qemu_config(load_kata_config(config(), FACTS), FACTS)
    cfg.devices.append(dev.RngDevice(id="rng9", filename="/dev/random"))  # a device that forgot its sources
    with pytest.raises(MissingProvenance, match="rng9"):
        render_argv(cfg)


def test_qemu_constants_say_kata_fixed_explicitly():
    args = render_argv(build_qemu_config(load_kata_config(config(), FACTS), FACTS))
    fixed = {a.value for a in args if a.sources == ("kata.fixed",)}
    assert {"-rtc", "-vga", "-nodefaults", "-daemonize"} <= fixed
    assert all(a.sources for a in args)


def test_vm_config_field_without_sources_is_an_error():
    assert flatten({"a": leaf(1, "kata.fixed")}) == ({"a": 1}, {"/a": ("kata.fixed",)})
    with pytest.raises(MissingProvenance, match="/cpus/boot_vcpus"):
        flatten({"cpus": {"boot_vcpus": 1}})


def test_field_sources_fall_back_only_to_real_keys():
    src = FieldSources(load_kata_config(config(), FACTS), "hypervisor.qemu")
    assert src("virtio_fs_cache") == ("hypervisor.qemu.virtio_fs_cache",)  # a real key
    with pytest.raises(MissingProvenance, match="boot_from_template"):
        src("boot_from_template")  # runtime state of the template factory, no configuration key


def test_vm_config_leaf_without_sources_is_an_error():
    with pytest.raises(MissingProvenance, match="'Acpi'"):
        leaf("Acpi")
