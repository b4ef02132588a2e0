"""Every Kata 3.0.0 vector with pod network endpoints: argv, virtiofsd argv and rejections equal Kata's."""

from __future__ import annotations

import pytest

from katatest.conformance.check import check_vector
from tests.conformance_files import net_vectors

VECTORS = net_vectors()


@pytest.mark.parametrize("vector", VECTORS, ids=[v.id for v in VECTORS])
def test_net_vector(vector):
    problems = check_vector(vector)
    assert not problems, f"{vector.id}: " + "; ".join(problems)


def test_net_vector_count_is_complete():
    """Guards against a broken glob silently testing nothing: 45 named + 90 random, some rejected."""
    assert len(VECTORS) == 135
    assert sum(v.kind == "named" for v in VECTORS) == 45
    assert sum(v.rejected for v in VECTORS) >= 7
    assert sum("--net-endpoint" in v.flags for v in VECTORS) >= 100
