"""``kata-3.0.0-net/HOST-FACTS.md``: what Kata 3.0.0's own code built for each recorded case. Our argv holds the
recorded QEMU fragment, and our NetPlumbing names exactly the fds QEMU inherited, in order and by kind (vhost-net
fds, then the tap's: ``/dev/net/tun`` attached to ``tapI_kata`` for tcfilter, ``/dev/tap<ifindex>`` for macvtap).
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass

import pytest
import tomllib

from katatest.generate.render import render_doc
from katatest.host.flags import parse_flags
from katatest.kata.tomlconf import load_toml
from tests.conformance_files import DATA, NET_SUITE

HOST_FACTS = DATA / NET_SUITE / "HOST-FACTS.md"
SHIPPED = DATA / NET_SUITE / "named" / "net_default.toml"  # the shipped configuration-qemu.toml (amd64)
RUNTIME_KEYS = ("internetworking_model",)
_HEADER = re.compile(r"^config: (?P<config>.*); flags: `(?P<flags>[^`]*)`; oracle rc=0$", re.M)
_FRAGMENT = re.compile(r"QEMU argv fragment:\n```\n(?P<argv>.*?)\n```", re.S)
_INHERITED = re.compile(r"^  fd (?P<fd>\d+) -> (?P<target>.*?)\s*$", re.M)


@dataclass(frozen=True)
class Case:
    title: str
    config: str
    flags: str
    fragment: list[str]
    inherited: dict[int, str]


def _cases() -> list[Case]:
    cases = []
    for section in HOST_FACTS.read_text().split("\n## ")[1:]:
        header = _HEADER.search(section)
        if not header:
            continue
        title = section.splitlines()[0]
        fragment = _FRAGMENT.search(section)
        assert fragment, f"{title}: no QEMU argv fragment"
        inherited = {int(m["fd"]): m["target"] for m in _INHERITED.finditer(section)}
        cases.append(Case(title, header["config"], header["flags"], fragment["argv"].splitlines(), inherited))
    return cases


CASES = _cases()


def _config(changes: str) -> dict:
    doc = copy.deepcopy(load_toml(SHIPPED))
    if changes != "(shipped config)":
        for assignment in changes.split(", "):
            key, _, value = assignment.partition(" = ")
            table = doc["runtime"] if key in RUNTIME_KEYS else doc["hypervisor"]["qemu"]
            table[key] = tomllib.loads(f"v = {value}")["v"]
    return doc


def _in_order(argv: list[str], fragment: list[str]) -> bool:
    """Every ``flag value`` pair of ``fragment`` is a pair of ``argv``, in the same order (the recorded
    fragment leaves out the devices between, e.g. the shared-fs volume)."""
    pairs = list(zip(argv, argv[1:]))
    wanted = list(zip(fragment[::2], fragment[1::2]))
    position = 0
    for pair in wanted:
        try:
            position = pairs.index(pair, position) + 1
        except ValueError:
            return False
    return True


def test_host_facts_cases_were_found():
    assert len(CASES) == 8
    assert {c.config for c in CASES} >= {"(shipped config)", 'internetworking_model = "macvtap"'}


@pytest.mark.parametrize("case", CASES, ids=[c.title for c in CASES])
def test_recorded_case(case: Case):
    facts, _ = parse_flags(case.flags)
    rendered = render_doc(_config(case.config), facts, str(SHIPPED))
    assert _in_order(rendered.argv_values(), case.fragment), f"{case.title}: fragment not in our argv"

    expected = {3: "/dev/null"}  # the vhost-vsock fd (faked by the oracle, like the vhost-net fds)
    for plumbing in rendered.network:
        expected.update({fd: "/dev/null" for fd in plumbing.vhost_fds})
        tap_targets = {case.inherited.get(fd, "") for fd in plumbing.tap_fds}
        if plumbing.model == "tcfilter":
            assert tap_targets == {f"/dev/net/tun iff:\t{plumbing.tap}"}, case.title
        else:
            assert len(tap_targets) == 1 and re.fullmatch(r"/dev/tap\d+", tap_targets.pop()), case.title
        expected.update({fd: case.inherited.get(fd, "?") for fd in plumbing.tap_fds})
    assert expected == case.inherited, f"{case.title}: inherited fds differ"
