"""Property tests: mutated Kata 3.0.0 QEMU configs and random host facts render or fail cleanly.

Every input either renders (a well-formed argv with provenance) or raises ``KatatestError`` with a one-line
message; nothing else may escape.
"""

from __future__ import annotations

import copy
import datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from katatest.errors import KatatestError
from katatest.generate.provenance import Arg
from katatest.generate.render import render_doc, render_file
from katatest.generate.rendered import Rendered
from katatest.host.endpoints import endpoints_from_specs
from katatest.host.facts import HostFacts
from katatest.kata import defaults as d
from katatest.kata.toml_schema import AGENT_KEYS, FACTORY_KEYS, HYPERVISOR_KEYS, IMAGE_KEYS, RUNTIME_KEYS
from katatest.kata.tomlconf import parse_toml

NAMED = Path(__file__).parent / "data" / "conformance" / "kata-3.0.0" / "named"
BASE_TEXT = {name: (NAMED / f"{name}.toml").read_text() for name in ("default", "arm64_default")}
BASES = {name: parse_toml(text) for name, text in BASE_TEXT.items()}
BASE_ARCH = {"default": "amd64", "arm64_default": "arm64"}

PROPS = settings(deadline=None, max_examples=1000, suppress_health_check=[HealthCheck.too_slow])
SMALL = settings(deadline=None, max_examples=300, suppress_health_check=[HealthCheck.too_slow])

# (section path, its keys with Go types)
SECTIONS: dict[tuple[str, ...], dict[str, str]] = {
    ("hypervisor", "qemu"): HYPERVISOR_KEYS,
    ("agent", "kata"): AGENT_KEYS,
    ("runtime",): RUNTIME_KEYS,
    ("factory",): FACTORY_KEYS,
    ("image",): IMAGE_KEYS,
}

ABSURD_INTS = [-1, 0, 1, 2, 5, 16, 255, 256, 1023, 4096, 2**16, 2**31 - 1, 2**31, 2**32 - 1, 2**32,
               2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**31), -(2**63), -(2**63) - 1, 2**80]
PATHS = ["", " ", "/a b/c d", "/x,y,z", "/opt/ünïcödé/vmlinuz", "/日本/画像.img", "rel/path", "/" * 300,
         "/tab\there", "/new\nline", "/with=equals", "/nul\0byte", "/trailing,", ",leading", "/emoji/🚀"]
PATH_KEYS = ["path", "kernel", "image", "initrd", "firmware", "firmware_volume", "virtio_fs_daemon", "entropy_source",
             "file_mem_backend", "guest_memory_dump_path", "vhost_user_store_path", "kernel_params",
             "seccompsandbox", "machine_accelerators", "cpu_features"]
ENUMS: dict[str, list[str]] = {
    "machine_type": ["q35", "virt", "microvm", "pc", "pc-i440fx", "s390-ccw-virtio", "pseries", "", "Q35"],
    "shared_fs": ["virtio-fs", "virtio-9p", "virtio-fs-nydus", "none", "", "virtiofs", "9p"],
    "block_device_driver": [*d.BLOCK_DEVICE_DRIVERS, "", "ide", "nvme", "virtio_blk"],
    "block_device_aio": [*d.BLOCK_DEVICE_AIOS, "", "posix", "uring"],
    "entropy_source": ["/dev/urandom", "/dev/random", "", "/dev/hwrng", "/dev/ëntropy, x"],
    "virtio_fs_cache": ["auto", "always", "none", "", "never"],
    "cpu_features": ["", ",", ",,,", "pmu=off", " pmu=off , ,vmx=on,", "+avx512f,-sse"],
    "machine_accelerators": ["", ",", "nosmm,nosmbus", ",,nosmm,", "usb=off"],
    "kernel_params": ["", "a=b c", "k=", "  ", "agent.log=debug quiet", "x==y", "=x", "a=b=c  d"],
    "seccompsandbox": ["", "on,obsolete=deny,spawn=deny,resourcecontrol=deny", "on"],
    "internetworking_model": ["tcfilter", "macvtap", "none", "default", "", "bridged"],
    "vfio_mode": ["guest-kernel", "vfio", "", "iommufd"],
}

texts = st.text(max_size=24)
strings = st.one_of(texts, st.sampled_from(PATHS))
ints = st.one_of(st.sampled_from(ABSURD_INTS), st.integers(-(2**70), 2**70), st.integers(0, 5000))
scalars = st.one_of(
    strings,
    ints,
    st.booleans(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.just(datetime.datetime(1979, 5, 27, 7, 32)),
    st.just(datetime.date(2022, 10, 10)),
)
any_value = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                         | st.dictionaries(texts, inner, max_size=3), max_leaves=6)


def typed_value(key: str, gotype: str) -> st.SearchStrategy[Any]:
    """Values of the key's own Go type (weird but well-typed), sometimes of any type at all."""
    if key in ENUMS:
        right = st.sampled_from(ENUMS[key]) | strings
    elif gotype == "str":
        right = strings
    elif gotype == "bool":
        right = st.booleans()
    elif gotype == "strs":
        right = st.lists(strings, max_size=4)
    else:
        right = ints
    return st.one_of(right, right, right, any_value)


@st.composite
def mutation(draw: st.DrawFn) -> tuple:
    """One change to a config document."""
    path = draw(st.sampled_from(list(SECTIONS)))
    kind = draw(st.sampled_from(["set", "set", "set", "set", "set", "path", "unknown", "delete", "delete_section",
                                 "clobber_section", "extra_hypervisor", "odd_table", "clobber_root"]))
    keys = SECTIONS[path]
    if kind == "set":
        key = draw(st.sampled_from(sorted(keys)))
        return ("set", path, key, draw(typed_value(key, keys[key])))
    if kind == "path":
        key = draw(st.sampled_from(PATH_KEYS))
        return ("set", ("hypervisor", "qemu"), key, draw(st.sampled_from(PATHS) | texts))
    if kind == "odd_table":
        key = draw(st.sampled_from(sorted(AGENT_KEYS)))
        return ("odd_table", path, draw(texts), {key: draw(typed_value(key, AGENT_KEYS[key]))})
    if kind == "unknown":
        return ("set", path, draw(texts), draw(any_value))
    if kind == "delete":
        return ("delete", path, draw(st.sampled_from(sorted(keys))), None)
    if kind == "delete_section":
        return ("delete_section", path, "", None)
    if kind == "clobber_section":
        return ("clobber_section", path, "", draw(scalars | st.lists(scalars, max_size=2)))
    if kind == "extra_hypervisor":
        return ("extra_hypervisor", path, draw(st.sampled_from(["dragonball", "clh", "firecracker", "acrn",
                                                                 "qemu2", ""])), None)
    return ("clobber_root", path, draw(st.sampled_from(["hypervisor", "agent"])), draw(scalars))


def apply(doc: dict[str, Any], change: tuple) -> None:
    """Apply one ``mutation()`` to ``doc`` in place."""
    kind, path, key, value = change
    parent = doc
    for part in path[:-1]:
        child = parent.get(part)
        if not isinstance(child, dict):
            return
        parent = child
    leaf = path[-1]
    if kind == "set":
        table = parent.setdefault(leaf, {})
        if isinstance(table, dict):
            table[key] = value
    elif kind == "delete":
        table = parent.get(leaf)
        if isinstance(table, dict):
            table.pop(key, None)
    elif kind == "delete_section":
        parent.pop(leaf, None)
    elif kind == "clobber_section":
        parent[leaf] = value
    elif kind == "odd_table":
        for outer in ("agent", "hypervisor"):
            if isinstance(doc.get(outer), dict):
                doc[outer][key] = value
    elif kind == "extra_hypervisor":
        hv = doc.get("hypervisor")
        if isinstance(hv, dict):
            hv[key] = {}
    else:
        doc[key] = value


sandbox_ids = st.one_of(
    st.just("1" * 64),
    st.text(alphabet="0123456789abcdef", min_size=2, max_size=64),
    st.text(alphabet=st.characters(blacklist_characters="/,\0"), min_size=1, max_size=40),
    st.sampled_from(["ünï cödé", "x" * 90, "line\nbreak", "trailing\n", "a.b_c-d", "-x", "1"]),
)
INVALID_FACTS = st.sampled_from([
    {"arch": "sparc"}, {"arch": ""}, {"host_cpus": 0}, {"host_cpus": -1}, {"host_mem_mib": 0},
    {"vsock_cid": -1}, {"image_size": -1}, {"guest_protection": "snp"}, {"sev_cbitpos": -1},
    {"workload_cpus": -1}, {"sandbox_id": ""}, {"sandbox_id": "a/b"}, {"sandbox_id": "a,b"},
    {"sandbox_id": "nul\0"},
])


NET_SPECS = st.sampled_from(["veth", "veth", "veth:0a:58:0a:f4:00:07", "veth:02:42:AC:11:00:02"])


@st.composite
def fact_kwargs(draw: st.DrawFn, arch: str) -> dict[str, Any]:
    """Keyword arguments for HostFacts: valid (if odd) values, sometimes with one invalid fact."""
    kwargs = {
        "arch": draw(st.sampled_from([arch] * 6 + ["amd64", "arm64"])),
        "host_cpus": draw(st.one_of(st.integers(1, 4096), st.sampled_from([1, 240, 241, 123, 124]))),
        "host_mem_mib": draw(st.one_of(st.integers(1, 2**22), st.sampled_from([1, 256, 2**63, 2**70]))),
        "nested": draw(st.booleans()),
        "sandbox_id": draw(sandbox_ids),
        "vsock_cid": draw(st.one_of(st.integers(0, 10), st.sampled_from([2**32 - 1, 2**32, 2**64]))),
        "image_size": draw(st.sampled_from([268435456, 1, 268435456, 2**40, 0])),
        "initrd_size": draw(st.sampled_from([0, 1, 4194304, 4194304, 2**31, 2**40])),
        "guest_protection": draw(st.sampled_from(["none", "none", "tdx", "sev"])),
        "sev_cbitpos": draw(st.sampled_from([47, 0, 51])),
        "sev_reduced_phys_bits": draw(st.sampled_from([1, 0, 5])),
        "fips": draw(st.booleans()),
        "vsock": draw(st.booleans()),
        "sharedfs": draw(st.booleans()),
        "uid": draw(st.sampled_from([0, 1000, 2**31])),
        "rootless": draw(st.booleans()),
        "xdg_runtime_dir": draw(st.sampled_from(["", "/run/user/1000", "/tmp/ü x,y", "/" + "d" * 90])),
        "workload_cpus": draw(st.sampled_from([0, 0, 1, 7, 2**32])),
        "workload_mem_mib": draw(st.sampled_from([0, 0, 512, 2**32 - 1])),
        "net_endpoints": endpoints_from_specs(draw(st.lists(NET_SPECS, max_size=3))),
        "vhost_net": draw(st.booleans()),
    }
    if draw(st.integers(0, 9)) == 7:
        kwargs.update(draw(INVALID_FACTS))
    return kwargs


@st.composite
def config_and_facts(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any]]:
    base = draw(st.sampled_from(sorted(BASES)))
    doc = copy.deepcopy(BASES[base])
    for change in draw(st.lists(mutation(), min_size=0, max_size=4)):
        apply(doc, change)
    return doc, draw(fact_kwargs(BASE_ARCH[base]))


def expected_binary(doc: dict[str, Any]) -> str:
    """argv[0]: the configured ``path``, else Kata's build-time default (the x86_64 binary)."""
    hv = doc.get("hypervisor", {}).get("qemu", {})
    return hv.get("path") or d.DEFAULT_HYPERVISOR_PATH


def check_args(args: list[Arg]) -> None:
    for arg in args:
        assert isinstance(arg, Arg)
        assert isinstance(arg.value, str)
        assert "\0" not in arg.value, arg
        assert arg.sources and all(isinstance(s, str) and s for s in arg.sources), arg


def check_rendered(rendered: Rendered, doc: dict[str, Any]) -> None:
    """The invariants of every successful QEMU render."""
    assert rendered.hypervisor == "qemu"
    check_args(rendered.argv)
    values = rendered.argv_values()
    assert values[0] == expected_binary(doc)
    assert values.count("-kernel") == 1
    assert values.count("-append") == 1
    assert values[values.index("-append") + 1].strip()
    assert values.count("-smp") == 1
    if rendered.daemon is not None:
        check_args(rendered.daemon)
    check_network(rendered)


def check_network(rendered: Rendered) -> None:
    """The endpoints' fds are contiguous after the vsock's, N of each kind, as the -netdev arguments name them."""
    values = rendered.argv_values()
    netdevs = [value for flag, value in zip(values, values[1:]) if flag == "-netdev"]
    assert len(netdevs) == len(rendered.network)
    fds = [fd for plumbing in rendered.network for fd in plumbing.fds]
    assert fds == list(range(fds[0], fds[0] + len(fds))) if fds else True
    assert not fds or fds[0] == 3 + any("vhostfd=3" in v for v in values)
    for plumbing, netdev in zip(rendered.network, netdevs):
        assert len(plumbing.tap_fds) == plumbing.queues > 0
        assert len(plumbing.vhost_fds) == (plumbing.queues if plumbing.vhost else 0)
        assert f"fds={':'.join(map(str, plumbing.tap_fds))}" in netdev.split(",")
        assert f"netdev={plumbing.netdev_id},mac={plumbing.mac}," in values[values.index(netdev) + 2]


def check_rejection(err: KatatestError) -> None:
    message = str(err)
    assert message.strip(), "a rejection must say why"
    assert len(message.splitlines()) == 1, f"multi-line error: {message!r}"


def render_or_reject(doc: Any, kwargs: dict[str, Any], source: str = "") -> Rendered | None:
    """Render, returning None (after checking the message) when katatest rejects the input."""
    try:
        facts = HostFacts(**kwargs)
        return render_doc(doc, facts, source)
    except KatatestError as err:
        check_rejection(err)
        return None


@PROPS
@given(config_and_facts())
def test_mutated_doc_renders_or_rejects(case: tuple[dict[str, Any], dict[str, Any]]) -> None:
    doc, kwargs = case
    rendered = render_or_reject(doc, kwargs, "mutated.toml")
    if rendered is not None:
        check_rendered(rendered, doc)


VALID_FACTS = st.builds(
    HostFacts,
    arch=st.sampled_from(["amd64", "arm64"]),
    host_cpus=st.integers(1, 4096),
    host_mem_mib=st.integers(1, 2**20),
    nested=st.booleans(),
    guest_protection=st.sampled_from(["none", "tdx", "sev"]),
    fips=st.booleans(),
    vsock=st.booleans(),
    sharedfs=st.booleans(),
    sandbox_id=st.text(alphabet="0123456789abcdef", min_size=2, max_size=64),
)


@SMALL
@given(st.sampled_from(sorted(BASES)), st.lists(mutation(), max_size=3), VALID_FACTS)
def test_valid_facts_keep_shipped_config_rendering(base: str, changes: list, facts: HostFacts) -> None:
    """With valid facts for the base's arch, the unmutated config always renders."""
    facts = facts.with_overrides(arch=BASE_ARCH[base], guest_protection="none")
    doc = copy.deepcopy(BASES[base])
    check_rendered(render_doc(doc, facts), doc)
    for change in changes:
        apply(doc, change)
    try:
        rendered = render_doc(doc, facts)
    except KatatestError as err:
        check_rejection(err)
    else:
        check_rendered(rendered, doc)


GARBAGE = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["[", "]]", "=", "\"", "'''", "[hypervisor.qemu]", "x = ", "= 1", "\\u0000", "\"\\u0000\"",
                     "\n[[agent]]\n", "\ndefault_memory = 1\ndefault_memory = 2\n", "\n[runtime]\n", "0x", "inf",
                     "\udc80".encode("utf-8", "surrogatepass").decode("latin-1")]),
)


@st.composite
def raw_text(draw: st.DrawFn) -> bytes:
    """The shipped config text, truncated, spliced with garbage, or corrupted at the byte level."""
    text = BASE_TEXT[draw(st.sampled_from(sorted(BASE_TEXT)))]
    kind = draw(st.sampled_from(["truncate", "insert", "replace_line", "bytes"]))
    pos = draw(st.integers(0, len(text)))
    if kind == "truncate":
        return text[:pos].encode()
    if kind == "insert":
        return (text[:pos] + draw(GARBAGE) + text[pos:]).encode("utf-8", "surrogatepass")
    if kind == "replace_line":
        lines = text.splitlines()
        index = draw(st.integers(0, len(lines) - 1))
        key = lines[index].partition("=")[0]
        lines[index] = key + "=" + draw(GARBAGE) if "=" in lines[index] else draw(GARBAGE)
        return "\n".join(lines).encode("utf-8", "surrogatepass")
    data = text.encode()
    return data[:pos] + draw(st.binary(min_size=1, max_size=8)) + data[pos:]


@SMALL
@given(raw_text(), st.sampled_from(["amd64", "arm64"]))
def test_raw_toml_parses_or_rejects(data: bytes, arch: str) -> None:
    try:
        doc = parse_toml(data, "raw.toml")
    except KatatestError as err:
        check_rejection(err)
        return
    rendered = render_or_reject(doc, {"arch": arch, "host_cpus": 8, "host_mem_mib": 16384})
    if rendered is not None:
        check_rendered(rendered, doc)


FILE_NAMES = st.sampled_from(["config.toml", "with space.toml", "comma,name.toml", "ünïcödé.toml",
                              "画像.toml", "no-suffix"])


@pytest.fixture(scope="module")
def file_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory for the config files (pytest removes it; module scope suits hypothesis)."""
    return tmp_path_factory.mktemp("render-file")


@SMALL
@given(name=FILE_NAMES, data=raw_text() | st.just(BASE_TEXT["default"].encode()), exists=st.booleans())
def test_render_file_renders_or_rejects(file_dir: Path, name: str, data: bytes, exists: bool) -> None:
    path = file_dir / name
    if exists:
        path.write_bytes(data)
    else:
        path.unlink(missing_ok=True)
    try:
        rendered = render_file(path, HostFacts(host_cpus=8, host_mem_mib=16384))
    except KatatestError as err:
        check_rejection(err)
        assert exists or name in str(err)
        return
    assert exists
    check_rendered(rendered, parse_toml(data.decode()))


def test_mutations_exercise_both_outcomes() -> None:
    """Sanity: the strategies are not so destructive that nothing renders (nor so tame that nothing fails)."""
    outcomes = {True: 0, False: 0}

    @settings(deadline=None, max_examples=200, database=None)
    @given(config_and_facts())
    def run(case: tuple[dict[str, Any], dict[str, Any]]) -> None:
        outcomes[render_or_reject(*case) is not None] += 1

    run()
    assert outcomes[True] >= 10 and outcomes[False] >= 10, outcomes
