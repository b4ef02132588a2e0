"""Every Kata 3.0.0 Cloud Hypervisor and Firecracker vector: argv argument by argument, the VM config as
parsed JSON (first differing JSON pointer on failure), the shared-fs daemon argv, and every ``.err`` case
rejected with a ConfigError."""

from __future__ import annotations

import json

import pytest

from katatest.conformance.check import check_vector
from katatest.conformance.vectors import discover
from katatest.errors import ConfigError
from katatest.generate.render import render_file
from katatest.host.flags import parse_flags
from tests.conformance_files import DATA

CLH = discover(DATA, "kata-3.0.0-clh")
FC = discover(DATA, "kata-3.0.0-fc")
ACCEPTED = [v for v in CLH + FC if not v.rejected]
REJECTED = [v for v in CLH + FC if v.rejected]


def _render(vector):
    facts, _ = parse_flags(" ".join(vector.flags))
    return render_file(vector.toml, facts)


@pytest.mark.parametrize("vector", CLH, ids=[v.id for v in CLH])
def test_clh_vector(vector):
    problems = check_vector(vector)
    assert not problems, f"{vector.id}: " + "; ".join(problems)


@pytest.mark.parametrize("vector", FC, ids=[v.id for v in FC])
def test_fc_vector(vector):
    problems = check_vector(vector)
    assert not problems, f"{vector.id}: " + "; ".join(problems)


@pytest.mark.parametrize("vector", REJECTED, ids=[v.id for v in REJECTED])
def test_rejection_is_a_config_error_naming_a_key(vector):
    with pytest.raises(ConfigError) as caught:
        _render(vector)
    assert caught.value.key, "a rejection must name the TOML key (or fact) responsible"


@pytest.mark.parametrize("vector", ACCEPTED, ids=[v.id for v in ACCEPTED])
def test_every_output_knows_its_sources(vector):
    """Provenance for ``katatest explain``: every argv element and every JSON leaf has sources."""
    rendered = _render(vector)
    assert all(arg.sources for arg in rendered.argv + (rendered.daemon or []))
    expected = json.loads(vector.file(".vmconfig.json").read_text())
    assert set(rendered.vmconfig_sources) == set(_leaf_pointers(expected))
    assert all(rendered.vmconfig_sources.values())


def _leaf_pointers(node, pointer=""):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _leaf_pointers(value, f"{pointer}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _leaf_pointers(value, f"{pointer}/{index}")
    else:
        yield pointer


def test_vector_counts_are_complete():
    """Guards against a broken glob silently testing nothing."""
    assert len(CLH) >= 85 and len(FC) >= 63
    assert sum(v.rejected for v in CLH) >= 13 and sum(v.rejected for v in FC) >= 5
    assert all(v.file(".vmconfig.json").exists() for v in ACCEPTED)


def test_config_sources_name_toml_keys():
    rendered = _render(next(v for v in CLH if v.name == "agent_opts"))
    assert "hypervisor.clh.default_memory" in rendered.vmconfig_sources["/memory/size"]
    assert "host.host_mem_mib" in rendered.vmconfig_sources["/memory/hotplug_size"]
    rendered = _render(next(v for v in FC if v.name == "netns_jailer"))
    assert any("host.netns" in arg.sources for arg in rendered.argv)


def test_go_helpers_match_kata_semantics():
    """``utils.RevertBytes`` (1000-based digits re-read as 1024-based) and Go's ``filepath`` behaviour."""
    from katatest.generate.fc.paths import go_base, go_join
    from katatest.kata.goint import bits_per_second_to_bytes, int32, revert_bytes

    assert revert_bytes(125000) == 128000 and revert_bytes(999) == 999 and revert_bytes(1_000_000) == 1048576
    assert bits_per_second_to_bytes(1_000_000) == 128000 and bits_per_second_to_bytes(-8) != 0
    assert int32(2**31) == -(2**31)
    assert go_base("") == "." and go_base("/usr/bin/firecracker/") == "firecracker" and go_base("//") == "/"
    assert go_join("/", "fcConfig.json") == "/fcConfig.json" and go_join("/run/vc", "", "x") == "/run/vc/x"
