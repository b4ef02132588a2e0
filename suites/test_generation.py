"""Generation suite: every Kata 3.0.0 conformance vector rendered and compared (fast, boots nothing)."""

from __future__ import annotations

from pathlib import Path

import pytest

from katatest.conformance import check_vector
from katatest.vectors import discover

DATA = Path(__file__).resolve().parent.parent / "tests" / "data" / "conformance"
SUITES = ("kata-3.0.0", "kata-3.0.0-clh", "kata-3.0.0-fc")
VECTORS = [v for suite in SUITES for v in discover(DATA, suite)]


@pytest.mark.parametrize("vector", VECTORS, ids=[v.id for v in VECTORS])
def test_generation_matches_kata(vector):
    problems = check_vector(vector)
    assert not problems, "; ".join(problems)
