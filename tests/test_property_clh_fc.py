"""Property: any mutation of a clh / fc / acrn configuration (wrong types, missing sections, absurd numbers,
unknown values) renders, or is refused naming a key: a ConfigError (Kata's rejection), or an UnmodelledKey (a
value of a key katatest does not turn into Kata's arguments); never another exception."""

from __future__ import annotations

import contextlib
import copy
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from katatest.errors import ConfigError
from katatest.generate.render import render_doc
from katatest.host.facts import HostFacts
from katatest.kata.key_coverage import UNMODELLED, UnmodelledKey
from katatest.kata.toml_schema import AGENT_KEYS, HYPERVISOR_KEYS, RUNTIME_KEYS
from katatest.kata.tomlconf import parse_toml
from tests.conformance_files import DATA

BASES = {
    "clh": parse_toml((DATA / "kata-3.0.0-clh/named/agent_opts.toml").read_text()),
    "fc": parse_toml((DATA / "kata-3.0.0-fc/named/default.toml").read_text()),
    "fc-initrd": parse_toml((DATA / "kata-3.0.0-fc/named/initrd_no_jailer.toml").read_text()),
}
INTERESTING_STRINGS = ["", "bogus", "virtio-fs", "virtio-fs-nydus", "virtio-9p", "virtio-blk", "nvdimm",
                       "/dev/urandom", "/", "a" * 200, "panic=0 =x", "/usr/bin/jailer", "/usr/bin/firecracker"]
ABSURD_INTS = st.one_of(st.integers(-(2**64), 2**64), st.sampled_from([0, -1, 2**31, 2**32 - 1, 2**63 - 1]))
ANY_VALUE = st.one_of(
    st.booleans(), ABSURD_INTS, st.floats(allow_nan=False), st.sampled_from(INTERESTING_STRINGS),
    st.text(max_size=20), st.lists(st.sampled_from(INTERESTING_STRINGS), max_size=3),
    st.dictionaries(st.sampled_from(["x", "path"]), st.integers(), max_size=2),
)
TABLE_KEYS = {"hypervisor": sorted(HYPERVISOR_KEYS), "agent": sorted(AGENT_KEYS), "runtime": sorted(RUNTIME_KEYS)}


def _hypervisor_table(doc: dict) -> dict:
    return next(iter(doc["hypervisor"].values()))


@st.composite
def mutated_docs(draw: st.DrawFn) -> dict:
    doc = copy.deepcopy(BASES[draw(st.sampled_from(sorted(BASES)))])
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["set", "set", "set", "delete_key", "drop_section", "as_acrn"]))
        if kind == "drop_section":
            section = draw(st.sampled_from(["agent", "runtime", "factory", "image"]))
            doc.pop(section, None)
            continue
        if kind == "as_acrn":  # the same keys under [hypervisor.acrn]
            doc["hypervisor"] = {"acrn": _hypervisor_table(doc)}
            continue
        table_name = draw(st.sampled_from(sorted(TABLE_KEYS)))
        if table_name == "hypervisor":
            table = _hypervisor_table(doc)
        elif table_name == "agent":
            table = doc.setdefault("agent", {}).setdefault("kata", {})
        else:
            table = doc.setdefault("runtime", {})
        if not isinstance(table, dict):
            continue
        key = draw(st.sampled_from(TABLE_KEYS[table_name]))
        if kind == "delete_key":
            table.pop(key, None)
        else:
            table[key] = draw(ANY_VALUE)
    return doc


FACTS = st.builds(
    HostFacts,
    arch=st.sampled_from(["amd64", "arm64"]),
    host_cpus=st.integers(1, 512),
    host_mem_mib=st.integers(1, 2**22),
    guest_protection=st.sampled_from(["none", "tdx", "sev"]),
    fips=st.booleans(),
    vsock=st.booleans(),
    sharedfs=st.booleans(),
    rootless=st.booleans(),
    uid=st.integers(0, 70000),
    netns=st.sampled_from(["", "/var/run/netns/cni-1"]),
    workload_cpus=st.integers(0, 2**32 - 1),  # Kata's sandbox sizing is uint32
    workload_mem_mib=st.integers(0, 2**32 - 1),
    sandbox_id=st.sampled_from(["1" * 64, "abc", "x" * 120]),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=mutated_docs(), facts=FACTS)
def test_mutated_configs_render_or_raise_config_error(doc, facts):
    try:
        rendered = render_doc(doc, facts)
    except ConfigError as err:
        assert err.key or err.problem
        return
    except UnmodelledKey as err:  # one line naming the key it refuses
        message = str(err)
        assert len(message.splitlines()) == 1 and any(
            message.startswith(f"hypervisor.{name}.{key.split('.', 1)[1]} = ") for name in ("clh", "firecracker",
                                                                                         "acrn")
            for key in UNMODELLED), message
        return
    assert rendered.argv and all(isinstance(arg.value, str) for arg in rendered.argv)
    if rendered.vmconfig is not None:
        json.dumps(rendered.vmconfig)  # JSON-serialisable, as Kata sends it
        assert all(rendered.vmconfig_sources.values())


@settings(max_examples=200, deadline=None)
@given(table=st.dictionaries(st.sampled_from(sorted(HYPERVISOR_KEYS)), ANY_VALUE, max_size=6),
       name=st.sampled_from(["clh", "firecracker", "acrn"]), facts=FACTS)
def test_arbitrary_hypervisor_tables(table, name, facts):
    """A table built from scratch (most keys missing) behaves the same way."""
    with contextlib.suppress(ConfigError):
        render_doc({"hypervisor": {name: table}}, facts)


@pytest.mark.parametrize("base", sorted(BASES))
def test_an_unmodelled_value_is_refused_naming_its_key(base: str) -> None:
    """What hypothesis found once (``kernel_verity_params = 'bogus'`` under clh): a refusal naming the key."""
    doc = copy.deepcopy(BASES[base])
    name, table = next(iter(doc["hypervisor"].items()))
    table["kernel_verity_params"] = "bogus"
    with pytest.raises(UnmodelledKey, match=rf"^hypervisor\.{name}\.kernel_verity_params = 'bogus': "):
        render_doc(doc, HostFacts())
