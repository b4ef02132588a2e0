"""Every Kata 3.30.0 and 4.1.0 QEMU vector, rendered with the vector's release (``render --kata-version``):
argv, virtiofsd/nydusd argv and rejections, argument by argument after normalisation."""

from __future__ import annotations

import pytest

from katatest.conformance.check import check_vector
from katatest.conformance.vectors import VECTOR_SETS, Vector, discover, first_difference
from katatest.generate.render import render_file
from katatest.host.flags import parse_flags
from katatest.kata.releases import DEFAULT_RELEASE
from tests.conformance_files import DATA

RELEASE_SETS = {suite: release for suite, release in VECTOR_SETS.items() if release != DEFAULT_RELEASE}
BASE_SETS = {suite: release for suite, release in RELEASE_SETS.items() if not suite.endswith("-net")}
CASES = [pytest.param(vector, release, id=vector.id)
         for suite, release in RELEASE_SETS.items() for vector in discover(DATA, suite)]


@pytest.mark.parametrize(("vector", "release"), CASES)
def test_release_vector(vector: Vector, release: str) -> None:
    problems = check_vector(vector, release)
    assert not problems, f"{vector.id}: " + "; ".join(problems)


@pytest.mark.parametrize("suite", sorted(RELEASE_SETS))
def test_release_set_is_complete(suite: str) -> None:
    """Guards against a broken glob silently testing nothing."""
    vectors = discover(DATA, suite)
    shipped = [v for v in vectors if v.kind == "shipped"]
    if suite.endswith("-net"):  # 46 named + 90 random, most with endpoints
        assert len(vectors) == 136 and sum(v.kind == "named" for v in vectors) == 46, len(vectors)
        assert sum(v.rejected for v in vectors) >= 30 and sum("--net-endpoint" in v.flags for v in vectors) >= 100
        return
    assert len(vectors) - len(shipped) == 358 and sum(v.rejected for v in vectors) >= 100
    assert len(shipped) == {"kata-3.30.0": 22, "kata-4.1.0": 24}[suite]
    assert sum(v.file(".nydusd.argv").exists() for v in vectors) >= 5


@pytest.mark.parametrize("suite", sorted(BASE_SETS))
def test_the_release_matters(suite: str) -> None:
    """Rendered as Kata 3.0.0 would, the later release's default vector does not match: the release is used."""
    vector = next(v for v in discover(DATA, suite) if v.name == "default")
    assert check_vector(vector, RELEASE_SETS[suite]) == []
    assert check_vector(vector) != []


@pytest.mark.parametrize(("suite", "arch", "named"), [(s, a, n) for s in sorted(BASE_SETS)
                                                      for a, n in (("amd64", "default"), ("arm64", "arm64_default"))])
def test_shipped_config_renders_as_its_default_vector(suite: str, arch: str, named: str) -> None:
    """``base/`` holds the release's shipped configs as its Makefile makes them: rendered with the flags of the
    ``default`` vector they give Kata's own argv for it."""
    facts, _ = parse_flags((DATA / suite / "named" / f"{named}.flags").read_text())
    rendered = render_file(DATA / suite / "base" / f"configuration-qemu-{arch}.toml", facts,
                           release=RELEASE_SETS[suite])
    expected = (DATA / suite / "named" / f"{named}.argv").read_text().splitlines()
    assert first_difference(expected, rendered.argv_values()) == ""
