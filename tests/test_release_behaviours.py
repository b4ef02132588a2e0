"""Release behaviours no vector exercises: each one changes what it names, for the release that has it."""

from __future__ import annotations

import dataclasses

import pytest

from katatest.errors import KatatestError
from katatest.generate.render import render_doc
from katatest.host.flags import parse_flags
from katatest.kata.tomlconf import load_toml
from tests.conformance_files import DATA

DEFAULT = DATA / "kata-4.1.0" / "named" / "default.toml"
FACTS = parse_flags((DATA / "kata-4.1.0" / "named" / "default.flags").read_text())[0]


def _with(**keys: object) -> dict:
    doc = load_toml(DEFAULT)
    doc["hypervisor"]["qemu"].update(keys)
    return doc


def _smp(doc: dict, release: str) -> str:
    argv = render_doc(doc, FACTS, str(DEFAULT), release=release).argv_values()
    return argv[argv.index("-smp") + 1]


@pytest.mark.parametrize("release", ["3.30.0", "4.1.0"])
def test_default_vcpus_is_a_float_rounded_up(release: str) -> None:
    assert _smp(_with(default_vcpus=1.5), release).startswith("2,")
    assert _smp(_with(default_vcpus=2.0), release).startswith("2,")
    assert _smp(_with(default_vcpus=-0.5), release).startswith("8,")  # negative: every usable CPU
    with pytest.raises(KatatestError, match=r"hypervisor\.qemu\.default_vcpus: not a number"):
        render_doc(_with(default_vcpus=float("nan")), FACTS, str(DEFAULT), release=release)


def test_3_0_0_wants_an_integer_default_vcpus() -> None:
    with pytest.raises(KatatestError, match=r"default_vcpus: expected an integer"):
        render_doc(_with(default_vcpus=1.5), FACTS, str(DEFAULT))


@pytest.mark.parametrize("release", ["3.30.0", "4.1.0"])
def test_a_missing_qemu_binary_is_rejected_by_later_releases(release: str) -> None:
    missing = dataclasses.replace(FACTS, qemu_binary=False)
    with pytest.raises(KatatestError, match=r"hypervisor\.qemu\.path: QEMU path \(/usr/bin/qemu-system-x86_64\) "
                                            r"does not exist"):
        render_doc(load_toml(DEFAULT), missing, str(DEFAULT), release=release)
    render_doc(load_toml(DEFAULT), missing, str(DEFAULT))  # 3.0.0 does not look


def test_extra_monitor_socket_needs_debug_and_a_known_protocol() -> None:
    argv = render_doc(_with(extra_monitor_socket="hmp", enable_debug=True), FACTS, "", release="4.1.0")
    values = argv.argv_values()
    assert values[values.index("-monitor") + 1].endswith("/extra-monitor.sock,server=on,wait=off")
    quiet = render_doc(_with(extra_monitor_socket="hmp"), FACTS, "", release="4.1.0").argv_values()
    assert "-monitor" not in quiet
    with pytest.raises(KatatestError, match="extra_monitor_socket: invalid hypervisor extra monitor socket 'x'"):
        render_doc(_with(extra_monitor_socket="x"), FACTS, "", release="4.1.0")


def _snp(**keys: object) -> list[str]:
    facts = dataclasses.replace(FACTS, guest_protection="sev")
    doc = _with(confidential_guest=True, sev_snp_guest=True, firmware="/usr/share/ovmf/OVMF.fd", **keys)
    argv = render_doc(doc, facts, str(DEFAULT), release="4.1.0").argv_values()
    return [a for a in argv if a.startswith("sev-snp-guest,")]


def test_snp_policy_and_id_block() -> None:
    assert _snp() == ["sev-snp-guest,id=snp,cbitpos=47,reduced-phys-bits=1,kernel-hashes=on"]
    assert _snp(snp_guest_policy=0) == ["sev-snp-guest,id=snp,cbitpos=47,reduced-phys-bits=1,kernel-hashes=on,"
                                        "policy=0"]
    assert _snp(snp_id_block="QkxL", snp_id_auth="QVVUSA==", snp_guest_policy=196608) == [
        "sev-snp-guest,id=snp,cbitpos=47,reduced-phys-bits=1,kernel-hashes=on,id-block=QkxL,id-auth=QVVUSA==,"
        "policy=196608"]
    with pytest.raises(KatatestError, match=r"hypervisor\.qemu\.snp_id_block: specifying snp_id_block without "
                                            r"snp_id_auth is not allowed"):
        _snp(snp_id_block="QkxL")
