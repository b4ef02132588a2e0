"""Every Kata 3.0.0 QEMU vector: our argv must equal Kata's, argument by argument (after normalisation)."""

from __future__ import annotations

import pytest

from katatest.conformance.check import check_vector, json_difference
from tests.conformance_files import qemu_vectors

VECTORS = qemu_vectors()


@pytest.mark.parametrize("vector", VECTORS, ids=[v.id for v in VECTORS])
def test_qemu_vector(vector):
    problems = check_vector(vector)
    assert not problems, f"{vector.id}: " + "; ".join(problems)


def test_vector_count_is_complete():
    """Guards against a broken glob silently testing nothing."""
    assert len(VECTORS) >= 250
    assert sum(v.rejected for v in VECTORS) >= 40


def test_json_difference_names_the_pointer():
    assert json_difference({"a": {"b": [1, 2]}}, {"a": {"b": [1, 3]}}) == "/a/b/1: expected 2, got 3"
    assert json_difference({"a": 1}, {"a": 1, "c": 2}) == "/c: unexpected 2"
    assert json_difference({"a": 1}, {"a": 1}) == ""
