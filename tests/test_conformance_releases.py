"""Every Kata 3.30.0 and 4.1.0 QEMU vector, rendered with the vector's release (``render --kata-version``).

Vectors katatest does not reproduce yet are listed in ``tests/data/conformance/<set>.known-gaps`` (one vector id a
line) and run as strict xfails: a gap that starts passing fails the run until its line is removed."""

from __future__ import annotations

from pathlib import Path

import pytest

from katatest.conformance.check import check_vector
from katatest.conformance.vectors import Vector, discover, first_difference
from katatest.generate.render import render_file
from katatest.host.flags import parse_flags
from tests.conformance_files import DATA

RELEASE_SETS = {"kata-3.30.0": "3.30.0", "kata-4.1.0": "4.1.0"}


def known_gaps(suite: str) -> set[str]:
    path = DATA / f"{suite}.known-gaps"
    if not path.exists():
        return set()
    return {line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")}


def _cases() -> list:
    cases = []
    for suite, release in RELEASE_SETS.items():
        gaps = known_gaps(suite)
        for vector in discover(DATA, suite):
            marks = [pytest.mark.xfail(strict=True, reason="known gap")] if vector.id in gaps else []
            cases.append(pytest.param(vector, release, id=vector.id, marks=marks))
    return cases


@pytest.mark.parametrize(("vector", "release"), _cases())
def test_release_vector(vector: Vector, release: str) -> None:
    problems = check_vector(vector, release)
    assert not problems, f"{vector.id}: " + "; ".join(problems)


@pytest.mark.parametrize("suite", sorted(RELEASE_SETS))
def test_release_set_is_complete(suite: str) -> None:
    """Guards against a broken glob silently testing nothing, and stale gap lines."""
    vectors = discover(DATA, suite)
    assert len(vectors) == 358 and sum(v.rejected for v in vectors) >= 100
    assert known_gaps(suite) <= {v.id for v in vectors}


def test_gap_files_are_sorted() -> None:
    for suite in RELEASE_SETS:
        path = Path(DATA / f"{suite}.known-gaps")
        if path.exists():
            lines = [x for x in path.read_text().splitlines() if x and not x.startswith("#")]
            assert lines == sorted(lines), path


@pytest.mark.parametrize(("suite", "arch", "named"), [(s, a, n) for s in sorted(RELEASE_SETS)
                                                      for a, n in (("amd64", "default"), ("arm64", "arm64_default"))])
def test_shipped_config_renders_as_its_default_vector(suite: str, arch: str, named: str) -> None:
    """``base/`` holds the release's shipped configs as its Makefile makes them: rendered with the flags of the
    ``default`` vector they give Kata's own argv for it."""
    facts, _ = parse_flags((DATA / suite / "named" / f"{named}.flags").read_text())
    rendered = render_file(DATA / suite / "base" / f"configuration-qemu-{arch}.toml", facts,
                           release=RELEASE_SETS[suite])
    expected = (DATA / suite / "named" / f"{named}.argv").read_text().splitlines()
    assert first_difference(expected, rendered.argv_values()) == ""
