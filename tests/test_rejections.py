"""Every rejection Kata makes is made by katatest at Kata's stage and for Kata's reason (not just any error)."""

from __future__ import annotations

import pytest

from katatest.conformance.check import check_vector, rejection_difference
from katatest.conformance.vectors import VECTOR_SETS, Vector, discover
from katatest.errors import KATA_STAGES, ConfigError, KatatestError
from katatest.generate.render import render_file
from katatest.host.flags import parse_flags
from tests.conformance_files import DATA

REJECTED = [pytest.param(vector, release, id=vector.id) for suite, release in VECTOR_SETS.items()
            for vector in discover(DATA, suite) if vector.rejected]


def test_every_set_has_rejections() -> None:
    assert len(REJECTED) >= 320
    stages = {v.values[0].file(".err").read_text().split(":")[0] for v in REJECTED}
    assert stages == set(KATA_STAGES)


@pytest.mark.parametrize(("vector", "release"), REJECTED)
def test_rejected_at_kata_stage_for_kata_reason(vector: Vector, release: str) -> None:
    kata = vector.file(".err").read_text().strip()
    stage = kata.split(":")[0]
    facts, _ = parse_flags(" ".join(vector.flags))
    with pytest.raises(ConfigError) as err:
        render_file(vector.toml, facts, release=release)
    message = str(err.value)
    assert len(message.splitlines()) == 1 and f": {stage}: " in message, message
    assert err.value.key, message
    assert rejection_difference(kata, err.value) == []


def test_another_stage_is_a_difference() -> None:
    err = ConfigError("hypervisor.qemu.default_maxvcpus", "MaxCPUs 1 must be equal to or greater than CPUs 2",
                      stage="LaunchQemu", kata="MaxCPUs 1 must be equal to or greater than CPUs 2")
    assert rejection_difference("LaunchQemu: MaxCPUs 1 must be equal to or greater than CPUs 2", err) == []
    assert "rejected at LaunchQemu, Kata at StartVM" in rejection_difference(
        "StartVM: Invalid virtio-fs cache mode: none", err)[0]


def test_another_reason_is_a_difference() -> None:
    err = ConfigError("hypervisor.qemu.default_maxvcpus", "x", stage="LaunchQemu",
                      kata=r"MaxCPUs 1 must be equal to or greater than CPUs 2\b")
    assert "another reason" in rejection_difference("LaunchQemu: MaxCPUs 1 must be equal to or greater than CPUs 20",
                                                    err)[0]
    unnamed = ConfigError("hypervisor.qemu.default_maxvcpus", "x", stage="LaunchQemu")
    assert "without Kata's reason" in rejection_difference("LaunchQemu: anything", unnamed)[0]
    assert "no Kata stage" in rejection_difference("LaunchQemu: anything", KatatestError("some error"))[0]


@pytest.mark.parametrize("suite", ["kata-3.30.0", "kata-4.1.0"])
def test_daemon_is_started_before_launch(suite: str) -> None:
    """h3030_0233: both the cache mode and maxcpus are wrong; Kata 3.30+ starts virtiofsd (StartVM) before
    LaunchQemu, so the cache mode is the reason."""
    vector = next(v for v in discover(DATA, suite) if v.name == "h3030_0233")
    assert vector.file(".err").read_text().startswith("StartVM: Invalid virtio-fs cache mode: none")
    assert check_vector(vector, VECTOR_SETS[suite]) == []


def test_confidential_guest_without_maxcpus_is_launched(tmp_path) -> None:
    """Kata 4.1.0 launches a confidential guest whose default_vcpus exceeds default_maxvcpus (its -smp has no
    maxcpus: nothing for LaunchQemu to compare); 3.30.0 pins maxcpus to the vCPUs."""
    shipped = DATA / "kata-4.1.0" / "shipped"
    config = tmp_path / "tdx.toml"
    text = (shipped / "shipped_amd64_tdx.toml").read_text()
    text = text.replace("default_vcpus = 1\n", "default_vcpus = 4\n").replace("default_maxvcpus = 0\n",
                                                                                "default_maxvcpus = 2\n")
    assert "default_vcpus = 4" in text and "default_maxvcpus = 2" in text
    config.write_text(text)
    facts, _ = parse_flags((shipped / "shipped_amd64_tdx.flags").read_text())
    argv = render_file(config, facts, release="4.1.0").argv_values()
    assert argv[argv.index("-smp") + 1] == "4,cores=1,threads=1"
